//! Tests of the hub, in one file per hub file whose rule they exercise, so a new rule's
//! tests have an obvious home; this one holds the [`Fixture`] and helpers they share.

mod access;
mod changes;
mod cluster;
mod connections;
mod delivery;
mod membership;
mod messages;
mod reads;
mod rooms;
mod search;

use std::{
    collections::VecDeque,
    path::Path,
    sync::{Arc, Mutex, mpsc as std_mpsc},
    time::Duration,
};

use confab_shared::{ChatMessage, PresenceEvent, RoomInfo, RoomKind, close};

use super::*;
use crate::{
    send_queue::{QueueLimits, SendQueueRx},
    store::{Durability, SqliteStore, Write, writer, writer::Outcome},
};

type Reports = std_mpsc::Receiver<Vec<Outcome<Option<Waiter>>>>;

/// A hub over a real store in a temporary directory, with the writer's reports
/// applied by hand so each test decides when commits land.
struct Fixture {
    hub: Hub,
    reports: Reports,
    writer: Writer,
    dir: tempfile::TempDir,
    /// Reads waiting for [`Fixture::answer_reads`], when made by [`Fixture::held`].
    held: Option<Arc<Mutex<VecDeque<Job>>>>,
}

const BARRIER: ConnId = ConnId::MAX;

impl Fixture {
    fn new() -> Self {
        Self::with(
            HubSettings::default(),
            tempfile::tempdir().expect("tempdir"),
        )
    }

    /// A hub whose history reads wait until [`Fixture::answer_reads`], as on the reader
    /// threads, so a test can act while they are in flight.
    fn held(settings: HubSettings) -> Self {
        let queue = Arc::new(Mutex::new(VecDeque::new()));
        let mut f = Self::with_reader(
            settings,
            tempfile::tempdir().expect("tempdir"),
            Reader::Held(Arc::clone(&queue)),
        );
        f.held = Some(queue);
        f
    }

    /// Answers every read in flight, oldest first, from a connection of its own (as a
    /// reader thread would); returns how many there were.
    fn answer_reads(&mut self) -> usize {
        let queue = self.held.as_ref().expect("a held fixture");
        let jobs: Vec<Job> = queue.lock().expect("queue").drain(..).collect();
        let mut store =
            SqliteStore::open_reader(self.dir.path(), Durability::Process).expect("reader");
        let n = jobs.len();
        for job in jobs {
            self.hub.read_done(job.run(&mut store));
        }
        n
    }

    fn with(settings: HubSettings, dir: tempfile::TempDir) -> Self {
        Self::with_reader(settings, dir, Reader::Inline)
    }

    fn with_reader(settings: HubSettings, dir: tempfile::TempDir, reader: Reader) -> Self {
        let open = |d: &Path| SqliteStore::open(d, Durability::Process).expect("store");
        let (tx, reports) = std_mpsc::channel();
        let (writer, _thread) = writer::spawn(open(dir.path()), 1024, move |o| {
            let _ = tx.send(o);
        })
        .expect("writer");
        let hub =
            Hub::new(settings, Box::new(open(dir.path())), writer.clone(), reader).expect("hub");
        Self {
            hub,
            reports,
            writer,
            dir,
            held: None,
        }
    }

    /// A hub whose writer's store obeys [`Controls`], with a queue of `capacity` writes.
    fn controlled(capacity: usize) -> (Self, Controls) {
        let dir = tempfile::tempdir().expect("tempdir");
        let open = |d: &Path| SqliteStore::open(d, Durability::Process).expect("store");
        let controls = Controls::default();
        let store = TestStore {
            inner: open(dir.path()),
            hook: |_: &str| {},
            controls: controls.clone(),
        };
        let (tx, reports) = std_mpsc::channel();
        let (writer, _thread) = writer::spawn(store, capacity, move |o| {
            let _ = tx.send(o);
        })
        .expect("writer");
        let hub = Hub::new(
            HubSettings::default(),
            Box::new(open(dir.path())),
            writer.clone(),
            Reader::Inline,
        )
        .expect("hub");
        let f = Self {
            hub,
            reports,
            writer,
            dir,
            held: None,
        };
        (f, controls)
    }

