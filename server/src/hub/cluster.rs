//! The hub as one node of a cluster: putting every room's log entries in `seq` order
//! whichever node committed them, and taking in what the other nodes changed.
//!
//! Entries reach a node two ways: its own writer's commits, and the other nodes'
//! publications ([`Published::Log`]). Either way an entry is delivered only when it is
//! the next of its room (`last_seq + 1`); one further ahead is held, since the entries
//! before it are normally a moment away on the bus. If the hole is still there after
//! [`ClusterSettings::gap_grace`], the hub reads it from the store (a [`Look::Fill`]
//! on the reader threads) and delivers what it finds in its current state, the way a
//! resume does. An entry at or below `last_seq` was delivered already and is dropped.
//!
//! Every [`ClusterSettings::look_every`] (more often while Redis is down) the hub reads
//! every room's [`RoomHead`] ([`Look::Heads`]): a room whose `last_seq` is ahead of
//! what was delivered has a gap at its end (its last publication was lost), and a room
//! that is new, gone, or of another `version` is read again and reconciled with what
//! the hub holds ([`Hub::room_loaded`]).
//!
//! Reconciling must not undo this node's own changes that are still on their way to
//! the store (a member added in memory whose write is queued): each room counts the
//! access writes submitted for it, and a read of the room asked before the latest of
//! them is thrown away and asked again.
//!
//! `cluster/reconcile.rs` holds the rooms' side (heads, reading a room again,
//! reconciling), `cluster/presence.rs` who is online on the other nodes.

mod presence;
mod reconcile;

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    time::{Duration, Instant},
};

use confab_shared::{Person, ServerMsg};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use confab_shared::RoomName;

use super::{
    ConnId, Hub, Room,
    delivery::{deliver, encode},
    reads::Job,
};
use crate::{
    cluster::{Bus, Inbound, NodeId, Published},
    store::{Page, RoomHead, Store, StoredRoom, Write},
};

/// Tunables of a node (flags of the same names).
#[derive(Debug, Clone, Copy)]
pub struct ClusterSettings {
    /// How long an entry waits for the ones before it to arrive on the bus before they
    /// are read from the store.
    pub gap_grace: Duration,
    /// How often every room's head is compared with what was delivered.
    pub look_every: Duration,
    /// The same while Redis is down: how late other nodes' messages arrive meanwhile.
    pub look_every_down: Duration,
    /// Most messages one gap read brings.
    pub fill_page: usize,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        Self {
            gap_grace: Duration::from_millis(100),
            look_every: Duration::from_secs(2),
            look_every_down: Duration::from_millis(500),
            fill_page: 500,
        }
    }
}

/// A node's link to the others.
#[derive(Debug)]
pub(super) struct Cluster {
    bus: Bus,
    settings: ClusterSettings,
    /// Whether publications from other nodes are arriving (Redis subscribed).
    bus_up: bool,
    next_look: Instant,
    /// A heads read is in flight.
    looking: bool,
    /// Rooms with entries held behind a gap, or known to be behind.
    gapped: BTreeSet<String>,
    /// Rooms whose read is in flight, and the room's access-write count when it was
    /// asked (see [`RoomSync::local_writes`]).
    loading: HashMap<String, u64>,
    /// When the last look at the heads was answered.
    heads_at: Option<Instant>,
    /// Joins refused because the client's cursor was past anything this node knew of,
    /// and when: a look at the heads since then that still knows nothing of it makes
    /// the cursor one this node takes as it comes (as a single server does).
    ahead_refusals: HashMap<(ConnId, String), Instant>,
}

/// What the hub keeps per room for the cluster (nothing is used on a single server).
#[derive(Debug, Default)]
pub(super) struct RoomSync {
    /// Which stored room this is and its version, as last reconciled; `id` 0 until the
    /// hub has seen the room in the store (it was created here and not yet read back).
    head: RoomHead,
    /// Created here, and the creation committed: with `id` still 0, a store without the
    /// room means it was deleted since (by another node, or the command line), not that
    /// its creation is still on the way.
    created: bool,
    /// Entries after a gap, by `seq`, waiting for the gap to fill.
    ahead: BTreeMap<u64, Utf8Bytes>,
    /// The newest `seq` known to be committed (from the store's heads or the bus).
    known: u64,
    /// Since when the room has had a gap; `None` when it has none.
    gap_since: Option<Instant>,
    /// A gap read is in flight.
    filling: bool,
    /// Who is online in the room on other nodes, by username: as shown, and on which
    /// nodes, with when each was last heard of.
    remote: BTreeMap<String, (Person, BTreeMap<NodeId, Instant>)>,
    /// Access writes (membership, settings) this node submitted for the room (a `Cell`:
    /// they are counted where the hub submits them, through a shared borrow).
    local_writes: std::cell::Cell<u64>,
}

