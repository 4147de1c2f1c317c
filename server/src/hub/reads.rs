//! Reading history off the hub's thread.
//!
//! A join, a resume page and a scroll back each read the store. On the hub's own thread
//! a reconnect storm (thousands of resumes after a restart) held up every room behind
//! those reads, so the hub only asks: a [`Read`] goes into a bounded queue served by a
//! small pool of threads, each with its own read-only connection (WAL lets them read
//! while the writer commits), and the answer comes back through the hub's inbox as
//! [`Event::Read`](super::Event::Read).
//!
//! What makes this safe is in the hub, not here. A join's read covers messages up to the
//! room's `last_seq` when it was asked (`until`): every one of those was committed before
//! the hub heard of it, so a read that starts after the request sees them all (each read
//! is its own transaction: a reader keeps no statement open between reads, which would
//! pin an older snapshot of the log). Messages
//! delivered live while the read is in flight are kept for that connection in the room's
//! [`Pending`] read instead of being sent, and follow the reply, without those the reply
//! already holds ([`Hub::finish_join`](super::Hub)). The buffer is bounded: a connection
//! whose buffer fills is closed as a slow consumer, like one whose queue fills.
//!
//! Tests use [`Reader::Inline`] (the hub's own store, answered within the same request)
//! or, to look at what happens during a read, a held queue they answer by hand.

use std::{
    panic::{AssertUnwindSafe, catch_unwind},
    sync::{Arc, Mutex, PoisonError, mpsc},
};

use confab_shared::{ErrorCode, RoomName, limits};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::{
    ConnId, Hub, Refusal, Room,
    search::{Search, SearchDone},
};
use crate::{
    health::panic_message,
    metrics::ReadLabel,
    store::{Page, Store, StoreError, Unread},
};

/// Tells one read from a later one of the same connection and room: an answer that is
/// no longer awaited (the connection joined again, left or went) is dropped.
pub type Ticket = u64;

/// What to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadKind {
    /// A fresh join: the newest `limit` messages up to `until`.
    Recent { limit: usize },
    /// A resume page: messages after `after` up to `until`, at most `limit`.
    After { after: u64, limit: usize },
    /// Scrolling back: the newest `limit` messages before `before` (and up to `until`).
    Before { before: u64, limit: usize },
    /// Opening the room far back (a search result): the messages around `seq`, up to
    /// `until`.
    Around { seq: u64 },
}

impl ReadKind {
    /// Whether the connection is joining with this read (and its live messages wait).
    /// The others read what the connection was sent live already, or could have been:
    /// their answers need no place among the live messages.
    pub fn joins(self) -> bool {
        matches!(self, ReadKind::Recent { .. } | ReadKind::After { .. })
    }
}

/// One read the hub asked for.
#[derive(Debug, Clone)]
pub struct Read {
    pub ticket: Ticket,
    pub conn: ConnId,
    pub room: RoomName,
    /// The room's `last_seq` when the read was asked: the read sees nothing after it,
    /// so it never shows a message before its commit report reached the hub.
    pub until: u64,
    pub kind: ReadKind,
    /// For a join of an account: whose read marker and unread counts to read along.
    pub reader: Option<String>,
}

/// What a read found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    pub page: Page,
    /// The joining person's read marker and unread counts, as of `until`.
    pub unread: Option<Unread>,
    /// For [`ReadKind::Around`]: whether the room has messages before and after the
    /// page.
    pub older: bool,
    pub newer: bool,
}

impl Read {
    /// Reads from `store`.
    pub fn run(self, store: &mut dyn Store) -> ReadDone {
        let result = self.read(store);
        // Encoded here rather than on the hub's thread: a reconnect wave's pages are
        // hundreds of megabytes of JSON, and the hub only splices them into a reply.
        let encoded = match &result {
            Ok(found) if self.kind.joins() => serde_json::to_string(&found.page.messages).ok(),
            _ => None,
        };
        ReadDone {
            read: self,
            result: result.map_err(|e| e.to_string()),
            encoded,
        }
    }

    fn read(&self, store: &mut dyn Store) -> Result<Found, StoreError> {
        let room = self.room.as_str();
        let whole = |messages| Page {
            messages,
            through: self.until,
        };
        let page = match self.kind {
            ReadKind::Recent { limit } => {
                whole(store.before(room, self.until.saturating_add(1), limit)?)
            }
            ReadKind::After { after, limit } => store.after(room, after, self.until, limit)?,
            ReadKind::Before { before, limit } => {
                whole(store.before(room, before.min(self.until.saturating_add(1)), limit)?)
            }
            ReadKind::Around { seq } => {
                let around = store.around(room, seq, self.until, limits::AROUND_PAGE)?;
                return Ok(Found {
                    page: whole(around.messages),
                    unread: None,
                    older: around.older,
                    newer: around.newer,
                });
            }
        };
        let unread = match &self.reader {
            Some(user) if self.kind.joins() => Some(store.unread(user, room, self.until)?),
            _ => None,
        };
        Ok(Found {
            page,
            unread,
            ..Found::default()
        })
    }

