//! Files end to end, on the server binary: uploads under their limits, downloads under
//! the room's rule and with safe headers, sharing in messages, and the sweep.

mod common;

use std::{
    io::Cursor,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use common::{
    Client, TIMEOUT, fresh_client_id,
    process::{ServerProcess, free_addr},
    sign_up,
};
use confab_shared::{Attachment, ClientMsg, ErrorCode, ImageSize, ServerMsg, api::ApiError};
use tempfile::TempDir;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::{sleep, timeout},
};

/// A response as read off the socket, bytes and all.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Resp {
    status: u16,
    /// (lower-cased name, value), in order.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn json<T: serde::de::DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("expected JSON ({e}): {self:?}"))
    }

    /// Everything but what differs between two answers to the same request: the
    /// `Date` (by the second) and the `X-Request-Id` (each request has its own).
    fn comparable(&self) -> Resp {
        Resp {
            headers: self
                .headers
                .iter()
                .filter(|(n, _)| n != "date" && n != "x-request-id")
                .cloned()
                .collect(),
            ..self.clone()
        }
    }
}

fn parse(raw: &[u8]) -> Resp {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(raw)));
    let head = std::str::from_utf8(&raw[..split]).expect("ASCII head");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Resp {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

/// One request over its own connection (closed after the answer).
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Resp {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body.unwrap_or_default());
    let exchange = async {
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        tcp.write_all(&bytes).await.expect("write request");
        let mut raw = Vec::new();
        // The server may answer (413) before reading the whole body and close: what
        // it said is what counts.
        let _ = tcp.read_to_end(&mut raw).await;
        raw
    };
    parse(&timeout(TIMEOUT, exchange).await.expect("answer in time"))
}

async fn upload(addr: SocketAddr, cookie: &str, room: &str, name: &str, bytes: &[u8]) -> Resp {
    request(
        addr,
        "POST",
        &format!("/api/files?room={room}&name={name}"),
        &[("Cookie", cookie)],
        Some(bytes),
    )
    .await
}

/// Uploads and expects 201; returns the attachment.
async fn uploaded(
    addr: SocketAddr,
    cookie: &str,
    room: &str,
    name: &str,
    bytes: &[u8],
) -> Attachment {
    let resp = upload(addr, cookie, room, name, bytes).await;
    assert_eq!(
        resp.status,
        201,
        "{:?}",
        String::from_utf8_lossy(&resp.body)
    );
    resp.json()
}

async fn get(addr: SocketAddr, path: &str, cookie: Option<&str>, extra: &[(&str, &str)]) -> Resp {
    let mut headers: Vec<(&str, &str)> = extra.to_vec();
    if let Some(cookie) = cookie {
        headers.push(("Cookie", cookie));
    }
    request(addr, "GET", path, &headers, None).await
}

struct Setup {
    addr: SocketAddr,
    data: TempDir,
    _server: ServerProcess,
}

impl Setup {
    async fn start(flags: &[&str]) -> Setup {
        let data = TempDir::new().expect("data dir");
        let addr = free_addr();
        let server = ServerProcess::start_with(addr, data.path(), flags).await;
        Setup {
            addr,
            data,
            _server: server,
        }
    }

    fn dir(&self, sub: &str) -> PathBuf {
        self.data.path().join("files").join(sub)
    }

    fn tmp_files(&self) -> Vec<PathBuf> {
        files_under(&self.dir("tmp"))
    }

    fn blobs(&self) -> Vec<PathBuf> {
        files_under(&self.dir("blobs"))
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            found.push(path);
        }
    }
    found
}

/// Waits (bounded) until `done` holds.
async fn eventually(what: &str, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within 10 s"
        );
        sleep(Duration::from_millis(50)).await;
    }
}

fn png(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 251) as u8, (y % 241) as u8, ((x + y) % 13) as u8])
    });
    let mut out = Cursor::new(Vec::new());
    image
        .write_to(&mut out, image::ImageFormat::Png)
        .expect("encode PNG");
    out.into_inner()
}

/// A PNG of 65 bytes whose header claims 60,000 × 60,000 pixels (a decompression bomb).
const BOMB: &[u8] = include_bytes!("fixtures/bomb-60000x60000.png");

