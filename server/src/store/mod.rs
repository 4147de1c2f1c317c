//! Durable storage behind one boundary.
//!
//! The hub talks to storage only through [`Store`] (reads it does itself) and the
//! [`writer`] thread (every write, batched into group commits). Nothing outside this
//! module knows SQL: [`sqlite::SqliteStore`] is the store a server runs on;
//! [`postgres::PgStore`] implements the same trait on PostgreSQL for a cluster (issue
//! 18), chosen with `--database-url` (see [`Database`]).

pub mod accounts;
pub mod admin;
pub mod checkpoint;
mod database;
pub mod files;
pub mod history;
pub mod invites;
pub mod postgres;
pub mod sqlite;
pub mod to_postgres;
pub mod writer;

use confab_shared::{Change, ChatMessage, RoomKind};

pub use database::Database;
pub use postgres::{PgPool, PgStore};
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
    /// The `seq` of the message this one answers, in the same room.
    pub reply_to: Option<u64>,
    /// Usernames it mentions who may see the room (not the sender): counted for them
    /// until they read it.
    pub mentions: Vec<String>,
    /// Ids of the sender's uploads to this room it shares, in order (see
    /// [`files`]): claimed in the transaction that stores it, or the whole message is
    /// refused.
    pub files: Vec<String>,
}

/// A change to a message, accepted by the hub, not yet stored. Whether it may be made
/// (the message exists, is the changer's, has room for one more reaction) is decided
/// by the store, inside the transaction that stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewChange {
    pub room: String,
    /// The `seq` of the message changed.
    pub target: u64,
    /// Username of who changes it.
    pub by: String,
    /// The changer's id for this change; a repeat is answered with the original.
    pub client_id: String,
    pub ts: i64,
    pub what: ChangeRequest,
}

/// What a [`NewChange`] asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeRequest {
    /// New text (the author's own message only), and whom it now mentions.
    Edit {
        body: String,
        mentions: Vec<String>,
    },
    /// Make it a tombstone: the author's own, or any when `any` (the room's owner, an
    /// administrator).
    Delete {
        any: bool,
    },
    React(String),
    Unreact(String),
}

/// What became of one [`NewChange`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changed {
    /// Stored now as the room's log entry `change.seq`.
    Stored(Change),
    /// The same person had already made a change with this client id, stored as `seq`.
    Duplicate {
        seq: u64,
    },
    /// Nothing to change (a reaction already there, text as it was): the message is as
    /// asked at revision `rev`.
    Unchanged {
        rev: u64,
    },
    Refused(Refused),
}

/// Why the store refused a change or a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// No such message in the room (or, for an edit or a reaction, it is deleted).
    UnknownMessage,
    /// Someone else's message, and no right over the room.
    NotYours,
    /// The message has as many reactions, or different emoji, as it may.
    TooManyReactions,
    /// A message names a file that is not an unshared upload of the sender's to its
    /// room.
    UnknownFile,
}

/// A page of a room's messages in their current state, and the log position it covers:
/// everything up to `through` is in it or was before it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Page {
    pub messages: Vec<ChatMessage>,
    pub through: u64,
}

/// The messages around one message of a room (see `ClientMsg::FetchAround`), oldest
/// first, and whether the room has messages before and after them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Around {
    pub messages: Vec<ChatMessage>,
    pub older: bool,
    pub newer: bool,
}

/// One search, as the store runs it: the query's terms and filters, and the rooms the
/// searcher may see (the store knows nothing of people's rights: the hub decides them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchRequest {
    /// What the body must contain (at least one term; all of them): typed, so that each
    /// store renders them in its own syntax from the parsed words alone.
    pub terms: Vec<crate::search::query::Term>,
    /// The rooms to look in; none finds nothing.
    pub rooms: Vec<String>,
    /// Only messages by these usernames, if any are given.
    pub from: Vec<String>,
    /// Only messages sent at or after / before these times (ms since the Unix epoch).
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    /// Only messages with a smaller id: the page after the one that ended there.
    pub before: Option<u64>,
    /// Hits per page.
    pub limit: usize,
    /// How long the query may run before it stops with what it found.
    pub budget: std::time::Duration,
}

/// A page of search results, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SearchPage {
    pub hits: Vec<confab_shared::SearchHit>,
    /// Another page follows (ask with `before` the last hit's id).
    pub more: bool,
    /// The time budget ran out: `hits` is what was found by then (and `more` is set
    /// when there are any).
    pub slow: bool,
}

