//! The task between this node and Redis: it publishes what the hub hands it and hands
//! the hub what other nodes publish.
//!
//! Publishing never holds up the hub: the hub puts news in a bounded queue and goes
//! on; when Redis is slow or gone and the queue is full, news is dropped, which costs
//! the other nodes a read of PostgreSQL when they notice the gap, never a message.
//! The same goes the other way: news waiting for the hub past a bound is dropped and
//! the hub told to look at PostgreSQL.
//!
//! One Redis connection (RESP3, so subscriptions and commands share it) from the
//! `redis` crate's connection manager, which reconnects on its own and subscribes again
//! after a reconnection. This task tells the hub when the link goes ([`Inbound::Down`])
//! and comes back ([`Inbound::Up`]); while it is down it pings every second, which is
//! what makes the manager try again.

use std::time::Duration;

use redis::{
    IntoConnectionInfo, ProtocolVersion, PushInfo, PushKind, Value,
    aio::{ConnectionManager, ConnectionManagerConfig},
};
use tokio::sync::mpsc;

use super::wire::{CONTROL, Inbound, NodeId, Published, ROOM_PREFIX};
use crate::hub::{Event, HubSender};

/// News waiting to be published; past this the newest is dropped.
const OUTBOX: usize = 16_384;
/// Publications sent in one round trip, at most.
const BATCH: usize = 512;
/// News from other nodes waiting for the hub; past this it is dropped and the hub
/// catches up from PostgreSQL.
const INBOX: usize = 65_536;
/// How long one Redis command may take before the link counts as lost.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a lost link is tried again.
const RETRY_EVERY: Duration = Duration::from_secs(1);

/// The hub's end: hands news to the bus task without waiting.
#[derive(Debug, Clone)]
pub struct Bus {
    outbox: mpsc::Sender<Published>,
}

impl Bus {
    /// A bus whose publications go to `outbox` (the bus task's queue, or a test's).
    pub fn new(outbox: mpsc::Sender<Published>) -> Self {
        Self { outbox }
    }

    /// Queues `news` for the other nodes; dropped when the queue is full (they find out
    /// from PostgreSQL).
    pub fn publish(&self, news: Published) {
        if self.outbox.try_send(news).is_err() {
            tracing::debug!(
                "bus queue full: dropping news the other nodes will read from PostgreSQL"
            );
        }
    }
}

/// Connects to Redis at `url` (without waiting for it to answer: a node starts while
/// Redis is down, and polls PostgreSQL until it is up) and runs the bus task until it
/// is aborted or the hub stops. Fails only when the URL is not a Redis URL.
pub fn spawn(
    url: &str,
    node: NodeId,
    hub: HubSender,
) -> anyhow::Result<(Bus, tokio::task::JoinHandle<()>)> {
    let info = url.into_connection_info()?;
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    let info = info.set_redis_settings(settings);
    let client = redis::Client::open(info)?;
    let (pushes_tx, pushes) = mpsc::unbounded_channel();
    let config = ConnectionManagerConfig::new()
        .set_push_sender(pushes_tx)
        .set_automatic_resubscription()
        .set_connection_timeout(Some(COMMAND_TIMEOUT))
        .set_response_timeout(Some(COMMAND_TIMEOUT))
        .set_number_of_retries(1)
        .set_max_delay(RETRY_EVERY);
    let redis = ConnectionManager::new_lazy_with_config(client, config)?;
    let (outbox, queued) = mpsc::channel(OUTBOX);
    let task = tokio::spawn(run(redis, node, hub, queued, pushes));
    Ok((Bus::new(outbox), task))
}

async fn run(
    mut redis: ConnectionManager,
    node: NodeId,
    hub: HubSender,
    mut queued: mpsc::Receiver<Published>,
    mut pushes: mpsc::UnboundedReceiver<PushInfo>,
) {
    let mut link = Link::Down;
    let mut retry = tokio::time::interval(RETRY_EVERY);
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        tokio::select! {
            _ = retry.tick(), if link == Link::Down => {
                if subscribe(&mut redis).await {
                    link.set(Link::Up, &hub).await;
                }
            }
            n = queued.recv_many(&mut batch, BATCH) => {
                if n == 0 {
                    break;
                }
                if link == Link::Up && !publish(&mut redis, node, &batch).await {
                    link.set(Link::Down, &hub).await;
                }
                batch.clear();
            }
            push = pushes.recv() => {
                let Some(push) = push else { break };
                match push.kind {
                    PushKind::Disconnection => link.set(Link::Down, &hub).await,
                    PushKind::Message | PushKind::PMessage => {
                        if pushes.len() > INBOX {
                            // The hub is far behind: drop the backlog and let it catch
                            // up from PostgreSQL in one look.
                            while pushes.try_recv().is_ok() {}
                            tracing::warn!("news from other nodes piled up; catching up from PostgreSQL");
                            hub.send(Event::Cluster(Inbound::Up)).await;
                            continue;
                        }
                        if let Some(news) = decode(&push.data, node) {
                            hub.send(Event::Cluster(Inbound::Published(news))).await;
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

/// Whether the link to Redis is believed to work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Up,
    Down,
}

impl Link {
    async fn set(&mut self, to: Link, hub: &HubSender) {
        if *self == to {
            return;
        }
        *self = to;
        match to {
            Link::Up => {
                tracing::info!("connected to Redis: news from other nodes flows");
                hub.send(Event::Cluster(Inbound::Up)).await;
            }
            Link::Down => {
                tracing::warn!("lost Redis: polling PostgreSQL for other nodes' messages");
                hub.send(Event::Cluster(Inbound::Down)).await;
            }
        }
    }
}

/// Subscribes to the room channels and the control channel (again: the manager keeps
/// them across its reconnections, and subscribing twice is harmless). Whether Redis
/// answered.
async fn subscribe(redis: &mut ConnectionManager) -> bool {
    let pattern = format!("{ROOM_PREFIX}*");
    match tokio::time::timeout(COMMAND_TIMEOUT, async {
        redis.psubscribe(&pattern).await?;
        redis.subscribe(CONTROL).await
    })
    .await
    {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::debug!("cannot subscribe to Redis: {e}");
            false
        }
        Err(_) => false,
    }
}

/// Publishes a batch in one round trip; whether Redis took it.
async fn publish(redis: &mut ConnectionManager, node: NodeId, batch: &[Published]) -> bool {
    let mut pipe = redis::pipe();
    for news in batch {
        pipe.publish(news.channel(), news.encode(node)).ignore();
    }
    match tokio::time::timeout(COMMAND_TIMEOUT, pipe.exec_async(redis)).await {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::warn!("cannot publish to Redis ({e}); other nodes will read PostgreSQL");
            false
        }
        Err(_) => {
            tracing::warn!("Redis did not answer a publication in time");
            false
        }
    }
}

/// The payload of a `message` (`[channel, payload]`) or `pmessage` (`[pattern,
/// channel, payload]`) push, decoded; `None` for this node's own and for what does not
/// decode (logged).
fn decode(data: &[Value], node: NodeId) -> Option<Published> {
    let Some(Value::BulkString(payload)) = data.last() else {
        return None;
    };
    match Inbound::decode(payload, node) {
        Ok(news) => news,
        Err(e) => {
            tracing::warn!("ignoring a publication that does not decode: {e}");
            None
        }
    }
}
