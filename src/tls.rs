//! TLS configuration: certificate and key files in, rustls and ureq configurations out.
//!
//! This module owns reading the PEM files named by `-cacert` (the server's certificate chain,
//! GoAround's name for it), `-privkey` and `-backend-ca`, checking that key and certificate
//! belong together, and the server's TLS settings: TLS 1.3 and 1.2 with the ring provider,
//! ALPN `http/1.1` only, session resumption with both a session-ID cache and stateless
//! tickets, no 0-RTT data. [`ReloadableConfig`] re-reads the same files in place (for a
//! renewed certificate) and keeps the old configuration when the new files are bad.
//!
//! It does no network I/O: sockets, `rustls::StreamOwned`, handshake timeouts and deciding
//! *when* to reload belong to `server`; forwarding over https belongs to `upstream`, which
//! gets its [`ureq::tls::TlsConfig`] from [`backend_tls_config`]. Every failure is a
//! [`TlsError`] naming the flag and file it came from, so a bad file stops start-up with one
//! line instead of failing each handshake later.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use rustls::crypto::ring;
use rustls::server::{ProducesTickets, ServerSessionMemoryCache, StoresServerSessions};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{ClientConfig, InconsistentKeys, RootCertStore, ServerConfig};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use ureq::tls::{Certificate, RootCerts, TlsConfig, TlsProvider};

/// The only application protocol offered in ALPN (RFC 7301). A client that offers ALPN
/// without `http/1.1` (say, `h2` only) is refused with a `no_application_protocol` alert
/// (RFC 7301 §3.2) instead of being answered in a protocol it did not ask for.
pub const ALPN_HTTP_1_1: &[u8] = b"http/1.1";

/// Sessions kept for TLS 1.2 session-ID resumption (clients that do not take tickets); the
/// oldest are dropped first. A few hundred bytes each.
pub const SESSION_CACHE_SIZE: usize = 4096;

/// Protocol versions offered, best first. TLS 1.2 stays for older clients and load testers.
const VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// The certificate chain and private key of the TLS front end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// `-cacert`: PEM, the server's certificate first, then any intermediates.
    pub cert: PathBuf,
    /// `-privkey`: PEM, PKCS#8, PKCS#1 or SEC1, not encrypted.
    pub key: PathBuf,
}

/// The flag that named a file, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFlag {
    Cacert,
    Privkey,
    BackendCa,
}

impl fmt::Display for FileFlag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Cacert => "-cacert",
            Self::Privkey => "-privkey",
            Self::BackendCa => "-backend-ca",
        })
    }
}

/// Why a TLS configuration could not be built.
#[derive(Debug)]
pub enum TlsError {
    /// The file could not be opened or read.
    Read {
        flag: FileFlag,
        path: PathBuf,
        source: io::Error,
    },
    /// The file is not well-formed PEM.
    Pem {
        flag: FileFlag,
        path: PathBuf,
        source: pem::Error,
    },
    /// The file has no `CERTIFICATE` section.
    NoCertificate { flag: FileFlag, path: PathBuf },
    /// A `CERTIFICATE` section that is not an X.509 certificate.
    BadCertificate {
        flag: FileFlag,
        path: PathBuf,
        source: rustls::Error,
    },
    /// The `-privkey` file has no `PRIVATE KEY`, `RSA PRIVATE KEY` or `EC PRIVATE KEY` section.
    NoPrivateKey { path: PathBuf },
    /// The only key in the `-privkey` file is encrypted; goaround has no passphrase.
    EncryptedKey { path: PathBuf },
    /// The key does not parse, or is of a kind ring cannot sign with.
    BadKey {
        path: PathBuf,
        source: rustls::Error,
    },
    /// The key does not belong to the first certificate of the chain.
    KeyMismatch { key: PathBuf, cert: PathBuf },
    /// rustls refused the settings themselves; not caused by a file.
    Setup(rustls::Error),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { flag, path, source } => {
                write!(f, "{flag} {}: cannot read: {source}", path.display())
            }
            Self::Pem { flag, path, source } => {
                write!(f, "{flag} {}: malformed PEM: ", path.display())?;
                describe_pem_error(source, f)
            }
            Self::NoCertificate { flag, path } => {
                write!(f, "{flag} {}: no certificate found", path.display())
            }
            Self::BadCertificate { flag, path, source } => {
                write!(f, "{flag} {}: invalid certificate: {source}", path.display())
            }
            Self::NoPrivateKey { path } => write!(
                f,
                "{} {}: no private key found (PKCS#8, PKCS#1 or SEC1 PEM expected)",
                FileFlag::Privkey,
                path.display()
            ),
            Self::EncryptedKey { path } => write!(
                f,
                "{} {}: the private key is encrypted (decrypt it, e.g. `openssl pkey -in KEY -out PLAIN`)",
                FileFlag::Privkey,
                path.display()
            ),
            Self::BadKey { path, source } => write!(
                f,
                "{} {}: unusable private key: {source}",
                FileFlag::Privkey,
                path.display()
            ),
            Self::KeyMismatch { key, cert } => write!(
                f,
                "{} {}: does not match the certificate in {}",
                FileFlag::Privkey,
                key.display(),
                cert.display()
            ),
            Self::Setup(source) => write!(f, "tls: cannot set up: {source}"),
        }
    }
}

