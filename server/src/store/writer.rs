//! The single writer: one thread owns the store's write connection and applies writes
//! in batches, one transaction per batch (group commit).
//!
//! While a commit is running (on `Durability::Power`, waiting for fsync), new writes
//! queue up; the next batch takes all of them. So under load one commit carries many
//! messages, and durability does not cost one flush per message. Results are reported
//! after the commit, in submission order: the hub acknowledges and delivers a message
//! only once it is stored.
//!
//! The queue is bounded by count for ordinary writes ([`WriterSender::try_submit`]
//! refuses when it is full, and the hub refuses the send as `unavailable`). Access changes
//! have a way in that is never refused for being full ([`WriterSender::submit_access`]):
//! dropping one would undo who may read what at the next restart. Both go through the
//! same queue, so every write is committed in the order it was submitted.
//!
//! Retention's batches on the embedded store come through the same queue too
//! ([`Pruning`]), each applied in a transaction of its own right after the group commit
//! it was queued during. SQLite lets one connection write at a time: when batches ran
//! on a connection of their own, the writer had to wait for the write lock behind them,
//! often behind several in a row, and acknowledgements waited with it. Here a batch
//! holds acknowledgements up only for its own length.
//!
//! The thread carries a [`health::Guard`](crate::health::Guard): if it panics, the server
//! learns that its writes stopped (`/healthz` answers 503) and exits to be restarted. What
//! was committed stays committed; what was queued and not committed was never
//! acknowledged, and clients send it again after they reconnect.

use std::{
    sync::{
        Arc, Weak,
        atomic::{AtomicUsize, Ordering},
        mpsc::{Receiver, Sender, channel},
    },
    thread::JoinHandle,
};

use tokio::sync::oneshot;

use super::{Store, StoreError, Write, Written};
use crate::{
    health::{Guard, Health, Part},
    metrics::Metrics,
};

/// Largest batch applied in one transaction: bounds the latency one commit adds.
pub const MAX_BATCH: usize = 4096;

/// The result of one submitted write, with the tag it was submitted with.
#[derive(Debug)]
pub struct Outcome<T> {
    pub tag: T,
    pub write: Write,
    /// `Err` carries a message for logs and clients; the cause is logged by the writer.
    pub result: Result<Written, String>,
}

/// What the writer's queue carries.
enum Queued<T> {
    /// A write, with the tag its outcome is reported with.
    Write(Write, T),
    /// A retention batch (see [`Pruning`]).
    Prune(Prune),
}

/// A retention batch: the messages `ids` that are still there and sent before
/// `before_ms` go, in one transaction; `done` hears how many.
struct Prune {
    ids: Vec<i64>,
    before_ms: i64,
    done: oneshot::Sender<Result<usize, StoreError>>,
}

/// Submits writes to the writer thread. Dropping every sender lets the thread finish
/// the queued writes and exit: that is how shutdown flushes the store.
#[derive(Debug)]
pub struct WriterSender<T> {
    /// Shared by the clones, so that a [`Pruning`] can hold it weakly.
    tx: Arc<Sender<Queued<T>>>,
    /// Writes queued and not yet taken by the writer.
    queued: Arc<AtomicUsize>,
    /// Most writes [`WriterSender::try_submit`] lets wait.
    capacity: usize,
}

impl<T> Clone for WriterSender<T> {
    fn clone(&self) -> Self {
        Self {
            tx: Arc::clone(&self.tx),
            queued: Arc::clone(&self.queued),
            capacity: self.capacity,
        }
    }
}

/// The writer's queue is full (storage cannot keep up) or it has stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("storage is busy")]
pub struct Busy;

impl<T> WriterSender<T> {
    /// Queues a write without waiting.
    /// Queues a write without waiting, unless `capacity` writes are waiting already.
    pub fn try_submit(&self, write: Write, tag: T) -> Result<(), Busy> {
        if self.queued.fetch_add(1, Ordering::AcqRel) >= self.capacity {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(Busy);
        }
        self.send(write, tag)
    }

    /// Queues an access change however full the queue is (it still counts against
    /// `capacity` for the others). Its callers bound how many there can be (a rate limit
    /// per person). Fails only when the writer has stopped.
    pub fn submit_access(&self, write: Write, tag: T) -> Result<(), Busy> {
        self.queued.fetch_add(1, Ordering::AcqRel);
        self.send(write, tag)
    }

