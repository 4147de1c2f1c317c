//! The web client inside the binary: what a release serves when no `--static-dir` is
//! given, so one copied file is a whole installation.
//!
//! `build.rs` did the work once, at build time (with the `embed-client` feature):
//! every file of `dist/` is here with its brotli and gzip copies, its `ETag` and its
//! `Content-Type`. A request only picks: the representation its `Accept-Encoding`
//! prefers (brotli, then gzip, then the bytes as they are), `304 Not Modified` when
//! its `If-None-Match` already names it, and a `Cache-Control` from the file's name.
//! trunk puts a content hash in every name the page links to, so those are cached for
//! a year without asking again (`immutable`); `index.html` and other unhashed names
//! are revalidated on each load (`no-cache`, answered by a 304 when unchanged), so a
//! new release reaches every browser on its next page load.
//!
//! Paths that name no file and do not look like a file (no `.` in the last segment)
//! get `index.html`, so a reload on any client URL still opens the app; a missing
//! `something.js` gets 404 rather than a page the browser would try to run.

use axum::{
    body::Body,
    extract::Request,
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
};

/// One file of the built client, as `build.rs` prepared it.
#[derive(Debug)]
pub struct Asset {
    /// Relative to the client's root, `/`-separated, without a leading `/`.
    pub path: &'static str,
    pub content_type: &'static str,
    /// Whether the name carries a content hash (cached for good).
    pub immutable: bool,
    /// Base64url of the bytes' SHA-256 (truncated): the strong `ETag` of the
    /// uncompressed representation, suffixed for the compressed ones.
    pub tag: &'static str,
    pub identity: &'static [u8],
    /// Brotli- and gzip-compressed copies, when compressing was worth it.
    pub brotli: Option<&'static [u8]>,
    pub gzip: Option<&'static [u8]>,
}

/// The embedded client, sorted by path; empty in a build without `embed-client`.
static ASSETS: &[Asset] = include!(concat!(env!("OUT_DIR"), "/embedded_client.rs"));

/// How long browsers keep a file whose name has a content hash: a year, the longest
/// RFC 9111 caches are asked to honour.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// For `index.html` and unhashed names: keep, but ask (with `If-None-Match`) each time.
const REVALIDATE: &str = "no-cache";

/// The embedded `index.html`, when this binary carries a client.
pub fn index() -> Option<&'static Asset> {
    find("index.html")
}

fn find(path: &str) -> Option<&'static Asset> {
    ASSETS
        .binary_search_by(|asset| asset.path.cmp(path))
        .ok()
        .and_then(|i| ASSETS.get(i))
}

/// A content coding the server can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Coding {
    Brotli,
    Gzip,
    Identity,
}

impl Coding {
    fn name(self) -> Option<&'static str> {
        match self {
            Coding::Brotli => Some("br"),
            Coding::Gzip => Some("gzip"),
            Coding::Identity => None,
        }
    }
}

impl Asset {
    /// The bytes in `coding`, if this file has them.
    fn bytes(&self, coding: Coding) -> Option<&'static [u8]> {
        match coding {
            Coding::Brotli => self.brotli,
            Coding::Gzip => self.gzip,
            Coding::Identity => Some(self.identity),
        }
    }

    /// The strong validator of the representation in `coding`: each coding is its own
    /// representation (RFC 9110 §8.8.3), so each has its own tag.
    fn etag(&self, coding: Coding) -> String {
        match coding.name() {
            Some(name) => format!("\"{}-{name}\"", self.tag),
            None => format!("\"{}\"", self.tag),
        }
    }

    fn compressed(&self) -> bool {
        self.brotli.is_some() || self.gzip.is_some()
    }
}

/// The handler for every path no route took: the client's files.
pub async fn serve(req: Request) -> Response {
    respond(req.method(), req.uri().path(), req.headers())
}

fn respond(method: &Method, path: &str, headers: &HeaderMap) -> Response {
    if method != Method::GET && method != Method::HEAD {
        let mut refusal = (StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n").into_response();
        refusal
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return refusal;
    }
    let Some(asset) = lookup(path) else {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    };
    let coding = negotiate(headers, asset);
    let etag = asset.etag(coding);
    let mut response = if if_none_match(headers, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let bytes = asset.bytes(coding).unwrap_or(asset.identity);
        let mut response = if method == Method::HEAD {
            let mut head = Response::new(Body::empty());
            head.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
            head
        } else {
            Response::new(Body::from(bytes))
        };
        let h = response.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        );
        if let Some(name) = coding.name() {
            h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(name));
        }
        response
    };
    let h = response.headers_mut();
    if let Ok(etag) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, etag);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if asset.immutable {
            IMMUTABLE
        } else {
            REVALIDATE
        }),
    );
    if asset.compressed() {
        h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    response
}

