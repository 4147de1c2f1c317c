//! The accept loop: TCP connections in, HTTP/1.1 served by hyper with the router.
//!
//! Written out instead of `axum::serve` for two settings that one does not expose: a
//! deadline for a client to send its request head (a slowloris client that trickles
//! its headers is dropped after it), and `TCP_NODELAY` on every socket.

use std::{convert::Infallible, time::Duration};

use axum::{Router, extract::ConnectInfo, http::Request};
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tower::ServiceExt;

/// Serves `app` on `listener` until `stop` is cancelled, then lets requests in flight
/// finish (upgraded WebSockets are not HTTP connections any more: they are closed by
/// the hub) for at most `grace`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    stop: CancellationToken,
    header_timeout: Duration,
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
        // Nagle's algorithm would hold back a small frame while an earlier one is
        // unacknowledged, stalling request/response exchanges by the peer's delayed-ack
        // timer (40 ms on Linux).
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("cannot disable Nagle's algorithm on a connection: {e}");
        }
        let app = app.clone();
        let stop = stop.clone();
        connections.spawn(async move {
            let service = service_fn(move |mut req: Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                let app = app.clone();
                async move { Ok::<_, Infallible>(app.oneshot(req).await.unwrap_or_else(|e| match e {})) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Some(header_timeout))
                .serve_connection(TokioIo::new(tcp), service)
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
