//! TLS termination against the real binary: `-cacert`/`-privkey` refusals, TLS 1.3 and 1.2
//! clients, ALPN, keep-alive and pipelining over TLS, large bodies both ways, stalled and
//! garbage handshakes, certificate reload on SIGHUP, and https backends (`-backend-ca`).
//!
//! Certificates are made once per test run with the `openssl` command line (as the unit tests
//! of `src/tls.rs` do): a P-256 test CA and two server certificates for localhost and
//! 127.0.0.1 with different keys, kept in memory; each test writes the files it needs into a
//! [`TempDir`] removed on drop. Clients are rustls 0.23 with the ring provider, trusting only
//! the test CA and never resuming a session, so every handshake shows the certificate the
//! server presents now. The https fixture backend ([`TlsBackend`]) is a rustls server built
//! with `goaround::tls::server_config`.

mod support;

use support::openssl::{openssl, OPENSSL_CNF};
use support::scripted::ScriptedServer;
use support::tempdir::TempDir;

use std::io::{self, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::{self};
use std::time::{Duration, Instant};

use goaround::tls::{server_config, TlsFiles};
use rustls::client::Resumption;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{
    ClientConfig, ClientConnection, HandshakeKind, ProtocolVersion, RootCertStore,
    ServerConnection, StreamOwned, SupportedProtocolVersion,
};

use support::backend::{pattern_byte, read_head};
use support::client::read_response;
use support::{run_cli, Backend, Goaround, Response};

/// Longest wait for backends to be up, or for any other polled condition.
const READY: Duration = Duration::from_secs(10);
/// Longest any client read, write or connect may block.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Exit status of a refused command line or a failed start.
const EXIT_USAGE: i32 = 2;
const HTTP_1_1: &[u8] = b"http/1.1";
const TLS13: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];
const TLS12: &[&SupportedProtocolVersion] = &[&rustls::version::TLS12];

// ---------------------------------------------------------------------------------------
// Certificates
// ---------------------------------------------------------------------------------------

/// PEM files made once per run: a CA and two server certificates it signed, each with its
/// own key.
struct Pki {
    ca: Vec<u8>,
    a_cert: Vec<u8>,
    a_key: Vec<u8>,
    b_cert: Vec<u8>,
    b_key: Vec<u8>,
}

fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(generate_pki)
}

fn generate_pki() -> Pki {
    let dir = TempDir::new("tls-it");
    dir.write("openssl.cnf", OPENSSL_CNF.as_bytes());
    let p256 = |out: &str| {
        #[rustfmt::skip]
        openssl(&dir, &[
            "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", out,
        ]);
    };
    p256("ca.key");
    #[rustfmt::skip]
    openssl(&dir, &[
        "req", "-x509", "-new", "-config", "openssl.cnf", "-extensions", "ca",
        "-key", "ca.key", "-subj", "/CN=goaround test CA", "-days", "2", "-out", "ca.pem",
    ]);
    for (serial, name) in [("2", "a"), ("3", "b")] {
        let (key, csr, pem) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        p256(&key);
        #[rustfmt::skip]
        openssl(&dir, &[
            "req", "-new", "-config", "openssl.cnf", "-key", &key, "-subj", "/CN=localhost",
            "-out", &csr,
        ]);
        #[rustfmt::skip]
        openssl(&dir, &[
            "x509", "-req", "-in", &csr, "-CA", "ca.pem", "-CAkey", "ca.key",
            "-set_serial", serial, "-days", "2", "-extfile", "openssl.cnf",
            "-extensions", "server", "-out", &pem,
        ]);
    }
    let read = |name: &str| std::fs::read(dir.join(name)).expect("read generated file");
    Pki {
        ca: read("ca.pem"),
        a_cert: read("a.pem"),
        a_key: read("a.key"),
        b_cert: read("b.pem"),
        b_key: read("b.key"),
    }
}

/// The DER of the first certificate in `pem`.
fn der(pem: &[u8]) -> Vec<u8> {
    let first = CertificateDer::pem_slice_iter(pem)
        .next()
        .expect("a certificate");
    first.expect("certificate PEM").to_vec()
}

/// A server's files on disk: `cert.pem` and `key.pem` (certificate A to start with) and the
/// CA in `ca.pem`.
struct Site {
    dir: TempDir,
    cert: PathBuf,
    key: PathBuf,
    ca: PathBuf,
}

