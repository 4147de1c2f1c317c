//! Running a [`Hub`] on its own thread, and what the rest of the server tells it.
//!
//! If the hub panics, chat is over for this process: its state may be half-updated, and
//! nothing else can deliver a message. The thread then records the failure in
//! [`Health`] (so `/healthz` says 503 and the server exits to be restarted), asks every
//! connection it knows to close with 1011, and ends. Dropping the hub lets the store
//! writer commit what is queued and finish.

use std::{
    panic::{AssertUnwindSafe, catch_unwind},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::Instant,
};

use confab_shared::{ServerMsg, close};
use tokio::sync::mpsc;

use super::{Command, ConnId, Done, Hub, Identity, Sessions, Waiter};
use crate::{
    health::{Guard, Health, Part, panic_message},
    send_queue::SendQueue,
    store::writer::Outcome,
};

/// The close reason sent with 1011 when a part of the server failed.
pub const FAILURE_REASON: &str = "server error; restarting";

/// What connections (and the store writer) tell the hub thread.
#[derive(Debug)]
pub enum Event {
    Connect {
        id: ConnId,
        queue: SendQueue,
        identity: Identity,
    },
    Command {
        id: ConnId,
        cmd: Command,
    },
    /// A frame that did not make a valid command, and the error frame it earns.
    Reject {
        id: ConnId,
        reply: Box<ServerMsg>,
    },
    Disconnect {
        id: ConnId,
    },
    /// Close a connection with this code and reason, after what is already queued.
    Kick {
        id: ConnId,
        code: u16,
        reason: &'static str,
    },
    /// An account was created: the hub can name them and others can invite them.
    UserAdded {
        username: String,
        display_name: String,
    },
    /// Sign-in sessions ended: close the sockets of `username` opened with any of
    /// `sessions`.
    SignedOut {
        username: String,
        sessions: Sessions,
        /// When the sessions were deleted: sockets whose session was checked before
        /// this are closed, also those the hub has not heard of yet.
        at: Instant,
    },
    /// An administrator disabled the account (its sessions are deleted): close its
    /// sockets with 4003.
    Disabled {
        username: String,
        at: Instant,
    },
    /// An administrator deletes a room; the answer says whether it was.
    AdminDeleteRoom {
        room: String,
        reply: tokio::sync::oneshot::Sender<Result<(), String>>,
    },
    /// An administrator (`by`) removes message `seq` of `room`.
    AdminRemoveMessage {
        room: String,
        seq: u64,
        by: String,
        reply: tokio::sync::oneshot::Sender<Result<(), String>>,
    },
    /// A batch of writes is committed (or failed).
    Committed(Vec<Outcome<Option<Waiter>>>),
    /// A history read or a search is answered (see `reads.rs`).
    Read(Done),
    /// News from the other nodes of a cluster, or about the link to them.
    Cluster(crate::cluster::Inbound),
    /// Close every connection with 1001.
    Shutdown,
    /// Another part of the server (the store writer) failed and the server is about to
    /// exit: close every connection with 1011 and take no new ones.
    Fail,
    /// Let go of storage and end the hub thread.
    Stop,
}

/// What [`HubSender::try_send`] did.
#[derive(Debug)]
pub enum TrySend {
    Sent,
    /// The queue is full: here is the event back, to send by waiting.
    Full(Event),
    /// The hub has stopped.
    Stopped,
}

/// A cloneable way to reach the hub thread.
#[derive(Debug, Clone)]
pub struct HubSender {
    events: mpsc::Sender<Event>,
    ids: Arc<AtomicU64>,
}

/// How many events may wait for the hub. Connections wait when it is full, which slows
/// every sender down evenly instead of letting memory grow.
pub const EVENT_QUEUE: usize = 4096;

impl HubSender {
    /// A username and the receiving end for [`HubSender::spawn`]. Split in two so the
    /// store writer can be given a username before the hub exists.
    pub fn channel() -> (HubSender, mpsc::Receiver<Event>) {
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        (
            HubSender {
                events: tx,
                ids: Arc::new(AtomicU64::new(1)),
            },
            rx,
        )
    }

