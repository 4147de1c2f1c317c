//! HTTPS and `wss://` served by the server itself (`--tls-cert`, `--tls-key`), against
//! the real binary: a certificate authority and server certificates made here with
//! rcgen, clients that verify them with rustls, the certificate swapped while clients
//! chat (SIGHUP, a change of the files, a bad file), the plain-HTTP redirect, the
//! `Secure` session cookie and `Strict-Transport-Security`.

mod common;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use common::{Client, HttpResponse, PASSWORD, TIMEOUT, http_exchange, http_get, process};
use confab_shared::{ClientMsg, PROTOCOL_VERSION, ServerMsg};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SerialNumber};
use rustls::{
    ClientConfig, RootCertStore,
    pki_types::{CertificateDer, ServerName},
};
use tempfile::TempDir;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, BufReader},
    net::TcpStream,
    process::{Child, Command},
    time::{Instant, sleep, timeout},
};
use tokio_rustls::{TlsConnector, client::TlsStream};
use tokio_tungstenite::{
    client_async,
    tungstenite::{client::IntoClientRequest, http::HeaderValue},
};

/// A chat client over TLS.
type TlsClient = Client<TlsStream<TcpStream>>;

/// A certificate authority made for one test.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    der: CertificateDer<'static>,
}

/// A server certificate and its key.
struct Leaf {
    cert_pem: String,
    key_pem: String,
    der: CertificateDer<'static>,
}

