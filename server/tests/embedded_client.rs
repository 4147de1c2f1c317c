//! The web client built into the binary (`--features embed-client`, what
//! `scripts/release.sh` ships): the real binary, started in an empty folder without
//! `--static-dir`, serves every file of `dist/` with brotli or gzip as the request
//! asks, the bytes after decompression being `dist/`'s own; strong `ETag`s answered with
//! 304; a year's `immutable` caching for trunk's hashed names and `no-cache` for
//! `index.html`; client routes get the page. `--static-dir` still wins over it.
//!
//! `scripts/test.sh` runs this file with the feature, after building the release
//! client. Built without the feature (a plain `cargo test`) there is nothing embedded
//! to test: the test is then listed as ignored, with what to run instead.

mod common;

use std::{
    io::Read,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
};

use common::{
    TIMEOUT,
    process::{free_addr, spawn_listening},
};
use tempfile::TempDir;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    process::{Child, Command},
    time::timeout,
};

/// The folder the binary's client was built from (as `build.rs` reads it).
fn dist() -> PathBuf {
    match std::env::var_os("CONFAB_CLIENT_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist"),
    }
}

/// Every file under `dir`, as (URL path without the leading `/`, bytes).
fn files(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    for entry in std::fs::read_dir(dir).expect("list dist") {
        let path = entry.expect("dist entry").path();
        if path.is_dir() {
            files(root, &path, out);
        } else {
            let relative = path.strip_prefix(root).expect("under dist");
            let url = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            out.push((url, std::fs::read(&path).expect("read dist file")));
        }
    }
}

/// The server binary in `work` (an empty folder: no `dist/` to fall back to), with
/// its data there too, and `flags`.
async fn start_in(work: &Path, flags: &[&str]) -> (SocketAddr, Child) {
    let addr = free_addr();
    let mut command = Command::new(env!("CARGO_BIN_EXE_confab-server"));
    command
        .current_dir(work)
        .args(["--listen", &addr.to_string(), "--data-dir"])
        .arg(work.join("data"))
        .args(flags)
        .env_remove("CONFAB_STATIC_DIR")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true);
    let child = spawn_listening(command, addr).await;
    (addr, child)
}

/// A response with a binary body.
#[derive(Debug)]
struct Reply {
    status: u16,
    /// (lower-cased name, value)
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body with its `Content-Encoding` undone.
    fn decoded(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self.header("content-encoding") {
            None => out.clone_from(&self.body),
            Some("br") => {
                brotli_decompressor::Decompressor::new(&self.body[..], 4096)
                    .read_to_end(&mut out)
                    .expect("valid brotli");
            }
            Some("gzip") => {
                flate2::read::GzDecoder::new(&self.body[..])
                    .read_to_end(&mut out)
                    .expect("valid gzip");
            }
            Some(other) => panic!("unexpected Content-Encoding {other}"),
        }
        out
    }
}

