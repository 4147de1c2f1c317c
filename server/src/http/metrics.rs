//! `GET /metrics`: the server's series (see [`crate::metrics`]) for Prometheus to scrape.
//!
//! Two ways to reach it, both off until configured, because the figures (how many people
//! are connected, how fast they write) are the operator's, not the public's:
//! - `--metrics-listen ADDR`: a listener of its own, serving only `/metrics`, with no
//!   token; bound where only the scraper reaches it.
//! - `--metrics-token`: on the main port, to requests carrying `Authorization: Bearer
//!   <token>`; others get 401. The token is compared by its SHA-256 digest, in constant
//!   time, so answers take as long whatever a guess shares with it.
//!
//! Without the token, `/metrics` on the main port is 404, as any unknown path is, even
//! when the built client would otherwise answer every path with the app.

use std::sync::Arc;

use axum::{
    Router,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::metrics::{CONTENT_TYPE, Exporter};

/// The path of the endpoint.
pub const PATH: &str = "/metrics";

/// The main port's `/metrics`: the exporter and the token that opens it.
#[derive(Clone)]
pub struct Scrape {
    exporter: Exporter,
    token: [u8; 32],
}

impl Scrape {
    pub fn new(exporter: Exporter, token: &str) -> Self {
        Scrape {
            exporter,
            token: Sha256::digest(token.as_bytes()).into(),
        }
    }

    /// Whether `headers` carry the bearer token.
    fn admits(&self, headers: &HeaderMap) -> bool {
        let Some(given) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
        else {
            return false;
        };
        let given: [u8; 32] = Sha256::digest(given.trim().as_bytes()).into();
        given
            .iter()
            .zip(self.token.iter())
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
    }
}

/// The main port's route: 404 without a token configured, 401 without the token.
pub(super) fn route<S: Clone + Send + Sync + 'static>(scrape: Option<Scrape>) -> Router<S> {
    Router::new()
        .route(PATH, get(on_main_port))
        .with_state(scrape.map(Arc::new))
}

async fn on_main_port(State(scrape): State<Option<Arc<Scrape>>>, headers: HeaderMap) -> Response {
    let Some(scrape) = scrape else {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    };
    if !scrape.admits(&headers) {
        let mut resp = (StatusCode::UNAUTHORIZED, "a bearer token is needed\n").into_response();
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return resp;
    }
    render(&scrape.exporter)
}

fn render(exporter: &Exporter) -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
        exporter.render(),
    )
        .into_response()
}

/// Serves `/metrics` alone on `listener` (`--metrics-listen`) until `stop`.
pub async fn serve_separately(listener: TcpListener, exporter: Exporter, stop: CancellationToken) {
    let app = Router::new().route(
        PATH,
        get(move || {
            let exporter = exporter.clone();
            async move { render(&exporter) }
        }),
    );
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await;
    if let Err(e) = served {
        tracing::error!("the metrics listener failed: {e}");
    }
}
