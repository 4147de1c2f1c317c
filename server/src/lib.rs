//! Confab's chat server.
//!
//! Data flows one way: a socket's frames are decoded and validated ([`protocol`]) into
//! hub commands; the [`hub`] applies them and records messages in the [`store`]; once a
//! message is committed ([`HubSender::commit_reports`](hub::HubSender::commit_reports)), the hub acknowledges it and fans its
//! encoded frame out to each recipient's [`queue`]; each [`connection`]'s writer puts
//! them on its socket. [`http`] is the edge that accepts sockets and serves the web
//! client, [`listener`] the accept loop under it (with [`tls`] when the server serves
//! HTTPS itself); [`config`] is every setting.

pub mod accounts;
pub mod admin;
pub mod admission;
pub mod backup;
pub mod body_deadline;
pub mod cluster;
pub mod config;
pub mod connection;
pub mod data_tools;
pub mod files;
pub mod health;
pub mod http;
pub mod hub;
pub mod invites;
pub mod json_log;
pub mod listener;
pub mod logsafe;
pub mod metrics;
pub mod protocol;
pub mod ratelimit;
pub mod retention;
pub mod search;
pub mod send_queue;
pub mod store;
pub mod tls;

use std::{future::Future, sync::Arc, time::Duration};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    config::Config,
    health::{Health, Part},
    http::AppState,
    hub::{Event, Hub, HubSender, HubSettings, ReadPool, Reader, Sessions},
    store::Store,
};

/// How long shutdown waits for connections to finish their close handshake.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// After the hub or the writer died: how long each step of the way out may take (the
/// sockets' 1011 close handshakes, the HTTP requests in flight, the writer's last
/// commit), so a process that cannot chat any more is gone within a few seconds.
const FAILURE_GRACE: Duration = Duration::from_secs(2);
/// How long a clean shutdown waits for the bus task to publish what the hub queued last
/// (a Redis command times out after 2 s).
const BUS_DRAIN_GRACE: Duration = Duration::from_secs(3);

/// The series to count with, and the exporter when `/metrics` is served somewhere
/// (`--metrics-listen`, `--metrics-token`); without it nothing is counted.
fn metrics_for(
    config: &Config,
) -> anyhow::Result<(Arc<metrics::Metrics>, Option<metrics::Exporter>)> {
    if config
        .metrics_token
        .as_deref()
        .is_some_and(|t| t.trim().is_empty())
    {
        anyhow::bail!("--metrics-token is empty: give a secret, or leave the flag out");
    }
    if config.metrics_listen.is_none() && config.metrics_token.is_none() {
        return Ok((Arc::new(metrics::Metrics::default()), None));
    }
    let (metrics, exporter) = metrics::prometheus();
    Ok((metrics, Some(exporter)))
}

/// Every minute: forget throttle entries that have recovered, end expired sessions,
/// closing the sockets still open with them (as signing out would), and forget expired
/// invites.
async fn housekeeping(
    accounts: Arc<accounts::Accounts>,
    throttle: Arc<http::Throttle>,
    hub: HubSender,
) {
    let mut every = tokio::time::interval(Duration::from_secs(60));
    loop {
        every.tick().await;
        throttle.forget_idle();
        let sessions = Arc::clone(&accounts);
        match tokio::task::spawn_blocking(move || sessions.purge_expired()).await {
            Ok(Ok(expired)) => {
                for (username, key) in expired {
                    tracing::debug!(user = %username, "session expired");
                    hub.send(Event::SignedOut {
                        username,
                        sessions: Sessions::One(key),
                        at: std::time::Instant::now(),
                    })
                    .await;
                }
            }
            Ok(Err(e)) => tracing::warn!("cannot delete expired sessions: {e}"),
            Err(e) => tracing::warn!("session cleanup failed: {e}"),
        }
        let invites = Arc::clone(&accounts);
        match tokio::task::spawn_blocking(move || invites.purge_expired_invites()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!("cannot delete expired invites: {e}"),
            Err(e) => tracing::warn!("invite cleanup failed: {e}"),
        }
    }
}