/// pem::Error's own messages print byte vectors; say it in words.
fn describe_pem_error(e: &pem::Error, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match e {
        pem::Error::MissingSectionEnd { end_marker } => {
            let label = String::from_utf8_lossy(end_marker);
            write!(f, "no \"-----END {}-----\" line", label.trim())
        }
        pem::Error::IllegalSectionStart { line } => {
            let line = String::from_utf8_lossy(line);
            write!(f, "bad BEGIN line {:?}", line.trim())
        }
        pem::Error::Base64Decode(cause) => write!(f, "bad base64: {cause}"),
        other => write!(f, "{other}"),
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Read { source, .. } => Some(source),
            Self::Pem { source, .. } => Some(source),
            Self::BadCertificate { source, .. }
            | Self::BadKey { source, .. }
            | Self::Setup(source) => Some(source),
            Self::NoCertificate { .. }
            | Self::NoPrivateKey { .. }
            | Self::EncryptedKey { .. }
            | Self::KeyMismatch { .. } => None,
        }
    }
}

/// Reads `files` and builds the server configuration, with its own session cache and
/// ticket keys. Use [`ReloadableConfig`] when the files may be re-read later.
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    build(files, &Resumption::new()?)
}

/// State for session resumption, kept across reloads so that clients holding a ticket or a
/// session ID from before a certificate renewal still resume instead of doing a full
/// handshake. (Resumption skips authentication, which is sound because the clients already
/// authenticated this server under the same name.)
#[derive(Debug, Clone)]
struct Resumption {
    /// TLS 1.2 session IDs.
    sessions: Arc<dyn StoresServerSessions>,
    /// TLS 1.3 tickets and TLS 1.2 tickets (RFC 5077): the state travels with the client.
    /// ring's `Ticketer` rotates its keys every 6 hours and accepts the previous key.
    tickets: Arc<dyn ProducesTickets>,
}

impl Resumption {
    fn new() -> Result<Self, TlsError> {
        Ok(Self {
            sessions: ServerSessionMemoryCache::new(SESSION_CACHE_SIZE),
            tickets: ring::Ticketer::new().map_err(TlsError::Setup)?,
        })
    }
}

fn build(files: &TlsFiles, resumption: &Resumption) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = certificates(FileFlag::Cacert, &files.cert)?;
    let key = private_key(&files.key)?;
    let provider = Arc::new(ring::default_provider());
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|source| TlsError::BadKey {
            path: files.key.clone(),
            source,
        })?;
    // The same check `with_single_cert` makes, done here so that each failure names its file:
    // the key's SubjectPublicKeyInfo against the first certificate's.
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        // ring's keys always know their public key, so Unknown does not happen; rustls
        // accepts it too.
        Ok(()) | Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => {
            return Err(TlsError::KeyMismatch {
                key: files.key.clone(),
                cert: files.cert.clone(),
            })
        }
        Err(source) => {
            return Err(TlsError::BadCertificate {
                flag: FileFlag::Cacert,
                path: files.cert.clone(),
                source,
            })
        }
    }
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(VERSIONS)
        .map_err(TlsError::Setup)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
    config.alpn_protocols = vec![ALPN_HTTP_1_1.to_vec()];
    config.session_storage = Arc::clone(&resumption.sessions);
    config.ticketer = Arc::clone(&resumption.tickets);
    // max_early_data_size stays 0: 0-RTT requests can be replayed (RFC 8446 §8).
    Ok(Arc::new(config))
}