    /// See [`Job::run_caught`].
    fn run_caught(self, store: &mut dyn Store) -> ReadDone {
        let header = self.clone();
        catch_unwind(AssertUnwindSafe(|| self.run(store))).unwrap_or_else(|panic| ReadDone {
            read: header,
            result: Err(format!(
                "the read panicked: {}",
                panic_message(panic.as_ref())
            )),
            encoded: None,
        })
    }
}

/// A read's answer, on its way back to the hub.
#[derive(Debug)]
pub struct ReadDone {
    pub read: Read,
    pub result: Result<Found, String>,
    /// The messages of a join's read as a JSON array, made on the reader thread.
    pub encoded: Option<String>,
}

/// What the reader threads do: read a room's history, or search.
#[derive(Debug)]
pub enum Job {
    Read(Read),
    /// Boxed: a search is the larger and the rarer.
    Search(Box<Search>),
    /// What a node of a cluster reads to catch up (see `cluster.rs`).
    Look(super::Look),
}

impl From<Read> for Job {
    fn from(read: Read) -> Self {
        Job::Read(read)
    }
}

/// A [`Job`]'s answer, on its way back to the hub.
#[derive(Debug)]
pub enum Done {
    Read(ReadDone),
    /// Boxed: events travel through the hub's queue by value.
    Search(Box<SearchDone>),
    Look(Box<super::LookDone>),
}

impl Job {
    /// Does the job with `store`.
    pub fn run(self, store: &mut dyn Store) -> Done {
        match self {
            Job::Read(read) => Done::Read(read.run(store)),
            Job::Search(search) => Done::Search(Box::new(search.run(store))),
            Job::Look(look) => Done::Look(Box::new(look.run(store))),
        }
    }

    /// Does the job on a reader thread: a panic in the store is caught and answered as a
    /// failure, since one bad read must not take a reader thread (and everyone's
    /// history) with it. On the hub's own thread ([`Reader::Inline`]) a panic stays the
    /// hub's.
    fn run_caught(self, store: &mut dyn Store) -> Done {
        match self {
            Job::Read(read) => Done::Read(read.run_caught(store)),
            Job::Look(look) => {
                let header = look.clone();
                let done =
                    catch_unwind(AssertUnwindSafe(|| look.run(store))).unwrap_or_else(|panic| {
                        super::LookDone {
                            look: header,
                            result: Err(format!(
                                "the read panicked: {}",
                                panic_message(panic.as_ref())
                            )),
                        }
                    });
                Done::Look(Box::new(done))
            }
            Job::Search(search) => {
                let header = search.clone();
                catch_unwind(AssertUnwindSafe(|| search.run(store))).map_or_else(
                    |panic| {
                        Done::Search(Box::new(SearchDone {
                            search: *header,
                            result: Err(format!(
                                "the search panicked: {}",
                                panic_message(panic.as_ref())
                            )),
                        }))
                    },
                    |done| Done::Search(Box::new(done)),
                )
            }
        }
    }
}

/// A join waiting for its read: the live messages of the room that arrive meanwhile.
#[derive(Debug)]
pub(super) struct Pending {
    pub ticket: Ticket,
    /// Messages up to here are the read's; those after it are buffered.
    pub until: u64,
    /// `(seq, frame)` of each message delivered live during the read, in order.
    pub buffer: Vec<(u64, Utf8Bytes)>,
}

/// Where the hub's reads go.
pub enum Reader {
    /// Read on the hub's thread with its own store, answered before the request's turn
    /// ends (through the same pending-read path): for tests that only care about
    /// replies.
    Inline,
    /// The reader threads (see [`ReadPool`]).
    Pool(ReadPool),
    /// Reads wait here until a test answers them: to look at what happens meanwhile.
    #[cfg(test)]
    Held(Arc<Mutex<std::collections::VecDeque<Job>>>),
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Reader::Inline => "Reader::Inline",
            Reader::Pool(_) => "Reader::Pool",
            #[cfg(test)]
            Reader::Held(_) => "Reader::Held",
        })
    }
}

/// The reader threads and their bounded queue.
#[derive(Debug)]
pub struct ReadPool {
    queue: mpsc::SyncSender<Job>,
}

/// The read queue is full: the server is behind on reads; the client retries.
#[derive(Debug)]
pub struct Busy;

impl ReadPool {
    /// One thread per store, all taking reads from one queue of `capacity`, each answer
    /// handed to `report`. The threads end once the pool is dropped and the queue is
    /// empty.
    pub fn spawn(
        stores: Vec<Box<dyn Store>>,
        capacity: usize,
        report: impl Fn(Done) + Clone + Send + 'static,
    ) -> std::io::Result<Self> {
        let (queue, reads) = mpsc::sync_channel::<Job>(capacity.max(1));
        let reads = Arc::new(Mutex::new(reads));
        for (i, mut store) in stores.into_iter().enumerate() {
            let reads = Arc::clone(&reads);
            let report = report.clone();
            std::thread::Builder::new()
                .name(format!("confab-read-{i}"))
                .spawn(move || {
                    loop {
                        // The lock is held only to take one read; reading happens outside it.
                        let next = reads.lock().unwrap_or_else(PoisonError::into_inner).recv();
                        let Ok(job) = next else { break };
                        report(job.run_caught(store.as_mut()));
                    }
                })?;
        }
        Ok(Self { queue })
    }

