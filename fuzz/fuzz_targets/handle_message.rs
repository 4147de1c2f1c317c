//! Client frames applied to a real [`Hub`] over a real SQLite store, as the server's
//! hub thread applies them: decode → validate → `Hub::handle` (or `Hub::reject`).
//!
//! The input is split on `\n` into frames (at most [`MAX_FRAMES`]). Each frame is sent
//! by two connections connected for this input: `a`, a guest that has not said hello (so
//! `hello` and everything refused before it are reached), and `b`, the account `fuzz`,
//! which the harness has already greeted and put in `general` (so one-frame inputs
//! reach sends, joins, history, typing and room management). The account `other`
//! exists too, so invitations and direct conversations can succeed. After the frames, writes are committed and acknowledged, both
//! send queues are drained and both connections disconnect.
//!
//! Besides "never panics" (debug assertions included), it checks that every frame the
//! hub queues is JSON a client can decode, and that no connection outlives its
//! disconnect.
//!
//! The hub and its store live for many inputs (opening SQLite and starting the writer
//! thread for every input would take longer than the input itself); they are rebuilt
//! every [`REBUILD_EVERY`] inputs so the rooms, members and history that inputs leave
//! behind stay small. A crash found this way reproduces from its input alone unless it
//! depends on what earlier inputs left (rooms, members, messages).
#![no_main]

use std::{
    cell::RefCell,
    sync::mpsc::{Receiver, channel},
    thread::JoinHandle,
    time::Duration,
};

use confab_server::{
    hub::{Command, ConnId, Hub, HubSettings, Identity, Reader, Waiter, Writer},
    protocol,
    send_queue::{QueueLimits, SendQueue, SendQueueRx},
    store::{
        Durability, SqliteStore, Write,
        writer::{self, Outcome},
    },
};
use confab_shared::{DEFAULT_ROOM, RoomName, ServerMsg};
use libfuzzer_sys::fuzz_target;
use tempfile::TempDir;

/// Frames read from one input; the rest is ignored.
const MAX_FRAMES: usize = 64;
/// Inputs applied to one hub before it is replaced by a fresh one.
const REBUILD_EVERY: u64 = 5_000;
/// Outgoing queue of each connection. Drained after every frame, so it never fills: a
/// slow consumer is not what this target is about.
const QUEUE: QueueLimits = QueueLimits {
    frames: 1024,
    bytes: 1 << 20,
};
/// Tag of the write that marks "everything submitted before me is committed".
const BARRIER: ConnId = ConnId::MAX;

type Reports = Receiver<Vec<Outcome<Option<Waiter>>>>;

struct Harness {
    hub: Hub,
    /// The harness's own handle on the writer, for barriers.
    writer: Writer,
    reports: Reports,
    writer_thread: JoinHandle<()>,
    next_id: ConnId,
    inputs: u64,
    dir: TempDir,
}

impl Harness {
    fn new() -> Harness {
        let dir = tempfile::tempdir().expect("temporary data dir");
        let open = || SqliteStore::open(dir.path(), Durability::Process).expect("open the store");
        let (tx, reports) = channel();
        let (writer, writer_thread) = writer::spawn(open(), 1024, move |outcomes| {
            let _ = tx.send(outcomes);
        })
        .expect("start the writer");
        let hub = Hub::new(
            HubSettings {
                // Room-list changes flushed at every tick rather than once a second.
                room_list_interval: Duration::ZERO,
                ..HubSettings::default()
            },
            Box::new(open()),
            writer.clone(),
            // Reads answered at once, on this thread: each input stays deterministic.
            Reader::Inline,
        )
        .expect("hub");
        Harness {
            hub,
            writer,
            reports,
            writer_thread,
            next_id: 1,
            inputs: 0,
            dir,
        }
    }

    /// Lets go of the store: the writer commits what is queued and ends, then the
    /// files are removed.
    fn close(self) {
        let Harness {
            hub,
            writer,
            writer_thread,
            dir,
            ..
        } = self;
        drop(hub);
        drop(writer);
        writer_thread
            .join()
            .expect("the writer thread ends cleanly");
        drop(dir);
    }