/// One HTTP/1.1 request over a raw socket (`Connection: close`), read to the end.
async fn fetch(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    req.push_str("\r\n");
    let exchange = async {
        let mut tcp = TcpStream::connect(addr).await.expect("TCP connect");
        tcp.write_all(req.as_bytes()).await.expect("write request");
        let mut raw = Vec::new();
        tcp.read_to_end(&mut raw).await.expect("read response");
        raw
    };
    let raw = timeout(TIMEOUT * 4, exchange)
        .await
        .expect("HTTP response within the timeout");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header/body separator");
    let head = std::str::from_utf8(&raw[..split]).expect("UTF-8 head");
    let body = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line in {head:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let reply = Reply {
        status,
        headers,
        body,
    };
    if method == "GET" && reply.status == 200 {
        assert_eq!(
            reply.header("content-length"),
            Some(reply.body.len().to_string().as_str()),
            "{path}: a Content-Length body"
        );
    }
    reply
}

/// Whether trunk hashed this name (the same rule as build.rs).
fn hashed(path: &str) -> bool {
    path.split(['-', '_', '.', '/'])
        .any(|part| part.len() >= 16 && part.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[tokio::test]
#[cfg_attr(
    not(feature = "embed-client"),
    ignore = "built without the client inside: after `trunk build --release --dist dist`, run \
              `cargo test -p confab-server --features embed-client --test embedded_client` \
              (scripts/test.sh does)"
)]
async fn the_client_inside_the_binary_is_served_compressed_cached_and_revalidated() {
    let dist = dist();
    let mut expected = Vec::new();
    files(&dist, &dist, &mut expected);
    let index = std::fs::read(dist.join("index.html")).expect("dist/index.html");
    let work = TempDir::new().expect("temporary folder");
    let (addr, _server) = start_in(work.path(), &[]).await;

    // The page: revalidated on every load, so a new release is picked up at once.
    let page = fetch(addr, "GET", "/", &[]).await;
    assert_eq!(page.status, 200, "{page:?}");
    assert_eq!(page.body, index, "/ is dist/index.html");
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(page.header("cache-control"), Some("no-cache"));
    assert_eq!(page.header("vary"), Some("accept-encoding"));
    let csp = page
        .header("content-security-policy")
        .expect("the page has a CSP");
    assert!(
        csp.contains("'sha256-"),
        "trunk's inline start script is allowed by its hash: {csp}"
    );

    let mut compressed_some = 0;
    for (path, bytes) in &expected {
        let url = format!("/{path}");
        let plain = fetch(addr, "GET", &url, &[]).await;
        assert_eq!(plain.status, 200, "{url}: {plain:?}");
        assert_eq!(plain.header("content-encoding"), None, "{url}");
        assert!(plain.body == *bytes, "{url}: the bytes of dist/{path}");
        let cache = if hashed(path) {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        };
        assert_eq!(plain.header("cache-control"), Some(cache), "{url}");
        let plain_tag = plain.header("etag").expect("an ETag").to_owned();
        assert!(
            plain_tag.starts_with('"') && plain_tag.ends_with('"'),
            "{url}: a strong ETag, got {plain_tag}"
        );

        let mut tags = vec![plain_tag.clone()];
        for (accept, coding) in [("gzip, deflate, br", "br"), ("gzip", "gzip")] {
            let reply = fetch(addr, "GET", &url, &[("Accept-Encoding", accept)]).await;
            assert_eq!(reply.status, 200, "{url} {accept}");
            // Text and WebAssembly always shrink; anything else may go as it is.
            let must_compress = [".wasm", ".js", ".css", ".html"]
                .iter()
                .any(|ext| path.ends_with(ext))
                && bytes.len() > 1024;
            if must_compress {
                assert_eq!(
                    reply.header("content-encoding"),
                    Some(coding),
                    "{url} with Accept-Encoding: {accept}"
                );
                assert!(reply.body.len() < bytes.len(), "{url} {coding} is smaller");
                assert_eq!(reply.header("vary"), Some("accept-encoding"), "{url}");
                compressed_some += 1;
            }
            assert!(
                reply.decoded() == *bytes,
                "{url} in {coding}: decompressed bytes equal dist/{path}"
            );
            assert_eq!(reply.header("cache-control"), Some(cache), "{url}");
            let tag = reply.header("etag").expect("an ETag").to_owned();
            if reply.header("content-encoding").is_some() {
                assert_ne!(tag, plain_tag, "{url}: each coding has its own ETag");
            }

            // Revalidation: the tag of what the browser holds gets a 304, no body.
            let again = fetch(
                addr,
                "GET",
                &url,
                &[("Accept-Encoding", accept), ("If-None-Match", &tag)],
            )
            .await;
            assert_eq!(again.status, 304, "{url} {accept} If-None-Match {tag}");
            assert!(again.body.is_empty(), "{url}: a 304 has no body");
            assert_eq!(again.header("etag"), Some(tag.as_str()));
            assert_eq!(again.header("cache-control"), Some(cache));
            tags.push(tag);
        }
        // Another file's tag, or a stale one, gets the whole file.
        let stale = fetch(addr, "GET", &url, &[("If-None-Match", "\"stale\"")]).await;
        assert_eq!(stale.status, 200, "{url} with a stale tag");
        let head = fetch(addr, "HEAD", &url, &[("Accept-Encoding", "br")]).await;
        assert_eq!(head.status, 200, "HEAD {url}");
        assert!(head.body.is_empty(), "HEAD {url} has no body");
        assert!(tags.iter().any(|t| head.header("etag") == Some(t)));
    }
    assert!(
        compressed_some >= 4,
        "the page, its script and its WebAssembly came compressed both ways"
    );

    // A reload on a client URL opens the app; a missing file is not the app.
    let route = fetch(addr, "GET", "/rooms/general", &[]).await;
    assert_eq!((route.status, &route.body), (200, &index));
    let missing = fetch(addr, "GET", "/confab-web-0000000000000000.js", &[]).await;
    assert_eq!(missing.status, 404, "{missing:?}");
    let post = fetch(addr, "POST", "/index.html", &[("Content-Length", "0")]).await;
    assert_eq!(post.status, 405);
    assert_eq!(
        fetch(addr, "GET", "/healthz", &[]).await.body,
        b"ok",
        "the routes still answer"
    );
}

#[tokio::test]
async fn static_dir_overrides_the_client_inside_the_binary() {
    const PAGE: &str = "<!doctype html><title>from --static-dir</title>";
    let work = TempDir::new().expect("temporary folder");
    let folder = work.path().join("fresh-build");
    std::fs::create_dir(&folder).expect("mkdir");
    std::fs::write(folder.join("index.html"), PAGE).expect("write index");
    let folder = folder.to_string_lossy().into_owned();
    let (addr, _server) = start_in(work.path(), &["--static-dir", &folder]).await;
    let page = fetch(addr, "GET", "/", &[("Accept-Encoding", "br")]).await;
    assert_eq!((page.status, page.body.as_slice()), (200, PAGE.as_bytes()));
    assert_eq!(page.header("content-encoding"), None);
}
