//! The integration tests' fixture backend as a program, for `make demo`, `make bench`,
//! `make stress` and `make soak`.
//!
//! `fixture_backend --port 9001 --name b1` serves the fixture routes (`/`, `/echo`,
//! `/bytes/N`, `/health`, `/stats`, ...; see `tests/support/backend.rs`) on
//! `127.0.0.1:PORT`. Port 0 asks the OS; the line `fixture backend NAME listening on ADDR` on
//! stdout says which port it got. Requests are not recorded, so memory stays flat under a
//! benchmark.
//!
//! SIGTERM or SIGINT stops it the way a crash would look from outside (the listener and
//! every open connection closed, responses in progress cut), then prints its final counters
//! on one line, `fixture backend NAME stopped: requests N health_checks N connections N`,
//! and exits 0: a script that kills backends can still add up every request they served.

#[path = "../tests/support/backend.rs"]
mod backend;

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use signal_hook::consts::{SIGINT, SIGTERM};

const USAGE: &str = "usage: fixture_backend [--port PORT] [--name NAME]";

struct Args {
    port: u16,
    name: String,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut parsed = Args {
        port: 0,
        name: "backend".to_owned(),
    };
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--port" | "-port" | "-p" => {
                let port = value()?;
                parsed.port = port.parse().map_err(|_| format!("bad port {port:?}"))?;
            }
            "--name" | "-name" => parsed.name = value()?,
            "--help" | "-h" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(parsed)
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    // Before the listener: a SIGTERM right after the "listening" line must print the counts.
    let mut signals = match signal_hook::iterator::Signals::new([SIGTERM, SIGINT]) {
        Ok(signals) => signals,
        Err(e) => {
            eprintln!("fixture backend {}: cannot handle signals: {e}", args.name);
            return ExitCode::from(1);
        }
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], args.port));
    let backend = match backend::Backend::bind(&args.name, addr) {
        Ok(backend) => backend,
        Err(e) => {
            eprintln!(
                "fixture backend {}: cannot listen on {addr}: {e}",
                args.name
            );
            return ExitCode::from(1);
        }
    };
    backend.set_record(false);
    println!(
        "fixture backend {} listening on {}",
        args.name,
        backend.addr()
    );
    // Scripts wait for this line before they start the proxy.
    let _ = std::io::stdout().flush();
    // The backend serves on its own threads; this one waits for a signal to stop it.
    let _ = signals.forever().next();
    let name = backend.name().to_owned();
    let counts = backend.stop_and_count().replace('\n', " ");
    println!("fixture backend {name} stopped: {}", counts.trim_end());
    let _ = std::io::stdout().flush();
    ExitCode::SUCCESS
}