    fn connect(&mut self, identity: Identity) -> (ConnId, SendQueueRx) {
        let id = self.next_id;
        self.next_id += 1;
        let (queue, rx) = SendQueue::new(QUEUE);
        self.hub.connect(id, queue, identity);
        (id, rx)
    }

    /// Applies the commits reported so far, without waiting.
    fn apply_reports(&mut self) {
        while let Ok(outcomes) = self.reports.try_recv() {
            self.hub.committed(outcomes);
        }
    }

    /// Waits until everything submitted so far is committed, applying the reports.
    fn flush(&mut self) {
        let barrier = Some(Waiter {
            conn: BARRIER,
            client_id: "barrier".into(),
        });
        let noop = Write::RenameRoom {
            room: "no-such-room".into(),
            title: "noop".into(),
        };
        self.writer
            .try_submit(noop, barrier)
            .expect("the writer queue has room: it is flushed after every input");
        loop {
            let outcomes = self
                .reports
                .recv_timeout(Duration::from_secs(30))
                .expect("the writer reports");
            let (mine, rest): (Vec<_>, Vec<_>) = outcomes
                .into_iter()
                .partition(|o| o.tag.as_ref().is_some_and(|w| w.conn == BARRIER));
            self.hub.committed(rest);
            if !mine.is_empty() {
                return;
            }
        }
    }

    /// One frame of client text from connection `id`, as the connection's reader and the
    /// hub thread handle it. Returns whether it became a command.
    fn frame(&mut self, id: ConnId, text: &str) -> bool {
        match protocol::parse(text) {
            Ok(cmd) => {
                self.hub.apply(id, cmd);
                true
            }
            Err(reply) => {
                self.hub.reject(id, &reply);
                false
            }
        }
    }

    fn run(&mut self, data: &[u8]) {
        self.apply_reports();
        let (a, mut a_rx) = self.connect(Identity::Guest);
        let (b, mut b_rx) = self.connect(Identity::User {
            username: "fuzz".into(),
            display_name: "Fuzz".into(),
            admin: false,
            session: [0; 32],
            checked_at: std::time::Instant::now(),
        });
        self.hub.user_added("other".into(), "Other".into());
        let general = RoomName::parse(DEFAULT_ROOM).expect("a valid room");
        self.hub.apply(b, Command::Hello { name: None });
        // Resumed from the end: live at once, without reading history for every input
        // (a join in the input still does).
        self.hub.apply(
            b,
            Command::Join {
                room: general,
                after: Some(u64::MAX),
            },
        );
        drain(&mut b_rx);

        let mut commands = 0;
        for frame in data.split(|&byte| byte == b'\n').take(MAX_FRAMES) {
            // The server only ever sees valid UTF-8 here (tungstenite checks it): keep
            // the rest of the input useful rather than dropping it.
            let text = String::from_utf8_lossy(frame);
            for id in [a, b] {
                commands += usize::from(self.frame(id, &text));
            }
            // Room-list changes go out on the hub's clock: every frame, here.
            self.hub.tick(std::time::Instant::now());
            drain(&mut a_rx);
            drain(&mut b_rx);
        }
        if commands > 0 {
            self.flush();
        }
        drain(&mut a_rx);
        drain(&mut b_rx);

        self.hub.disconnect(a);
        self.hub.disconnect(b);
        assert_eq!(
            self.hub.connection_count(),
            0,
            "a connection outlived its disconnect"
        );
    }
}

/// Takes every queued frame, checking each is a server message a client can decode.
fn drain(rx: &mut SendQueueRx) {
    while let Some(frame) = rx.try_recv() {
        if let Err(e) = serde_json::from_str::<ServerMsg>(frame.as_str()) {
            panic!("the hub queued a frame clients cannot decode ({e}): {frame}");
        }
    }
}

thread_local! {
    static HARNESS: RefCell<Option<Harness>> = const { RefCell::new(None) };
}

fuzz_target!(|data: &[u8]| {
    HARNESS.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|h| h.inputs >= REBUILD_EVERY) {
            if let Some(old) = slot.take() {
                old.close();
            }
            *slot = Some(Harness::new());
        }
        let harness = slot.as_mut().expect("just built");
        harness.inputs += 1;
        harness.run(data);
    });
});
