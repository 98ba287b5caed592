//! Headless Chromium for tests that look at a page as a person would: the DOM after the
//! page's scripts ran, and screenshots to look at.
//!
//! Debian's `chromium` (`make test` installs it when missing; `GOAROUND_CHROMIUM` names
//! another binary). Where it is not installed, [`Chromium::find_or_skip`] prints a loud
//! SKIPPED line and the test returns: a machine without the browser cannot fail the suite, nor
//! pass it silently. Each run gets a fresh profile directory and the flags that keep Chromium
//! off the network (no background requests, updates, sync or QUIC), runs under a timeout, and
//! is killed if the test panics. One browser runs at a time per test binary: the machine has
//! two cores. Pages are loaded with a *virtual time* budget, so a page's timers (a refresh
//! every two seconds) fire as fast as the page can run them instead of in real time.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::tempdir::TempDir;

/// Where Debian's package puts the browser.
pub const DEFAULT_CHROMIUM: &str = "/usr/bin/chromium";
/// Longest one browser run may take, in real time, before it is killed and the test fails.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(60);
/// A desktop viewport.
pub const WIDE: (u32, u32) = (1400, 900);
/// A phone viewport (CSS pixels of a common phone).
pub const PHONE: (u32, u32) = (390, 844);

/// One Chromium at a time in this test binary.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

pub struct Chromium {
    program: PathBuf,
}

impl Chromium {
    /// The browser, or None (after a loud SKIPPED message naming `test` on stderr) when it is
    /// not installed.
    pub fn find_or_skip(test: &str) -> Option<Chromium> {
        let program = std::env::var_os("GOAROUND_CHROMIUM")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CHROMIUM));
        let works = Command::new(&program)
            .arg("--version")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        match works {
            Ok(status) if status.success() => Some(Chromium { program }),
            outcome => {
                let why = match outcome {
                    Ok(status) => format!("`{} --version` exited with {status}", program.display()),
                    Err(e) => format!("cannot run {}: {e}", program.display()),
                };
                // Straight to the process's stderr: `eprintln!` in a passing test is captured
                // by the test harness and never shown, which would make the skip silent.
                let _ = writeln!(
                    std::io::stderr(),
                    "\n################################################################\n\
                     SKIPPED {test}: no headless browser ({why}).\n\
                     `make test` installs Debian's chromium (apt-get install -y chromium);\n\
                     this machine could not. The page was NOT checked in a browser.\n\
                     ################################################################\n"
                );
                None
            }
        }
    }

    /// The serialized DOM of `url` after its scripts ran for `virtual_time`.
    pub fn dump_dom(&self, url: &str, virtual_time: Duration) -> String {
        let out = self.run(&["--dump-dom".to_owned()], WIDE, url, virtual_time);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// A PNG of the `size` viewport (CSS pixels) showing `url` after `virtual_time`, written
    /// to `path`.
    pub fn screenshot(&self, url: &str, size: (u32, u32), virtual_time: Duration, path: &Path) {
        let _ = std::fs::remove_file(path);
        let arg = format!("--screenshot={}", path.display());
        self.run(
            &[arg, "--hide-scrollbars".to_owned()],
            size,
            url,
            virtual_time,
        );
        let png = std::fs::read(path)
            .unwrap_or_else(|e| panic!("chromium wrote no screenshot {}: {e}", path.display()));
        assert!(
            png.starts_with(b"\x89PNG"),
            "{} is not a PNG",
            path.display()
        );
    }

    /// Runs the browser on `url` with `extra` flags and returns its stdout.
    fn run(
        &self,
        extra: &[String],
        size: (u32, u32),
        url: &str,
        virtual_time: Duration,
    ) -> Vec<u8> {
        let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
        let profile = TempDir::new("chromium");
        let mut command = Command::new(&self.program);
        command
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--disable-dev-shm-usage",
                "--disable-crash-reporter",
                "--disable-breakpad",
                "--force-color-profile=srgb",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(format!("--window-size={},{}", size.0, size.1))
            .arg(format!(
                "--virtual-time-budget={}",
                virtual_time.as_millis()
            ))
            .args(extra)
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so that a kill reaches the renderer and GPU processes too.
            .process_group(0);
        let mut child = Running(
            command
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.program.display())),
        );
        // Drained on their own threads: a DOM can be larger than a pipe holds.
        let stdout = drain(child.0.stdout.take());
        let stderr = drain(child.0.stderr.take());
        let deadline = Instant::now() + RUN_TIMEOUT;
        let status = loop {
            if let Some(status) = child.0.try_wait().expect("wait for chromium") {
                break status;
            }
            if Instant::now() >= deadline {
                child.kill();
                let stderr =
                    String::from_utf8_lossy(&stderr.join().unwrap_or_default()).into_owned();
                panic!("chromium on {url} still running after {RUN_TIMEOUT:?}; stderr:\n{stderr}");
            }
            thread::sleep(Duration::from_millis(20));
        };
        let out = stdout.join().unwrap_or_default();
        if !status.success() {
            let stderr = String::from_utf8_lossy(&stderr.join().unwrap_or_default()).into_owned();
            panic!("chromium on {url} exited with {status}; stderr:\n{stderr}");
        }
        out
    }
}

/// A browser process (leading its own process group), killed with its helper processes and
/// reaped when dropped: the test may have panicked.
struct Running(Child);

impl Running {
    fn kill(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            self.kill();
        }
    }
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> JoinHandle<Vec<u8>> {
    thread::Builder::new()
        .name("chromium-output".to_owned())
        .spawn(move || {
            let mut out = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut out);
            }
            out
        })
        .expect("spawn output reader thread")
}

/// The element with `id="{id}"` in `dom` (as Chromium serializes it): its start tag and its
/// content up to the first `</{tag}>`, for elements that do not nest their own tag.
pub fn element_by_id<'a>(dom: &'a str, tag: &str, id: &str) -> Option<(&'a str, &'a str)> {
    let id_at = dom.find(&format!(" id=\"{id}\""))?;
    let start = dom[..id_at].rfind(&format!("<{tag}"))?;
    let open_end = id_at + dom[id_at..].find('>')? + 1;
    let close = open_end + dom[open_end..].find(&format!("</{tag}>"))?;
    Some((&dom[start..open_end], &dom[open_end..close]))
}

/// `html` without whitespace between tags, for comparing markup written by hand with markup
/// built by a script.
pub fn squeeze_between_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut pending = String::new();
    let mut after_tag = true;
    for c in html.chars() {
        if after_tag && c.is_whitespace() {
            pending.push(c);
            continue;
        }
        if c != '<' {
            out.push_str(&pending);
        }
        pending.clear();
        out.push(c);
        after_tag = c == '>';
    }
    out
}