impl Ca {
    fn new(name: &str) -> Self {
        let key = KeyPair::generate().expect("a CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).expect("a CA certificate");
        Self {
            der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A certificate for `names` (the first is its common name) with serial `serial`.
    fn issue(&self, names: &[&str], serial: u64) -> Leaf {
        let key = KeyPair::generate().expect("a server key");
        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .expect("server certificate parameters");
        params.serial_number = Some(SerialNumber::from(serial));
        params.distinguished_name.push(DnType::CommonName, names[0]);
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("a server certificate");
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
        }
    }

    /// A TLS client that trusts this authority alone, and makes a full handshake each
    /// time: a resumed session does not present the certificate again, and the tests
    /// look at which one the server presents.
    fn client(&self) -> TlsConnector {
        let mut roots = RootCertStore::empty();
        roots.add(self.der.clone()).expect("the CA in a root store");
        let mut config =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("TLS versions")
                .with_root_certificates(roots)
                .with_no_client_auth();
        config.resumption = rustls::client::Resumption::disabled();
        TlsConnector::from(Arc::new(config))
    }
}

/// The server binary serving TLS with a certificate in a temporary folder it may
/// replace, its log lines collected.
struct TlsServer {
    child: Child,
    addr: SocketAddr,
    dir: TempDir,
    log: Arc<Mutex<Vec<String>>>,
}

const CERT_FILE: &str = "cert.pem";
const KEY_FILE: &str = "key.pem";

async fn write_pair(dir: &Path, leaf: &Leaf) {
    tokio::fs::write(dir.join(CERT_FILE), &leaf.cert_pem)
        .await
        .expect("write the certificate");
    tokio::fs::write(dir.join(KEY_FILE), &leaf.key_pem)
        .await
        .expect("write the key");
}

/// The page the server's static folder holds.
const PAGE: &str = "<!doctype html><title>Confab over TLS</title>";

impl TlsServer {
    async fn start(leaf: &Leaf, flags: &[&str]) -> Self {
        let dir = TempDir::new().expect("a temporary folder");
        let static_dir = dir.path().join("static");
        std::fs::create_dir(&static_dir).expect("static folder");
        std::fs::write(static_dir.join("index.html"), PAGE).expect("index.html");
        write_pair(dir.path(), leaf).await;
        let addr = process::free_addr();
        let mut command = Command::new(env!("CARGO_BIN_EXE_confab-server"));
        command
            .args(["--listen", &addr.to_string(), "--allow-guests"])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--static-dir")
            .arg(&static_dir)
            .arg("--tls-cert")
            .arg(dir.path().join(CERT_FILE))
            .arg("--tls-key")
            .arg(dir.path().join(KEY_FILE))
            .args(flags)
            .env("RUST_LOG", "confab_server=info,warn")
            .stdout(Stdio::piped())
            .kill_on_drop(true);
        let mut child = process::spawn_listening(command, addr).await;
        let stdout = child.stdout.take().expect("the server's output");
        let log = Arc::<Mutex<Vec<String>>>::default();
        tokio::spawn({
            let log = Arc::clone(&log);
            async move {
                let mut lines = BufReader::new(stdout).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    log.lock().expect("log").push(line);
                }
            }
        });
        Self {
            child,
            addr,
            dir,
            log,
        }
    }

    fn cert_path(&self) -> PathBuf {
        self.dir.path().join(CERT_FILE)
    }

    /// Puts `leaf` in the certificate and key files.
    async fn write(&self, leaf: &Leaf) {
        write_pair(self.dir.path(), leaf).await;
    }

    fn signal(&self, name: &str) {
        let pid = self.child.id().expect("the server runs");
        let status = std::process::Command::new("kill")
            .args([format!("-{name}"), pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "SIG{name} sent");
    }

    fn hangup(&self) {
        self.signal("HUP");
    }

    /// SIGTERM, then the exit status (within 10 s).
    async fn terminate(mut self) -> std::process::ExitStatus {
        self.signal("TERM");
        timeout(Duration::from_secs(10), self.child.wait())
            .await
            .expect("the server exits within 10 s of SIGTERM")
            .expect("wait for the server")
    }

    /// How many log lines there are so far.
    fn log_mark(&self) -> usize {
        self.log.lock().expect("log").len()
    }

    /// Waits for a log line after `mark` that contains `needle`.
    async fn wait_log(&self, mark: usize, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(line) = self.log.lock().expect("log")[mark..]
                .iter()
                .find(|l| l.contains(needle))
            {
                return line.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no log line with {needle:?} in {:#?}",
                self.log.lock().expect("log")
            );
            sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A TLS connection to `addr` for the name `localhost`.
async fn connect(client: &TlsConnector, addr: SocketAddr) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").expect("a server name");
    timeout(TIMEOUT, client.connect(name, tcp))
        .await
        .expect("the TLS handshake ends in time")
}

/// The certificate the server presented on `stream`.
fn presented(stream: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .expect("the server presented a certificate")
        .clone()
        .into_owned()
}

/// One HTTPS request (closing the connection after it) with `Host: host`.
async fn https(
    client: &TlsConnector,
    addr: SocketAddr,
    method: &str,
    path: &str,
    host: &str,
    body: Option<&serde_json::Value>,
) -> HttpResponse {
    let stream = connect(client, addr).await.expect("a TLS connection");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    let body = body.map(ToString::to_string).unwrap_or_default();
    if !body.is_empty() {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(&body);
    http_exchange(stream, &req).await
}

/// A chat socket over TLS on `stream` (`wss://`), with a session cookie or as a guest
/// named `guest`; welcomed either way.
async fn wss(stream: TlsStream<TcpStream>, addr: SocketAddr, who: Who<'_>) -> TlsClient {
    let mut req = format!("wss://localhost:{}/ws", addr.port())
        .into_client_request()
        .expect("a wss URL");
    if let Who::Member(cookie) = who {
        req.headers_mut().insert(
            "cookie",
            HeaderValue::from_str(cookie).expect("a cookie header"),
        );
    }
    let (ws, _) = timeout(TIMEOUT, client_async(req, stream))
        .await
        .expect("the WebSocket handshake ends in time")
        .expect("the WebSocket handshake over TLS succeeds");
    let mut client = Client { ws };
    match who {
        Who::Guest(name) => {
            client.hello(name).await;
        }
        Who::Member(_) => {
            client
                .send_json(&ClientMsg::Hello {
                    protocol: PROTOCOL_VERSION,
                    name: None,
                })
                .await;
            match client.recv().await {
                ServerMsg::Welcome { .. } => {}
                other => panic!("expected a welcome, got {other:?}"),
            }
        }
    }
    client
}

#[derive(Clone, Copy)]
enum Who<'a> {
    Member(&'a str),
    Guest(&'a str),
}

/// `a` says something in "general" and `b` hears it.
async fn chat(a: &mut TlsClient, b: &mut TlsClient, body: &str) {
    let sent = a.say("general", body).await;
    assert_eq!(sent.body, body);
    let heard = b.next_message().await;
    assert_eq!(heard.body, body);
}

#[tokio::test]
async fn a_client_that_trusts_the_ca_signs_up_and_chats_over_wss() {
    let ca = Ca::new("Confab test CA");
    let leaf = ca.issue(&["localhost"], 1);
    let server = TlsServer::start(&leaf, &["--allowed-host", "chat.test"]).await;
    let client = ca.client();
    let addr = server.addr;
    let localhost = format!("localhost:{}", addr.port());
    server
        .wait_log(0, &format!("Confab is running: open https://{addr}/"))
        .await;

    let page = https(&client, addr, "GET", "/", &localhost, None).await;
    assert_eq!(page.status, 200, "{page:?}");
    assert_eq!(page.body, PAGE);
    // Browsers ignore HSTS for IP addresses; for localhost it would hold every port.
    assert!(
        !page
            .headers
            .iter()
            .any(|h| h.starts_with("strict-transport-security:")),
        "{page:?}"
    );
    let named = https(&client, addr, "GET", "/", "chat.test", None).await;
    assert_eq!(named.status, 200, "{named:?}");
    assert!(
        named
            .headers
            .contains(&"strict-transport-security: max-age=31536000".to_owned()),
        "{named:?}"
    );

    let signed_up = https(
        &client,
        addr,
        "POST",
        "/api/signup",
        &localhost,
        Some(&serde_json::json!({"username": "ada", "password": PASSWORD})),
    )
    .await;
    assert_eq!(signed_up.status, 201, "{signed_up:?}");
    let set_cookie = signed_up
        .set_cookies
        .iter()
        .find(|c| c.starts_with("__Host-confab_session="))
        .unwrap_or_else(|| panic!("a __Host- session cookie in {signed_up:?}"));
    assert!(
        set_cookie
            .split(';')
            .any(|attr| attr.trim().eq_ignore_ascii_case("secure")),
        "the session cookie is Secure over TLS: {set_cookie}"
    );
    let cookie = signed_up.session_cookie().expect("a session cookie");

    let stream = connect(&client, addr).await.expect("a TLS connection");
    assert_eq!(presented(&stream), leaf.der);
    let mut ada = wss(stream, addr, Who::Member(&cookie)).await;
    let stream = connect(&client, addr).await.expect("a TLS connection");
    let mut bob = wss(stream, addr, Who::Guest("bob")).await;
    ada.join("general").await;
    bob.join("general").await;
    chat(&mut ada, &mut bob, "over TLS, hello bob").await;
    chat(&mut bob, &mut ada, "hello ada, encrypted too").await;

    // Shutting down closes the sockets over TLS as over TCP: 1001, then a clean exit.
    let exit = tokio::spawn(server.terminate());
    assert_eq!(ada.expect_close().await, 1001);
    assert_eq!(bob.expect_close().await, 1001);
    let exit = exit.await.expect("the server process ends");
    assert!(exit.success(), "a clean shutdown exits 0, got {exit}");
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_certificate_is_refused() {
    let ca = Ca::new("Confab test CA");
    let server = TlsServer::start(&ca.issue(&["localhost"], 1), &[]).await;
    let stranger = Ca::new("Someone else's CA").client();
    let err = connect(&stranger, server.addr)
        .await
        .expect_err("a certificate from an unknown CA is refused");
    assert!(
        err.to_string().contains("UnknownIssuer"),
        "the client refused the issuer: {err}"
    );
    // The server went on serving.
    let stream = connect(&ca.client(), server.addr)
        .await
        .expect("a trusting client connects");
    wss(stream, server.addr, Who::Guest("ada")).await;
}

#[tokio::test]
async fn plain_http_on_the_https_port_is_told_to_use_https() {
    let ca = Ca::new("Confab test CA");
    let server = TlsServer::start(&ca.issue(&["localhost"], 1), &[]).await;
    let resp = http_get(server.addr, "/").await;
    assert_eq!(resp.status, 400, "{resp:?}");
    assert!(resp.body.contains("https://"), "{resp:?}");
    // And the port still speaks TLS to the next client.
    let stream = connect(&ca.client(), server.addr)
        .await
        .expect("a TLS connection");
    wss(stream, server.addr, Who::Guest("ada")).await;
}

#[tokio::test]
async fn a_client_that_never_finishes_the_handshake_is_dropped() {
    let ca = Ca::new("Confab test CA");
    let server = TlsServer::start(
        &ca.issue(&["localhost"], 1),
        &["--handshake-timeout-secs", "1"],
    )
    .await;
    let started = Instant::now();
    let mut tcp = TcpStream::connect(server.addr).await.expect("TCP connect");
    let mut buf = [0u8; 64];
    let read = timeout(Duration::from_secs(4), tcp.read(&mut buf))
        .await
        .expect("the server closes a silent connection");
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "nothing but the close: {read:?}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "not before the deadline: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn sighup_swaps_the_certificate_for_new_connections_and_keeps_old_ones() {
    let ca = Ca::new("Confab test CA");
    let first = ca.issue(&["localhost"], 1);
    let server = TlsServer::start(&first, &["--tls-watch-secs", "0"]).await;
    let client = ca.client();
    let addr = server.addr;

    let stream = connect(&client, addr).await.expect("a TLS connection");
    assert_eq!(presented(&stream), first.der);
    let mut ada = wss(stream, addr, Who::Guest("ada")).await;
    ada.join("general").await;

    let second = ca.issue(&["localhost", "renewed.test"], 2);
    server.write(&second).await;
    let mark = server.log_mark();
    server.hangup();
    server
        .wait_log(mark, "TLS certificate loaded again after SIGHUP")
        .await;
    let stream = connect(&client, addr).await.expect("a TLS connection");
    assert_eq!(
        presented(&stream),
        second.der,
        "new connections get the new one"
    );
    let mut bob = wss(stream, addr, Who::Guest("bob")).await;
    bob.join("general").await;
    // The connection from before the swap chats on.
    chat(&mut ada, &mut bob, "still here after the swap").await;
    chat(&mut bob, &mut ada, "and I came after it").await;

    // A broken file: the server says so and serves the certificate it has.
    tokio::fs::write(server.cert_path(), "-----BEGIN CERTIFICATE-----\ngarbage\n")
        .await
        .expect("write garbage");
    let mark = server.log_mark();
    server.hangup();
    let line = server.wait_log(mark, "keeping the one in use").await;
    assert!(line.contains("cert.pem"), "the log names the file: {line}");
    let stream = connect(&client, addr).await.expect("a TLS connection");
    assert_eq!(presented(&stream), second.der, "the last good one stays");
    let mut cy = wss(stream, addr, Who::Guest("cy")).await;
    cy.join("general").await;
    chat(&mut ada, &mut cy, "the garbage changed nothing").await;
}

#[tokio::test]
async fn a_change_of_the_files_is_picked_up_without_a_signal() {
    let ca = Ca::new("Confab test CA");
    let first = ca.issue(&["localhost"], 1);
    let server = TlsServer::start(&first, &["--tls-watch-secs", "1"]).await;
    let client = ca.client();
    let stream = connect(&client, server.addr)
        .await
        .expect("a TLS connection");
    assert_eq!(presented(&stream), first.der);
    let mut ada = wss(stream, server.addr, Who::Guest("ada")).await;
    ada.join("general").await;

    let second = ca.issue(&["localhost", "renewed.test"], 2);
    let mark = server.log_mark();
    server.write(&second).await;
    server
        .wait_log(
            mark,
            "TLS certificate loaded again after a change of the files",
        )
        .await;
    let stream = connect(&client, server.addr)
        .await
        .expect("a TLS connection");
    assert_eq!(presented(&stream), second.der);
    let mut bob = wss(stream, server.addr, Who::Guest("bob")).await;
    bob.join("general").await;
    chat(&mut ada, &mut bob, "renewed under our feet").await;
}

/// Waits until something listens on `addr`.
async fn listening(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).await.is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {addr}");
        sleep(Duration::from_millis(20)).await;
    }
}

fn location(resp: &HttpResponse) -> &str {
    resp.headers
        .iter()
        .find_map(|h| h.strip_prefix("location: "))
        .unwrap_or_else(|| panic!("a Location header in {resp:?}"))
}

#[tokio::test]
async fn plain_http_is_redirected_to_the_same_place_over_https() {
    let ca = Ca::new("Confab test CA");
    let redirect = process::free_addr();
    let server = TlsServer::start(
        &ca.issue(&["localhost"], 1),
        &["--http-redirect-listen", &redirect.to_string()],
    )
    .await;
    listening(redirect).await;
    // `http_get` names the redirect listener's address as the host.
    let resp = http_get(redirect, "/room/general?around=42").await;
    assert_eq!(resp.status, 308, "{resp:?}");
    assert_eq!(
        location(&resp),
        format!(
            "https://127.0.0.1:{}/room/general?around=42",
            server.addr.port()
        )
    );
    let resp = http_get(redirect, "/").await;
    assert_eq!(
        location(&resp),
        format!("https://127.0.0.1:{}/", server.addr.port())
    );
}

#[tokio::test]
async fn the_redirect_goes_to_the_public_url_when_there_is_one() {
    let ca = Ca::new("Confab test CA");
    let redirect = process::free_addr();
    let _server = TlsServer::start(
        &ca.issue(&["localhost"], 1),
        &[
            "--http-redirect-listen",
            &redirect.to_string(),
            "--public-url",
            "https://chat.example.test:8443",
        ],
    )
    .await;
    listening(redirect).await;
    let resp = http_get(redirect, "/invite/abc?x=1").await;
    assert_eq!(resp.status, 308, "{resp:?}");
    assert_eq!(
        location(&resp),
        "https://chat.example.test:8443/invite/abc?x=1"
    );
}
