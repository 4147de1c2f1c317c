//! Durable storage behind one boundary.
//!
//! The hub talks to storage only through [`Store`] (reads it does itself) and the
//! [`writer`] thread (every write, batched into group commits). Nothing outside this
//! module knows SQL: a server database can replace [`sqlite::SqliteStore`] by
//! implementing the trait.

pub mod accounts;
pub mod checkpoint;
pub mod invites;
pub mod sqlite;
pub mod writer;

use confab_shared::{ChatMessage, RoomKind};

pub use sqlite::SqliteStore;

/// A message accepted by the hub, not yet stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    pub room: String,
    /// The sender's username.
    pub from: String,
    /// The sender's display name when they sent it.
    pub name: String,
    pub body: String,
    /// The sender's id for this send; a repeat with the same id is not stored twice.
    pub client_id: String,
    pub ts: i64,
}

/// What became of one [`NewMessage`] in a committed batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// Stored now, with its id and room sequence number.
    Stored(ChatMessage),
    /// The same sender had already sent this client id: here is the stored original.
    Duplicate(ChatMessage),
}

/// One write. Applied in order, in batches; each batch is one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    CreateRoom {
        room: String,
        ts: i64,
        kind: RoomKind,
        title: String,
        owner: Option<String>,
    },
    RenameRoom {
        room: String,
        title: String,
    },
    /// A new owner (the previous one left a private room with others in it).
    SetOwner {
        room: String,
        owner: String,
    },
    /// The room, its members and all its messages.
    DeleteRoom {
        room: String,
    },
    AddMember {
        room: String,
        name: String,
    },
    RemoveMember {
        room: String,
        name: String,
    },
    Append(NewMessage),
}

impl Write {
    /// What a log line may say about this write: its kind, its room and the sender's
    /// client id, all of them validated to a small alphabet. Never what people wrote (a
    /// message body is private, may hold line breaks that would forge log lines, and runs
    /// to kilobytes).
    pub fn summary(&self) -> WriteSummary<'_> {
        WriteSummary(self)
    }
}

/// See [`Write::summary`].
pub struct WriteSummary<'a>(&'a Write);

impl std::fmt::Display for WriteSummary<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Write::CreateRoom { room, kind, .. } => write!(f, "create {kind:?} room {room}"),
            Write::RenameRoom { room, .. } => write!(f, "rename room {room}"),
            Write::SetOwner { room, .. } => write!(f, "new owner of room {room}"),
            Write::DeleteRoom { room } => write!(f, "delete room {room}"),
            Write::AddMember { room, .. } => write!(f, "add a member to room {room}"),
            Write::RemoveMember { room, .. } => write!(f, "remove a member from room {room}"),
            Write::Append(m) => write!(
                f,
                "append to room {} (client id {}, {} bytes)",
                m.room,
                m.client_id,
                m.body.len()
            ),
        }
    }
}

/// What a committed [`Write`] produced (only appends produce something to report).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    Done,
    Appended(Appended),
}

/// A room as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRoom {
    pub name: String,
    pub kind: RoomKind,
    pub title: String,
    /// Handle of the creator, who may manage the room; `None` for rooms from before
    /// accounts existed (only admins manage those).
    pub owner: Option<String>,
    /// Highest sequence number committed in the room (0 when empty).
    pub last_seq: u64,
    /// Everyone who belongs to the room, by username.
    pub members: Vec<String>,
}

/// An account as the hub needs to know it: to name people and to check that whoever is
/// invited or messaged exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPerson {
    pub username: String,
    pub display_name: String,
}

/// Why storage failed. The hub reports it to the clients concerned and keeps running.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("schema migration failed: {0}")]
    Migration(#[from] rusqlite_migration::Error),
    #[error("cannot start a storage thread: {0}")]
    Thread(std::io::Error),
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// How hard a commit tries to survive failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Durability {
    /// Survives a crash of the server process (kill -9, panic, OOM): a commit is in the
    /// operating system before it is acknowledged. A power loss or kernel crash may lose
    /// the last moments of commits. (SQLite WAL with `synchronous=NORMAL`.)
    Process,
    /// Survives power loss too: every group commit waits for fsync of the log.
    /// (`synchronous=FULL`.) Slower on disks with slow flushes.
    Power,
}

/// Everything the server stores.
pub trait Store: Send + 'static {
    /// All rooms, with their last sequence number and members.
    fn rooms(&mut self) -> Result<Vec<StoredRoom>, StoreError>;

    /// Every account.
    fn people(&mut self) -> Result<Vec<StoredPerson>, StoreError>;

    /// The account with this username, if there is one.
    fn person(&mut self, username: &str) -> Result<Option<StoredPerson>, StoreError>;

    /// Applies `writes` in order in one transaction. On error nothing of the batch is
    /// stored.
    fn apply(&mut self, writes: &[Write]) -> Result<Vec<Written>, StoreError>;

    /// Up to `limit` messages of `room` with `after < seq <= until`, oldest first.
    fn after(
        &mut self,
        room: &str,
        after: u64,
        until: u64,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, StoreError>;

    /// Up to `limit` messages of `room` with `seq < before`, the newest of them, oldest
    /// first.
    fn before(
        &mut self,
        room: &str,
        before: u64,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_is_logged_without_what_people_wrote() {
        let write = Write::Append(NewMessage {
            room: "general".into(),
            from: "ada".into(),
            name: "Ada".into(),
            body: format!(
                "hi\n2026-12-01T00:00:00Z ERROR forged line{}",
                "x".repeat(4000)
            ),
            client_id: "c1".into(),
            ts: 0,
        });
        let line = write.summary().to_string();
        assert_eq!(line, "append to room general (client id c1, 4041 bytes)");
        assert!(!line.contains('\n') && !line.contains("forged"));
    }
}
