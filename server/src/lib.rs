//! Confab's chat server.
//!
//! Data flows one way: a socket's frames are decoded and validated
//! ([`protocol`]) into hub commands; the [`hub`] applies them, records messages in the
//! [`store`] and fans encoded frames out to each recipient's [`outbox`]; each
//! [`connection`]'s writer puts them on its socket. [`http`] is the edge that accepts
//! sockets and serves the web client; [`config`] is every setting.

pub mod config;
pub mod connection;
pub mod http;
pub mod hub;
pub mod outbox;
pub mod protocol;
pub mod store;

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    config::Config,
    http::AppState,
    hub::{Event, Hub, HubHandle, HubSettings},
    store::MemoryHistory,
};

/// Messages kept per room in memory.
const HISTORY_PER_ROOM: usize = 1000;
/// How long shutdown waits for connections to finish their close handshake.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Runs the server on `listener` until `shutdown` resolves, then closes every socket
/// with 1001 and returns once they are gone (or after a grace period).
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let hub = Hub::new(
        HubSettings {
            max_rooms: config.max_rooms,
            ..HubSettings::default()
        },
        Box::new(MemoryHistory::new(HISTORY_PER_ROOM)),
    );
    let (hub, hub_task) = HubHandle::spawn(hub);
    let tracker = TaskTracker::new();
    let state = AppState {
        hub: hub.clone(),
        connection: connection::Settings {
            queue_capacity: config.queue_capacity,
            ping_interval: config.ping_interval(),
            idle_timeout: config.idle_timeout(),
        },
        allowed_origins: Arc::new(
            config
                .allowed_origins
                .iter()
                .map(|o| http::normalise_origin(o))
                .collect(),
        ),
        tracker: tracker.clone(),
    };
    let app = http::router(state, &config.static_dir);

    let stop = CancellationToken::new();
    tokio::spawn({
        let stop = stop.clone();
        async move {
            shutdown.await;
            stop.cancel();
        }
    });
    let stopped = {
        let hub = hub.clone();
        async move {
            stop.cancelled().await;
            tracing::info!("shutting down: closing every connection with 1001");
            hub.send(Event::Shutdown).await;
        }
    };
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(stopped)
    .await
    .context("HTTP server failed")?;

    tracker.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not close in time; dropping them");
    }
    drop(hub);
    hub_task.abort();
    Ok(())
}