    /// A new hub over the same data directory, as after a restart.
    fn restart(self) -> Self {
        let Fixture { hub, dir, .. } = self;
        drop(hub);
        Self::with(HubSettings::default(), dir)
    }

    /// Applies every commit of what was submitted so far.
    fn flush(&mut self) {
        let barrier = Some(Waiter {
            conn: BARRIER,
            client_id: "barrier".into(),
        });
        let noop = Write::RenameRoom {
            room: "no-such-room".into(),
            title: "noop".into(),
        };
        // However full the queue: a test may have filled it.
        self.writer
            .submit_access(noop, barrier)
            .expect("writer queue");
        loop {
            let batch = self
                .reports
                .recv_timeout(Duration::from_secs(10))
                .expect("writer reports");
            let (mine, rest): (Vec<_>, Vec<_>) = batch
                .into_iter()
                .partition(|o| o.tag.as_ref().is_some_and(|w| w.conn == BARRIER));
            self.hub.committed(rest);
            if !mine.is_empty() {
                return;
            }
        }
    }

    /// A guest's connection (it names itself in hello).
    fn connect(&mut self, id: ConnId, capacity: usize) -> Client {
        self.connect_with(id, capacity, Identity::Guest)
    }

    fn connect_with(&mut self, id: ConnId, capacity: usize, identity: Identity) -> Client {
        let (queue, rx) = SendQueue::new(QueueLimits {
            frames: capacity,
            bytes: 1 << 20,
        });
        self.hub.connect(id, queue, identity);
        Client { id, rx }
    }

    /// A connection of the account `username` (created if new), displayed as
    /// `username` capitalised, after hello.
    fn signed_in(&mut self, id: ConnId, username: &str) -> Client {
        let display = capitalised(username);
        self.hub.user_added(username.to_owned(), display.clone());
        let mut c = self.connect_with(id, 8192, user(username, &display, id));
        self.hub.apply(id, hello(username));
        c.drain();
        c
    }

    /// A signed-in connection (see [`Fixture::signed_in`]) that joined `general`;
    /// returns the client with its queue empty.
    fn member(&mut self, id: ConnId, name: &str) -> Client {
        // Roomy enough for the tests that send a few thousand messages unread.
        let mut c = self.signed_in(id, name);
        self.hub.apply(id, join("general", None));
        c.drain();
        c
    }

    /// Commits what was submitted, then sends the room changes collected, as the hub
    /// thread does once the interval is over.
    fn settle_rooms(&mut self) {
        self.flush();
        self.hub.flush_room_changes(Instant::now());
    }

    /// Sends and commits.
    fn say(&mut self, c: &Client, room_name: &str, body: &str, client_id: &str) {
        self.hub.apply(c.id, send(room_name, body, client_id));
        self.flush();
    }

    /// Has `owner` create the private room titled `title`; returns its id.
    fn create_private(&mut self, owner: &mut Client, title: &str) -> String {
        self.hub.apply(
            owner.id,
            Command::CreateRoom {
                room: room(title),
                private: true,
            },
        );
        // The creator is answered once the room is stored.
        self.flush();
        created_room(owner)
    }
}

fn capitalised(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// An account identity whose sign-in is told apart by `conn`.
fn user(username: &str, display_name: &str, conn: ConnId) -> Identity {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&conn.to_le_bytes());
    Identity::User {
        username: username.to_owned(),
        display_name: display_name.to_owned(),
        admin: false,
        session: key,
        checked_at: Instant::now(),
    }
}

fn usernames(people: &[Person]) -> Vec<&str> {
    people.iter().map(|p| p.user.as_str()).collect()
}

fn create(name: &str) -> Command {
    Command::CreateRoom {
        room: room(name),
        private: false,
    }
}

struct Client {
    id: ConnId,
    rx: SendQueueRx,
}