/// Where a person stands in a room: their read marker and what is unread after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Unread {
    pub read: u64,
    pub messages: u32,
    pub mentions: u32,
}

/// What became of one [`NewMessage`] in a committed batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// Stored now, with its id and room sequence number.
    Stored(ChatMessage),
    /// The same sender had already sent this client id: here is the stored original.
    Duplicate(ChatMessage),
    /// Not stored: it answers a message the room does not have, or names a file it may
    /// not share.
    Refused(Refused),
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
    Change(NewChange),
    /// A person read a room up to `seq` (a marker never moves back).
    MarkRead {
        user: String,
        room: String,
        seq: u64,
    },
    Mute {
        user: String,
        room: String,
        muted: bool,
    },
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
            Write::Change(c) => {
                let what = match &c.what {
                    ChangeRequest::Edit { .. } => "edit",
                    ChangeRequest::Delete { .. } => "delete",
                    ChangeRequest::React(_) => "reaction to",
                    ChangeRequest::Unreact(_) => "unreaction to",
                };
                write!(
                    f,
                    "{what} message {} of room {} (client id {})",
                    c.target, c.room, c.client_id
                )
            }
            Write::MarkRead { room, seq, .. } => write!(f, "read marker in room {room} at {seq}"),
            Write::Mute { room, muted, .. } => write!(f, "mute room {room}: {muted}"),
        }
    }
}

/// What a committed [`Write`] produced (appends and changes have something to report).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    Done,
    Appended(Appended),
    Changed(Changed),
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
    /// Highest sequence number committed in the room's log (0 when empty).
    pub last_seq: u64,
    /// Everyone who belongs to the room, by username.
    pub members: Vec<String>,
    /// Which room of this name it is, and how often its settings or members changed:
    /// see [`RoomHead`].
    pub head: RoomHead,
}