impl RoomSync {
    /// Who is online in the room on other nodes.
    pub(super) fn remote_users(&self) -> impl Iterator<Item = &String> {
        self.remote.keys()
    }

    /// Whether the store has had the room: read from it, or created here and committed.
    pub(super) fn in_store(&self) -> bool {
        self.head.id != 0 || self.created
    }

    /// A room as read from the store at start.
    pub(super) fn known_as(&mut self, head: RoomHead) {
        self.head = head;
        self.known = head.last_seq;
    }
}

/// What a node reads from the store for the cluster, on the reader threads.
#[derive(Debug, Clone)]
pub enum Look {
    Heads,
    Room(String),
    Fill {
        room: String,
        after: u64,
        until: u64,
        limit: usize,
    },
}

/// What a [`Look`] found.
#[derive(Debug)]
pub enum Looked {
    Heads(Vec<(String, RoomHead)>),
    Room(Option<StoredRoom>),
    Fill(Page),
}

/// A [`Look`] and its answer, back on the hub's thread.
#[derive(Debug)]
pub struct LookDone {
    pub look: Look,
    pub result: Result<Looked, String>,
}

impl Look {
    pub(super) fn run(self, store: &mut dyn Store) -> LookDone {
        let result = match &self {
            Look::Heads => store.heads().map(Looked::Heads),
            Look::Room(name) => store.room(name).map(Looked::Room),
            Look::Fill {
                room,
                after,
                until,
                limit,
            } => store.after(room, *after, *until, *limit).map(Looked::Fill),
        };
        LookDone {
            look: self,
            result: result.map_err(|e| e.to_string()),
        }
    }
}

impl Hub {
    /// Makes this hub a node of a cluster: its commits are published on `bus`, and it
    /// takes in what arrives as [`Hub::cluster_event`]s.
    pub fn join_cluster(&mut self, bus: Bus, settings: ClusterSettings) {
        self.cluster = Some(Cluster {
            bus,
            settings,
            bus_up: false,
            next_look: Instant::now(),
            looking: false,
            gapped: BTreeSet::new(),
            loading: HashMap::new(),
            heads_at: None,
            ahead_refusals: HashMap::new(),
        });
    }

    /// Tells the other nodes, if this is a node of a cluster.
    pub(crate) fn publish(&self, news: Published) {
        if let Some(cluster) = &self.cluster {
            cluster.bus.publish(news);
        }
    }

    /// News from another node, or about the bus.
    pub fn cluster_event(&mut self, inbound: Inbound) {
        let now = Instant::now();
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        match inbound {
            Inbound::Up => {
                // What was published while the link was down is lost: look now.
                cluster.bus_up = true;
                cluster.next_look = now;
            }
            Inbound::Down => {
                cluster.bus_up = false;
                cluster.next_look = cluster
                    .next_look
                    .min(now + cluster.settings.look_every_down);
            }
            Inbound::Published(news) => self.take_news(news),
            Inbound::Presence(others) => self.presence_read(others),
        }
        self.settle();
    }

    fn take_news(&mut self, news: Published) {
        match news {
            Published::Log { room, seq, frame } => self.log_entry(&room, seq, frame),
            Published::Typing { room, who } => {
                let typing = ServerMsg::Typing { room, who };
                if let ServerMsg::Typing { room, .. } = &typing {
                    self.tell_room(room, &typing);
                }
            }
            Published::Presence {
                room,
                who,
                node,
                online,
            } => self.remote_presence(&room, who, node, online),
            Published::RoomChanged { room } => self.load_room(&room),
            Published::Read { user, room, seq } => {
                self.personal_committed(&Write::MarkRead { user, room, seq });
            }
            Published::Mute { user, room, muted } => {
                self.personal_committed(&Write::Mute { user, room, muted });
            }
            Published::SignedOut { username, sessions } => {
                self.signed_out(&username, sessions, Instant::now());
            }
            Published::UserAdded {
                username,
                display_name,
            } => self.user_added(username, display_name),
        }
    }