impl Client {
    fn drain(&mut self) -> Vec<ServerMsg> {
        let mut out = Vec::new();
        while let Some(frame) = self.rx.try_recv() {
            out.push(serde_json::from_str(frame.as_str()).expect("server JSON"));
        }
        out
    }

    fn close_code(&self) -> Option<u16> {
        self.rx.close_frame().map(|f| u16::from(f.code))
    }
}

fn hello(name: &str) -> Command {
    Command::Hello {
        name: Some(DisplayName::parse(name).expect("name")),
    }
}

fn room(name: &str) -> RoomName {
    RoomName::parse(name).expect("room")
}

fn join(name: &str, after: Option<u64>) -> Command {
    Command::Join {
        room: room(name),
        after,
    }
}

fn send(room_name: &str, body: &str, client_id: &str) -> Command {
    Command::Send {
        room: room(room_name),
        body: Some(Body::parse(body).expect("body")),
        client_id: ClientId::parse(client_id).expect("client id"),
        reply_to: None,
        files: Vec::new(),
    }
}

fn error_code(msgs: &[ServerMsg]) -> Option<ErrorCode> {
    msgs.iter().find_map(|m| match m {
        ServerMsg::Error { code, .. } => Some(*code),
        _ => None,
    })
}

fn bodies(msgs: &[ServerMsg]) -> Vec<&str> {
    msgs.iter()
        .filter_map(|m| match m {
            ServerMsg::Message(m) => Some(m.body.as_str()),
            _ => None,
        })
        .collect()
}

fn seqs(msgs: &[ChatMessage]) -> Vec<u64> {
    msgs.iter().map(|m| m.seq).collect()
}

/// The id of the private room `c`'s own create_room made, from its `rooms` reply.
fn created_room(c: &mut Client) -> String {
    c.drain()
        .into_iter()
        .find_map(|m| match m {
            ServerMsg::RoomsChanged {
                created: Some(id), ..
            } => Some(id),
            _ => None,
        })
        .expect("a rooms reply naming the created room")
}

fn room_names(msgs: &[ServerMsg]) -> Option<Vec<String>> {
    msgs.iter().rev().find_map(|m| match m {
        ServerMsg::Rooms { rooms, .. } => Some(rooms.iter().map(|r| r.name.clone()).collect()),
        _ => None,
    })
}

/// The room entries and removed ids of every `rooms_changed` in `msgs`, in order.
fn changes(msgs: &[ServerMsg]) -> (Vec<RoomInfo>, Vec<String>) {
    let mut out = (Vec::new(), Vec::new());
    for m in msgs {
        if let ServerMsg::RoomsChanged { rooms, removed, .. } = m {
            out.0.extend(rooms.iter().cloned());
            out.1.extend(removed.iter().cloned());
        }
    }
    out
}

/// The ids `rooms_changed` frames in `msgs` list as changed (not removed).
fn changed_names(msgs: &[ServerMsg]) -> Vec<String> {
    changes(msgs).0.into_iter().map(|r| r.name).collect()
}

/// Every request about `id` that a non-member could make, and the error frames they get.
fn probe(f: &mut Fixture, c: &mut Client, id: &str) -> Vec<ServerMsg> {
    let r = || room(id);
    let requests = [
        join(id, None),
        join(id, Some(0)),
        send(id, "let me in", "p1"),
        Command::FetchHistory {
            room: r(),
            before: 100,
            limit: 10,
        },
        Command::FetchAround { room: r(), seq: 1 },
        Command::Typing(r()),
        Command::Leave(r()),
        Command::Invite {
            room: r(),
            user: Username::parse("bob").expect("username"),
        },
        Command::Remove {
            room: r(),
            user: Username::parse("ada").expect("username"),
        },
        Command::RenameRoom {
            room: r(),
            title: room("mine"),
        },
        Command::DeleteRoom(r()),
        Command::Change {
            room: r(),
            seq: 1,
            client_id: ClientId::parse("p2").expect("client id"),
            change: MessageChange::Edit(Body::parse("mine now").expect("body")),
        },
        Command::Change {
            room: r(),
            seq: 1,
            client_id: ClientId::parse("p3").expect("client id"),
            change: MessageChange::React(Emoji::parse("\u{1F44D}").expect("emoji")),
        },
        Command::MarkRead { room: r(), seq: 1 },
        Command::Mute {
            room: r(),
            muted: true,
        },
    ];
    for request in requests {
        f.hub.apply(c.id, request);
    }
    c.drain()
}

