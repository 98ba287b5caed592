//! The `goaround` binary: flags in, one error message and an exit code out.

use std::process::ExitCode;

use goaround::cli::{self, Parsed};
use goaround::config::Config;

// musl's allocator made a static build of the proxy several times slower than glibc's
// (ARCHITECTURE.md); mimalloc closes most of that gap and costs nothing on glibc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit code for a bad command line or a failed start, as Go's `flag` package uses.
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let raw = match cli::parse_args(std::env::args().skip(1)) {
        Ok(Parsed::Run(raw)) => raw,
        Ok(Parsed::Help) => {
            print!("{}", cli::usage());
            return ExitCode::SUCCESS;
        }
        Ok(Parsed::Version) => {
            println!("goaround {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(e) => return usage_error(&e),
    };
    let mut config = match Config::from_raw(&raw) {
        Ok(config) => config,
        Err(e) => return usage_error(&e),
    };
    // A bad -config file is named in one line; the flags were fine, so no usage hint.
    if let Err(e) = config.load_file() {
        eprintln!("goaround: {e}");
        return ExitCode::from(EXIT_USAGE);
    }
    goaround::logging::init();
    match goaround::server::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("goaround: {e}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn usage_error(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("goaround: {e}");
    eprintln!("run 'goaround -h' for the list of flags");
    ExitCode::from(EXIT_USAGE)
}