/// The front end's configuration, replaceable while connections use the old one.
///
/// A connection takes [`current`](Self::current) once, when it is accepted, and keeps that
/// `Arc` for its lifetime; [`reload`](Self::reload) only affects connections accepted after it.
#[derive(Debug)]
pub struct ReloadableConfig {
    files: TlsFiles,
    resumption: Resumption,
    current: Mutex<Arc<ServerConfig>>,
}

impl ReloadableConfig {
    /// Reads `files`; fails as [`server_config`] does.
    pub fn load(files: TlsFiles) -> Result<ReloadableConfig, TlsError> {
        let resumption = Resumption::new()?;
        let config = build(&files, &resumption)?;
        Ok(Self {
            files,
            resumption,
            current: Mutex::new(config),
        })
    }

    /// The configuration for a new connection: one lock and an `Arc` clone.
    pub fn current(&self) -> Arc<ServerConfig> {
        // The guarded value is a single Arc, replaced whole: a panic elsewhere cannot have
        // left it half-written, so a poisoned lock is still good.
        Arc::clone(&self.current.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Re-reads the same files. On error the current configuration stays in use. Session
    /// cache and ticket keys carry over. The files are read without holding the lock.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = build(&self.files, &self.resumption)?;
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = config;
        Ok(())
    }

    /// The files this configuration is read from.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }
}

/// Root certificates for https backends: the certificates in `ca` (`-backend-ca`), or
/// Mozilla's roots bundled with ureq (webpki-roots) when there is none.
pub fn backend_roots(ca: Option<&Path>) -> Result<RootCerts, TlsError> {
    let Some(path) = ca else {
        return Ok(RootCerts::WebPki);
    };
    let certs = certificates(FileFlag::BackendCa, path)?;
    // ureq skips roots that do not parse and would then fail every request to the backend
    // with an unknown-issuer error; parse them here so the error names the file.
    let mut store = RootCertStore::empty();
    for cert in &certs {
        store
            .add(CertificateDer::from(cert.as_ref()))
            .map_err(|source| TlsError::BadCertificate {
                flag: FileFlag::BackendCa,
                path: path.to_path_buf(),
                source,
            })?;
    }
    Ok(RootCerts::from(certs.iter().map(|cert| {
        Certificate::from_der(cert.as_ref()).to_owned()
    })))
}

/// ureq's TLS settings for https backends: rustls with the ring provider, roots from
/// [`backend_roots`]. Build it once and clone it into every agent: the clones share the
/// root certificates.
pub fn backend_tls_config(ca: Option<&Path>) -> Result<TlsConfig, TlsError> {
    Ok(TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .root_certs(backend_roots(ca)?)
        .unversioned_rustls_crypto_provider(Arc::new(ring::default_provider()))
        .build())
}

/// rustls client settings for https backends, driven by the event loops: the roots of
/// [`backend_roots`] (the certificates in `-backend-ca`, else Mozilla's bundled roots), ring,
/// TLS 1.3 and 1.2, ALPN `http/1.1`, session resumption in memory. Built once and shared by
/// every loop.
pub fn backend_client_config(ca: Option<&Path>) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    match ca {
        Some(path) => {
            for cert in certificates(FileFlag::BackendCa, path)? {
                roots.add(cert).map_err(|source| TlsError::BadCertificate {
                    flag: FileFlag::BackendCa,
                    path: path.to_path_buf(),
                    source,
                })?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let mut config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_protocol_versions(VERSIONS)
        .map_err(TlsError::Setup)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_HTTP_1_1.to_vec()];
    Ok(Arc::new(config))
}

/// The file's bytes. Read whole (rather than with `pem_file_iter`) so that an I/O error is
/// told apart from bad PEM in one place, and the key reader can look for encryption markers.
fn read_pem(flag: FileFlag, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        flag,
        path: path.to_path_buf(),
        source,
    })
}