impl Site {
    fn new() -> Site {
        let dir = TempDir::new("tls-it");
        let cert = dir.write("cert.pem", &pki().a_cert);
        let key = dir.write("key.pem", &pki().a_key);
        let ca = dir.write("ca.pem", &pki().ca);
        Site { dir, cert, key, ca }
    }

    fn files(&self) -> TlsFiles {
        TlsFiles {
            cert: self.cert.clone(),
            key: self.key.clone(),
        }
    }

    fn tls_args(&self) -> Vec<String> {
        let path = |p: &Path| p.display().to_string();
        vec![
            "-cacert".into(),
            path(&self.cert),
            "-privkey".into(),
            path(&self.key),
        ]
    }
}

// ---------------------------------------------------------------------------------------
// Clients and fixtures
// ---------------------------------------------------------------------------------------

/// A client trusting only the test CA, offering `alpn`, never resuming (each handshake is a
/// full one, so the peer certificate is the one the server presents now).
fn client_config(
    versions: &[&'static SupportedProtocolVersion],
    alpn: &[&[u8]],
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pki().ca) {
        roots.add(cert.expect("CA PEM")).expect("CA certificate");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config.resumption = Resumption::disabled();
    Arc::new(config)
}

fn tls13_client() -> Arc<ClientConfig> {
    client_config(TLS13, &[HTTP_1_1])
}

/// One TLS client connection to "localhost", handshake completed, kept across requests.
struct TlsConn {
    reader: BufReader<StreamOwned<ClientConnection, TcpStream>>,
}

impl TlsConn {
    fn open(addr: SocketAddr, config: Arc<ClientConfig>) -> TlsConn {
        TlsConn::try_open(addr, config).unwrap_or_else(|e| panic!("TLS connect to {addr}: {e}"))
    }

    fn try_open(addr: SocketAddr, config: Arc<ClientConfig>) -> io::Result<TlsConn> {
        let tcp = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
        tcp.set_read_timeout(Some(IO_TIMEOUT))?;
        tcp.set_write_timeout(Some(IO_TIMEOUT))?;
        tcp.set_nodelay(true)?;
        let name = ServerName::try_from("localhost").map_err(io::Error::other)?;
        let tls = ClientConnection::new(config, name).map_err(io::Error::other)?;
        TlsConn::finish_handshake(tls, tcp)
    }

    /// Completes the handshake `tls` started (or not yet) on `tcp`.
    fn finish_handshake(mut tls: ClientConnection, mut tcp: TcpStream) -> io::Result<TlsConn> {
        while tls.is_handshaking() {
            tls.complete_io(&mut tcp)?;
        }
        Ok(TlsConn {
            reader: BufReader::new(StreamOwned::new(tls, tcp)),
        })
    }

    fn tls(&self) -> &ClientConnection {
        &self.reader.get_ref().conn
    }

    /// The DER of the certificate the server presented.
    fn peer_cert(&self) -> Vec<u8> {
        let chain = self.tls().peer_certificates().expect("a certificate chain");
        chain[0].to_vec()
    }

    fn send(&mut self, bytes: &[u8]) {
        let stream = self.reader.get_mut();
        stream.write_all(bytes).expect("send over TLS");
        stream.flush().expect("flush over TLS");
    }

    fn read_response(&mut self) -> Response {
        read_response(&mut self.reader, "GET").expect("read a response over TLS")
    }

    fn request(&mut self, raw: &[u8]) -> Response {
        self.send(raw);
        self.read_response()
    }

    fn get(&mut self, path: &str) -> Response {
        self.request(get_request(path).as_bytes())
    }
}

fn get_request(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n")
}

/// Starts goaround with TLS from `site` in front of `backends` and waits until they are up.
fn tls_proxy(backends: &[&Backend], site: &Site, args: &[&str]) -> Goaround {
    let urls: Vec<String> = backends.iter().map(|b| b.url()).collect();
    let g = Goaround::builder()
        .backends(&urls)
        .args(&site.tls_args())
        .args(args)
        .start();
    assert!(
        g.wait_ready_backends(backends.len(), READY),
        "backends not up within {READY:?}"
    );
    g
}

/// `len` bytes that are not the fixture's pattern, so a shifted or repeated piece shows.
fn test_body(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

/// Polls `cond` every 10 ms until it holds (true) or [`READY`] passes (false).
fn wait_until(cond: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + READY;
    while !cond() {
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
    true
}

/// When the peer closes `tcp` (EOF or reset), measured from `since`, reading and dropping
/// whatever it sends first (an alert); `None` if it is still open at `since + limit`.
fn closed_within(tcp: &TcpStream, since: Instant, limit: Duration) -> Option<Duration> {
    let deadline = since + limit;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        tcp.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .expect("set read timeout");
        match (&*tcp).read(&mut buf) {
            Ok(0) => return Some(since.elapsed()),
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Some(since.elapsed()),
        }
    }
}

/// Whether the peer has closed `tcp`, without waiting.
fn closed_now(tcp: &TcpStream) -> bool {
    tcp.set_nonblocking(true).expect("set nonblocking");
    let closed = match tcp.peek(&mut [0u8; 1]) {
        Ok(n) => n == 0,
        Err(e) => e.kind() != io::ErrorKind::WouldBlock,
    };
    tcp.set_nonblocking(false).expect("set blocking");
    closed
}

/// An https backend: `/health` is healthy, `/` answers `hello over tls`, anything else 404.
/// Counts requests served and handshakes that failed (a client that did not trust it).
struct TlsBackend {
    server: ScriptedServer,
    served: Arc<AtomicU64>,
    failed_handshakes: Arc<AtomicU64>,
}

impl TlsBackend {
    fn start(files: &TlsFiles) -> TlsBackend {
        let config = server_config(files).expect("fixture backend TLS configuration");
        let served = Arc::new(AtomicU64::new(0));
        let failed_handshakes = Arc::new(AtomicU64::new(0));
        let server = ScriptedServer::start({
            let (served, failed) = (Arc::clone(&served), Arc::clone(&failed_handshakes));
            move |stream| serve_tls(stream, Arc::clone(&config), &served, &failed)
        });
        TlsBackend {
            server,
            served,
            failed_handshakes,
        }
    }

    fn url(&self) -> String {
        format!("https://{}", self.server.addr())
    }
}

fn serve_tls(
    mut tcp: TcpStream,
    config: Arc<rustls::ServerConfig>,
    served: &AtomicU64,
    failed: &AtomicU64,
) {
    // Bounds the thread's life even if the peer never closes.
    let _ = tcp.set_read_timeout(Some(IO_TIMEOUT));
    let Ok(mut tls) = ServerConnection::new(config) else {
        return;
    };
    while tls.is_handshaking() {
        if tls.complete_io(&mut tcp).is_err() {
            failed.fetch_add(1, Ordering::SeqCst);
            return;
        }
    }
    let mut reader = BufReader::new(StreamOwned::new(tls, tcp));
    while let Ok(Some(head)) = read_head(&mut reader) {
        let (status, body) = match head.target.as_str() {
            "/health" => (200, r#"{"state": "healthy", "message": ""}"#),
            "/" => (200, "hello over tls"),
            _ => (404, "not found"),
        };
        if head.target != "/health" {
            served.fetch_add(1, Ordering::SeqCst);
        }
        let reply = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let stream = reader.get_mut();
        if stream.write_all(reply.as_bytes()).is_err() || stream.flush().is_err() {
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Flags and files
// ---------------------------------------------------------------------------------------

/// Runs the binary with the TLS files given and test-safe addresses; it must not start.
fn run_with_files(dir: &TempDir, cert: &Path, key: &Path) -> Output {
    let socket = dir.join("goaround.sock").display().to_string();
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    #[rustfmt::skip]
    let args = [
        "-p", "0", "-bind", "127.0.0.1", "-prometheus-port", "0", "-socket", &socket,
        "-cacert", &cert, "-privkey", &key,
    ];
    run_cli(&args)
}

/// The refusal of a bad file: exit 2 and exactly one line naming the flag and the file.
fn assert_file_refused(out: &Output, flag: &str, path: &Path) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(EXIT_USAGE), "stderr:\n{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected:\n{stderr}");
    let expected = format!("goaround: {flag} {}: ", path.display());
    assert!(lines[0].starts_with(&expected), "{stderr}");
    lines[0].to_owned()
}

#[test]
fn cacert_or_privkey_alone_is_refused_naming_the_missing_flag() {
    let site = Site::new();
    let (cert, key) = (
        site.cert.display().to_string(),
        site.key.display().to_string(),
    );
    for (args, message) in [
        (["-cacert", &cert], "-cacert needs -privkey too"),
        (["-privkey", &key], "-privkey needs -cacert too"),
    ] {
        let out = run_cli(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(EXIT_USAGE), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}

#[test]
fn unreadable_certificate_or_key_file_is_refused_naming_it() {
    let site = Site::new();
    let missing = site.dir.join("missing.pem");
    // A directory: open works, read fails (the tests may run as root, so no chmod 000).
    let directory = site.dir.join("a-directory");
    std::fs::create_dir(&directory).expect("create directory");

    for bad in [&missing, &directory] {
        let out = run_with_files(&site.dir, bad, &site.key);
        let line = assert_file_refused(&out, "-cacert", bad);
        assert!(line.contains("cannot read"), "{line}");

        let out = run_with_files(&site.dir, &site.cert, bad);
        let line = assert_file_refused(&out, "-privkey", bad);
        assert!(line.contains("cannot read"), "{line}");
    }
}

#[test]
fn certificate_file_without_a_certificate_is_refused_naming_it() {
    let site = Site::new();
    // The key where the certificate should be: PEM, but no CERTIFICATE section.
    let out = run_with_files(&site.dir, &site.key, &site.key);
    let line = assert_file_refused(&out, "-cacert", &site.key);
    assert!(line.ends_with("no certificate found"), "{line}");

    let text = site.dir.write("text.pem", b"hello, not PEM at all\n");
    let out = run_with_files(&site.dir, &text, &site.key);
    let line = assert_file_refused(&out, "-cacert", &text);
    assert!(line.ends_with("no certificate found"), "{line}");
}

#[test]
fn key_not_matching_the_certificate_is_refused_naming_both_files() {
    let site = Site::new();
    let other_key = site.dir.write("b.key", &pki().b_key);
    let out = run_with_files(&site.dir, &site.cert, &other_key);
    let line = assert_file_refused(&out, "-privkey", &other_key);
    let expected = format!("does not match the certificate in {}", site.cert.display());
    assert!(line.ends_with(&expected), "{line}");
}

// ---------------------------------------------------------------------------------------
// Serving over TLS
// ---------------------------------------------------------------------------------------

#[test]
fn tls13_client_is_served_with_http11_negotiated() {
    let b = Backend::start("b1");
    let site = Site::new();
    let g = tls_proxy(&[&b], &site, &[]);
    let mut conn = TlsConn::open(g.addr(), tls13_client());
    assert_eq!(
        conn.tls().protocol_version(),
        Some(ProtocolVersion::TLSv1_3)
    );
    assert_eq!(conn.tls().alpn_protocol(), Some(HTTP_1_1));
    let suite = conn
        .tls()
        .negotiated_cipher_suite()
        .expect("a cipher suite");
    assert_eq!(suite.version(), &rustls::version::TLS13);
    assert_eq!(conn.peer_cert(), der(&pki().a_cert));

    let r = conn.get("/");
    assert_eq!((r.status, r.text().as_str()), (200, "hello from b1"));
}

#[test]
fn client_sending_no_server_name_is_served() {
    let b = Backend::start("b1");
    let site = Site::new();
    let g = tls_proxy(&[&b], &site, &[]);
    // An IP address as the name: rustls sends no SNI and checks the IP SAN.
    let tcp = TcpStream::connect_timeout(&g.addr(), IO_TIMEOUT).expect("connect");
    tcp.set_read_timeout(Some(IO_TIMEOUT))
        .expect("set read timeout");
    let name = ServerName::try_from("127.0.0.1").expect("IP server name");
    let tls = ClientConnection::new(tls13_client(), name).expect("client connection");
    let mut conn = TlsConn::finish_handshake(tls, tcp).expect("handshake without SNI");
    assert_eq!(conn.get("/").status, 200);
}

#[test]
fn tls12_client_is_served() {
    let b = Backend::start("b1");
    let site = Site::new();
    let g = tls_proxy(&[&b], &site, &[]);
    let mut conn = TlsConn::open(g.addr(), client_config(TLS12, &[HTTP_1_1]));
    assert_eq!(
        conn.tls().protocol_version(),
        Some(ProtocolVersion::TLSv1_2)
    );
    assert_eq!(conn.tls().alpn_protocol(), Some(HTTP_1_1));
    let suite = conn
        .tls()
        .negotiated_cipher_suite()
        .expect("a cipher suite");
    assert_eq!(suite.version(), &rustls::version::TLS12);

    let r = conn.get("/");
    assert_eq!((r.status, r.text().as_str()), (200, "hello from b1"));
}

#[test]
fn alpn_picks_http11_and_refuses_a_client_without_it() {
    let b = Backend::start("b1");
    let site = Site::new();
    let g = tls_proxy(&[&b], &site, &[]);

    let mut both = TlsConn::open(g.addr(), client_config(TLS13, &[b"h2", HTTP_1_1]));
    assert_eq!(both.tls().alpn_protocol(), Some(HTTP_1_1));
    assert_eq!(both.get("/").status, 200);

    let mut none = TlsConn::open(g.addr(), client_config(TLS13, &[]));
    assert_eq!(none.tls().alpn_protocol(), None);
    assert_eq!(none.get("/").status, 200);

    // RFC 7301 §3.2: no protocol in common is a no_application_protocol alert.
    let refused = TlsConn::try_open(g.addr(), client_config(TLS13, &[b"h2"]));
    let e = refused.err().expect("a client offering only h2 is refused");
    assert!(e.to_string().contains("NoApplicationProtocol"), "{e}");
}

#[test]
fn keep_alive_and_pipelining_over_one_tls_connection() {
    let b = Backend::start("b1");
    let site = Site::new();
    let g = tls_proxy(&[&b], &site, &[]);
    let mut conn = TlsConn::open(g.addr(), tls13_client());
    for i in 0..5 {
        let r = conn.get(&format!("/echo?n={i}"));
        assert_eq!(r.status, 200, "request {i}");
        assert_eq!(r.header("x-target"), Some(format!("/echo?n={i}").as_str()));
        assert_eq!(r.header("connection"), None, "request {i}");
    }
    // Two requests in one TLS record: the second waits decrypted inside rustls while the
    // socket has nothing more to read.
    let pipelined = format!("{}{}", get_request("/echo?n=p1"), get_request("/echo?n=p2"));
    conn.send(pipelined.as_bytes());
    for n in ["p1", "p2"] {
        let r = conn.read_response();
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-target"), Some(format!("/echo?n={n}").as_str()));
    }
    assert_eq!(conn.get("/").text(), "hello from b1");
    assert_eq!(b.requests(), 8);
}

#[test]
fn large_responses_are_intact_over_tls() {
    let b = Backend::start("b1");
    let site = Site::new();
    let g = tls_proxy(&[&b], &site, &[]);
    let mut conn = TlsConn::open(g.addr(), tls13_client());
    for (path, len, chunked) in [
        ("/bytes/5000000", 5_000_000, false),
        ("/chunked/1000000", 1_000_000, true),
    ] {
        let r = conn.get(path);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.chunked, chunked, "{path}");
        assert_eq!(r.body.len(), len, "{path}");
        let first_bad = (0..len).find(|&i| r.body[i] != pattern_byte(i as u64));
        assert_eq!(first_bad, None, "{path}: first wrong byte");
    }
    // The connection is still usable after both.
    assert_eq!(conn.get("/").status, 200);
}

#[test]
fn post_bodies_are_intact_over_tls() {
    let b = Backend::start("b1");
    let site = Site::new();
    let g = tls_proxy(&[&b], &site, &[]);
    let body = test_body(1024 * 1024);
    let mut conn = TlsConn::open(g.addr(), tls13_client());

    let mut raw = format!(
        "POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(&body);
    let r = conn.request(&raw);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-body-len"), Some("1048576"));
    assert!(r.body == body, "Content-Length body changed on the way");

    // Chunked, in chunks of uneven sizes.
    let mut raw =
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for piece in body.chunks(65_521) {
        raw.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        raw.extend_from_slice(piece);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let r = conn.request(&raw);
    assert_eq!(r.status, 200);
    assert!(r.body == body, "chunked body changed on the way");

    let received = b.received();
    assert_eq!(received.len(), 2);
    assert!(received.iter().all(|req| req.body == body));
}

#[test]
fn expect_100_continue_over_tls() {
    let b = Backend::start("b1");
    let site = Site::new();
    let g = tls_proxy(&[&b], &site, &[]);
    let body = test_body(256 * 1024);
    let mut conn = TlsConn::open(g.addr(), tls13_client());
    let head = format!(
        "POST /echo HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    conn.send(head.as_bytes());
    assert_eq!(conn.read_response().status, 100);
    conn.send(&body);
    let r = conn.read_response();
    assert_eq!(r.status, 200);
    assert!(r.body == body, "body changed on the way");
}

#[test]
fn request_followed_by_close_notify_is_still_answered() {
    let b = Backend::start("b1");
    let site = Site::new();
    let g = tls_proxy(&[&b], &site, &[]);
    let mut conn = TlsConn::open(g.addr(), tls13_client());
    conn.send(get_request("/bytes/100000").as_bytes());
    // TLS's half-close: the client will send nothing more but still reads.
    let stream = conn.reader.get_mut();
    stream.conn.send_close_notify();
    stream.flush().expect("send close_notify");
    let r = conn.read_response();
    assert_eq!((r.status, r.body.len()), (200, 100_000));
}

#[test]
fn sessions_resume_including_across_a_reload() {
    let b = Backend::start("b1");
    let site = Site::new();
    let g = tls_proxy(&[&b], &site, &[]);
    for versions in [TLS13, TLS12] {
        // Unlike the other clients here, this one keeps sessions.
        let mut config = (*client_config(versions, &[HTTP_1_1])).clone();
        config.resumption = Resumption::in_memory_sessions(8);
        let config = Arc::new(config);
        let kinds = |g: &Goaround| {
            let mut conn = TlsConn::open(g.addr(), Arc::clone(&config));
            // Reading a response also takes in the TLS 1.3 session tickets.
            assert_eq!(conn.get("/").status, 200);
            conn.tls().handshake_kind()
        };
        assert_eq!(kinds(&g), Some(HandshakeKind::Full), "{versions:?}");
        assert_eq!(kinds(&g), Some(HandshakeKind::Resumed), "{versions:?}");
    }
    // A renewed certificate keeps the ticket keys and the session cache.
    let config = {
        let mut config = (*tls13_client()).clone();
        config.resumption = Resumption::in_memory_sessions(8);
        Arc::new(config)
    };
    let mut first = TlsConn::open(g.addr(), Arc::clone(&config));
    assert_eq!(first.get("/").status, 200);
    std::fs::write(&site.cert, &pki().b_cert).expect("write cert B");
    std::fs::write(&site.key, &pki().b_key).expect("write key B");
    g.signal(1);
    assert!(g.wait_for_log("SIGHUP: reloaded", READY), "{}", g.stderr());
    let mut again = TlsConn::open(g.addr(), config);
    assert_eq!(again.tls().handshake_kind(), Some(HandshakeKind::Resumed));
    assert_eq!(again.get("/").status, 200);
}

#[test]
fn x_forwarded_proto_https_reaches_the_backend() {
    let b = Backend::start("b1");
    let site = Site::new();
    let g = tls_proxy(&[&b], &site, &[]);
    let mut conn = TlsConn::open(g.addr(), tls13_client());
    let raw = "GET / HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-Proto: http\r\n\r\n";
    assert_eq!(conn.request(raw.as_bytes()).status, 200);
    let received = b.received();
    assert_eq!(received[0].header_all("x-forwarded-proto"), ["https"]);
}

// ---------------------------------------------------------------------------------------
// Clients that do not complete a handshake
// ---------------------------------------------------------------------------------------

/// The first bytes a real client sends: its ClientHello record.
fn client_hello() -> Vec<u8> {
    let name = ServerName::try_from("localhost").expect("server name");
    let mut tls = ClientConnection::new(tls13_client(), name).expect("client connection");
    let mut hello = Vec::new();
    while tls.wants_write() {
        tls.write_tls(&mut hello).expect("write to a Vec");
    }
    hello
}

#[test]
fn stalled_handshakes_hold_no_worker_and_are_closed_after_the_handshake_timeout() {
    const SILENT: usize = 40;
    const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(1);
    let b = Backend::start("b1");
    let site = Site::new();
    let g = tls_proxy(&[&b], &site, &["-workers", "2", "-handshake-timeout", "1s"]);

    let hello = client_hello();
    assert!(hello.len() > 50, "ClientHello of {} bytes", hello.len());
    // Fixed "random" bytes (a linear congruential sequence), the same on every run.
    let noise: Vec<u8> = (0u32..20)
        .map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(12_345) >> 13) as u8)
        .collect();

    let opened = Instant::now();
    let connect = || TcpStream::connect_timeout(&g.addr(), IO_TIMEOUT).expect("connect");
    let silent: Vec<TcpStream> = (0..SILENT).map(|_| connect()).collect();
    let mut talkers = Vec::new();
    for bytes in [&hello[..50], &noise[..]] {
        for _ in 0..3 {
            let mut tcp = connect();
            tcp.write_all(bytes).expect("send a partial handshake");
            talkers.push(tcp);
        }
    }

    let started = Instant::now();
    let mut conn = TlsConn::open(g.addr(), tls13_client());
    let r = conn.get("/");
    let took = started.elapsed();
    assert_eq!((r.status, r.text().as_str()), (200, "hello from b1"));
    assert!(took < Duration::from_secs(1), "a real client took {took:?}");
    // The silent ones were still open while it was served (their deadline had not come).
    if opened.elapsed() < HANDSHAKE_TIMEOUT * 9 / 10 {
        let closed = silent.iter().filter(|tcp| closed_now(tcp)).count();
        assert_eq!(closed, 0, "silent connections closed before their time");
    }

    // The sweep runs every 250 ms: closed by timeout + 1 s at the latest.
    let limit = HANDSHAKE_TIMEOUT + Duration::from_secs(1);
    for (i, tcp) in silent.iter().chain(&talkers).enumerate() {
        let closed = closed_within(tcp, opened, limit);
        assert!(
            closed.is_some(),
            "connection {i} still open after {limit:?}"
        );
    }
    // Closed by the handshake deadline: every silent one and every half ClientHello (the
    // noise may instead be refused by rustls at once).
    let timed_out = || {
        let log = g.stderr();
        log.matches("TLS handshake not completed in time").count() >= SILENT + 3
    };
    assert!(
        wait_until(timed_out),
        "handshake timeouts not logged:\n{}",
        g.stderr()
    );
    // The real client's connection is past its handshake: the timeout does not apply.
    assert_eq!(conn.get("/").status, 200);
    // Nothing leaked: only the real client's connection is still counted.
    let one_open = || g.metric("goaround_client_connections") == Some(1.0);
    assert!(
        wait_until(one_open),
        "{:?} client connections open",
        g.metric("goaround_client_connections")
    );
}

#[test]
fn handshake_trickled_byte_by_byte_is_cut_at_the_handshake_timeout() {
    let b = Backend::start("b1");
    let site = Site::new();
    let g = tls_proxy(&[&b], &site, &["-handshake-timeout", "1s"]);
    let hello = client_hello();
    let opened = Instant::now();
    let mut tcp = TcpStream::connect_timeout(&g.addr(), IO_TIMEOUT).expect("connect");
    // A byte every 50 ms: each one makes progress, none extends the deadline. The pacing is
    // the behaviour under test, so it is a sleep.
    let mut sent = 0;
    while !closed_now(&tcp) && opened.elapsed() < Duration::from_secs(5) {
        if sent < hello.len() && tcp.write_all(&hello[sent..=sent]).is_ok() {
            sent += 1;
        }
        thread::sleep(Duration::from_millis(50));
    }
    let closed_after = opened.elapsed();
    assert!(sent < hello.len(), "the whole ClientHello went through");
    assert!(
        closed_after >= Duration::from_millis(900) && closed_after < Duration::from_secs(3),
        "closed after {closed_after:?} ({sent} bytes sent)"
    );
}

#[test]
fn handshake_arriving_in_pieces_holds_no_worker_between_them() {
    let b = Backend::start("b1");
    let site = Site::new();
    let g = tls_proxy(&[&b], &site, &["-workers", "1"]);
    let mut tcp = TcpStream::connect_timeout(&g.addr(), IO_TIMEOUT).expect("connect");
    tcp.set_read_timeout(Some(IO_TIMEOUT))
        .expect("set read timeout");
    let name = ServerName::try_from("localhost").expect("server name");
    let mut tls = ClientConnection::new(tls13_client(), name).expect("client connection");
    let mut hello = Vec::new();
    while tls.wants_write() {
        tls.write_tls(&mut hello).expect("write to a Vec");
    }
    assert!(hello.len() > 100, "ClientHello of {} bytes", hello.len());

    // Between the pieces the only worker must be free for other clients.
    for piece in [&hello[..50], &hello[50..100]] {
        tcp.write_all(piece)
            .expect("send a piece of the ClientHello");
        let started = Instant::now();
        let mut other = TlsConn::open(g.addr(), tls13_client());
        assert_eq!(other.get("/").status, 200);
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(1),
            "another client took {took:?}"
        );
    }
    tcp.write_all(&hello[100..]).expect("send the rest");
    let mut slow = TlsConn::finish_handshake(tls, tcp).expect("handshake in pieces");
    let r = slow.get("/");
    assert_eq!((r.status, r.text().as_str()), (200, "hello from b1"));
}

#[test]
fn plain_http_on_the_tls_port_is_closed_at_once() {
    let b = Backend::start("b1");
    let site = Site::new();
    let g = tls_proxy(&[&b], &site, &[]);
    let mut tcp = TcpStream::connect_timeout(&g.addr(), IO_TIMEOUT).expect("connect");
    let sent = Instant::now();
    tcp.write_all(get_request("/").as_bytes())
        .expect("send plain HTTP");
    let closed = closed_within(&tcp, sent, Duration::from_secs(5));
    let closed = closed.expect("plain HTTP on the TLS port left hanging");
    assert!(closed < Duration::from_secs(1), "closed after {closed:?}");
    assert_eq!(b.requests(), 0);

    let mut conn = TlsConn::open(g.addr(), tls13_client());
    assert_eq!(conn.get("/").status, 200);
}

// ---------------------------------------------------------------------------------------
// Reload
// ---------------------------------------------------------------------------------------

#[test]
fn sighup_reloads_the_certificate_and_keeps_it_when_the_new_files_are_bad() {
    let b = Backend::start("b1");
    let site = Site::new();
    let g = tls_proxy(&[&b], &site, &[]);
    let (a, b_der) = (der(&pki().a_cert), der(&pki().b_cert));
    assert_ne!(a, b_der);

    let mut before = TlsConn::open(g.addr(), tls13_client());
    assert_eq!(before.peer_cert(), a);
    assert_eq!(before.get("/").status, 200);

    // Renewed files at the same paths: certificate B, with its own key.
    std::fs::write(&site.cert, &pki().b_cert).expect("write cert B");
    std::fs::write(&site.key, &pki().b_key).expect("write key B");
    g.signal(1);
    assert!(
        g.wait_for_log("SIGHUP: reloaded", READY),
        "no reload logged:\n{}",
        g.stderr()
    );
    let mut after = TlsConn::open(g.addr(), tls13_client());
    assert_eq!(after.peer_cert(), b_der, "new handshakes present B");
    assert_eq!(after.get("/").status, 200);
    // The connection opened before the reload keeps working.
    assert_eq!(before.get("/").status, 200);
    assert_eq!(before.peer_cert(), a);

    // A broken certificate file: the reload fails and B stays.
    std::fs::write(&site.cert, b"-----BEGIN CERTIFICATE-----\nAAAA\n").expect("write bad cert");
    g.signal(1);
    assert!(
        g.wait_for_log("SIGHUP: keeping the current certificate", READY),
        "no failed reload logged:\n{}",
        g.stderr()
    );
    let stderr = g.stderr();
    let line = stderr
        .lines()
        .find(|l| l.contains("keeping the current certificate"))
        .unwrap_or_default();
    assert!(line.contains(&site.cert.display().to_string()), "{line}");
    assert_eq!(g.wait_exit(Duration::ZERO), None, "goaround exited");
    let mut later = TlsConn::open(g.addr(), tls13_client());
    assert_eq!(later.peer_cert(), b_der, "B is still presented");
    assert_eq!(later.get("/").status, 200);
    assert_eq!(after.get("/").status, 200);
}

// ---------------------------------------------------------------------------------------
// https backends
// ---------------------------------------------------------------------------------------

#[test]
fn https_backend_trusted_with_backend_ca_works_end_to_end() {
    let site = Site::new();
    let backend = TlsBackend::start(&site.files());
    let ca = site.ca.display().to_string();
    let g = Goaround::builder()
        .backends(&[backend.url()])
        .args(&site.tls_args())
        .args(&["-backend-ca", &ca])
        .start();
    assert!(g.wait_ready_backends(1, READY), "https backend not up");

    let mut conn = TlsConn::open(g.addr(), tls13_client());
    for _ in 0..3 {
        let r = conn.get("/");
        assert_eq!((r.status, r.text().as_str()), (200, "hello over tls"));
    }
    assert_eq!(backend.served.load(Ordering::SeqCst), 3);
    assert_eq!(backend.failed_handshakes.load(Ordering::SeqCst), 0);
}

#[test]
fn https_backend_signed_by_an_unknown_ca_is_not_trusted() {
    let site = Site::new();
    let backend = TlsBackend::start(&site.files());
    let g = Goaround::builder().backends(&[backend.url()]).start();

    // The first health check fails in the handshake: our CA is not among the web roots.
    let unhealthy = || {
        g.metrics().lines().any(|l| {
            l.starts_with("goaround_health_checks_total{") && l.contains("result=\"unhealthy\"")
        })
    };
    assert!(
        wait_until(unhealthy),
        "no failed health check:\n{}",
        g.metrics()
    );
    let failed = || backend.failed_handshakes.load(Ordering::SeqCst) >= 1;
    assert!(wait_until(failed), "the backend saw no failed handshake");
    assert_eq!(g.metric("goaround_backends_up"), Some(0.0));

    let r = support::get(g.addr(), "/");
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(backend.served.load(Ordering::SeqCst), 0);
}
