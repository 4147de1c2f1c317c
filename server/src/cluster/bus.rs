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

use std::collections::{HashMap, HashSet};

use confab_shared::Person;

use super::wire::{
    CONTROL, Inbound, NodeId, PRESENCE_ROOMS, Published, ROOM_PREFIX, parse_presence_member,
    presence_key, presence_member,
};
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
    node: NodeId,
}

impl Bus {
    /// The bus of node `node`, whose publications go to `outbox` (the bus task's
    /// queue, or a test's).
    pub fn new(outbox: mpsc::Sender<Published>, node: NodeId) -> Self {
        Self { outbox, node }
    }

    /// This node's id.
    pub fn node(&self) -> NodeId {
        self.node
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
    presence_ttl: Duration,
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
    let presence = Presence::new(node, presence_ttl);
    let task = tokio::spawn(run(redis, presence, hub, queued, pushes));
    Ok((Bus::new(outbox, node), task))
}

async fn run(
    mut redis: ConnectionManager,
    mut presence: Presence,
    hub: HubSender,
    mut queued: mpsc::Receiver<Published>,
    mut pushes: mpsc::UnboundedReceiver<PushInfo>,
) {
    let node = presence.node;
    let mut link = Link::Down;
    let mut retry = tokio::time::interval(RETRY_EVERY);
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut beat = tokio::time::interval(presence.beat());
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        tokio::select! {
            _ = retry.tick(), if link == Link::Down => {
                if subscribe(&mut redis).await {
                    link.set(Link::Up, &hub).await;
                    // Renew at once: a restarted Redis has forgotten who is online.
                    beat.reset_immediately();
                }
            }
            _ = beat.tick(), if link == Link::Up => {
                match presence.renew_and_read(&mut redis).await {
                    Some(others) => {
                        hub.send(Event::Cluster(Inbound::Presence(others))).await;
                    }
                    None => link.set(Link::Down, &hub).await,
                }
            }
            n = queued.recv_many(&mut batch, BATCH) => {
                if n == 0 {
                    break;
                }
                for news in &batch {
                    presence.note(news);
                }
                if link == Link::Up && !publish(&mut redis, node, &presence, &batch).await {
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

/// Publishes a batch in one round trip (with the presence sets' updates); whether
/// Redis took it.
async fn publish(
    redis: &mut ConnectionManager,
    node: NodeId,
    presence: &Presence,
    batch: &[Published],
) -> bool {
    let mut pipe = redis::pipe();
    for news in batch {
        presence.stage(&mut pipe, news);
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

/// Who is online on this node, as Redis must hold it: each (room, person) an entry of
/// the room's presence set that this node renews every third of the TTL. A node that
/// dies stops renewing, and its entries expire: any node's sweep removes them, and the
/// next reading of the sets tells every hub they are gone.
struct Presence {
    node: NodeId,
    ttl: Duration,
    /// Members of each room's presence set that are this node's.
    local: HashMap<String, HashSet<String>>,
}

impl Presence {
    fn new(node: NodeId, ttl: Duration) -> Self {
        Self {
            node,
            ttl: ttl.max(Duration::from_secs(1)),
            local: HashMap::new(),
        }
    }

    /// How often entries are renewed and the sets read.
    fn beat(&self) -> Duration {
        self.ttl / 3
    }

    fn expiry(&self) -> i64 {
        now_ms().saturating_add(i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX))
    }

    /// Keeps the local set in step with what the hub publishes.
    fn note(&mut self, news: &Published) {
        if let Published::Presence {
            room, who, online, ..
        } = news
        {
            let member = presence_member(self.node, who);
            if *online {
                self.local.entry(room.clone()).or_default().insert(member);
            } else if let Some(members) = self.local.get_mut(room) {
                members.remove(&member);
                if members.is_empty() {
                    self.local.remove(room);
                }
            }
        }
    }

    /// Adds a presence change to `pipe`.
    fn stage(&self, pipe: &mut redis::Pipeline, news: &Published) {
        if let Published::Presence {
            room, who, online, ..
        } = news
        {
            let member = presence_member(self.node, who);
            if *online {
                pipe.zadd(presence_key(room), member, self.expiry())
                    .ignore()
                    .sadd(PRESENCE_ROOMS, room)
                    .ignore();
            } else {
                pipe.zrem(presence_key(room), member).ignore();
            }
        }
    }

    /// Renews this node's entries, removes every expired one, and reads the other
    /// nodes' entries; `None` if Redis did not answer.
    async fn renew_and_read(
        &self,
        redis: &mut ConnectionManager,
    ) -> Option<Vec<(String, NodeId, Person)>> {
        let expiry = self.expiry();
        let now = now_ms();
        let mut renew = redis::pipe();
        for (room, members) in &self.local {
            for member in members {
                renew.zadd(presence_key(room), member, expiry).ignore();
            }
            renew.sadd(PRESENCE_ROOMS, room).ignore();
        }
        let rooms: Vec<String> = tokio::time::timeout(COMMAND_TIMEOUT, async {
            if !self.local.is_empty() {
                renew.exec_async(redis).await?;
            }
            redis::cmd("SMEMBERS")
                .arg(PRESENCE_ROOMS)
                .query_async(redis)
                .await
        })
        .await
        .ok()?
        .ok()?;
        if rooms.is_empty() {
            return Some(Vec::new());
        }
        let mut read = redis::pipe();
        for room in &rooms {
            read.zrembyscore(presence_key(room), "-inf", now)
                .ignore()
                .zrangebyscore(presence_key(room), format!("({now}"), "+inf");
        }
        let sets: Vec<Vec<String>> = tokio::time::timeout(COMMAND_TIMEOUT, read.query_async(redis))
            .await
            .ok()?
            .ok()?;
        let mut others = Vec::new();
        for (room, members) in rooms.iter().zip(sets) {
            if members.is_empty() {
                // Nobody online there: forget the room until someone is (a race with
                // a node adding it again only delays that node's entry to its renewal).
                let _: Result<(), _> = redis::cmd("SREM")
                    .arg(PRESENCE_ROOMS)
                    .arg(room)
                    .query_async(redis)
                    .await;
            }
            for member in members {
                match parse_presence_member(&member) {
                    Some((node, who)) if node != self.node => {
                        others.push((room.clone(), node, who));
                    }
                    _ => {}
                }
            }
        }
        Some(others)
    }
}

/// Wall-clock milliseconds, as the presence sets are scored (every node's clock: they
/// must agree within a fraction of the TTL, which NTP gives).
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
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
