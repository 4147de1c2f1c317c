//! Retention: with `--retain-days N`, messages older than N days are deleted in the
//! background, with their reactions, mentions, log entries, search index entries and
//! the files only they shared, so a team can keep only recent history.
//!
//! Deleting must never stall chat, so it runs in small batches, each its own short
//! transaction (`--retain-batch` messages), with a pause between them
//! (`--retain-pause-ms`). On SQLite each batch is one more write in the message writer's
//! queue ([`crate::store::writer::Pruning`]), run between two group commits: SQLite has
//! one write lock, and a batch on a connection of its own made the writer wait for it,
//! often behind several batches in a row; on the writer, a batch delays
//! acknowledgements only by its own length. On PostgreSQL, where writers do not queue
//! behind one lock, batches run on pooled connections beside the writer.
//! A pass walks every message (by id, reading in pages that do not block the writer),
//! then sleeps for [`PASS_EVERY`]; the first pass starts with the server. After a pass
//! that deleted anything the file sweep runs, so the bytes of files no message shares
//! any more leave the disk then rather than at the next periodic sweep.
//!
//! Nothing the hub holds depends on the rows deleted: rooms keep their numbering (the
//! store remembers the highest `seq` it pruned), a `join` with `after` older than what
//! is left simply gets what is left, and a history page before the oldest message is
//! empty, which clients already take as the start of the room. In a cluster every node
//! may run it; the store makes that safe (see `store::postgres::retention`).
//! The store halves: `store::sqlite::retention`, `store::postgres::retention`.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use crate::{
    files::Files,
    store::{
        Database, StoreError, postgres::retention::PgPruner, sqlite::retention::Walker,
        writer::Pruning,
    },
};

/// Time between the start of two passes.
pub const PASS_EVERY: Duration = Duration::from_secs(60 * 60);

/// What to delete, and how gently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Messages sent longer ago than this go.
    pub keep: Duration,
    /// Messages deleted per transaction.
    pub batch: usize,
    /// Pause after each batch.
    pub pause: Duration,
}

/// Where the messages are.
enum Backend {
    /// The walk on a connection of its own, the batches on the writer.
    Sqlite {
        walker: Arc<Mutex<Walker>>,
        writer: Pruning,
    },
    Postgres(Arc<PgPruner>),
}

/// Runs retention passes until the task is dropped (each batch is a call of its own, so
/// dropping it stops the deleting between two batches). `writer` is the message
/// writer's, which runs the batches on SQLite.
pub async fn run(database: Database, writer: Pruning, settings: Settings, files: Arc<Files>) {
    let backend = match open(database, writer).await {
        Ok(backend) => backend,
        Err(e) => {
            tracing::error!("retention cannot open the store, so it is off: {e}");
            return;
        }
    };
    loop {
        let started = std::time::Instant::now();
        match pass(&backend, settings).await {
            Ok(0) => tracing::debug!("retention: nothing older than the cutoff"),
            Ok(deleted) => {
                tracing::info!(
                    deleted,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "retention: deleted old messages"
                );
                let files = Arc::clone(&files);
                let now = crate::hub::now_ms();
                match tokio::task::spawn_blocking(move || files.sweep(now)).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::warn!("file sweep after retention failed: {e}"),
                    Err(e) => tracing::warn!("file sweep after retention failed: {e}"),
                }
            }
            Err(e) => tracing::warn!("retention pass failed (will retry): {e}"),
        }
        tokio::time::sleep(PASS_EVERY).await;
    }
}

async fn open(database: Database, writer: Pruning) -> Result<Backend, StoreError> {
    match database {
        Database::Sqlite {
            data_dir,
            durability,
        } => blocking(move || Walker::open(&data_dir, durability))
            .await
            .map(|walker| Backend::Sqlite {
                walker: Arc::new(Mutex::new(walker)),
                writer,
            }),
        Database::Postgres(pool) => Ok(Backend::Postgres(Arc::new(PgPruner::new(pool)))),
    }
}

/// One walk over every message; how many were deleted.
async fn pass(backend: &Backend, settings: Settings) -> Result<usize, StoreError> {
    let keep_ms = i64::try_from(settings.keep.as_millis()).unwrap_or(i64::MAX);
    let before_ms = crate::hub::now_ms().saturating_sub(keep_ms);
    let batch = settings.batch.max(1);
    let mut after_id = 0;
    let mut deleted = 0;
    loop {
        let (old, last) = match backend {
            Backend::Sqlite { walker, .. } => {
                let walker = Arc::clone(walker);
                blocking(move || lock(&walker).old_after(after_id, before_ms)).await?
            }
            Backend::Postgres(p) => {
                let p = Arc::clone(p);
                blocking(move || p.old_after(after_id, before_ms)).await?
            }
        };
        for ids in old.chunks(batch) {
            let ids = ids.to_vec();
            let batch_started = std::time::Instant::now();
            let gone = match backend {
                Backend::Sqlite { writer, .. } => writer.prune(ids, before_ms).await?,
                Backend::Postgres(p) => {
                    let p = Arc::clone(p);
                    match blocking(move || p.delete(&ids, before_ms)).await? {
                        Some(gone) => gone,
                        None => {
                            tracing::debug!("retention: another node is deleting; its pass");
                            return Ok(deleted);
                        }
                    }
                }
            };
            deleted += gone;
            tracing::debug!(
                gone,
                ms = batch_started.elapsed().as_secs_f64() * 1e3,
                "retention: a batch"
            );
            tokio::time::sleep(settings.pause).await;
        }
        match last {
            Some(last) => after_id = last,
            None => return Ok(deleted),
        }
    }
}

/// Runs `work` on the blocking pool (the walk reads the disk, and the PostgreSQL client
/// must not run on a Tokio worker).
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StoreError::Io(std::io::Error::other(e)))?
}

fn lock(walker: &Mutex<Walker>) -> std::sync::MutexGuard<'_, Walker> {
    walker.lock().unwrap_or_else(PoisonError::into_inner)
}