    fn send(&self, write: Write, tag: T) -> Result<(), Busy> {
        self.tx.send(Queued::Write(write, tag)).map_err(|_| {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            Busy
        })
    }
}

impl<T: Send + 'static> WriterSender<T> {
    /// A handle through which retention hands its batches to this writer.
    pub fn pruning(&self) -> Pruning {
        let queue: Arc<dyn PruneQueue> = Arc::clone(&self.tx) as Arc<dyn PruneQueue>;
        Pruning {
            queue: Arc::downgrade(&queue),
        }
    }
}

/// Hands retention batches to the writer thread (see [`crate::retention`]), whatever
/// the writer's tags are. It holds the queue weakly, so it never keeps the writer
/// running: once the hub lets go of its [`WriterSender`], the writer finishes and
/// exits as it always did, and a batch asked for after that fails.
#[derive(Clone)]
pub struct Pruning {
    queue: Weak<dyn PruneQueue>,
}

impl std::fmt::Debug for Pruning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pruning").finish_non_exhaustive()
    }
}

impl Pruning {
    /// Deletes the messages `ids` that are still there and were sent before
    /// `before_ms` (see [`Store::prune`]) in a transaction of the writer's, queued
    /// behind the writes already waiting; how many went.
    pub async fn prune(&self, ids: Vec<i64>, before_ms: i64) -> Result<usize, StoreError> {
        let (done, result) = oneshot::channel();
        let prune = Prune {
            ids,
            before_ms,
            done,
        };
        let queued = self
            .queue
            .upgrade()
            .is_some_and(|queue| queue.submit(prune));
        if !queued {
            return Err(StoreError::WriterStopped);
        }
        // The writer drops `done` without an answer only when it panics.
        result.await.unwrap_or(Err(StoreError::WriterStopped))
    }
}

/// The writer's queue, seen without its tag type.
trait PruneQueue: Send + Sync {
    /// Whether the batch was queued (the writer is still there).
    fn submit(&self, prune: Prune) -> bool;
}

impl<T: Send> PruneQueue for Sender<Queued<T>> {
    fn submit(&self, prune: Prune) -> bool {
        self.send(Queued::Prune(prune)).is_ok()
    }
}

/// Starts the writer thread. `report` is called on that thread after every commit.
/// Nobody is told if the thread panics: for tests; the server uses [`spawn_watched`].
pub fn spawn<S, T, R>(
    store: S,
    capacity: usize,
    report: R,
) -> std::io::Result<(WriterSender<T>, JoinHandle<()>)>
where
    S: Store,
    T: Send + 'static,
    R: FnMut(Vec<Outcome<T>>) + Send + 'static,
{
    spawn_watched(
        store,
        capacity,
        report,
        &Health::new(),
        Arc::new(Metrics::default()),
    )
}

/// Starts the writer thread like [`spawn`], recording in `health` if it panics and
/// each commit's time and size in `metrics`.
pub fn spawn_watched<S, T, R>(
    store: S,
    capacity: usize,
    report: R,
    health: &Health,
    metrics: Arc<Metrics>,
) -> std::io::Result<(WriterSender<T>, JoinHandle<()>)>
where
    S: Store,
    T: Send + 'static,
    R: FnMut(Vec<Outcome<T>>) + Send + 'static,
{
    let (tx, rx) = channel();
    let queued = Arc::new(AtomicUsize::new(0));
    let guard = health.guard(Part::Writer);
    let taken = Arc::clone(&queued);
    let thread = std::thread::Builder::new()
        .name("confab-store-writer".into())
        .spawn(move || run(store, rx, report, &taken, &metrics, guard))?;
    Ok((
        WriterSender {
            tx: Arc::new(tx),
            queued,
            capacity: capacity.max(1),
        },
        thread,
    ))
}