    /// Runs `hub` on a thread of its own until [`Event::Stop`] (or every username is
    /// dropped), or until it panics, which is recorded in `health`. A thread, not a
    /// task, because the hub reads history from storage synchronously.
    pub fn spawn(
        hub: Hub,
        events: mpsc::Receiver<Event>,
        health: &Health,
    ) -> std::io::Result<JoinHandle<()>> {
        let guard = health.guard(Part::Hub);
        std::thread::Builder::new()
            .name("confab-hub".into())
            .spawn(move || run(hub, events, &guard))
    }

    /// A fresh connection id.
    pub fn next_conn_id(&self) -> ConnId {
        self.ids.fetch_add(1, Ordering::Relaxed)
    }

    /// Delivers an event; `false` if the hub has stopped.
    pub async fn send(&self, event: Event) -> bool {
        self.events.send(event).await.is_ok()
    }

    /// Delivers an event if the queue has room now, or gives it back.
    pub fn try_send(&self, event: Event) -> TrySend {
        match self.events.try_send(event) {
            Ok(()) => TrySend::Sent,
            Err(mpsc::error::TrySendError::Full(event)) => TrySend::Full(event),
            Err(mpsc::error::TrySendError::Closed(_)) => TrySend::Stopped,
        }
    }

    /// Tells the hub a connection is gone, from code that cannot wait (a destructor): now
    /// if the queue has room, else from a task.
    pub fn leave(&self, id: ConnId) {
        if let Err(mpsc::error::TrySendError::Full(event)) =
            self.events.try_send(Event::Disconnect { id })
        {
            let events = self.events.clone();
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let _ = events.send(event).await;
                });
            }
        }
    }

    /// Delivers an event from a thread outside the async runtime (the store writer).
    pub fn blocking_send(&self, event: Event) -> bool {
        self.events.blocking_send(event).is_ok()
    }

    /// The step from a commit to the hub: after every transaction, the store writer's
    /// outcomes are handed to the hub, which only then acknowledges each message to its
    /// sender and delivers it to the room. It is the only way a message gets from the
    /// store to anyone.
    ///
    /// Why a step of its own: the [store writer](crate::store::writer) is a plain thread
    /// that knows nothing of the hub (it reports to whatever it is given), and the hub
    /// cannot exist before the writer (it is built with the writer's sender). So the hub's
    /// queue is made first ([`HubSender::channel`]) and the writer is given this, which
    /// sends into it.
    ///
    /// A report waits when the hub's queue is full rather than being dropped: dropping it
    /// would lose the acknowledgement and delivery of messages that are stored. Waiting
    /// holds up the next commit instead, the writer's queue fills, and the hub refuses new
    /// messages as `unavailable` — the pressure reaches the clients instead of memory.
    /// Waiting is fine on the writer's own thread, outside the async runtime. Once the hub
    /// has stopped, reports are dropped: nobody is left to tell.
    pub fn commit_reports(self) -> impl FnMut(Vec<Outcome<Option<Waiter>>>) + Send + 'static {
        move |outcomes| {
            self.blocking_send(Event::Committed(outcomes));
        }
    }

    /// The step from a reader thread to the hub: each answered read, as
    /// [`Event::Read`]. Like commit reports it waits for room in the hub's queue rather
    /// than dropping an answer a connection is waiting for; once the hub has stopped it
    /// is dropped.
    pub fn read_reports(self) -> impl Fn(Done) + Clone + Send + 'static {
        move |done| {
            self.blocking_send(Event::Read(done));
        }
    }
}

/// What the hub thread waits for next.
enum Wake {
    Event(Event),
    /// [`Hub::next_tick`] came: time to send the room changes collected.
    Tick,
    Closed,
}

