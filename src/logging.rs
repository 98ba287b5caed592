//! `RUST_LOG` directives: `info`, or `warn,goaround::server=info` (a default level and
//! per-module levels, the `env_logger` syntax operators already know; a bare module name
//! means that module at `trace`).

use log::LevelFilter;

/// A default level and per-module overrides.
#[derive(Debug, PartialEq, Eq)]
pub struct Directives {
    pub default: LevelFilter,
    pub modules: Vec<(String, LevelFilter)>,
}

/// Parses `RUST_LOG`; `Err` names the part that is not a level or `module=level`.
pub fn parse(spec: &str, default: LevelFilter) -> Result<Directives, String> {
    let mut directives = Directives {
        default,
        modules: Vec::new(),
    };
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let level = |s: &str| {
            s.trim()
                .parse::<LevelFilter>()
                .map_err(|_| format!("{part:?}"))
        };
        match part.split_once('=') {
            Some((module, lvl)) if !module.trim().is_empty() => {
                directives
                    .modules
                    .push((module.trim().to_owned(), level(lvl)?));
            }
            Some(_) => return Err(format!("{part:?}")),
            None => match part.parse::<LevelFilter>() {
                Ok(l) => directives.default = l,
                Err(_) if is_module_path(part) => directives
                    .modules
                    .push((part.to_owned(), LevelFilter::Trace)),
                Err(_) => return Err(format!("{part:?}")),
            },
        }
    }
    Ok(directives)
}

/// `goaround::server`, `ureq`: what env_logger accepts as a bare module directive.
fn is_module_path(s: &str) -> bool {
    s.split("::")
        .all(|seg| !seg.is_empty() && seg.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
}

/// Logs to stderr with the levels in `RUST_LOG` (default info). The HTTP and TLS libraries
/// are held at warn unless named explicitly: their debug output is per request.
pub fn init() {
    let spec = std::env::var("RUST_LOG").unwrap_or_default();
    let directives = parse(&spec, LevelFilter::Info).unwrap_or_else(|bad| {
        eprintln!("goaround: RUST_LOG: cannot parse {bad}; logging at info");
        Directives {
            default: LevelFilter::Info,
            modules: Vec::new(),
        }
    });
    let quiet = directives.default.min(LevelFilter::Warn);
    let mut logger = simple_logger::SimpleLogger::new()
        .with_level(directives.default)
        .with_module_level("ureq", quiet)
        .with_module_level("ureq_proto", quiet)
        .with_module_level("rustls", quiet)
        .with_utc_timestamps();
    for (module, level) in &directives.modules {
        logger = logger.with_module_level(module, *level);
    }
    if let Err(e) = logger.init() {
        eprintln!("goaround: logging disabled: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives() {
        let d = parse("", LevelFilter::Info).unwrap();
        assert_eq!(
            d,
            Directives {
                default: LevelFilter::Info,
                modules: vec![]
            }
        );
        let d = parse("debug", LevelFilter::Info).unwrap();
        assert_eq!(d.default, LevelFilter::Debug);
        let d = parse("warn, goaround::server=info,ureq=trace", LevelFilter::Info).unwrap();
        assert_eq!(d.default, LevelFilter::Warn);
        assert_eq!(
            d.modules,
            vec![
                ("goaround::server".to_owned(), LevelFilter::Info),
                ("ureq".to_owned(), LevelFilter::Trace)
            ]
        );
        assert_eq!(
            parse("OFF", LevelFilter::Info).unwrap().default,
            LevelFilter::Off
        );
        let d = parse("goaround::server", LevelFilter::Info).unwrap();
        assert_eq!(
            d.modules,
            vec![("goaround::server".to_owned(), LevelFilter::Trace)]
        );
        assert!(parse("not a module", LevelFilter::Info).is_err());
        assert!(parse("=info", LevelFilter::Info).is_err());
        assert!(parse("goaround=loud", LevelFilter::Info).is_err());
    }
}