/// Makes this server a node of a cluster: a random node id, and the bus to Redis when
/// `--redis-url` is given. Without Redis the node still finds the others' messages in
/// PostgreSQL, only later (see [`cluster`]).
fn join_cluster(
    config: &Config,
    hub: HubSender,
) -> anyhow::Result<(cluster::Bus, Option<tokio::task::JoinHandle<()>>)> {
    use rand_core::RngCore;
    let node = rand_core::OsRng.next_u64();
    match &config.redis_url {
        Some(url) => {
            let (bus, task) = cluster::bus::spawn(url, node, config.cluster_presence_ttl(), hub)
                .context("cannot use the Redis URL")?;
            tracing::info!(node, "a node of a cluster: PostgreSQL and Redis");
            Ok((bus, Some(task)))
        }
        None => {
            tracing::info!(
                node,
                "on PostgreSQL without Redis: other nodes' messages arrive by polling"
            );
            let (outbox, _) = tokio::sync::mpsc::channel(1);
            Ok((cluster::Bus::new(outbox, node), None))
        }
    }
}

/// Runs the server on `listener` until `shutdown` resolves, then closes every socket
/// with 1001, flushes the store and returns.
///
/// If the hub thread or the store writer dies first (see [`health`]), it closes the
/// sockets it can with 1011, stops listening and returns an error naming the part, all
/// within a few seconds: the process should then exit non-zero and be restarted.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let stop = CancellationToken::new();
    // Whichever way `serve` returns, what it started with `stop` (the certificate
    // reloads, the listeners) ends with it.
    let _stop_on_return = stop.clone().drop_guard();
    // First, so a certificate that does not load or a port in use ends the start at once.
    let tls = match config.tls_files() {
        Some(files) => {
            let certificates = Arc::new(
                tls::Certificates::load(files)
                    .await
                    .context("cannot serve TLS")?,
            );
            tracing::info!(fingerprint = %certificates.serving(), "serving HTTPS");
            // Listening for SIGHUP from here on: before it the signal would end the
            // process.
            let reloads =
                tls::keep_fresh(Arc::clone(&certificates), config.tls_watch(), stop.clone())
                    .context("cannot listen for SIGHUP (which reloads the certificate)")?;
            tokio::spawn(reloads);
            Some(listener::Tls {
                acceptor: certificates.acceptor().context("cannot serve TLS")?,
                hsts: config.hsts(),
            })
        }
        None => None,
    };
    let redirect_listener = match config.http_redirect_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (--http-redirect-listen)"))?,
        ),
        None => None,
    };
    // Held while serving: `admin migrate-to-postgres` refuses to copy a store in use.
    let _data_dir_lock = match config.database_url {
        Some(_) => None,
        None => Some(
            store::sqlite::lock_data_dir(&config.data_dir, false).with_context(|| {
                format!(
                    "cannot use {} (is a migration to PostgreSQL running?)",
                    config.data_dir.display()
                )
            })?,
        ),
    };
    let (metrics, exporter) = metrics_for(&config)?;
    let metrics_listener = match config.metrics_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen for metrics on {addr}"))?,
        ),
        None => None,
    };
    // Opening blocks (and a PostgreSQL connection must not be made on a Tokio worker).
    let (database, write_store, read_store, read_stores) = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let database = config.database().context("cannot open the database")?;
            let opened = |store: Result<Box<dyn Store>, _>| {
                store.with_context(|| format!("cannot open the store in {}", database.describe()))
            };
            let write_store = opened(database.writer())?;
            let read_store = opened(database.reader())?;
            let read_stores = (0..config.read_threads)
                .map(|_| opened(database.reader()))
                .collect::<anyhow::Result<Vec<_>>>()?;
            Ok((database, write_store, read_store, read_stores))
        })
        .await
        .context("cannot open the database")??
    };
    let (accounts, devices) = {
        let database = database.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let accounts =
                accounts::Accounts::open(&database).context("cannot open the accounts")?;
            let devices =
                http::Devices::open(&database).context("cannot open the device cookie key")?;
            Ok((Arc::new(accounts), Arc::new(devices)))
        })
        .await
        .context("cannot open the accounts")??
    };
    let files = {
        let (database, data_dir, limits) = (
            database.clone(),
            config.data_dir.clone(),
            config.file_limits(),
        );
        tokio::task::spawn_blocking(move || files::Files::open(&database, &data_dir, limits))
            .await
            .context("cannot open the file store")?
            .context("cannot open the file store")?
    };
    let files = Arc::new(files);
    #[cfg(debug_assertions)]
    if let Some(part) = health::fault::armed() {
        tracing::warn!(
            "{}: the {part} will panic on purpose (a test build's fault injection)",
            health::fault::VAR
        );
    }
    let health = Health::new();
    let (hub, events) = HubSender::channel();
    let (writer, writer_thread) = store::writer::spawn_watched(
        write_store,
        config.writer_queue.max(1),
        hub.clone().commit_reports(),
        &health,
        Arc::clone(&metrics),
    )
    .context("cannot start the store writer")?;
    let pruning = writer.pruning();
    let reader = ReadPool::spawn(read_stores, config.read_queue, hub.clone().read_reports())
        .context("cannot start the reader threads")?;
    let hub_settings = HubSettings {
        max_rooms: config.max_rooms,
        max_rooms_per_connection: config.max_rooms_per_connection,
        max_typing_per_sec: config.max_typing_per_sec,
        room_list_interval: Duration::from_millis(config.room_list_interval_ms.max(1)),
        room_changes: ratelimit::RateLimit {
            per_sec: f64::from(config.room_changes_per_min) / 60.0,
            burst: f64::from(config.room_changes_burst.max(1)),
        },
        edits: ratelimit::RateLimit {
            per_sec: f64::from(config.edits_per_min) / 60.0,
            burst: f64::from(config.edits_burst.max(1)),
        },
        // Kept frames go into the send queue on their way out: more would overflow it.
        read_buffer: config.queue_capacity,
        history_reads_per_connection: config.history_reads_per_connection.max(1),
        search_budget: Duration::from_millis(config.search_budget_ms.max(1)),
        sole_server: !database.is_shared(),
        metrics: Arc::clone(&metrics),
        ..HubSettings::default()
    };
    // Loading the rooms reads the store: off the Tokio workers (the PostgreSQL client is
    // synchronous and panics on one).
    let mut state = tokio::task::spawn_blocking(move || {
        Hub::new(hub_settings, read_store, writer, Reader::Pool(reader))
    })
    .await
    .context("cannot load rooms from the store")?
    .context("cannot load rooms from the store")?;
    let bus_task = if database.is_shared() {
        let (bus, task) = join_cluster(&config, hub.clone())?;
        state.join_cluster(bus, config.cluster_settings());
        task
    } else {
        None
    };
    let hub_thread = HubSender::spawn(state, events, &health).context("cannot start the hub")?;

    let tracker = TaskTracker::new();
    let limits = http::ThrottleLimits {
        per_ip: config.sign_in_per_ip_per_min,
        per_user_ip: config.sign_in_per_user_ip_per_min,
        per_username: config.sign_in_per_user_per_min,
        max_delay: Duration::from_secs(config.sign_in_max_delay_secs),
    };
    // A node of a cluster counts sign-in attempts in Redis, so the limits hold for all
    // the nodes together.
    let throttle = Arc::new(match &config.redis_url {
        Some(url) => http::Throttle::clustered(limits, url).context("cannot use the Redis URL")?,
        None => http::Throttle::new(limits),
    });
    let housekeeping = tokio::spawn(housekeeping(
        Arc::clone(&accounts),
        Arc::clone(&throttle),
        hub.clone(),
    ));
    let sweep = tokio::spawn(files::sweep_every(
        Arc::clone(&files),
        Duration::from_secs(config.file_sweep_interval_secs.max(1)),
    ));
    let control = match admin::control::listen(&config.data_dir, hub.clone()) {
        Ok(task) => task,
        Err(e) => {
            tracing::warn!(
                "no control socket in {} ({e}): `confab-server admin` cannot reach this server",
                config.data_dir.display()
            );
            None
        }
    };
    let retention = config.retention().map(|settings| {
        tokio::spawn(retention::run(
            database.clone(),
            pruning,
            settings,
            Arc::clone(&files),
        ))
    });
    let app_state = AppState {
        password_reset_lifetime: config.password_reset_lifetime(),
        accounts,
        files,
        allow_guests: config.allow_guests,
        sign_up: config.sign_up,
        members_invite: config.members_invite,
        invite_limits: config.invite_limits(),
        // Over TLS every page comes over HTTPS: the cookie must never go back in clear.
        secure_cookies: config.secure_cookies || tls.is_some(),
        throttle,
        devices,
        hub: hub.clone(),
        health: health.clone(),
        connection: connection::Settings {
            queue: send_queue::QueueLimits {
                frames: config.queue_capacity,
                bytes: config.queue_bytes,
            },
            ping_interval: config.ping_interval(),
            idle_timeout: config.idle_timeout(),
            rate_limit: ratelimit::RateLimit {
                per_sec: config.rate_limit_per_sec,
                burst: config.rate_limit_burst,
            },
            metrics: Arc::clone(&metrics),
        },
        allowed_origins: Arc::new(http::Origins {
            listed: config
                .allowed_origins
                .iter()
                .map(|o| http::normalise_origin(o))
                .collect(),
            public: config.public_url.clone(),
        }),
        tracker: tracker.clone(),
        trusted_proxies: Arc::new(config.trusted_proxies.clone()),
        admission: admission::Admission::new(admission::Caps {
            total: config.max_connections,
            per_ip: config.max_connections_per_ip,
        }),
        metrics,
    };
    let hosts = http::Hosts::new(
        config.public_url.as_ref(),
        &config.allowed_hosts,
        Arc::new(config.trusted_proxies.clone()),
    );
    let listen = listener.local_addr().unwrap_or(config.listen);
    http::host::advise(listen, &hosts);
    let edge = listener::Edge {
        header_timeout: config.handshake_timeout(),
        body_timeout: config.body_timeout(),
        max_upload_bytes: config.max_file_bytes,
        connections: admission::Admission::new(admission::Caps {
            total: config.max_http_connections,
            per_ip: config.max_http_connections_per_ip,
        }),
        trusted_proxies: Arc::new(config.trusted_proxies.clone()),
        tls,
    };
    let redirecting = redirect_listener.map(|redirect_listener| {
        let redirect = tls::Redirect::new(config.public_url.as_ref(), listen.port(), hosts.clone());
        // The same deadlines as the HTTPS side, caps of its own: a flood of plain HTTP
        // does not take the places of HTTPS clients.
        let edge = listener::Edge {
            connections: admission::Admission::new(admission::Caps {
                total: config.max_http_connections,
                per_ip: config.max_http_connections_per_ip,
            }),
            tls: None,
            ..edge.clone()
        };
        tokio::spawn(listener::serve(
            redirect_listener,
            tls::redirect_router(redirect),
            stop.clone(),
            edge,
            SHUTDOWN_GRACE,
        ))
    });
    let scrape = config
        .metrics_token
        .as_deref()
        .zip(exporter.clone())
        .map(|(token, exporter)| http::metrics::Scrape::new(exporter, token));
    let app = http::router(app_state, config.static_dir.as_deref(), hosts, scrape);

    // Only a shutdown signal says 1001; after a failure (see `fail`) `stop` is cancelled
    // too, but the sockets were already told 1011.
    tokio::spawn({
        let (hub, stop) = (hub.clone(), stop.clone());
        async move {
            shutdown.await;
            stop.cancel();
            tracing::info!("shutting down: closing every connection with 1001");
            hub.send(Event::Shutdown).await;
        }
    });
    let metrics_task = exporter.zip(metrics_listener).map(|(exporter, listener)| {
        if let Ok(addr) = listener.local_addr() {
            tracing::info!("metrics on http://{addr}{}", http::metrics::PATH);
        }
        tokio::spawn(http::metrics::serve_separately(
            listener,
            exporter,
            stop.clone(),
        ))
    });
    let listening = listener::serve(listener, app, stop.clone(), edge, SHUTDOWN_GRACE);
    tokio::pin!(listening);
    tokio::select! {
        () = &mut listening => {}
        part = health.failure() => {
            housekeeping.abort();
            sweep.abort();
            if let Some(task) = &metrics_task {
                task.abort();
            }
            if let Some(task) = &retention {
                task.abort();
            }
            if let Some(task) = &bus_task {
                task.abort();
            }
            return Err(fail(part, listening, &stop, &hub, &tracker, writer_thread).await);
        }
    }

    if let Some(redirecting) = redirecting {
        // Stopped with `stop`; its requests are answered at once.
        let _ = redirecting.await;
    }
    tracker.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not close in time; dropping them");
    }
    housekeeping.abort();
    sweep.abort();
    if let Some(task) = control {
        task.abort();
        let _ = std::fs::remove_file(config.data_dir.join(admin::control::SOCKET_FILE));
    }
    if let Some(task) = &metrics_task {
        task.abort();
    }
    if let Some(task) = &retention {
        task.abort();
    }
    // The hub lets go of the writer, which commits what is queued and ends.
    hub.send(Event::Stop).await;
    drop(hub);
    let threads_ok = tokio::task::spawn_blocking(move || {
        let hub_ok = hub_thread.join().is_ok();
        let writer_ok = writer_thread.join().is_ok();
        hub_ok && writer_ok
    })
    .await
    .ok()
    .filter(|ok| *ok);
    // The bus last: its queue ends with the hub, and what is still in it, above all the
    // departures of the people whose connections just closed, goes to the other nodes
    // (and out of Redis's presence sets) before it stops. Aborted at once, it lost them
    // often enough that the other nodes showed those people online until the presence
    // TTL ran out.
    if let Some(task) = bus_task {
        let abort = task.abort_handle();
        if tokio::time::timeout(BUS_DRAIN_GRACE, task).await.is_err() {
            tracing::warn!("the last news for the other nodes did not go out in time");
            abort.abort();
        }
    }
    threads_ok.context("the hub or the store writer panicked")?;
    tracing::info!("store flushed; bye");
    Ok(())
}