/// Where a room stands, cheap to read for every room at once: how a node of a cluster
/// finds what it missed (messages whose publication it never received, rooms created,
/// changed or deleted on other nodes). The embedded store, which one process owns,
/// keeps only `last_seq` (`id` and `version` are 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RoomHead {
    /// Distinguishes a room from an earlier one of the same name that was deleted.
    pub id: u64,
    /// Highest sequence number committed in the room's log.
    pub last_seq: u64,
    /// Grows with every change of the room's title, owner or members.
    pub version: u64,
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
    #[error("PostgreSQL error: {}", postgres_detail(.0))]
    Postgres(#[from] ::postgres::Error),
    /// No connection to PostgreSQL could be had in time (it is down, or every pooled
    /// connection is busy).
    #[error("no PostgreSQL connection: {0}")]
    Pool(#[from] r2d2::Error),
    /// A write names a room the store does not have (SQLite reports the same as a
    /// foreign key error).
    #[error("no room {0}")]
    NoSuchRoom(String),
    /// The database was migrated by a newer version of the server.
    #[error("the database schema is at step {found}, this server knows {known}: upgrade it")]
    SchemaTooNew { found: usize, known: usize },
    /// What this store cannot do yet.
    #[error("not supported by this store: {0}")]
    Unsupported(&'static str),
    #[error("cannot start a storage thread: {0}")]
    Thread(std::io::Error),
    /// The writer thread has stopped (the server is shutting down, or it panicked).
    #[error("the store writer has stopped")]
    WriterStopped,
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// Reading or writing a file whose bytes go to or come from the database (the
    /// PostgreSQL file store's chunks).
    #[error("file system: {0}")]
    Io(std::io::Error),
}

/// What PostgreSQL said: its own message for a database error ("db error" alone says
/// nothing), else the error and its cause (a refused connection, say).
fn postgres_detail(e: &::postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{}: {}", db.severity(), db.message());
    }
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
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

    /// A retention batch (see [`crate::retention`]): deletes, in one transaction, the
    /// messages `ids` that are still there and were sent before `before_ms`, with
    /// everything that hangs on them; how many went. The embedded store runs it on the
    /// writer thread ([`writer::Pruning`]); PostgreSQL's nodes prune through
    /// `postgres::retention` instead, so its store has no use for it.
    fn prune(&mut self, ids: &[i64], before_ms: i64) -> Result<usize, StoreError> {
        let _ = (ids, before_ms);
        Err(StoreError::Unsupported("retention batches on the writer"))
    }

    /// Usernames and the rooms each muted.
    fn mutes(&mut self) -> Result<Vec<(String, String)>, StoreError>;

    /// The store's identity, made when it was created (see `ServerMsg::Welcome`).
    fn epoch(&mut self) -> Result<String, StoreError>;

    /// A resume page: the room's log after `after`, up to `until`, at most `limit`
    /// entries; each message created or changed in that stretch once, in its current
    /// state. `through` is where the page ends (`until` when it reaches it).
    fn after(
        &mut self,
        room: &str,
        after: u64,
        until: u64,
        limit: usize,
    ) -> Result<Page, StoreError>;

    /// Up to `limit` messages of `room` with `seq < before`, the newest of them, oldest
    /// first, in their current state.
    fn before(
        &mut self,
        room: &str,
        before: u64,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, StoreError>;

    /// The messages of `room` around `seq`, none after `until`: up to `side` on each side
    /// of it and the one at `seq` (if there is one), in their current state, within a
    /// page's bytes.
    fn around(
        &mut self,
        room: &str,
        seq: u64,
        until: u64,
        side: usize,
    ) -> Result<Around, StoreError>;

    /// Full-text search (see [`SearchRequest`]): the newest matching messages that are
    /// not deleted, as they are now, with where the query matched each body.
    fn search(&mut self, request: &SearchRequest) -> Result<SearchPage, StoreError>;

    /// `user`'s read marker in `room` and what is unread after it, up to `until`. No
    /// marker (the person joined just now, and its write is on its way) reads as having
    /// read everything.
    fn unread(&mut self, user: &str, room: &str, until: u64) -> Result<Unread, StoreError>;

    /// Every room's [`RoomHead`], by name.
    fn heads(&mut self) -> Result<Vec<(String, RoomHead)>, StoreError> {
        Ok(self
            .rooms()?
            .into_iter()
            .map(|room| (room.name, room.head))
            .collect())
    }

    /// One room, with its members, if it exists.
    fn room(&mut self, name: &str) -> Result<Option<StoredRoom>, StoreError> {
        Ok(self.rooms()?.into_iter().find(|room| room.name == name))
    }
}

/// The writer and the readers hold their store as a `Box<dyn Store>` when which one
/// runs is chosen at start ([`Database`]).
impl Store for Box<dyn Store> {
    fn rooms(&mut self) -> Result<Vec<StoredRoom>, StoreError> {
        (**self).rooms()
    }
    fn people(&mut self) -> Result<Vec<StoredPerson>, StoreError> {
        (**self).people()
    }
    fn person(&mut self, username: &str) -> Result<Option<StoredPerson>, StoreError> {
        (**self).person(username)
    }
    fn apply(&mut self, writes: &[Write]) -> Result<Vec<Written>, StoreError> {
        (**self).apply(writes)
    }
    fn prune(&mut self, ids: &[i64], before_ms: i64) -> Result<usize, StoreError> {
        (**self).prune(ids, before_ms)
    }
    fn mutes(&mut self) -> Result<Vec<(String, String)>, StoreError> {
        (**self).mutes()
    }
    fn epoch(&mut self) -> Result<String, StoreError> {
        (**self).epoch()
    }
    fn after(
        &mut self,
        room: &str,
        after: u64,
        until: u64,
        limit: usize,
    ) -> Result<Page, StoreError> {
        (**self).after(room, after, until, limit)
    }
    fn before(
        &mut self,
        room: &str,
        before: u64,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, StoreError> {
        (**self).before(room, before, limit)
    }
    fn around(
        &mut self,
        room: &str,
        seq: u64,
        until: u64,
        side: usize,
    ) -> Result<Around, StoreError> {
        (**self).around(room, seq, until, side)
    }
    fn search(&mut self, request: &SearchRequest) -> Result<SearchPage, StoreError> {
        (**self).search(request)
    }
    fn unread(&mut self, user: &str, room: &str, until: u64) -> Result<Unread, StoreError> {
        (**self).unread(user, room, until)
    }
    fn heads(&mut self) -> Result<Vec<(String, RoomHead)>, StoreError> {
        (**self).heads()
    }
    fn room(&mut self, name: &str) -> Result<Option<StoredRoom>, StoreError> {
        (**self).room(name)
    }
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
            reply_to: None,
            mentions: Vec::new(),
            files: Vec::new(),
        });
        let line = write.summary().to_string();
        assert_eq!(line, "append to room general (client id c1, 4041 bytes)");
        assert!(!line.contains('\n') && !line.contains("forged"));
    }
}
