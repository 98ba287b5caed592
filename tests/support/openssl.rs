//! Test certificates made at test time with the `openssl` command line (nothing is
//! committed): the configuration for a CA and for server certificates valid for localhost
//! and 127.0.0.1. Shared by the integration tests and, through `#[path]`, by `src/tls.rs`'s
//! unit tests; it expects a sibling `tempdir` module.

use std::process::Command;

use super::tempdir::TempDir;

/// `openssl req`/`x509` configuration: section `ca` for the CA, `server` for leaf certificates.
pub const OPENSSL_CNF: &str = "\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = goaround test
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
";

/// Runs `openssl args...` in `dir`; panics with its stderr if it fails.
pub fn openssl(dir: &TempDir, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir.path())
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