/// Waits for the next event, or until `tick` if it comes first. Only a clock is needed
/// for that, so a runtime of the thread's own with nothing but timers.
fn next(
    clock: &tokio::runtime::Runtime,
    events: &mut mpsc::Receiver<Event>,
    tick: Option<Instant>,
) -> Wake {
    // Under load there is always an event waiting: take it without entering the clock.
    match events.try_recv() {
        Ok(event) => return Wake::Event(event),
        Err(mpsc::error::TryRecvError::Disconnected) => return Wake::Closed,
        Err(mpsc::error::TryRecvError::Empty) => {}
    }
    clock.block_on(async {
        let recv = async {
            match events.recv().await {
                Some(event) => Wake::Event(event),
                None => Wake::Closed,
            }
        };
        match tick {
            None => recv.await,
            Some(at) => tokio::time::timeout_at(at.into(), recv)
                .await
                .unwrap_or(Wake::Tick),
        }
    })
}

fn run(mut hub: Hub, mut events: mpsc::Receiver<Event>, guard: &Guard) {
    let clock = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(clock) => clock,
        Err(e) => {
            tracing::error!("the hub thread cannot start its clock: {e}");
            guard.stopped();
            return;
        }
    };
    loop {
        let event = match next(&clock, &mut events, hub.next_tick()) {
            Wake::Event(event) => Some(event),
            Wake::Tick => None,
            Wake::Closed => break,
        };
        let stop = matches!(event, Some(Event::Stop));
        // Caught here rather than where the thread unwinds, so the hub's connections are
        // still there to be told.
        let step = || {
            if let Some(event) = event {
                dispatch(&mut hub, event);
            }
            // Also after events: under load the timer may never be the first to come.
            hub.tick(Instant::now());
        };
        match catch_unwind(AssertUnwindSafe(step)) {
            Ok(()) if stop => break,
            Ok(()) => {}
            Err(panic) => {
                tracing::error!(
                    "the hub thread panicked: {}; chat has stopped, closing every connection with 1011",
                    crate::logsafe::text(&panic_message(panic.as_ref()))
                );
                // First, so a client that reconnects at once is refused (503) rather than
                // let in to a server that cannot chat.
                guard.stopped();
                close_all(&hub);
                return;
            }
        }
    }
}

/// Asks every connection the hub knows to close with 1011. Reads the connection table
/// and nothing else, so it works on a hub that a panic left half-updated; each
/// connection sends what is queued for it, then the close frame.
fn close_all(hub: &Hub) {
    for conn in hub.conns.values() {
        conn.queue.close(close::INTERNAL_ERROR, FAILURE_REASON);
    }
}

