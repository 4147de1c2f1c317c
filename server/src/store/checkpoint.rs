//! Background WAL checkpoints for the SQLite store.
//!
//! SQLite's automatic checkpoint runs inside the commit that crosses the threshold, so
//! the writer thread would stop taking new writes while it copies the log into the
//! database file and waits for fsync, and every acknowledgement queued behind that
//! commit would wait too (tens of milliseconds under load). Here a thread of its own,
//! with its own connection, does the bulk of the copying while the writer goes on
//! committing.
//!
//! A passive checkpoint never blocks the writer, but under sustained writes the log
//! never starts over either: SQLite rewinds it only when a write transaction begins with
//! every frame already copied, and by the time a background checkpoint ends the writer
//! has appended more. A blocking (`RESTART`) checkpoint from this thread would fix that,
//! but the writer then waits in SQLite's busy handler, which sleeps in growing steps
//! (tens of milliseconds each: docs/PERFORMANCE.md, step 2). So once the log passes
//! [`REWIND_BYTES`] this thread asks the writer instead:
//! between two transactions the writer copies the few frames left (one commit's worth)
//! itself, and its next transaction rewinds the log.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc::{Receiver, SyncSender, TryRecvError, sync_channel},
    },
    thread::JoinHandle,
    time::Duration,
};

use rusqlite::Connection;

/// How long commits pile up before a checkpoint: a page changed by many commits in that
/// time is copied once.
const PAUSE: Duration = Duration::from_millis(100);
/// Log size past which the writer is asked to let the log start over. Each rewind
/// pauses the writer for its share of the copying and two fsyncs, far less when the
/// database file was just flushed (which [`sync_database_file`] does). Rewinds must still
/// be rare: a smaller bound showed in the p99 ack latency (docs/PERFORMANCE.md, "Final
/// build, log bound 65,536 vs 32,768 pages"). Under light load the log rewinds by itself,
/// with no pause; the file keeps its largest size.
pub const REWIND_BYTES: i64 = 256 * 1024 * 1024;
/// About a commit or two under load: what the writer may be left to copy.
const LEFT_FOR_WRITER_BYTES: i64 = 2 * 1024 * 1024;
/// Bounds the catching up when commits come faster than this thread copies.
const CATCH_UP_ROUNDS: usize = 4;

/// Handle to the checkpoint thread, held by the writer's store. Dropping it stops the
/// thread.
pub struct Checkpointer {
    nudge: Option<SyncSender<()>>,
    rewind: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts checkpointing through `conn`, a connection of its own to the database.
    pub fn spawn(conn: Connection) -> std::io::Result<Checkpointer> {
        let (nudge, nudged) = sync_channel(1);
        let rewind = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("confab-checkpoint".into())
            .spawn({
                let rewind = rewind.clone();
                move || run(&conn, &nudged, &rewind)
            })?;
        Ok(Checkpointer {
            nudge: Some(nudge),
            rewind,
            thread: Some(thread),
        })
    }

    /// Tells the thread the log has grown. Never waits: one pending nudge is enough.
    pub fn nudge(&self) {
        if let Some(nudge) = &self.nudge {
            let _ = nudge.try_send(());
        }
    }

    /// Whether the writer should finish the checkpoint before its next transaction.
    pub fn rewind_wanted(&self) -> bool {
        self.rewind.load(Ordering::Relaxed)
    }

    /// The writer copied every frame: its next transaction rewinds the log.
    pub fn rewound(&self) {
        self.rewind.store(false, Ordering::Relaxed);
    }

    #[cfg(test)]
    pub fn request_rewind(&self) {
        self.rewind.store(true, Ordering::Relaxed);
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.nudge = None;
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the checkpoint thread panicked");
        }
    }
}

/// The bounds above in pages of this database.
#[derive(Debug, Clone, Copy)]
struct Bounds {
    rewind_pages: i64,
    left_for_writer_pages: i64,
}

fn run(conn: &Connection, nudged: &Receiver<()>, rewind: &AtomicBool) {
    let page_size = conn
        .query_row("PRAGMA page_size", [], |row| row.get::<_, i64>(0))
        .unwrap_or(4096)
        .max(512);
    let bounds = Bounds {
        rewind_pages: REWIND_BYTES / page_size,
        left_for_writer_pages: LEFT_FOR_WRITER_BYTES / page_size,
    };
    while nudged.recv().is_ok() {
        std::thread::sleep(PAUSE);
        if let Err(TryRecvError::Disconnected) = nudged.try_recv() {
            // Stopping: the last connection to close checkpoints everything anyway.
            break;
        }
        match passive_checkpoint(conn).and_then(|p| catch_up(conn, p, bounds)) {
            Ok(progress) => {
                sync_database_file(conn);
                if progress.log_pages >= bounds.rewind_pages {
                    rewind.store(true, Ordering::Relaxed);
                }
            }
            Err(e) => tracing::warn!("WAL checkpoint failed (will retry): {e}"),
        }
    }
}

/// Before asking the writer to finish a checkpoint, copies again what was committed
/// during the last one, until little is left: the writer waits for what it copies, and
/// for the fsync of it.
fn catch_up(
    conn: &Connection,
    mut progress: Progress,
    bounds: Bounds,
) -> rusqlite::Result<Progress> {
    for _ in 0..CATCH_UP_ROUNDS {
        if progress.log_pages < bounds.rewind_pages {
            break;
        }
        let copied_before = progress.copied_pages;
        progress = passive_checkpoint(conn)?;
        if progress.copied_pages - copied_before <= bounds.left_for_writer_pages {
            break;
        }
    }
    Ok(progress)
}

/// Flushes what the checkpoints copied into the database file to disk.
///
/// SQLite fsyncs the database file only at the end of a checkpoint that reaches the end
/// of the log, which under sustained writes is only ever the writer's final one before a
/// rewind. That fsync then had to flush everything this thread had copied since the last
/// rewind, while the writer, and every acknowledgement behind it, waited (docs/
/// PERFORMANCE.md, step 4). Flushed here, off the commit path, the writer's fsync finds
/// little left to write. Any
/// descriptor of the file will do: dirty pages belong to the file, not to a descriptor.
fn sync_database_file(conn: &Connection) {
    let Some(path) = conn.path() else { return };
    if let Err(e) = std::fs::File::open(path).and_then(|f| f.sync_data()) {
        tracing::warn!("cannot flush the database file {path}: {e}");
    }
}

/// What a checkpoint achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Another checkpoint was running, so this one did nothing.
    pub busy: bool,
    /// Frames in the log.
    pub log_pages: i64,
    /// Frames of the log now copied into the database.
    pub copied_pages: i64,
}

impl Progress {
    /// Every frame is in the database: the next write transaction rewinds the log.
    pub fn complete(&self) -> bool {
        !self.busy && self.copied_pages == self.log_pages
    }
}

/// Copies what it can of the log into the database without waiting for anyone.
pub fn passive_checkpoint(conn: &Connection) -> rusqlite::Result<Progress> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        Ok(Progress {
            busy: row.get::<_, i64>(0)? != 0,
            log_pages: row.get(1)?,
            copied_pages: row.get(2)?,
        })
    })
}