fn send_files(room: &str, body: &str, client_id: &str, files: Vec<String>) -> ClientMsg {
    ClientMsg::Send {
        room: room.into(),
        body: body.into(),
        client_id: client_id.into(),
        reply_to: None,
        files,
    }
}

/// Sends and expects an error; returns its code.
async fn refused(client: &mut Client, msg: ClientMsg) -> ErrorCode {
    client.send_json(&msg).await;
    match client
        .recv_until(|m| matches!(m, ServerMsg::Ack { .. } | ServerMsg::Error { .. }))
        .await
    {
        ServerMsg::Error { code, .. } => code,
        other => panic!("expected an error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_file_of_the_limit_is_taken_and_one_byte_more_is_413() {
    let s = Setup::start(&["--max-file-bytes", "1000"]).await;
    let ada = sign_up(s.addr, "ada").await;
    let over = upload(s.addr, &ada, "general", "big.bin", &[7u8; 1001]).await;
    assert_eq!(over.status, 413, "{over:?}");
    let why: ApiError = over.json();
    assert!(why.error.contains("1000 bytes"), "{}", why.error);
    // Without a Content-Length (chunked), refused as the stream passes the limit.
    let chunked = {
        let mut tcp = TcpStream::connect(s.addr).await.expect("connect");
        let head = format!(
            "POST /api/files?room=general&name=big.bin HTTP/1.1\r\nHost: {}\r\nCookie: {ada}\r\n\
             Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
            s.addr
        );
        tcp.write_all(head.as_bytes()).await.expect("head");
        for _ in 0..3 {
            let _ = tcp.write_all(b"190\r\n").await;
            let _ = tcp.write_all(&[1u8; 400]).await;
            let _ = tcp.write_all(b"\r\n").await;
        }
        let _ = tcp.write_all(b"0\r\n\r\n").await;
        let mut raw = Vec::new();
        let _ = timeout(TIMEOUT, tcp.read_to_end(&mut raw)).await;
        parse(&raw)
    };
    assert_eq!(chunked.status, 413, "{chunked:?}");
    let exact = uploaded(s.addr, &ada, "general", "fits.bin", &[7u8; 1000]).await;
    assert_eq!(exact.size, 1000);
    assert!(
        exact.id.starts_with("f_") && exact.id.len() >= 18,
        "{}",
        exact.id
    );
    assert_eq!(exact.mime, "application/octet-stream");
    eventually("temporary files removed", || s.tmp_files().is_empty()).await;
    assert_eq!(s.blobs().len(), 1, "only the file that fit is kept");
}

#[tokio::test]
async fn over_the_daily_budget_is_429_with_retry_after() {
    let s = Setup::start(&["--max-file-bytes", "4000", "--upload-bytes-per-day", "5000"]).await;
    let ada = sign_up(s.addr, "ada").await;
    let bob = sign_up(s.addr, "bob").await;
    uploaded(s.addr, &ada, "general", "one.bin", &[1u8; 3000]).await;
    let over = upload(s.addr, &ada, "general", "two.bin", &[2u8; 2001]).await;
    assert_eq!(over.status, 429, "{over:?}");
    let retry: u64 = over
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!(
        (86_000..=86_400).contains(&retry),
        "until the first upload is a day old: {retry}"
    );
    let why: ApiError = over.json();
    assert_eq!(why.retry_after_secs, Some(retry));
    // What is left of the budget can still be used, and others have their own.
    uploaded(s.addr, &ada, "general", "two.bin", &[2u8; 2000]).await;
    uploaded(s.addr, &bob, "general", "bob.bin", &[3u8; 4000]).await;
    assert_eq!(s.blobs().len(), 3);
    assert!(s.tmp_files().is_empty());
}

#[tokio::test]
async fn an_interrupted_upload_leaves_nothing_on_disk() {
    let s = Setup::start(&[]).await;
    let ada = sign_up(s.addr, "ada").await;
    let mut tcp = TcpStream::connect(s.addr).await.expect("connect");
    let head = format!(
        "POST /api/files?room=general&name=half.bin HTTP/1.1\r\nHost: {}\r\nCookie: {ada}\r\n\
         Content-Length: 2000000\r\n\r\n",
        s.addr
    );
    tcp.write_all(head.as_bytes()).await.expect("head");
    tcp.write_all(&vec![9u8; 1_000_000])
        .await
        .expect("half the body");
    // The server has started writing the file.
    eventually("a temporary file appears", || !s.tmp_files().is_empty()).await;
    drop(tcp);
    eventually("the temporary file is removed", || s.tmp_files().is_empty()).await;
    assert!(s.blobs().is_empty(), "nothing kept");
    // The server is fine and takes the next upload.
    uploaded(s.addr, &ada, "general", "whole.bin", &[9u8; 1000]).await;
}

#[tokio::test]
async fn guests_and_strangers_cannot_upload() {
    let s = Setup::start(&[]).await;
    let ada = sign_up(s.addr, "ada").await;
    let anonymous = request(
        s.addr,
        "POST",
        "/api/files?room=general&name=x.txt",
        &[],
        Some(b"hello"),
    )
    .await;
    assert_eq!(anonymous.status, 401);
    let nowhere = upload(s.addr, &ada, "no-such-room", "x.txt", b"hello").await;
    assert_eq!(nowhere.status, 404);
    let foreign = request(
        s.addr,
        "POST",
        "/api/files?room=general&name=x.txt",
        &[("Cookie", &ada), ("Origin", "https://evil.example")],
        Some(b"hello"),
    )
    .await;
    assert_eq!(foreign.status, 403);
    assert!(s.blobs().is_empty() && s.tmp_files().is_empty());
}

#[tokio::test]
async fn html_named_png_is_served_as_an_attachment_of_its_real_type() {
    let s = Setup::start(&[]).await;
    let ada = sign_up(s.addr, "ada").await;
    let html = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>";
    let file = uploaded(s.addr, &ada, "general", "x.png", html).await;
    assert_eq!(file.name, "x.png");
    assert!(!file.mime.starts_with("image/"), "{}", file.mime);
    assert_eq!(file.image, None);
    let got = get(s.addr, &format!("/api/files/{}", file.id), Some(&ada), &[]).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, html);
    let ctype = got.header("content-type").expect("a type");
    assert!(!ctype.starts_with("image/"), "{ctype}");
    assert_eq!(
        got.header("content-disposition"),
        Some("attachment; filename=\"x.png\"; filename*=UTF-8''x.png")
    );
    assert_eq!(got.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(
        got.header("content-security-policy"),
        Some("sandbox; default-src 'none'")
    );
    // It has no preview to show either.
    let thumb = get(
        s.addr,
        &format!("/api/files/{}/thumb", file.id),
        Some(&ada),
        &[],
    )
    .await;
    assert_eq!(thumb.status, 404);
}

#[tokio::test]
async fn a_png_is_served_inline_with_a_thumbnail() {
    let s = Setup::start(&[]).await;
    let ada = sign_up(s.addr, "ada").await;
    let bytes = png(800, 600);
    let file = uploaded(s.addr, &ada, "general", "photo.png", &bytes).await;
    assert_eq!(file.mime, "image/png");
    assert_eq!(
        file.image,
        Some(ImageSize {
            width: 800,
            height: 600
        })
    );
    let got = get(s.addr, &format!("/api/files/{}", file.id), Some(&ada), &[]).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, bytes);
    assert_eq!(got.header("content-type"), Some("image/png"));
    assert!(
        got.header("content-disposition")
            .is_some_and(|d| d.starts_with("inline;")),
        "{got:?}"
    );
    assert!(
        got.header("cache-control")
            .is_some_and(|c| c.contains("private") && c.contains("immutable"))
    );
    // A file never changes under its id: asking again with its ETag answers 304.
    let etag = got.header("etag").expect("an ETag").to_owned();
    let again = get(
        s.addr,
        &format!("/api/files/{}", file.id),
        Some(&ada),
        &[("If-None-Match", &etag)],
    )
    .await;
    assert_eq!(again.status, 304);
    let thumb = get(
        s.addr,
        &format!("/api/files/{}/thumb", file.id),
        Some(&ada),
        &[],
    )
    .await;
    assert_eq!(thumb.status, 200);
    assert_eq!(thumb.header("content-type"), Some("image/png"));
    let preview = image::load_from_memory(&thumb.body).expect("the thumbnail decodes");
    assert_eq!((preview.width(), preview.height()), (400, 300));
}

#[tokio::test]
async fn a_decompression_bomb_is_kept_as_a_plain_attachment() {
    let s = Setup::start(&[]).await;
    let ada = sign_up(s.addr, "ada").await;
    let bomb = BOMB.to_vec();
    assert!(bomb.len() < 100);
    let file = uploaded(s.addr, &ada, "general", "bomb.png", &bomb).await;
    assert_eq!(file.mime, "image/png");
    assert_eq!(file.image, None);
    let got = get(s.addr, &format!("/api/files/{}", file.id), Some(&ada), &[]).await;
    assert_eq!(got.status, 200);
    assert!(
        got.header("content-disposition")
            .is_some_and(|d| d.starts_with("attachment;"))
    );
    // Still serving.
    assert_eq!(get(s.addr, "/healthz", None, &[]).await.status, 200);
}

/// The preview's bounds are the operator's: an image over `--preview-max-pixels` is a
/// plain attachment, one within it a preview, on the same server.
#[tokio::test]
async fn an_image_over_the_preview_flag_is_kept_as_a_plain_attachment() {
    let s = Setup::start(&["--preview-max-pixels", "10000"]).await;
    let ada = sign_up(s.addr, "ada").await;
    let big = uploaded(s.addr, &ada, "general", "big.png", &png(101, 100)).await;
    assert_eq!(big.image, None);
    let got = get(s.addr, &format!("/api/files/{}", big.id), Some(&ada), &[]).await;
    assert!(
        got.header("content-disposition")
            .is_some_and(|d| d.starts_with("attachment;"))
    );
    let small = uploaded(s.addr, &ada, "general", "small.png", &png(100, 100)).await;
    assert_eq!(
        small.image,
        Some(ImageSize {
            width: 100,
            height: 100
        })
    );
}

#[tokio::test]
async fn someone_who_may_not_see_the_room_gets_what_a_missing_id_gets() {
    let s = Setup::start(&[]).await;
    let ada_cookie = sign_up(s.addr, "ada").await;
    let bob_cookie = sign_up(s.addr, "bob").await;
    let mut ada = Client::signed_in(s.addr, &ada_cookie).await;
    ada.send_json(&ClientMsg::CreateRoom {
        room: "plans".into(),
        private: true,
    })
    .await;
    let ServerMsg::RoomsChanged {
        created: Some(room),
        ..
    } = ada
        .recv_until(|m| {
            matches!(
                m,
                ServerMsg::RoomsChanged {
                    created: Some(_),
                    ..
                }
            )
        })
        .await
    else {
        unreachable!("filtered above")
    };
    let secret = uploaded(s.addr, &ada_cookie, &room, "secret.txt", b"the plans").await;
    // Bob cannot upload there either: the room does not exist for him.
    assert_eq!(
        upload(s.addr, &bob_cookie, &room, "x.txt", b"hi")
            .await
            .status,
        404
    );
    let missing = "f_AAAAAAAAAAAAAAAAAAAAAA";
    for suffix in ["", "/thumb"] {
        let theirs = get(
            s.addr,
            &format!("/api/files/{}{suffix}", secret.id),
            Some(&bob_cookie),
            &[],
        )
        .await;
        let nothing = get(
            s.addr,
            &format!("/api/files/{missing}{suffix}"),
            Some(&bob_cookie),
            &[],
        )
        .await;
        assert_eq!(theirs.status, 404);
        assert_eq!(theirs.comparable(), nothing.comparable());
        // Signed out (a guest, on this server that allows them): the same.
        let anonymous = get(
            s.addr,
            &format!("/api/files/{}{suffix}", secret.id),
            None,
            &[],
        )
        .await;
        assert_eq!(anonymous.comparable(), nothing.comparable());
    }
    let mine = get(
        s.addr,
        &format!("/api/files/{}", secret.id),
        Some(&ada_cookie),
        &[],
    )
    .await;
    assert_eq!(mine.status, 200);
    assert_eq!(mine.body, b"the plans");
}

#[tokio::test]
async fn a_range_is_answered_with_206_and_those_bytes() {
    let s = Setup::start(&[]).await;
    let ada = sign_up(s.addr, "ada").await;
    let bytes: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let file = uploaded(s.addr, &ada, "general", "data.bin", &bytes).await;
    let part = get(
        s.addr,
        &format!("/api/files/{}", file.id),
        Some(&ada),
        &[("Range", "bytes=100-199")],
    )
    .await;
    assert_eq!(part.status, 206);
    assert_eq!(part.header("content-range"), Some("bytes 100-199/10000"));
    assert_eq!(part.body, &bytes[100..200]);
    assert_eq!(
        part.header("content-type"),
        Some("application/octet-stream")
    );
    let tail = get(
        s.addr,
        &format!("/api/files/{}", file.id),
        Some(&ada),
        &[("Range", "bytes=-10")],
    )
    .await;
    assert_eq!(tail.status, 206);
    assert_eq!(tail.body, &bytes[9_990..]);
}

#[tokio::test]
async fn the_same_bytes_are_stored_once() {
    let s = Setup::start(&[]).await;
    let ada = sign_up(s.addr, "ada").await;
    let bob = sign_up(s.addr, "bob").await;
    let bytes = png(50, 40);
    let first = uploaded(s.addr, &ada, "general", "a.png", &bytes).await;
    let second = uploaded(s.addr, &bob, "general", "b.png", &bytes).await;
    assert_ne!(first.id, second.id, "two uploads");
    assert_eq!(second.name, "b.png");
    assert_eq!(first.image, second.image);
    assert_eq!(s.blobs().len(), 1, "one blob on disk");
    assert_eq!(files_under(&s.dir("thumbs")).len(), 1);
    let got = get(
        s.addr,
        &format!("/api/files/{}", second.id),
        Some(&bob),
        &[],
    )
    .await;
    assert_eq!(got.body, bytes);
}

#[tokio::test]
async fn a_shared_file_reaches_the_room_and_its_history() {
    let s = Setup::start(&[]).await;
    let ada_cookie = sign_up(s.addr, "ada").await;
    let bob_cookie = sign_up(s.addr, "bob").await;
    let mut ada = Client::signed_in(s.addr, &ada_cookie).await;
    let mut bob = Client::signed_in(s.addr, &bob_cookie).await;
    ada.join("general").await;
    bob.join("general").await;
    let one = uploaded(s.addr, &ada_cookie, "general", "one.txt", b"first").await;
    let two = uploaded(s.addr, &ada_cookie, "general", "two.png", &png(20, 10)).await;
    let client_id = fresh_client_id();
    let seq = ada
        .acked(send_files(
            "general",
            " ",
            &client_id,
            vec![two.id.clone(), one.id.clone()],
        ))
        .await;
    let live = bob.next_message().await;
    assert_eq!(live.seq, seq);
    assert_eq!(live.body, "");
    assert_eq!(
        live.files,
        vec![two.clone(), one.clone()],
        "in the order sent"
    );
    // Sent again (the ack was lost): the same ack, nothing twice.
    assert_eq!(
        ada.acked(send_files(
            "general",
            " ",
            &client_id,
            vec![two.id.clone(), one.id.clone()]
        ))
        .await,
        seq
    );
    let after = ada
        .acked(send_files("general", "plain", &fresh_client_id(), vec![]))
        .await;
    drop(bob);
    let mut bob = Client::signed_in(s.addr, &bob_cookie).await;
    let (_, history) = bob.join("general").await;
    let shared = history
        .iter()
        .find(|m| m.seq == seq)
        .expect("the message in history");
    assert_eq!(shared.files, vec![two, one]);
    let plain = history.iter().find(|m| m.seq == after).expect("the next");
    assert!(plain.files.is_empty());
    assert_eq!(
        history.iter().filter(|m| m.seq == seq).count(),
        1,
        "delivered once"
    );
}

#[tokio::test]
async fn only_the_uploaders_unshared_upload_to_that_room_can_be_shared() {
    let s = Setup::start(&[]).await;
    let ada_cookie = sign_up(s.addr, "ada").await;
    let bob_cookie = sign_up(s.addr, "bob").await;
    let mut ada = Client::signed_in(s.addr, &ada_cookie).await;
    ada.join("general").await;
    ada.create_room("other").await;
    ada.join("other").await;
    let bobs = uploaded(s.addr, &bob_cookie, "general", "bob.txt", b"bob's").await;
    let elsewhere = uploaded(s.addr, &ada_cookie, "other", "o.txt", b"other").await;
    let mine = uploaded(s.addr, &ada_cookie, "general", "m.txt", b"mine").await;
    for (what, files) in [
        ("someone else's", vec![bobs.id.clone()]),
        ("another room's", vec![elsewhere.id.clone()]),
        ("a made-up id", vec!["f_BBBBBBBBBBBBBBBBBBBBBB".to_owned()]),
        ("one good, one not", vec![mine.id.clone(), bobs.id.clone()]),
        ("the same twice", vec![mine.id.clone(), mine.id.clone()]),
    ] {
        assert_eq!(
            refused(
                &mut ada,
                send_files("general", "look", &fresh_client_id(), files)
            )
            .await,
            ErrorCode::UnknownFile,
            "{what}"
        );
    }
    // Nothing of a refused send was claimed: the good one can still be shared, once.
    ada.acked(send_files(
        "general",
        "look",
        &fresh_client_id(),
        vec![mine.id.clone()],
    ))
    .await;
    assert_eq!(
        refused(
            &mut ada,
            send_files(
                "general",
                "again",
                &fresh_client_id(),
                vec![mine.id.clone()]
            )
        )
        .await,
        ErrorCode::UnknownFile,
        "already shared"
    );
    // A message of files only needs no words; one of no files and no words is refused.
    ada.acked(send_files(
        "other",
        "",
        &fresh_client_id(),
        vec![elsewhere.id.clone()],
    ))
    .await;
    assert_eq!(
        refused(
            &mut ada,
            send_files("other", "", &fresh_client_id(), vec![])
        )
        .await,
        ErrorCode::InvalidBody
    );
}

#[tokio::test]
async fn a_deleted_messages_file_leaves_the_disk_at_the_next_sweep() {
    let s = Setup::start(&["--file-sweep-interval-secs", "1"]).await;
    let ada_cookie = sign_up(s.addr, "ada").await;
    let mut ada = Client::signed_in(s.addr, &ada_cookie).await;
    ada.join("general").await;
    let file = uploaded(s.addr, &ada_cookie, "general", "pic.png", &png(30, 30)).await;
    let seq = ada
        .acked(send_files(
            "general",
            "pic",
            &fresh_client_id(),
            vec![file.id.clone()],
        ))
        .await;
    // Shared files stay through sweeps.
    sleep(Duration::from_millis(2_500)).await;
    assert_eq!(s.blobs().len(), 1);
    assert_eq!(files_under(&s.dir("thumbs")).len(), 1);
    ada.acked(ClientMsg::Delete {
        room: "general".into(),
        seq,
        client_id: fresh_client_id(),
    })
    .await;
    // The reference goes with the message, at once.
    let gone = get(
        s.addr,
        &format!("/api/files/{}", file.id),
        Some(&ada_cookie),
        &[],
    )
    .await;
    assert_eq!(gone.status, 404);
    eventually("the blob leaves the disk", || s.blobs().is_empty()).await;
    eventually("its thumbnail too", || {
        files_under(&s.dir("thumbs")).is_empty()
    })
    .await;
    let mut again = Client::signed_in(s.addr, &ada_cookie).await;
    let (_, history) = again.join("general").await;
    let tombstone = history.iter().find(|m| m.seq == seq).expect("tombstone");
    assert!(tombstone.deleted && tombstone.files.is_empty());
}

#[tokio::test]
async fn a_full_store_is_507_and_says_so() {
    let s = Setup::start(&["--max-files-bytes", "1000"]).await;
    let ada = sign_up(s.addr, "ada").await;
    uploaded(s.addr, &ada, "general", "a.bin", &[1u8; 600]).await;
    let full = upload(s.addr, &ada, "general", "b.bin", &[2u8; 600]).await;
    assert_eq!(full.status, 507, "{full:?}");
    let why: ApiError = full.json();
    assert!(why.error.contains("no room"), "{}", why.error);
    // What still fits is taken.
    uploaded(s.addr, &ada, "general", "c.bin", &[3u8; 400]).await;
    assert_eq!(s.blobs().len(), 2);
    assert!(s.tmp_files().is_empty());
}

/// Two `confab-server` processes sharing one PostgreSQL (a cluster without Redis, which
/// files do not need), each with its own data directory: an upload through one is
/// downloaded through the other, whose cache was empty, with the same headers; once
/// its message is deleted, both nodes' sweeps take it out of their caches. The
/// download through the second node is a guest's: accounts are each node's own for
/// now, so a session made on one is not known to the other.
#[tokio::test]
async fn a_cluster_serves_a_file_through_every_node_and_sweeps_it_from_all() {
    let pg = tokio::task::spawn_blocking(common::services::Postgres::start)
        .await
        .expect("start task")
        .expect("start PostgreSQL");
    let url = pg.url();
    let flags = ["--database-url", &url, "--file-sweep-interval-secs", "1"];
    let a = Setup::start(&flags).await;
    let b = Setup::start(&flags).await;
    let ada_cookie = sign_up(a.addr, "ada").await;
    let bytes = png(800, 600);
    let file = uploaded(a.addr, &ada_cookie, "general", "photo.png", &bytes).await;
    assert_eq!(a.blobs().len(), 1, "the uploading node caches it");
    assert!(b.blobs().is_empty());
    let path = format!("/api/files/{}", file.id);
    let from_a = get(a.addr, &path, None, &[]).await;
    let from_b = get(b.addr, &path, None, &[]).await;
    assert_eq!(from_b.status, 200);
    assert_eq!(from_b.body, bytes);
    // Same bytes, same labels, same ETag (it is the file's, not the node's).
    assert_eq!(from_b.comparable(), from_a.comparable());
    assert_eq!(b.blobs().len(), 1, "now in b's cache");
    // A copy a browser got from one node is still good at the other.
    let etag = from_a.header("etag").expect("an ETag");
    let again = get(b.addr, &path, None, &[("If-None-Match", etag)]).await;
    assert_eq!(again.status, 304);
    let thumb_path = format!("/api/files/{}/thumb", file.id);
    let thumb_a = get(a.addr, &thumb_path, None, &[]).await;
    let thumb_b = get(b.addr, &thumb_path, None, &[]).await;
    assert_eq!(thumb_b.status, 200);
    assert_eq!(thumb_b.body, thumb_a.body);
    let part = get(b.addr, &path, None, &[("Range", "bytes=100-199")]).await;
    assert_eq!(part.status, 206);
    assert_eq!(part.body, &bytes[100..200]);

    let mut ada = Client::signed_in(a.addr, &ada_cookie).await;
    ada.join("general").await;
    let seq = ada
        .acked(send_files(
            "general",
            "pic",
            &fresh_client_id(),
            vec![file.id.clone()],
        ))
        .await;
    sleep(Duration::from_millis(2_500)).await;
    assert_eq!(
        get(b.addr, &path, None, &[]).await.status,
        200,
        "shared stays"
    );
    ada.acked(ClientMsg::Delete {
        room: "general".into(),
        seq,
        client_id: fresh_client_id(),
    })
    .await;
    assert_eq!(get(b.addr, &path, None, &[]).await.status, 404);
    for node in [&a, &b] {
        eventually("the blob leaves every cache", || node.blobs().is_empty()).await;
        eventually("its thumbnail too", || {
            files_under(&node.dir("thumbs")).is_empty()
        })
        .await;
    }
    drop((ada, a, b));
    tokio::task::spawn_blocking(move || drop(pg))
        .await
        .expect("stop PostgreSQL");
}
