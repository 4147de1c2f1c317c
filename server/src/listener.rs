//! The accept loop: TCP connections in, HTTP/1.1 served by hyper with the router,
//! over TLS when the server has a certificate ([`crate::tls`]).
//!
//! Written out instead of `axum::serve` for what that one does not do: a deadline for a
//! client to send its request head (a slowloris client that trickles its headers is
//! dropped after it) and another for its body ([`crate::body_deadline`]), a cap on the
//! HTTP connections open before any upgrade (in total and per address), and
//! `TCP_NODELAY` on every socket. With TLS the handshake comes first, within the same
//! time a request head gets (a client that opens a socket and never finishes it is
//! dropped then), and the caps hold from the accept, so handshakes in progress count.

use std::{
    convert::Infallible,
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use axum::{
    Router,
    extract::ConnectInfo,
    http::{HeaderMap, HeaderValue, Request, StatusCode, header},
    response::{IntoResponse, Response},
};
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::{either::Either, sync::CancellationToken, task::TaskTracker};
use tower::ServiceExt;

use crate::{
    admission::{Admission, Refused, Ticket},
    body_deadline::DeadlineBody,
};

/// The limits of the HTTP edge, before any upgrade.
#[derive(Debug, Clone)]
pub struct Edge {
    /// Time a client has to send a request head (`--handshake-timeout-secs`).
    pub header_timeout: Duration,
    /// Time a client has to send a whole request body once its head arrived
    /// (`--body-timeout-secs`).
    pub body_timeout: Duration,
    /// Largest file upload (`--max-file-bytes`): an upload's body gets more time than
    /// other bodies, in proportion to its size (see [`Edge::body_time`]).
    pub max_upload_bytes: u64,
    /// HTTP connections open at once (`--max-http-connections`, `...-per-ip`).
    pub connections: Admission,
    /// Reverse proxies (`--trusted-proxy`): their connections carry many clients, so
    /// they count in the total only.
    pub trusted_proxies: Arc<Vec<IpAddr>>,
    /// Serve HTTPS with this, instead of plain HTTP.
    pub tls: Option<Tls>,
}

/// The TLS side of an [`Edge`].
#[derive(Clone)]
pub struct Tls {
    /// Hands every handshake the certificate held at the time ([`crate::tls`]).
    pub acceptor: TlsAcceptor,
    /// The `Strict-Transport-Security` value for responses to requests addressed to a
    /// host name (`--hsts-max-age-secs`; none when 0). See [`hsts_applies`].
    pub hsts: Option<HeaderValue>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("hsts", &self.hsts).finish()
    }
}

/// Whether a response to a request with these headers gets `Strict-Transport-Security`.
/// Browsers ignore it for IP addresses; for `localhost` it would make them refuse plain
/// HTTP to every other development server on the machine, whatever its port (HSTS
/// covers a host, not a port).
fn hsts_applies(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let name = crate::http::host::host_name(host);
    !name.is_empty()
        && name.parse::<IpAddr>().is_err()
        && name != "localhost"
        && !name.ends_with(".localhost")
}

/// The slowest an upload may arrive, in bytes per second, on top of the ordinary body
/// time: a file of 25 MiB gets 400 s more. A client sending slower than this holds a
/// connection no longer than its size allows.
pub const MIN_UPLOAD_BYTES_PER_SEC: u64 = 64 * 1024;

/// The time a request's whole body may take: `body_timeout`, and for a file upload
/// (`POST /api/files`) as much again as its size (its `Content-Length`, or the largest
/// file when it declares none) needs at [`MIN_UPLOAD_BYTES_PER_SEC`].
fn body_time(
    body_timeout: Duration,
    max_upload_bytes: u64,
    parts: &axum::http::request::Parts,
) -> Duration {
    let upload =
        parts.method == axum::http::Method::POST && parts.uri.path() == crate::http::UPLOAD_PATH;
    if !upload {
        return body_timeout;
    }
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let bytes = declared.map_or(max_upload_bytes, |n| n.min(max_upload_bytes));
    body_timeout + Duration::from_secs(bytes / MIN_UPLOAD_BYTES_PER_SEC)
}

impl Edge {
    fn admit(&self, peer: SocketAddr) -> Result<Ticket, Refused> {
        if self.trusted_proxies.contains(&peer.ip()) {
            self.connections.admit_any()
        } else {
            self.connections.admit(peer.ip())
        }
    }
}

/// Turns away a connection over the caps: one write of a complete response that does
/// not wait for the socket, then the close. No request is read, no task is spawned.
/// Over TLS nothing is written: a response needs a handshake first, and the caps are
/// there to spare the server that work; the client sees the connection close.
fn refuse(tcp: &TcpStream, refused: Refused) {
    let status = refused.status();
    let body = refused.message();
    let response = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\n\
         retry-after: 1\r\nconnection: close\r\n\r\n{body}",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    );
    let _ = tcp.try_write(response.as_bytes());
}

