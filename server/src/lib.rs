//! Confab's chat server.
//!
//! Data flows one way: a socket's frames are decoded and validated ([`protocol`]) into
//! hub commands; the [`hub`] applies them and records messages in the [`store`]; once a
//! message is committed ([`HubSender::commit_reports`](hub::HubSender::commit_reports)), the hub acknowledges it and fans its
//! encoded frame out to each recipient's [`queue`]; each [`connection`]'s writer puts
//! them on its socket. [`http`] is the edge that accepts sockets and serves the web
//! client; [`config`] is every setting.

pub mod accounts;
pub mod admission;
pub mod config;
pub mod connection;
pub mod http;
pub mod hub;
pub mod listener;
pub mod protocol;
pub mod ratelimit;
pub mod send_queue;
pub mod store;

use std::{future::Future, sync::Arc, time::Duration};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    config::Config,
    http::AppState,
    hub::{Event, Hub, HubSender, HubSettings},
    store::SqliteStore,
};

/// How long shutdown waits for connections to finish their close handshake.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Writes that may wait for the store writer before sends are refused as `unavailable`.
const WRITER_QUEUE: usize = 65_536;

/// Every minute: forget throttle entries that have recovered, and end expired
/// sessions, closing the sockets still open with them (as signing out would).
async fn housekeeping(
    accounts: Arc<accounts::Accounts>,
    throttle: Arc<http::Throttle>,
    hub: HubSender,
) {
    let mut every = tokio::time::interval(Duration::from_secs(60));
    loop {
        every.tick().await;
        throttle.forget_idle();
        let accounts = Arc::clone(&accounts);
        match tokio::task::spawn_blocking(move || accounts.purge_expired()).await {
            Ok(Ok(expired)) => {
                for (username, key) in expired {
                    tracing::debug!(user = %username, "session expired");
                    hub.send(Event::SignedOut {
                        username,
                        session: Some(key),
                    })
                    .await;
                }
            }
            Ok(Err(e)) => tracing::warn!("cannot delete expired sessions: {e}"),
            Err(e) => tracing::warn!("session cleanup failed: {e}"),
        }
    }
}

/// Runs the server on `listener` until `shutdown` resolves, then closes every socket
/// with 1001, flushes the store and returns.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let opened = |store: Result<SqliteStore, _>| {
        store.with_context(|| format!("cannot open the store in {}", config.data_dir.display()))
    };
    let write_store = opened(SqliteStore::open_writer(
        &config.data_dir,
        config.durability,
    ))?;
    let read_store = opened(SqliteStore::open(&config.data_dir, config.durability))?;
    let accounts = Arc::new(
        accounts::Accounts::open(&config.data_dir, config.durability)
            .context("cannot open the accounts")?,
    );
    let (hub, events) = HubSender::channel();
    let (writer, writer_thread) =
        store::writer::spawn(write_store, WRITER_QUEUE, hub.clone().commit_reports())
            .context("cannot start the store writer")?;
    let state = Hub::new(
        HubSettings {
            max_rooms: config.max_rooms,
            max_rooms_per_connection: config.max_rooms_per_connection,
            max_typing_per_sec: config.max_typing_per_sec,
            ..HubSettings::default()
        },
        Box::new(read_store),
        writer,
    )
    .context("cannot load rooms from the store")?;
    let hub_thread = HubSender::spawn(state, events).context("cannot start the hub")?;

    let tracker = TaskTracker::new();
    let throttle = Arc::new(http::Throttle::new(http::ThrottleLimits {
        per_ip: config.sign_in_per_ip_per_min,
        per_username: config.sign_in_per_user_per_min,
    }));
    let housekeeping = tokio::spawn(housekeeping(
        Arc::clone(&accounts),
        Arc::clone(&throttle),
        hub.clone(),
    ));
    let app_state = AppState {
        accounts,
        allow_guests: config.allow_guests,
        secure_cookies: config.secure_cookies,
        throttle,
        hub: hub.clone(),
        connection: connection::Settings {
            queue_capacity: config.queue_capacity,
            ping_interval: config.ping_interval(),
            idle_timeout: config.idle_timeout(),
            rate_limit: ratelimit::RateLimit {
                per_sec: config.rate_limit_per_sec,
                burst: config.rate_limit_burst,
            },
        },
        allowed_origins: Arc::new(
            config
                .allowed_origins
                .iter()
                .map(|o| http::normalise_origin(o))
                .collect(),
        ),
        tracker: tracker.clone(),
        trusted_proxies: Arc::new(config.trusted_proxies.clone()),
        admission: admission::Admission::new(admission::Caps {
            total: config.max_connections,
            per_ip: config.max_connections_per_ip,
        }),
    };
    let app = http::router(app_state, &config.static_dir);

    let stop = CancellationToken::new();
    tokio::spawn({
        let stop = stop.clone();
        async move {
            shutdown.await;
            stop.cancel();
        }
    });
    tokio::spawn({
        let (hub, stop) = (hub.clone(), stop.clone());
        async move {
            stop.cancelled().await;
            tracing::info!("shutting down: closing every connection with 1001");
            hub.send(Event::Shutdown).await;
        }
    });
    listener::serve(
        listener,
        app,
        stop,
        config.handshake_timeout(),
        SHUTDOWN_GRACE,
    )
    .await;

    tracker.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not close in time; dropping them");
    }
    housekeeping.abort();
    // The hub lets go of the writer, which commits what is queued and ends.
    hub.send(Event::Stop).await;
    drop(hub);
    tokio::task::spawn_blocking(move || {
        let hub_ok = hub_thread.join().is_ok();
        let writer_ok = writer_thread.join().is_ok();
        hub_ok && writer_ok
    })
    .await
    .ok()
    .filter(|ok| *ok)
    .context("the hub or the store writer panicked")?;
    tracing::info!("store flushed; bye");
    Ok(())
}
