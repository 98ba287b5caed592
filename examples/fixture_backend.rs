//! The integration tests' fixture backend as a program, for `make demo` and `make bench`.
//!
//! `fixture_backend --port 9001 --name b1` serves the fixture routes (`/`, `/echo`,
//! `/bytes/N`, `/health`, ...; see `tests/support/backend.rs`) on `127.0.0.1:PORT` until it
//! is killed. Port 0 asks the OS; the line `fixture backend NAME listening on ADDR` on stdout
//! says which port it got. Requests are not recorded, so memory stays flat under a benchmark.

#[path = "../tests/support/backend.rs"]
mod backend;

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

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
    // The backend serves on its own threads; this one only keeps the process alive.
    loop {
        std::thread::park();
    }
}