/// The way out after `part` died: every step bounded by [`FAILURE_GRACE`]. Returns the
/// error `serve` ends with.
///
/// 1. The sockets are asked to close with 1011: by the dying hub thread itself, or by
///    the hub on [`Event::Fail`] when the writer died. Meanwhile the listener keeps
///    serving, so `/healthz` answers 503 and new sockets are refused with 503 while
///    the sockets close (a client that does not answer holds this up for at most the
///    grace).
/// 2. The listener stops, and HTTP requests in flight get the grace to finish.
/// 3. If the hub died, the writer has been let go and commits what was queued (never
///    acknowledged, so losing it would be fine too); it gets the grace to do it.
async fn fail(
    part: Part,
    listening: std::pin::Pin<&mut impl Future<Output = ()>>,
    stop: &CancellationToken,
    hub: &HubSender,
    tracker: &TaskTracker,
    writer_thread: std::thread::JoinHandle<()>,
) -> anyhow::Error {
    tracing::error!(
        "the {part} stopped: chat cannot go on; closing the connections with 1011 and \
         exiting so that a supervisor restarts the server"
    );
    let mut listening = listening;
    let mut listening_done = false;
    let drain = async {
        // A dead hub answers at once (its queue is closed); a live one has room soon.
        let _ = tokio::time::timeout(FAILURE_GRACE, hub.send(Event::Fail)).await;
        tracker.close();
        if tokio::time::timeout(FAILURE_GRACE, tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("some connections did not close in time; dropping them");
        }
    };
    tokio::select! {
        () = drain => {}
        // Only if a shutdown signal came meanwhile.
        () = &mut listening => listening_done = true,
    }
    stop.cancel();
    if !listening_done
        && tokio::time::timeout(FAILURE_GRACE, listening)
            .await
            .is_err()
    {
        tracing::warn!("some HTTP requests did not finish in time");
    }
    if part == Part::Hub {
        // Joined on a thread of its own: a blocking task would hold up the runtime's
        // exit if the disk never answered.
        let (joined, flushed) = tokio::sync::oneshot::channel();
        let _ = std::thread::Builder::new()
            .name("confab-writer-join".into())
            .spawn(move || {
                let _ = joined.send(writer_thread.join().is_ok());
            });
        match tokio::time::timeout(FAILURE_GRACE, flushed).await {
            Ok(Ok(true)) => tracing::info!("the store writer committed what was queued"),
            _ => tracing::warn!("the store writer did not finish in time"),
        }
    }
    anyhow::anyhow!("the {part} stopped; exiting so that the server can be restarted")
}