fn bodies_of(msgs: &[ChatMessage]) -> Vec<&str> {
    msgs.iter().map(|m| m.body.as_str()).collect()
}

/// What a test can do to the writer's store of [`Fixture::controlled`].
#[derive(Clone, Default)]
pub(super) struct Controls {
    /// Held by the test: the writer waits in its next commit, and its queue fills.
    gate: std::sync::Arc<std::sync::Mutex<()>>,
    /// Every write of a member's removal fails, as on a full disk.
    fail_removals: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Every write of a room's creation fails, as on a full disk.
    fail_creations: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// A SQLite store for tests: its history reads (`after`, `before`) first call `hook` with
/// the room (a read that panics or waits, as a bug or a slow disk would make it), and its
/// writes obey [`Controls`] (wait at the gate, fail removals). Everything else is
/// SQLite's own.
pub(super) struct TestStore<F> {
    pub(super) inner: SqliteStore,
    pub(super) hook: F,
    pub(super) controls: Controls,
}

impl<F: FnMut(&str) + Send + 'static> crate::store::Store for TestStore<F> {
    fn rooms(&mut self) -> Result<Vec<crate::store::StoredRoom>, crate::store::StoreError> {
        self.inner.rooms()
    }
    fn people(&mut self) -> Result<Vec<crate::store::StoredPerson>, crate::store::StoreError> {
        self.inner.people()
    }
    fn person(
        &mut self,
        username: &str,
    ) -> Result<Option<crate::store::StoredPerson>, crate::store::StoreError> {
        self.inner.person(username)
    }
    fn mutes(&mut self) -> Result<Vec<(String, String)>, crate::store::StoreError> {
        self.inner.mutes()
    }
    fn epoch(&mut self) -> Result<String, crate::store::StoreError> {
        self.inner.epoch()
    }
    fn unread(
        &mut self,
        user: &str,
        room: &str,
        until: u64,
    ) -> Result<crate::store::Unread, crate::store::StoreError> {
        self.inner.unread(user, room, until)
    }
    fn apply(
        &mut self,
        writes: &[Write],
    ) -> Result<Vec<crate::store::Written>, crate::store::StoreError> {
        let _open = self.controls.gate.lock();
        let fail = self
            .controls
            .fail_removals
            .load(std::sync::atomic::Ordering::SeqCst);
        let fail_creation = self
            .controls
            .fail_creations
            .load(std::sync::atomic::Ordering::SeqCst);
        if fail
            && writes
                .iter()
                .any(|w| matches!(w, Write::RemoveMember { .. }))
            || fail_creation && writes.iter().any(|w| matches!(w, Write::CreateRoom { .. }))
        {
            return Err(crate::store::StoreError::Sqlite(
                rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
                    Some("database or disk is full".into()),
                ),
            ));
        }
        self.inner.apply(writes)
    }
    fn after(
        &mut self,
        room: &str,
        after: u64,
        until: u64,
        limit: usize,
    ) -> Result<crate::store::Page, crate::store::StoreError> {
        (self.hook)(room);
        self.inner.after(room, after, until, limit)
    }
    fn before(
        &mut self,
        room: &str,
        before: u64,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, crate::store::StoreError> {
        (self.hook)(room);
        self.inner.before(room, before, limit)
    }
    fn around(
        &mut self,
        room: &str,
        seq: u64,
        until: u64,
        side: usize,
    ) -> Result<crate::store::Around, crate::store::StoreError> {
        (self.hook)(room);
        self.inner.around(room, seq, until, side)
    }
    fn search(
        &mut self,
        request: &crate::store::SearchRequest,
    ) -> Result<crate::store::SearchPage, crate::store::StoreError> {
        (self.hook)("search");
        self.inner.search(request)
    }
}