    /// Queues a job without waiting; refused when the queue is full.
    pub fn try_submit(&self, job: impl Into<Job>) -> Result<(), Busy> {
        self.queue.try_send(job.into()).map_err(|_| Busy)
    }
}

impl Hub {
    /// Asks for a read. For a join it also starts keeping the room's live messages for
    /// the connection, replacing any join read of the same room still in flight (whose
    /// answer is then dropped: the newer request covers at least as much). Refused as
    /// unavailable when the read queue is full; nothing changes then.
    pub(super) fn request_read(
        &mut self,
        id: ConnId,
        room: &RoomName,
        until: u64,
        kind: ReadKind,
    ) -> Result<(), Refusal> {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        let reader = self
            .conns
            .get(&id)
            .filter(|c| !c.is_guest())
            .and_then(|c| c.username())
            .map(str::to_owned);
        let read = Read {
            ticket,
            conn: id,
            room: room.clone(),
            until,
            kind,
            reader,
        };
        self.dispatch(Job::Read(read)).map_err(|Busy| {
            Refusal::about(
                room,
                ErrorCode::Unavailable,
                "the server is busy reading history; retry shortly".to_owned(),
            )
        })?;
        self.settings.metrics.history_read(match kind {
            ReadKind::Recent { .. } => ReadLabel::Join,
            ReadKind::After { .. } => ReadLabel::Resume,
            ReadKind::Before { .. } => ReadLabel::Before,
            ReadKind::Around { .. } => ReadLabel::Around,
        });
        if kind.joins() {
            if let Some(r) = self.rooms.get_mut(room.as_str()) {
                r.reading.insert(
                    id,
                    Pending {
                        ticket,
                        until,
                        buffer: Vec::new(),
                    },
                );
            }
            if let Some(conn) = self.conns.get_mut(&id)
                && !conn.reading.iter().any(|r| r == room.as_str())
            {
                conn.reading.push(room.to_string());
            }
        }
        Ok(())
    }

    /// Hands a job to the reader threads (or, in tests, does it now or holds it).
    pub(super) fn dispatch(&mut self, job: Job) -> Result<(), Busy> {
        match &self.reader {
            Reader::Inline => {
                let done = job.run(self.store.as_mut());
                self.inline_done.push(done);
            }
            Reader::Pool(pool) => pool.try_submit(job)?,
            #[cfg(test)]
            Reader::Held(queue) => queue
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push_back(job),
        }
        Ok(())
    }

    /// A job is done (on a reader thread; its answer came through the hub's inbox).
    pub fn read_done(&mut self, done: Done) {
        self.finish_job(done);
        self.settle();
    }

    fn finish_job(&mut self, done: Done) {
        match done {
            Done::Read(done) => self.finish_read(done),
            Done::Search(done) => self.finish_search(*done),
            Done::Look(done) => self.look_done(*done),
        }
    }

    fn finish_read(
        &mut self,
        ReadDone {
            read,
            result,
            encoded,
        }: ReadDone,
    ) {
        if read.kind.joins() {
            self.finish_join(read, result, encoded);
        } else {
            self.finish_history(read, result);
        }
    }

    /// Answers the reads [`Reader::Inline`] made during the request just handled.
    pub(super) fn finish_inline_reads(&mut self) {
        while !self.inline_done.is_empty() {
            for done in std::mem::take(&mut self.inline_done) {
                self.finish_job(done);
            }
        }
    }

    /// Takes the connection's join read of `room` off the books, if it has one: its
    /// answer will be dropped. Returns what it had kept meanwhile.
    pub(super) fn take_pending(&mut self, id: ConnId, room: &str) -> Option<Pending> {
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.reading.retain(|r| r != room);
        }
        self.rooms.get_mut(room)?.reading.remove(&id)
    }

    /// Forgets every join read of a connection that is going away.
    pub(super) fn drop_pending_reads(&mut self, id: ConnId) {
        let rooms = self
            .conns
            .get_mut(&id)
            .map(|c| std::mem::take(&mut c.reading))
            .unwrap_or_default();
        for room in rooms {
            if let Some(r) = self.rooms.get_mut(&room) {
                r.reading.remove(&id);
            }
        }
    }
}

impl Room {
    /// Keeps a message delivered live for the connections whose join read is in
    /// flight. Those past the buffer bound are noted as overflowed (closed as slow
    /// consumers once the operation ends).
    pub(super) fn keep_for_readers(
        &mut self,
        seq: u64,
        frame: &Utf8Bytes,
        bound: usize,
        overflowed: &mut Vec<ConnId>,
    ) {
        for (id, pending) in &mut self.reading {
            if seq <= pending.until {
                continue;
            }
            if pending.buffer.len() >= bound {
                overflowed.push(*id);
                continue;
            }
            pending.buffer.push((seq, frame.clone()));
        }
    }
}