/// The file for a request path: the file itself, or `index.html` for `/` and for
/// anything that looks like a client route rather than a file.
fn lookup(path: &str) -> Option<&'static Asset> {
    let relative = path.trim_start_matches('/');
    if relative.is_empty() {
        return index();
    }
    if let Some(asset) = find(relative) {
        return Some(asset);
    }
    let last = relative.rsplit('/').next().unwrap_or_default();
    if last.contains('.') { None } else { index() }
}

/// The coding to send `asset` in, by the request's `Accept-Encoding` (RFC 9110
/// §12.5.3): the highest q-value among what the file has, brotli before gzip before
/// the plain bytes on a tie. The plain bytes are sent when nothing else is acceptable,
/// even if the client said `identity;q=0`: a 406 would only break the page.
fn negotiate(headers: &HeaderMap, asset: &Asset) -> Coding {
    let mut brotli = None;
    let mut gzip = None;
    let mut any = None;
    for item in headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
    {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q=").or(p.trim().strip_prefix("Q=")))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        match coding.as_str() {
            "br" => brotli = Some(q),
            "gzip" | "x-gzip" => gzip = Some(q),
            "*" => any = Some(q),
            _ => {}
        }
    }
    let weight = |explicit: Option<f32>| explicit.or(any).unwrap_or(0.0);
    let mut best = (Coding::Identity, 0.0_f32);
    for (coding, q) in [
        (Coding::Brotli, weight(brotli)),
        (Coding::Gzip, weight(gzip)),
    ] {
        if q > best.1 && asset.bytes(coding).is_some() {
            best = (coding, q);
        }
    }
    best.0
}

/// Whether `If-None-Match` names `etag` (weak comparison, RFC 9110 §13.1.2) or is `*`.
fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.trim_start_matches("W/") == etag)
}

#[cfg(test)]
mod tests {
    use super::*;

    static PAGE: Asset = Asset {
        path: "index.html",
        content_type: "text/html; charset=utf-8",
        immutable: false,
        tag: "abc",
        identity: b"<!doctype html>",
        brotli: Some(b"BR"),
        gzip: Some(b"GZ"),
    };

    static GZIP_ONLY: Asset = Asset {
        path: "app.js",
        content_type: "text/javascript; charset=utf-8",
        immutable: true,
        tag: "def",
        identity: b"1;",
        brotli: None,
        gzip: Some(b"GZ"),
    };

    fn accept(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_str(value).expect("header"),
        );
        h
    }

    #[test]
    fn brotli_is_preferred_then_gzip_then_the_plain_bytes() {
        assert_eq!(
            negotiate(&accept("gzip, deflate, br, zstd"), &PAGE),
            Coding::Brotli
        );
        assert_eq!(negotiate(&accept("gzip, br"), &GZIP_ONLY), Coding::Gzip);
        assert_eq!(negotiate(&accept("gzip"), &PAGE), Coding::Gzip);
        assert_eq!(negotiate(&accept("deflate"), &PAGE), Coding::Identity);
        assert_eq!(negotiate(&HeaderMap::new(), &PAGE), Coding::Identity);
        assert_eq!(negotiate(&accept("identity"), &PAGE), Coding::Identity);
    }

    #[test]
    fn q_values_are_honoured() {
        assert_eq!(negotiate(&accept("br;q=0.5, gzip"), &PAGE), Coding::Gzip);
        assert_eq!(
            negotiate(&accept("br;q=0, gzip;q=0"), &PAGE),
            Coding::Identity
        );
        assert_eq!(negotiate(&accept("*"), &PAGE), Coding::Brotli);
        assert_eq!(negotiate(&accept("*;q=0.2, br;q=0"), &PAGE), Coding::Gzip);
        assert_eq!(negotiate(&accept("BR ; Q=0.9"), &PAGE), Coding::Brotli);
    }

    #[test]
    fn each_coding_has_its_own_strong_tag() {
        assert_eq!(PAGE.etag(Coding::Identity), "\"abc\"");
        assert_eq!(PAGE.etag(Coding::Brotli), "\"abc-br\"");
        assert_eq!(PAGE.etag(Coding::Gzip), "\"abc-gzip\"");
    }

    #[test]
    fn if_none_match_compares_weakly_and_accepts_a_list() {
        let with = |value: &str| {
            let mut h = HeaderMap::new();
            h.insert(
                header::IF_NONE_MATCH,
                HeaderValue::from_str(value).expect("header"),
            );
            h
        };
        assert!(if_none_match(&with("\"abc\""), "\"abc\""));
        assert!(if_none_match(&with("W/\"abc\""), "\"abc\""));
        assert!(if_none_match(&with("\"x\", \"abc-br\""), "\"abc-br\""));
        assert!(if_none_match(&with("*"), "\"abc\""));
        assert!(!if_none_match(&with("\"abc\""), "\"abc-br\""));
        assert!(!if_none_match(&HeaderMap::new(), "\"abc\""));
    }

    #[test]
    fn the_table_is_sorted_for_binary_search() {
        assert!(ASSETS.windows(2).all(|w| w[0].path < w[1].path));
        if !ASSETS.is_empty() {
            assert!(index().is_some(), "an embedded client has an index.html");
        }
    }
}