/// The first byte of a TLS connection: a handshake record.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// The TLS handshake on a new connection, within `time`; `None` when it failed, took
/// too long, or the client spoke plain HTTP (then it is told so, as [`plain_http`]).
async fn handshake(
    tcp: TcpStream,
    acceptor: &TlsAcceptor,
    time: Duration,
    peer: SocketAddr,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    let deadline = tokio::time::Instant::now() + time;
    let mut first = [0u8; 1];
    match tokio::time::timeout_at(deadline, tcp.peek(&mut first)).await {
        Ok(Ok(1)) if first[0] != TLS_HANDSHAKE_RECORD => {
            tracing::debug!(%peer, "plain HTTP on the HTTPS port: 400");
            plain_http(tcp).await;
            return None;
        }
        Ok(Ok(1)) => {}
        Ok(Ok(_)) => return None, // closed before a byte
        Ok(Err(e)) => {
            tracing::debug!(%peer, "connection failed before the TLS handshake: {e}");
            return None;
        }
        Err(_) => {
            tracing::debug!(%peer, "no TLS handshake in time: dropped");
            return None;
        }
    }
    match tokio::time::timeout_at(deadline, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(e)) => {
            tracing::debug!(%peer, "TLS handshake failed: {e}");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake not done in time: dropped");
            None
        }
    }
}

/// Answers a plain-HTTP request on the HTTPS port with a 400 that says so, rather than
/// the bare close a TLS error would be (what someone who typed `http://` would see as
/// an empty reply). What the client sent is read first, so the close that follows does
/// not reset the connection before the answer is read.
async fn plain_http(tcp: TcpStream) {
    use tokio::io::AsyncWriteExt;
    let mut tcp = tcp;
    let mut request = [0u8; 4096];
    let _ = tcp.try_read(&mut request);
    let body = "This port speaks HTTPS: open the same address with https:// instead.\n";
    let response = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tcp.try_write(response.as_bytes());
    let _ = tcp.shutdown().await;
}

/// What a client whose body ran out of time gets; the connection is closed after it.
fn too_slow() -> Response {
    (
        StatusCode::REQUEST_TIMEOUT,
        [(header::CONNECTION, "close")],
        "the request body did not arrive in time\n",
    )
        .into_response()
}

/// Serves `app` on `listener` until `stop` is cancelled, then lets requests in flight
/// finish (upgraded WebSockets are not HTTP connections any more: they are closed by
/// the hub) for at most `grace`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    stop: CancellationToken,
    edge: Edge,
    grace: Duration,
) {
    let connections = TaskTracker::new();
    loop {
        let (tcp, peer) = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: the condition passes, the
                    // server must not end over it.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let ticket = match edge.admit(peer) {
            Ok(ticket) => ticket,
            Err(refused) => {
                tracing::debug!(%peer, ?refused, "HTTP connection refused");
                if edge.tls.is_none() {
                    refuse(&tcp, refused);
                }
                continue;
            }
        };
        // Nagle's algorithm would hold back a small frame while an earlier one is
        // unacknowledged, stalling request/response exchanges by the peer's delayed-ack
        // timer (40 ms on Linux).
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("cannot disable Nagle's algorithm on a connection: {e}");
        }
        let app = app.clone();
        let stop = stop.clone();
        let (header_timeout, body_timeout, max_upload_bytes) = (
            edge.header_timeout,
            edge.body_timeout,
            edge.max_upload_bytes,
        );
        let tls = edge.tls.clone();
        connections.spawn(async move {
            // Held until the connection ends or is upgraded (then the WebSocket caps
            // take over).
            let _ticket = ticket;
            let (stream, hsts) = match tls {
                None => (Either::Left(tcp), None),
                Some(tls) => {
                    let stream = tokio::select! {
                        () = stop.cancelled() => return,
                        stream = handshake(tcp, &tls.acceptor, header_timeout, peer) => stream,
                    };
                    let Some(stream) = stream else { return };
                    (Either::Right(stream), tls.hsts)
                }
            };
            let service = service_fn(move |req: Request<Incoming>| {
                let (mut parts, body) = req.into_parts();
                parts.extensions.insert(ConnectInfo(peer));
                let hsts = hsts.clone().filter(|_| hsts_applies(&parts.headers));
                let (body, expired) = DeadlineBody::new(
                    body,
                    tokio::time::Instant::now() + body_time(body_timeout, max_upload_bytes, &parts),
                );
                let req = Request::from_parts(parts, body);
                let app = app.clone();
                async move {
                    let mut resp = app.oneshot(req).await.unwrap_or_else(|e| match e {});
                    if expired.get() {
                        tracing::debug!(%peer, "request body too slow: 408");
                        resp = too_slow();
                    }
                    if let Some(hsts) = hsts {
                        resp.headers_mut()
                            .insert(header::STRICT_TRANSPORT_SECURITY, hsts);
                    }
                    Ok::<_, Infallible>(resp)
                }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Some(header_timeout))
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            tokio::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(%peer, "HTTP connection ended: {e}");
                    }
                }
                () = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    connections.close();
    if tokio::time::timeout(grace, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!("some HTTP requests did not finish in time");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_str(value).expect("a host"));
        headers
    }

    #[test]
    fn hsts_goes_to_host_names_only() {
        assert!(hsts_applies(&host("chat.example.com")));
        assert!(hsts_applies(&host("Chat.Example.com:8443")));
        for not_a_name in [
            "127.0.0.1:9443",
            "[::1]:9443",
            "localhost:9443",
            "LOCALHOST",
            "app.localhost",
        ] {
            assert!(!hsts_applies(&host(not_a_name)), "{not_a_name}");
        }
        assert!(!hsts_applies(&HeaderMap::new()));
    }
}