fn dispatch(hub: &mut Hub, event: Event) {
    use crate::cluster::Published;
    #[cfg(debug_assertions)]
    if let Event::Command {
        cmd: Command::Send { body, .. },
        ..
    } = &event
    {
        crate::health::fault::maybe_panic(
            Part::Hub,
            body.as_ref().map_or("", confab_shared::Body::as_str),
        );
    }
    match event {
        Event::Connect {
            id,
            queue,
            identity,
        } => hub.connect(id, queue, identity),
        Event::Command { id, cmd } => hub.apply(id, cmd),
        Event::Reject { id, reply } => hub.reject(id, &reply),
        Event::Disconnect { id } => hub.disconnect(id),
        Event::Kick { id, code, reason } => hub.kick(id, code, reason),
        Event::UserAdded {
            username,
            display_name,
        } => {
            hub.publish(Published::UserAdded {
                username: username.clone(),
                display_name: display_name.clone(),
            });
            hub.user_added(username, display_name);
        }
        Event::SignedOut {
            username,
            sessions,
            at,
        } => {
            hub.publish(Published::SignedOut {
                username: username.clone(),
                sessions,
            });
            hub.signed_out(&username, sessions, at);
        }
        Event::Disabled { username, at } => {
            // The other nodes of a cluster close theirs as signed out.
            hub.publish(Published::SignedOut {
                username: username.clone(),
                sessions: Sessions::All,
            });
            hub.account_disabled(&username, at);
        }
        Event::AdminDeleteRoom { room, reply } => {
            let _ = reply.send(hub.admin_delete_room(&room));
        }
        Event::AdminRemoveMessage {
            room,
            seq,
            by,
            reply,
        } => {
            let _ = reply.send(hub.admin_remove_message(&room, seq, &by));
        }
        Event::Committed(outcomes) => hub.committed(outcomes),
        Event::Read(done) => hub.read_done(done),
        Event::Cluster(inbound) => hub.cluster_event(inbound),
        Event::Shutdown => hub.shutdown(),
        Event::Fail => {
            close_all(hub);
            // Takes no new connections; the 1001 it asks for comes second, so
            // the connections above keep their 1011.
            hub.shutdown();
        }
        Event::Stop => hub.stop(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use confab_shared::{DisplayName, RoomName};

    use crate::hub::ReadPool;

    use super::*;
    use crate::{
        hub::{
            HubSettings, Reader,
            tests::{Controls, TestStore},
        },
        send_queue::{QueueLimits, SendQueueRx},
        store::{Durability, SqliteStore, Store, Write, Written, writer},
    };

    /// A hub thread over `store`, watched by the returned health.
    fn hub_thread(
        dir: &std::path::Path,
        store: Box<dyn Store>,
    ) -> (HubSender, JoinHandle<()>, JoinHandle<()>, Health) {
        hub_thread_reading(dir, store, |_| Reader::Inline)
    }

    /// Like [`hub_thread`], reading history through what `reader` makes.
    fn hub_thread_reading(
        dir: &std::path::Path,
        store: Box<dyn Store>,
        reader: impl FnOnce(&HubSender) -> Reader,
    ) -> (HubSender, JoinHandle<()>, JoinHandle<()>, Health) {
        let health = Health::new();
        let (hub, events) = HubSender::channel();
        let reader = reader(&hub);
        let write_store = SqliteStore::open(dir, Durability::Process).expect("store");
        let (writer, writer_thread) = writer::spawn_watched(
            write_store,
            64,
            hub.clone().commit_reports(),
            &health,
            std::sync::Arc::default(),
        )
        .expect("writer");
        let state = Hub::new(HubSettings::default(), store, writer, reader).expect("hub");
        let thread = HubSender::spawn(state, events, &health).expect("hub thread");
        (hub, thread, writer_thread, health)
    }

    /// Connects a guest named `name` and returns its queue.
    fn guest(hub: &HubSender, name: &str) -> (ConnId, SendQueueRx) {
        let id = hub.next_conn_id();
        let (queue, rx) = SendQueue::new(QueueLimits {
            frames: 64,
            bytes: 1 << 20,
        });
        let send = |event| assert!(matches!(hub.try_send(event), TrySend::Sent));
        send(Event::Connect {
            id,
            queue,
            identity: Identity::Guest,
        });
        send(Event::Command {
            id,
            cmd: Command::Hello {
                name: Some(DisplayName::parse(name).expect("name")),
            },
        });
        (id, rx)
    }

    /// Waits (boundedly) for the close requested on `rx`; returns its code.
    fn close_code(rx: &SendQueueRx) -> u16 {
        for _ in 0..500 {
            if let Some(frame) = rx.close_frame() {
                return u16::from(frame.code);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("no close requested within 5 s");
    }

    #[test]
    fn a_panicking_hub_is_recorded_closes_its_connections_with_1011_and_ends() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path(), Durability::Process).expect("store");
        let (hub, thread, writer_thread, health) = hub_thread(
            dir.path(),
            // History reads panic: a bug inside the hub's thread.
            Box::new(TestStore {
                inner: store,
                hook: |_: &str| panic!("a bug reading history"),
                controls: Controls::default(),
            }),
        );
        let (_, bystander) = guest(&hub, "ada");
        let (bob, bob_rx) = guest(&hub, "bob");
        // Joining reads the room's history, which panics.
        assert!(matches!(
            hub.try_send(Event::Command {
                id: bob,
                cmd: Command::Join {
                    room: RoomName::parse("general").expect("room"),
                    after: None,
                },
            }),
            TrySend::Sent
        ));
        thread
            .join()
            .expect("the hub thread ends after its panic is caught");
        assert_eq!(health.check(), Err("hub thread stopped\n".to_owned()));
        assert_eq!(close_code(&bystander), close::INTERNAL_ERROR);
        assert_eq!(close_code(&bob_rx), close::INTERNAL_ERROR);
        assert_eq!(
            bob_rx.close_frame().map(|f| f.reason.as_str().to_owned()),
            Some(FAILURE_REASON.to_owned())
        );
        // Nobody is left to tell; the writer let go with the hub and finished cleanly.
        assert!(matches!(hub.try_send(Event::Shutdown), TrySend::Stopped));
        writer_thread.join().expect("the writer finishes");
        assert!(!health.has_stopped(Part::Writer));
    }

    /// A SQLite reader whose reads of #general wait until `gate` opens: a slow disk.
    /// `waiting` counts the reads that reached the gate.
    fn gated(
        inner: SqliteStore,
        gate: Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
        waiting: Arc<AtomicU64>,
    ) -> TestStore<impl FnMut(&str) + Send + 'static> {
        TestStore {
            inner,
            hook: move |room: &str| {
                if room != "general" {
                    return;
                }
                waiting.fetch_add(1, Ordering::SeqCst);
                let (open, opened) = &*gate;
                let mut open = open.lock().expect("gate");
                while !*open {
                    open = opened.wait(open).expect("gate");
                }
            },
            controls: Controls::default(),
        }
    }

    /// The next frame queued on `rx` within `within`.
    fn next_frame(rx: &SendQueueRx, within: Duration) -> Option<ServerMsg> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(frame) = rx.try_recv() {
                return Some(serde_json::from_str(frame.as_str()).expect("server JSON"));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        None
    }

    /// The point of the reader threads: a join whose read is slow holds up nobody else.
    #[test]
    fn a_slow_history_read_does_not_hold_up_the_hub() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path(), Durability::Process).expect("store");
        let gate = Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new()));
        let reader_store = gated(
            SqliteStore::open_reader(dir.path(), Durability::Process).expect("reader"),
            Arc::clone(&gate),
            Arc::new(AtomicU64::new(0)),
        );
        let (hub, thread, _writer_thread, _health) =
            hub_thread_reading(dir.path(), Box::new(store), |hub| {
                let pool =
                    ReadPool::spawn(vec![Box::new(reader_store)], 16, hub.clone().read_reports())
                        .expect("reader threads");
                Reader::Pool(pool)
            });
        let (ada, ada_rx) = guest(&hub, "ada");
        let (bob, bob_rx) = guest(&hub, "bob");
        let send = |id, cmd| {
            assert!(matches!(
                hub.try_send(Event::Command { id, cmd }),
                TrySend::Sent
            ))
        };
        assert!(matches!(
            next_frame(&ada_rx, Duration::from_secs(5)),
            Some(ServerMsg::Welcome { .. })
        ));
        assert!(matches!(
            next_frame(&bob_rx, Duration::from_secs(5)),
            Some(ServerMsg::Welcome { .. })
        ));
        // Bob's read of #general waits at the gate; Ada's ping is answered meanwhile.
        send(
            bob,
            Command::Join {
                room: RoomName::parse("general").expect("room"),
                after: None,
            },
        );
        send(ada, Command::Ping);
        assert_eq!(
            next_frame(&ada_rx, Duration::from_secs(5)),
            Some(ServerMsg::Pong)
        );
        assert_eq!(next_frame(&bob_rx, Duration::from_millis(100)), None);
        *gate.0.lock().expect("gate") = true;
        gate.1.notify_all();
        assert!(matches!(
            next_frame(&bob_rx, Duration::from_secs(5)),
            Some(ServerMsg::Joined { room, .. }) if room == "general"
        ));
        assert!(hub.blocking_send(Event::Stop));
        thread.join().expect("the hub ends normally");
    }

    /// The read queue is bounded: past it a join is refused as unavailable (retry), and
    /// the hub carries on.
    #[test]
    fn a_full_read_queue_refuses_a_join_as_unavailable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path(), Durability::Process).expect("store");
        let gate = Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new()));
        let waiting = Arc::new(AtomicU64::new(0));
        let reader_store = gated(
            SqliteStore::open_reader(dir.path(), Durability::Process).expect("reader"),
            Arc::clone(&gate),
            Arc::clone(&waiting),
        );
        let (hub, thread, _writer_thread, _health) =
            hub_thread_reading(dir.path(), Box::new(store), |hub| {
                let pool =
                    ReadPool::spawn(vec![Box::new(reader_store)], 1, hub.clone().read_reports())
                        .expect("reader threads");
                Reader::Pool(pool)
            });
        let general = || Command::Join {
            room: RoomName::parse("general").expect("room"),
            after: None,
        };
        let mut clients = Vec::new();
        for name in ["bob", "carol", "dave"] {
            let (id, rx) = guest(&hub, name);
            assert!(matches!(
                next_frame(&rx, Duration::from_secs(5)),
                Some(ServerMsg::Welcome { .. })
            ));
            clients.push((id, rx));
        }
        let join = |id| {
            assert!(matches!(
                hub.try_send(Event::Command { id, cmd: general() }),
                TrySend::Sent
            ));
        };
        // Bob's read holds the one reader thread; Carol's fills the queue of one.
        join(clients[0].0);
        for _ in 0..500 {
            if waiting.load(Ordering::SeqCst) == 1 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(
            waiting.load(Ordering::SeqCst),
            1,
            "bob's read is at the gate"
        );
        join(clients[1].0);
        join(clients[2].0);
        assert!(matches!(
            next_frame(&clients[2].1, Duration::from_secs(5)),
            Some(ServerMsg::Error { code: confab_shared::ErrorCode::Unavailable, room: Some(room), .. }) if room == "general"
        ));
        *gate.0.lock().expect("gate") = true;
        gate.1.notify_all();
        for (_, rx) in &clients[..2] {
            assert!(matches!(
                next_frame(rx, Duration::from_secs(5)),
                Some(ServerMsg::Joined { .. })
            ));
        }
        assert!(hub.blocking_send(Event::Stop));
        thread.join().expect("the hub ends normally");
    }

    #[test]
    fn on_fail_the_hub_closes_everyone_with_1011_and_refuses_newcomers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path(), Durability::Process).expect("store");
        let (hub, thread, _writer_thread, health) = hub_thread(dir.path(), Box::new(store));
        let (_, ada) = guest(&hub, "ada");
        assert!(matches!(hub.try_send(Event::Fail), TrySend::Sent));
        assert_eq!(close_code(&ada), close::INTERNAL_ERROR);
        let (_, late) = guest(&hub, "late");
        assert_eq!(close_code(&late), close::GOING_AWAY);
        assert!(hub.blocking_send(Event::Stop));
        thread.join().expect("the hub ends normally");
        assert_eq!(health.check(), Ok(()), "Fail reports another part's death");
    }

    fn outcome(client_id: &str) -> Outcome<Option<Waiter>> {
        Outcome {
            tag: Some(Waiter {
                conn: 1,
                client_id: client_id.into(),
            }),
            write: Write::DeleteRoom {
                room: "general".into(),
            },
            result: Ok(Written::Done),
        }
    }

    /// The client ids of a committed batch.
    fn client_ids(event: Option<Event>) -> Vec<String> {
        match event {
            Some(Event::Committed(outcomes)) => outcomes
                .into_iter()
                .filter_map(|o| o.tag.map(|w| w.client_id))
                .collect(),
            other => panic!("expected a committed batch, got {other:?}"),
        }
    }

    #[test]
    fn each_batch_reaches_the_hub_whole_and_in_order_until_the_hub_stops() {
        let (hub, mut events) = HubSender::channel();
        let mut report = hub.commit_reports();
        // From a thread of its own, like the store writer's.
        let mut report = std::thread::spawn(move || {
            report(vec![outcome("a"), outcome("b")]);
            report(vec![outcome("c")]);
            report
        })
        .join()
        .expect("the reporting thread");
        assert_eq!(client_ids(events.blocking_recv()), ["a", "b"]);
        assert_eq!(client_ids(events.blocking_recv()), ["c"]);
        // The hub is gone: the report is dropped, and the writer carries on.
        drop(events);
        report(vec![outcome("d")]);
    }
}
