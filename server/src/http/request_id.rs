//! A request id on every HTTP request, and one log line per request that carries it.
//!
//! The id is the `X-Request-Id` the request came with (a reverse proxy in front may set
//! one, so its log and ours agree), or a new UUID when it has none; the response carries
//! it back, so a person reporting a failed request can quote it. tower-http's
//! request-id layers set and echo it. Everything logged while the request is handled
//! (a refused sign-in, a refused socket) is in the request's `request` span, so each of
//! those lines carries `request_id` too.
//!
//! A client's own id is used only if it is a short token of letters, digits and `-_.:`:
//! anything else (a log line forged into it, kilobytes of it) is replaced, not quoted.

use std::time::Instant;

use axum::{
    Router,
    extract::Request,
    http::HeaderName,
    middleware::{self, Next},
    response::Response,
};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tracing::Instrument;

/// The header, as tower-http names it.
pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longest request id taken from a client.
const MAX_LEN: usize = 64;

/// Wraps every route of `router`: ids first, then the span and the log line.
pub(super) fn layers(router: Router) -> Router {
    router
        .layer(middleware::from_fn(log_request))
        .layer(PropagateRequestIdLayer::new(HEADER))
        .layer(SetRequestIdLayer::new(HEADER, MakeRequestUuid))
        .layer(middleware::from_fn(drop_unsafe_id))
}

/// Whether a client's request id may be used as it is.
fn acceptable(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= MAX_LEN
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b))
}

/// Removes an id that is not [`acceptable`], so a fresh one is made in its place.
async fn drop_unsafe_id(mut req: Request, next: Next) -> Response {
    let unsafe_ids = req
        .headers()
        .get_all(&HEADER)
        .iter()
        .any(|v| !acceptable(v.as_bytes()));
    if unsafe_ids || req.headers().get_all(&HEADER).iter().count() > 1 {
        req.headers_mut().remove(&HEADER);
    }
    next.run(req).await
}

/// Handles the request inside its span, then logs it: method, path, status, time.
/// Requests machines make all the time (`/healthz`, `/metrics`) are logged at `debug`,
/// the others at `info`.
async fn log_request(req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(&HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let span = tracing::info_span!("request", request_id = %id);
    let started = Instant::now();
    let resp = next.run(req).instrument(span.clone()).await;
    let status = resp.status().as_u16();
    let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let routine = path == "/healthz" || path == super::metrics::PATH;
    let path = crate::logsafe::text(&path);
    if routine {
        tracing::debug!(parent: &span, %method, %path, status, ms, "request");
    } else {
        tracing::info!(parent: &span, %method, %path, status, ms, "request");
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_plain_ids_are_taken_from_clients() {
        assert!(acceptable(b"3f1c2e9a-7d1b-4c39-9d0e-0a1b2c3d4e5f"));
        assert!(acceptable(b"req_42.a:b"));
        assert!(!acceptable(b""));
        assert!(!acceptable(b"a b"));
        assert!(!acceptable(b"x\"y"));
        assert!(!acceptable("é".as_bytes()));
        assert!(!acceptable(&[b'a'; MAX_LEN + 1]));
    }
}