    /// A log entry this node committed: the other nodes hear of it, and it is delivered
    /// here in its turn.
    pub(super) fn local_log_entry(&mut self, room: &str, seq: u64, frame: Utf8Bytes) {
        self.publish(Published::Log {
            room: room.to_owned(),
            seq,
            frame: frame.clone(),
        });
        self.log_entry(room, seq, frame);
    }

    /// Delivers entry `seq` of `room` if it is the next, holds it if entries before it
    /// are missing, drops it if it was delivered.
    fn log_entry(&mut self, room: &str, seq: u64, frame: Utf8Bytes) {
        let now = Instant::now();
        let Some(r) = self.rooms.get_mut(room) else {
            // A room this node has not heard of yet: the read brings its messages.
            self.load_room(room);
            return;
        };
        if seq <= r.last_seq {
            return;
        }
        if seq > r.last_seq + 1 {
            r.sync.ahead.insert(seq, frame);
            r.sync.known = r.sync.known.max(seq);
            r.sync.gap_since.get_or_insert(now);
            if let Some(cluster) = &mut self.cluster {
                cluster.gapped.insert(room.to_owned());
            }
            return;
        }
        self.deliver_log_frame(room, seq, &frame);
        self.deliver_ahead(room);
    }

    /// Delivers the entries held for `room` that are next in turn; ends its gap when
    /// none is left.
    fn deliver_ahead(&mut self, room: &str) {
        loop {
            let Some(r) = self.rooms.get_mut(room) else {
                return;
            };
            while r
                .sync
                .ahead
                .first_key_value()
                .is_some_and(|(seq, _)| *seq <= r.last_seq)
            {
                r.sync.ahead.pop_first();
            }
            let next = r.sync.ahead.first_key_value().map(|(seq, _)| *seq);
            match next {
                Some(seq) if seq == r.last_seq + 1 => {
                    if let Some((seq, frame)) = r.sync.ahead.pop_first() {
                        self.deliver_log_frame(room, seq, &frame);
                    }
                }
                Some(_) => return,
                None => {
                    if r.sync.known <= r.last_seq {
                        r.sync.gap_since = None;
                        if let Some(cluster) = &mut self.cluster {
                            cluster.gapped.remove(room);
                        }
                    }
                    return;
                }
            }
        }
    }

    /// When the hub next has something to do for the cluster.
    pub(super) fn cluster_deadline(&self) -> Option<Instant> {
        let cluster = self.cluster.as_ref()?;
        let look = (!cluster.looking).then_some(cluster.next_look);
        let fill = cluster
            .gapped
            .iter()
            .filter_map(|room| self.rooms.get(room))
            .filter(|r| !r.sync.filling)
            .filter_map(|r| r.sync.gap_since)
            .min()
            .map(|since| since + cluster.settings.gap_grace);
        look.into_iter().chain(fill).min()
    }

    /// Reads the gaps that outlasted their grace, and looks at the heads when it is
    /// time.
    pub(super) fn cluster_tick(&mut self, now: Instant) {
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        let settings = cluster.settings;
        let due_look = !cluster.looking && cluster.next_look <= now;
        let gapped: Vec<String> = cluster.gapped.iter().cloned().collect();
        for room in gapped {
            let Some(r) = self.rooms.get_mut(&room) else {
                if let Some(cluster) = &mut self.cluster {
                    cluster.gapped.remove(&room);
                }
                continue;
            };
            let due = r
                .sync
                .gap_since
                .is_some_and(|since| since + settings.gap_grace <= now);
            if !due || r.sync.filling {
                continue;
            }
            let until = match r.sync.ahead.first_key_value() {
                Some((seq, _)) => seq - 1,
                None => r.sync.known,
            };
            if until <= r.last_seq {
                continue;
            }
            let look = Look::Fill {
                room: room.clone(),
                after: r.last_seq,
                until,
                limit: settings.fill_page,
            };
            r.sync.filling = true;
            if self.dispatch(Job::Look(look)).is_err()
                && let Some(r) = self.rooms.get_mut(&room)
            {
                // Readers busy: try again after another grace.
                r.sync.filling = false;
                r.sync.gap_since = Some(now);
            }
        }
        if due_look {
            if let Some(cluster) = &mut self.cluster {
                cluster.looking = true;
                cluster.next_look = now
                    + if cluster.bus_up {
                        settings.look_every
                    } else {
                        settings.look_every_down
                    };
            }
            if self.dispatch(Job::Look(Look::Heads)).is_err()
                && let Some(cluster) = &mut self.cluster
            {
                cluster.looking = false;
            }
        }
    }

