//! `scripts/soak.sh` for 20 seconds against the binary under test: no lost request, no leak,
//! counters that agree, while the backend set changes and backends die, with idle, slow and
//! malformed clients alongside (`make soak` runs the same for 30 minutes).
//!
//! The script needs wrk and python3; where wrk is missing and cannot be installed, the test
//! says so loudly and passes without running.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const SOAK_SECONDS: &str = "20";

#[test]
fn soak_script_passes_a_short_run() {
    if let Err(missing) = tools() {
        eprintln!();
        eprintln!("**************************************************************************");
        eprintln!("** SKIPPED soak_script_passes_a_short_run: {missing}");
        eprintln!("**************************************************************************");
        eprintln!();
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = Command::new(root.join("scripts/soak.sh"))
        .env("SOAK_SECONDS", SOAK_SECONDS)
        .env("GOAROUND", env!("CARGO_BIN_EXE_goaround"))
        .env("FIXTURE", fixture_backend())
        .stdin(Stdio::null())
        .output()
        .expect("run scripts/soak.sh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Shown with --nocapture, and by the harness when the assertion fails.
    println!("{stdout}");
    assert!(
        output.status.success(),
        "soak.sh: {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    assert!(stdout.contains("soak: PASS"), "{stdout}");
}

/// wrk (installed with apt-get when missing, as the scripts do) and python3.
fn tools() -> Result<(), String> {
    let has = |tool: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !has("python3") {
        return Err("python3 is not installed".into());
    }
    if !has("wrk") {
        let _ = Command::new("sh")
            .args(["-c", "apt-get update -qq && apt-get install -y -qq wrk"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !has("wrk") {
            return Err("wrk is not installed and apt-get could not install it".into());
        }
    }
    Ok(())
}

/// The fixture backend example of the same profile as this test, built when missing
/// (`cargo test` builds examples, `cargo test --test soak` does not).
fn fixture_backend() -> PathBuf {
    // target/<profile>/deps/soak-HASH -> target/<profile>/examples/fixture_backend
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary in target/<profile>/deps");
    let fixture = profile_dir.join("examples/fixture_backend");
    if !fixture.exists() {
        let mut build = Command::new(env!("CARGO"));
        build.args(["build", "--example", "fixture_backend"]);
        if profile_dir.ends_with("release") {
            build.arg("--release");
        }
        let status = build.status().expect("run cargo build");
        assert!(
            status.success(),
            "cargo build --example fixture_backend: {status}"
        );
    }
    fixture
}