/// Every `CERTIFICATE` section of the file, in order; other sections are skipped.
fn certificates(flag: FileFlag, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read_pem(flag, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem {
            flag,
            path: path.to_path_buf(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            flag,
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// The first private key of the `-privkey` file; other sections (certificates, `EC
/// PARAMETERS`) are skipped, so a combined certificate-and-key file works for both flags.
fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read_pem(FileFlag::Privkey, path)?;
    let path = path.to_path_buf();
    match PrivateKeyDer::from_pem_slice(&pem) {
        Ok(key) => Ok(key),
        // PKCS#8 encrypted keys are a section kind rustls skips; legacy encrypted PKCS#1 keys
        // carry headers that fail the base64 decoding.
        Err(_) if is_encrypted(&pem) => Err(TlsError::EncryptedKey { path }),
        Err(pem::Error::NoItemsFound) => Err(TlsError::NoPrivateKey { path }),
        Err(source) => Err(TlsError::Pem {
            flag: FileFlag::Privkey,
            path,
            source,
        }),
    }
}

fn is_encrypted(pem: &[u8]) -> bool {
    const MARKERS: [&[u8]; 2] = [
        b"-----BEGIN ENCRYPTED PRIVATE KEY-----",
        b"Proc-Type: 4,ENCRYPTED",
    ];
    MARKERS
        .iter()
        .any(|marker| pem.windows(marker.len()).any(|window| window == *marker))
}

// The integration tests' openssl certificate recipe, shared rather than copied; it finds
// the temp directories as `super::tempdir`.
#[cfg(test)]
#[path = "../tests/support/openssl.rs"]
mod openssl_cli;
#[cfg(test)]
use crate::test_util::tempdir;

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::Resumption as ClientResumption;
    use rustls::{
        ClientConfig, ClientConnection, ConnectionCommon, HandshakeKind, ProtocolVersion,
        ServerConnection,
    };
    use rustls_pki_types::ServerName;

    use std::sync::OnceLock;

    use super::openssl_cli::{openssl, OPENSSL_CNF};
    use super::tempdir::TempDir;

    /// PEM files made once per test run with the `openssl` command line, kept in memory;
    /// each test writes the ones it needs into its own [`TempDir`].
    struct Pems {
        /// Self-signed P-256 CA.
        ca_cert: Vec<u8>,
        /// For localhost and 127.0.0.1, signed by the CA, for the RSA key below.
        rsa_cert: Vec<u8>,
        rsa_pkcs8: Vec<u8>,
        rsa_pkcs1: Vec<u8>,
        /// Like `rsa_cert`, for the P-256 key below.
        ec_cert: Vec<u8>,
        /// SEC1, after an `EC PARAMETERS` section, as `openssl ecparam -genkey` writes it.
        ec_sec1: Vec<u8>,
        /// An unrelated P-256 key, PKCS#8.
        other_pkcs8: Vec<u8>,
        /// `other_pkcs8`, encrypted with a passphrase.
        other_encrypted: Vec<u8>,
    }

    fn pems() -> &'static Pems {
        static PEMS: OnceLock<Pems> = OnceLock::new();
        PEMS.get_or_init(generate_pems)
    }

    fn generate_pems() -> Pems {
        let dir = TempDir::new("tls-test");
        dir.write("openssl.cnf", OPENSSL_CNF.as_bytes());
        let p256 = ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"];
        openssl(&dir, &[&["genpkey", "-out", "ca.key"][..], &p256].concat());
        #[rustfmt::skip]
        openssl(&dir, &[
            "req", "-x509", "-new", "-config", "openssl.cnf", "-extensions", "ca",
            "-key", "ca.key", "-subj", "/CN=goaround test CA", "-days", "2", "-out", "ca.pem",
        ]);
        #[rustfmt::skip]
        openssl(&dir, &[
            "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "rsa8.key",
        ]);
        openssl(
            &dir,
            &["rsa", "-in", "rsa8.key", "-traditional", "-out", "rsa1.key"],
        );
        openssl(
            &dir,
            &[
                "ecparam",
                "-genkey",
                "-name",
                "prime256v1",
                "-out",
                "ec.key",
            ],
        );
        for (serial, key) in [("2", "rsa8"), ("3", "ec")] {
            #[rustfmt::skip]
            openssl(&dir, &[
                "req", "-new", "-config", "openssl.cnf", "-key", &format!("{key}.key"),
                "-subj", "/CN=localhost", "-out", &format!("{key}.csr"),
            ]);
            #[rustfmt::skip]
            openssl(&dir, &[
                "x509", "-req", "-in", &format!("{key}.csr"), "-CA", "ca.pem", "-CAkey", "ca.key",
                "-set_serial", serial, "-days", "2", "-extfile", "openssl.cnf",
                "-extensions", "server", "-out", &format!("{key}.pem"),
            ]);
        }
        openssl(
            &dir,
            &[&["genpkey", "-out", "other.key"][..], &p256].concat(),
        );
        #[rustfmt::skip]
        openssl(&dir, &[
            "pkcs8", "-topk8", "-in", "other.key", "-v2", "aes-256-cbc",
            "-passout", "pass:secret", "-out", "other.enc",
        ]);
        let read = |name: &str| std::fs::read(dir.join(name)).expect("read generated file");
        Pems {
            ca_cert: read("ca.pem"),
            rsa_cert: read("rsa8.pem"),
            rsa_pkcs8: read("rsa8.key"),
            rsa_pkcs1: read("rsa1.key"),
            ec_cert: read("ec.pem"),
            ec_sec1: read("ec.key"),
            other_pkcs8: read("other.key"),
            other_encrypted: read("other.enc"),
        }
    }

    /// Writes `cert` and `key` as cert.pem and key.pem.
    fn files(dir: &TempDir, cert: &[u8], key: &[u8]) -> TlsFiles {
        TlsFiles {
            cert: dir.write("cert.pem", cert),
            key: dir.write("key.pem", key),
        }
    }

    fn error(files: &TlsFiles) -> TlsError {
        server_config(files).expect_err("configuration should be refused")
    }

    fn client_config(versions: &[&'static rustls::SupportedProtocolVersion]) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&pems().ca_cert) {
            roots.add(cert.expect("CA PEM")).expect("CA certificate");
        }
        let mut config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_protocol_versions(versions)
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec(), ALPN_HTTP_1_1.to_vec()];
        config.resumption = ClientResumption::in_memory_sessions(16);
        Arc::new(config)
    }

    /// Moves everything `from` has to send into `to`; returns the byte count.
    fn transfer<A, B>(from: &mut ConnectionCommon<A>, to: &mut ConnectionCommon<B>) -> usize {
        let mut bytes = Vec::new();
        while from.wants_write() {
            from.write_tls(&mut bytes).expect("write to a Vec");
        }
        let mut unread = &bytes[..];
        while !unread.is_empty() {
            to.read_tls(&mut unread).expect("read from a slice");
            to.process_new_packets().expect("TLS records accepted");
        }
        bytes.len()
    }

    /// A complete in-memory handshake with "localhost", including the TLS 1.3 session
    /// tickets the server sends after it.
    fn handshake(
        client: &Arc<ClientConfig>,
        server: Arc<ServerConfig>,
    ) -> (ClientConnection, ServerConnection) {
        let name = ServerName::try_from("localhost").expect("server name");
        let mut client = ClientConnection::new(Arc::clone(client), name).expect("client");
        let mut server = ServerConnection::new(server).expect("server");
        for _ in 0..10 {
            let moved = transfer(&mut client, &mut server) + transfer(&mut server, &mut client);
            if moved == 0 {
                break;
            }
        }
        assert!(!client.is_handshaking(), "client handshake finished");
        assert!(!server.is_handshaking(), "server handshake finished");
        (client, server)
    }

    #[test]
    fn every_key_format_loads_and_serves_a_handshake() {
        let pems = pems();
        let client = client_config(rustls::DEFAULT_VERSIONS);
        for (name, cert, key) in [
            ("PKCS#8 RSA", &pems.rsa_cert, &pems.rsa_pkcs8),
            ("PKCS#1 RSA", &pems.rsa_cert, &pems.rsa_pkcs1),
            ("SEC1 P-256", &pems.ec_cert, &pems.ec_sec1),
        ] {
            let dir = TempDir::new("tls-test");
            let config =
                server_config(&files(&dir, cert, key)).unwrap_or_else(|e| panic!("{name}: {e}"));
            let (client, _server) = handshake(&client, config);
            assert_eq!(
                client.protocol_version(),
                Some(ProtocolVersion::TLSv1_3),
                "{name}"
            );
        }
    }

    #[test]
    fn combined_certificate_and_key_file_serves_both_flags() {
        let dir = TempDir::new("tls-test");
        let combined = [&pems().rsa_pkcs8[..], &pems().rsa_cert[..]].concat();
        let path = dir.write("combined.pem", &combined);
        let files = TlsFiles {
            cert: path.clone(),
            key: path,
        };
        server_config(&files).expect("combined file");
    }

    #[test]
    fn settings_alpn_and_resumption() {
        let dir = TempDir::new("tls-test");
        let config = server_config(&files(&dir, &pems().rsa_cert, &pems().rsa_pkcs8)).unwrap();
        assert_eq!(config.alpn_protocols, [ALPN_HTTP_1_1]);
        assert!(config.ticketer.enabled());
        assert!(config.session_storage.can_cache());
        assert_eq!(config.max_early_data_size, 0);
    }

    #[test]
    fn handshake_negotiates_tls13_and_http11() {
        let dir = TempDir::new("tls-test");
        let config = server_config(&files(&dir, &pems().rsa_cert, &pems().rsa_pkcs8)).unwrap();
        let (client, server) = handshake(&client_config(rustls::ALL_VERSIONS), config);
        assert_eq!(client.protocol_version(), Some(ProtocolVersion::TLSv1_3));
        assert_eq!(client.alpn_protocol(), Some(ALPN_HTTP_1_1));
        assert_eq!(server.alpn_protocol(), Some(ALPN_HTTP_1_1));
        assert_eq!(server.server_name(), Some("localhost"));
    }

    #[test]
    fn handshake_with_a_tls12_only_client() {
        let dir = TempDir::new("tls-test");
        let config = server_config(&files(&dir, &pems().ec_cert, &pems().ec_sec1)).unwrap();
        let (client, server) = handshake(&client_config(&[&rustls::version::TLS12]), config);
        assert_eq!(client.protocol_version(), Some(ProtocolVersion::TLSv1_2));
        assert_eq!(server.protocol_version(), Some(ProtocolVersion::TLSv1_2));
        assert_eq!(client.alpn_protocol(), Some(ALPN_HTTP_1_1));
    }

    #[test]
    fn sessions_resume_across_a_reload() {
        for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
            let dir = TempDir::new("tls-test");
            let reloadable =
                ReloadableConfig::load(files(&dir, &pems().rsa_cert, &pems().rsa_pkcs8)).unwrap();
            let client = client_config(&[version]);
            let (first, _) = handshake(&client, reloadable.current());
            assert_eq!(first.handshake_kind(), Some(HandshakeKind::Full));
            reloadable.reload().unwrap();
            let (second, _) = handshake(&client, reloadable.current());
            assert_eq!(
                second.handshake_kind(),
                Some(HandshakeKind::Resumed),
                "{version:?}"
            );
        }
    }

    #[test]
    fn missing_files_name_the_flag_and_the_file() {
        let dir = TempDir::new("tls-test");
        let good = files(&dir, &pems().rsa_cert, &pems().rsa_pkcs8);
        let missing = dir.join("missing.pem");

        let no_cert = TlsFiles {
            cert: missing.clone(),
            ..good.clone()
        };
        let e = error(&no_cert);
        assert!(
            matches!(&e, TlsError::Read { flag: FileFlag::Cacert, path, source }
                if *path == missing && source.kind() == io::ErrorKind::NotFound),
            "{e:?}"
        );
        let message = e.to_string();
        let prefix = format!("-cacert {}: cannot read: ", missing.display());
        assert!(message.starts_with(&prefix), "{message}");

        let no_key = TlsFiles {
            key: missing.clone(),
            ..good
        };
        let message = error(&no_key).to_string();
        let prefix = format!("-privkey {}: cannot read: ", missing.display());
        assert!(message.starts_with(&prefix), "{message}");
    }

    #[test]
    fn empty_files() {
        let dir = TempDir::new("tls-test");
        let empty = dir.write("empty.pem", b"");
        let good = files(&dir, &pems().rsa_cert, &pems().rsa_pkcs8);

        let e = error(&TlsFiles {
            cert: empty.clone(),
            ..good.clone()
        });
        assert!(matches!(
            e,
            TlsError::NoCertificate {
                flag: FileFlag::Cacert,
                ..
            }
        ));
        assert_eq!(
            e.to_string(),
            format!("-cacert {}: no certificate found", empty.display())
        );

        let e = error(&TlsFiles {
            key: empty.clone(),
            ..good
        });
        assert_eq!(
            e.to_string(),
            format!(
                "-privkey {}: no private key found (PKCS#8, PKCS#1 or SEC1 PEM expected)",
                empty.display()
            )
        );
    }

    #[test]
    fn key_given_as_certificate_and_certificate_given_as_key() {
        let dir = TempDir::new("tls-test");
        let swapped = files(&dir, &pems().rsa_pkcs8, &pems().rsa_cert);
        let e = error(&swapped);
        assert!(
            matches!(&e, TlsError::NoCertificate { flag: FileFlag::Cacert, path } if *path == swapped.cert),
            "{e:?}"
        );

        let cert = dir.write("real-cert.pem", &pems().rsa_cert);
        let cert_as_key = TlsFiles {
            cert: cert.clone(),
            key: cert,
        };
        let e = error(&cert_as_key);
        assert!(
            matches!(&e, TlsError::NoPrivateKey { path } if *path == cert_as_key.key),
            "{e:?}"
        );
    }

    #[test]
    fn mismatched_key_is_a_start_up_error() {
        let dir = TempDir::new("tls-test");
        for key in [&pems().other_pkcs8, &pems().ec_sec1] {
            let mismatched = files(&dir, &pems().rsa_cert, key);
            let e = error(&mismatched);
            assert!(matches!(e, TlsError::KeyMismatch { .. }), "{e:?}");
            assert_eq!(
                e.to_string(),
                format!(
                    "-privkey {}: does not match the certificate in {}",
                    mismatched.key.display(),
                    mismatched.cert.display()
                )
            );
        }
        // The CA first: the key belongs to the second certificate, not the first.
        let ca_first = [&pems().ca_cert[..], &pems().rsa_cert[..]].concat();
        let e = error(&files(&dir, &ca_first, &pems().rsa_pkcs8));
        assert!(matches!(e, TlsError::KeyMismatch { .. }), "{e:?}");
    }

    #[test]
    fn encrypted_key() {
        let dir = TempDir::new("tls-test");
        let e = error(&files(&dir, &pems().rsa_cert, &pems().other_encrypted));
        assert!(matches!(e, TlsError::EncryptedKey { .. }), "{e:?}");
        assert!(
            e.to_string().contains("the private key is encrypted"),
            "{e}"
        );
        let legacy = b"-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\
            DEK-Info: AES-256-CBC,00112233445566778899AABBCCDDEEFF\n\nAAAA\n\
            -----END RSA PRIVATE KEY-----\n";
        let e = error(&files(&dir, &pems().rsa_cert, legacy));
        assert!(matches!(e, TlsError::EncryptedKey { .. }), "{e:?}");
    }

    #[test]
    fn malformed_pem_and_garbage_der() {
        let dir = TempDir::new("tls-test");
        let unterminated = b"-----BEGIN CERTIFICATE-----\nAAAA\n";
        let e = error(&files(&dir, unterminated, &pems().rsa_pkcs8));
        assert!(
            matches!(
                e,
                TlsError::Pem {
                    flag: FileFlag::Cacert,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(
            e.to_string()
                .ends_with(": malformed PEM: no \"-----END CERTIFICATE-----\" line"),
            "{e}"
        );

        let garbage_cert = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let e = error(&files(&dir, garbage_cert, &pems().rsa_pkcs8));
        assert!(
            matches!(
                e,
                TlsError::BadCertificate {
                    flag: FileFlag::Cacert,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains(": invalid certificate: "), "{e}");

        let garbage_key = b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        let e = error(&files(&dir, &pems().rsa_cert, garbage_key));
        assert!(matches!(e, TlsError::BadKey { .. }), "{e:?}");
        assert!(e.to_string().contains(": unusable private key: "), "{e}");
    }

    #[test]
    fn reload_keeps_the_old_config_on_error_and_swaps_on_success() {
        let dir = TempDir::new("tls-test");
        let files = files(&dir, &pems().rsa_cert, &pems().rsa_pkcs8);
        let reloadable = ReloadableConfig::load(files.clone()).unwrap();
        let first = reloadable.current();
        assert!(Arc::ptr_eq(&first, &reloadable.current()));

        std::fs::write(&files.key, &pems().other_pkcs8).unwrap();
        let e = reloadable.reload().expect_err("mismatched key");
        assert!(matches!(e, TlsError::KeyMismatch { .. }), "{e:?}");
        assert!(Arc::ptr_eq(&first, &reloadable.current()));

        std::fs::remove_file(&files.cert).unwrap();
        assert!(matches!(reloadable.reload(), Err(TlsError::Read { .. })));
        assert!(Arc::ptr_eq(&first, &reloadable.current()));

        // A renewed pair at the same paths.
        std::fs::write(&files.cert, &pems().ec_cert).unwrap();
        std::fs::write(&files.key, &pems().ec_sec1).unwrap();
        reloadable.reload().expect("good files");
        let second = reloadable.current();
        assert!(!Arc::ptr_eq(&first, &second));
        assert_eq!(reloadable.files(), &files);
        // Connections accepted before the reload keep using the old configuration.
        let client = client_config(rustls::DEFAULT_VERSIONS);
        handshake(&client, first);
        handshake(&client, second);
    }

    #[test]
    fn backend_roots_from_a_file() {
        let dir = TempDir::new("tls-test");
        let ca = dir.write("ca.pem", &pems().ca_cert);
        match backend_roots(Some(&ca)).unwrap() {
            RootCerts::Specific(certs) => {
                let expected: Vec<_> = CertificateDer::pem_slice_iter(&pems().ca_cert)
                    .map(Result::unwrap)
                    .collect();
                let got: Vec<_> = certs.iter().map(|c| c.der().to_vec()).collect();
                assert_eq!(got, expected.iter().map(|c| c.to_vec()).collect::<Vec<_>>());
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(backend_roots(None).unwrap(), RootCerts::WebPki));

        let config = backend_tls_config(Some(&ca)).unwrap();
        assert_eq!(config.provider(), TlsProvider::Rustls);
        assert!(matches!(config.root_certs(), RootCerts::Specific(_)));
        assert!(config.unversioned_rustls_crypto_provider().is_some());
        let default = backend_tls_config(None).unwrap();
        assert!(matches!(default.root_certs(), RootCerts::WebPki));
    }

    #[test]
    fn backend_roots_refuses_files_without_good_certificates() {
        let dir = TempDir::new("tls-test");
        let key = dir.write("key.pem", &pems().other_pkcs8);
        let e = backend_roots(Some(&key)).unwrap_err();
        assert!(matches!(
            e,
            TlsError::NoCertificate {
                flag: FileFlag::BackendCa,
                ..
            }
        ));
        assert_eq!(
            e.to_string(),
            format!("-backend-ca {}: no certificate found", key.display())
        );

        let garbage = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let garbage = dir.write("garbage.pem", garbage);
        let e = backend_tls_config(Some(&garbage)).unwrap_err();
        assert!(
            matches!(
                e,
                TlsError::BadCertificate {
                    flag: FileFlag::BackendCa,
                    ..
                }
            ),
            "{e:?}"
        );

        let missing = dir.join("missing.pem");
        let e = backend_roots(Some(&missing)).unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("-backend-ca {}: cannot read: ", missing.display())),
            "{e}"
        );
    }
}