    /// The answer to a [`Look`].
    pub(super) fn look_done(&mut self, done: LookDone) {
        let LookDone { look, result } = done;
        match (look, result) {
            (Look::Heads, result) => {
                if let Some(cluster) = &mut self.cluster {
                    cluster.looking = false;
                }
                match result {
                    Ok(Looked::Heads(heads)) => self.heads_read(heads),
                    Ok(_) => {}
                    Err(e) => tracing::warn!("cannot read the rooms' heads: {e}"),
                }
            }
            (Look::Room(room), result) => {
                let asked_at = self
                    .cluster
                    .as_mut()
                    .and_then(|c| c.loading.remove(&room))
                    .unwrap_or_default();
                match result {
                    Ok(Looked::Room(stored)) => {
                        let current = self
                            .rooms
                            .get(&room)
                            .map_or(0, |r| r.sync.local_writes.get());
                        if current == asked_at {
                            self.room_loaded(&room, stored);
                        } else {
                            // A change of ours was on its way when this was read.
                            self.load_room(&room);
                        }
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(room, "cannot read the room: {e}"),
                }
            }
            (Look::Fill { room, after, .. }, result) => {
                let Some(r) = self.rooms.get_mut(&room) else {
                    return;
                };
                r.sync.filling = false;
                match result {
                    Ok(Looked::Fill(page)) if r.last_seq == after => self.fill(&room, page),
                    Ok(_) => self.deliver_ahead(&room),
                    Err(e) => {
                        tracing::warn!(room, "cannot read a gap in the room's log: {e}");
                        r.sync.gap_since = Some(Instant::now());
                    }
                }
            }
        }
    }

    /// Delivers a gap's messages, in their current state, as a resume would.
    fn fill(&mut self, room: &str, page: Page) {
        let through = page.through;
        for message in page.messages {
            let frame = encode(&ServerMsg::Message(message));
            // Kept for joining readers by the position the gap ends at: their read
            // covers the log up to an older `last_seq`.
            self.deliver_log_frame(room, through, &frame);
        }
        if let Some(r) = self.rooms.get_mut(room) {
            r.last_seq = r.last_seq.max(through);
        }
        self.deliver_ahead(room);
        let grace = self.cluster_grace();
        if let Some(r) = self.rooms.get_mut(room)
            && r.sync.gap_since.is_some()
        {
            // More to read (the page was full, or more arrived): at once.
            r.sync.gap_since = Some(at_once(Instant::now(), grace));
        }
    }

    fn cluster_grace(&self) -> Duration {
        self.cluster
            .as_ref()
            .map_or(Duration::ZERO, |c| c.settings.gap_grace)
    }

    /// Whether a join resuming after `after`, past what this node delivered in `room`,
    /// must wait for the node to catch up: its delivery of the entries between would
    /// repeat what the client has. Other nodes' entries may not have arrived yet (or be
    /// held behind a gap); a cursor past everything the node knows of asks for a look
    /// at the heads first, and is taken as it is if that look knows nothing of it.
    pub(super) fn cluster_behind(&mut self, id: ConnId, room: &RoomName, after: u64) -> bool {
        let now = Instant::now();
        let known = self.rooms.get(room.as_str()).map_or(0, |r| r.sync.known);
        let Some(cluster) = &mut self.cluster else {
            return false;
        };
        if after <= known {
            // Known to be committed: its gap is being read.
            return true;
        }
        let key = (id, room.to_string());
        match cluster.ahead_refusals.get(&key) {
            Some(at) if cluster.heads_at.is_some_and(|heads| heads > *at) => {
                cluster.ahead_refusals.remove(&key);
                false
            }
            _ => {
                cluster.ahead_refusals.insert(key, now);
                cluster.next_look = cluster.next_look.min(now);
                true
            }
        }
    }

    /// Sends `msg` to everyone live in `room` on this node.
    fn tell_room(&mut self, room: &str, msg: &ServerMsg) {
        let Some(r) = self.rooms.get(room) else {
            return;
        };
        let frame = encode(msg);
        deliver(
            &self.conns,
            &mut self.overflowed,
            r.online.iter().copied(),
            &frame,
        );
    }
}

/// A gap start that makes the gap due now.
fn at_once(now: Instant, grace: Duration) -> Instant {
    now.checked_sub(grace).unwrap_or(now)
}