fn run<S: Store, T, R: FnMut(Vec<Outcome<T>>)>(
    mut store: S,
    rx: Receiver<Queued<T>>,
    mut report: R,
    queued: &AtomicUsize,
    metrics: &Metrics,
    // Held for the thread's life: records a panic anywhere below.
    _guard: Guard,
) {
    let mut batch = Batch {
        writes: Vec::with_capacity(MAX_BATCH),
        tags: Vec::with_capacity(MAX_BATCH),
    };
    let mut prunes = Vec::new();
    // `recv` fails only once every sender is gone and the queue is empty.
    while let Ok(first) = rx.recv() {
        // What is queued, up to `MAX_BATCH` writes, is taken at once: the writes go
        // into one group commit, the retention batches after it.
        let mut next = Some(first);
        while let Some(item) = next.take() {
            match item {
                Queued::Write(write, tag) => {
                    batch.writes.push(write);
                    batch.tags.push(tag);
                }
                Queued::Prune(prune) => prunes.push(prune),
            }
            if batch.writes.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        if !batch.writes.is_empty() {
            queued.fetch_sub(batch.writes.len(), Ordering::AcqRel);
            report(batch.commit(&mut store, metrics));
        }
        for prune in prunes.drain(..) {
            // Retention may have stopped waiting (the server is stopping): nobody to tell.
            let _ = prune.done.send(store.prune(&prune.ids, prune.before_ms));
        }
    }
    tracing::debug!("store writer finished");
}

/// The writes of one group commit, and their tags.
struct Batch<T> {
    writes: Vec<Write>,
    tags: Vec<T>,
}

impl<T> Batch<T> {
    /// Applies the writes in one transaction (each on its own if that fails) and hands
    /// back their outcomes, leaving the batch empty.
    fn commit<S: Store>(&mut self, store: &mut S, metrics: &Metrics) -> Vec<Outcome<T>> {
        #[cfg(debug_assertions)]
        for write in &self.writes {
            if let Write::Append(m) = write {
                crate::health::fault::maybe_panic(Part::Writer, &m.body);
            }
        }
        let started = std::time::Instant::now();
        let applied = store.apply(&self.writes);
        metrics
            .commit_seconds
            .record(started.elapsed().as_secs_f64());
        metrics.commit_batch.record(self.writes.len() as f64);
        let results = match applied {
            Ok(written) => written.into_iter().map(Ok).collect(),
            Err(e) => {
                // One bad write must not sink the others: retry each on its own.
                tracing::warn!(
                    "group commit of {} writes failed ({e}); retrying one by one",
                    self.writes.len()
                );
                self.writes
                    .iter()
                    .map(|w| {
                        store
                            .apply(std::slice::from_ref(w))
                            .map(|mut v| v.pop().unwrap_or(Written::Done))
                            .map_err(|e| {
                                tracing::error!(write = %w.summary(), "write failed: {e}");
                                e.to_string()
                            })
                    })
                    .collect::<Vec<_>>()
            }
        };
        self.writes
            .drain(..)
            .zip(self.tags.drain(..))
            .zip(results)
            .map(|((write, tag), result)| Outcome { tag, write, result })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;
    use crate::store::{Appended, Durability, NewMessage, SqliteStore};

    #[test]
    fn a_panic_on_the_writer_thread_is_recorded_in_health() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path(), Durability::Process).expect("open");
        let health = Health::new();
        let (writer, thread) = spawn_watched(
            store,
            8,
            |_: Vec<Outcome<()>>| panic!("a bug after a commit"),
            &health,
            Arc::default(),
        )
        .expect("spawn");
        assert_eq!(health.check(), Ok(()));
        writer
            .try_submit(
                Write::DeleteRoom {
                    room: "nowhere".into(),
                },
                (),
            )
            .expect("room in queue");
        assert!(thread.join().is_err(), "the thread panicked");
        assert_eq!(health.check(), Err("store writer stopped\n".to_owned()));
        // And the hub finds out at its next write: sends are refused as `unavailable`.
        assert_eq!(
            writer.try_submit(
                Write::DeleteRoom {
                    room: "nowhere".into()
                },
                ()
            ),
            Err(Busy)
        );
    }

    #[test]
    fn writes_are_committed_and_reported_in_order_then_flushed_on_drop() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path(), Durability::Process).expect("open");
        let (done_tx, done_rx) = mpsc::channel();
        let (writer, thread) = spawn(store, 10_000, move |outcomes: Vec<Outcome<u32>>| {
            for o in outcomes {
                done_tx.send((o.tag, o.result)).expect("test listens");
            }
        })
        .expect("spawn");
        for i in 0..2_000u32 {
            let room = if i == 1_000 { "nowhere" } else { "general" };
            writer
                .try_submit(
                    Write::Append(NewMessage {
                        room: room.into(),
                        from: "ada".into(),
                        name: "Ada".into(),
                        body: format!("m{i}"),
                        client_id: i.to_string(),
                        ts: 0,
                        reply_to: None,
                        mentions: Vec::new(),
                        files: Vec::new(),
                    }),
                    i,
                )
                .expect("room in queue");
        }
        drop(writer);
        thread.join().expect("writer thread");
        let results: Vec<_> = done_rx.iter().collect();
        assert_eq!(results.len(), 2_000);
        let mut expected_seq = 1;
        for (i, (tag, result)) in results.into_iter().enumerate() {
            assert_eq!(tag as usize, i, "reported in submission order");
            if tag == 1_000 {
                assert!(result.is_err(), "the write to a missing room fails alone");
                continue;
            }
            match result {
                Ok(Written::Appended(Appended::Stored(m))) => {
                    assert_eq!(m.seq, expected_seq, "gap-free despite the failure");
                    expected_seq += 1;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    fn message(body: &str, ts: i64) -> Write {
        Write::Append(NewMessage {
            room: "general".into(),
            from: "ada".into(),
            name: "Ada".into(),
            body: body.into(),
            client_id: body.into(),
            ts,
            reply_to: None,
            mentions: Vec::new(),
            files: Vec::new(),
        })
    }

    #[tokio::test]
    async fn retention_batches_run_on_the_writer_and_never_keep_it_alive() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path(), Durability::Process).expect("open");
        let (done_tx, done_rx) = mpsc::channel();
        let (writer, thread) = spawn(store, 100, move |outcomes: Vec<Outcome<u32>>| {
            for o in outcomes {
                done_tx.send((o.tag, o.result)).expect("test listens");
            }
        })
        .expect("spawn");
        let pruning = writer.pruning();
        for i in 1..=3u32 {
            writer
                .try_submit(message(&format!("old{i}"), i64::from(i)), i)
                .expect("room in queue");
        }
        writer
            .try_submit(message("new", 100_000), 4)
            .expect("room in queue");
        // Ids 1 to 4; the newest is not old enough, and 9 is not there.
        assert_eq!(
            pruning
                .prune(vec![1, 2, 4, 9], 1_000)
                .await
                .expect("pruned"),
            2
        );
        assert_eq!(
            pruning.prune(vec![1, 2, 3], 1_000).await.expect("pruned"),
            1
        );
        writer
            .try_submit(message("after", 100_001), 5)
            .expect("room in queue");
        drop(writer);
        tokio::task::spawn_blocking(move || thread.join())
            .await
            .expect("joined")
            .expect("the writer ends though a Pruning is left");
        let seqs: Vec<_> = done_rx
            .iter()
            .map(|(tag, result)| match result {
                Ok(Written::Appended(Appended::Stored(m))) => (tag, m.seq),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(seqs, [(1, 1), (2, 2), (3, 3), (4, 4), (5, 5)]);
        assert!(matches!(
            pruning.prune(vec![4], i64::MAX).await,
            Err(StoreError::WriterStopped)
        ));
    }

    #[tokio::test]
    async fn writes_queued_with_a_retention_batch_are_committed_before_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path(), Durability::Process).expect("open");
        // The writer stops in its first report until the test has queued the rest.
        let (entered_tx, entered) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        let mut held = Some((entered_tx, released));
        let (writer, _thread) = spawn(store, 100, move |_: Vec<Outcome<u32>>| {
            if let Some((entered_tx, released)) = held.take() {
                entered_tx.send(()).expect("test listens");
                released.recv().expect("test releases");
            }
        })
        .expect("spawn");
        let pruning = writer.pruning();
        writer.try_submit(message("a", 1), 1).expect("queued"); // id 1
        entered.recv().expect("the writer reports a");
        let (pruned, ()) = tokio::join!(
            // Queued first: the batch may take ids 1 to 3 sent before 1,000.
            pruning.prune(vec![1, 2, 3], 1_000),
            async {
                tokio::task::yield_now().await;
                writer.try_submit(message("b", 2), 2).expect("queued"); // id 2
                writer.try_submit(message("c", 100_000), 3).expect("queued"); // id 3
                release.send(()).expect("writer waits");
            }
        );
        // a and b: b, queued behind the batch, was committed before it ran.
        assert_eq!(pruned.expect("pruned"), 2);
    }
}
