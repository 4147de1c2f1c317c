//! The embedded store: SQLite in WAL mode, one file in the data directory.

use std::{collections::HashMap, path::Path};

use confab_shared::{ChatMessage, DEFAULT_ROOM, RoomKind, limits};
use rusqlite::{Connection, OptionalExtension, params};
use rusqlite_migration::{M, Migrations};

use super::{
    Appended, Around, Durability, NewMessage, Page, Refused, RoomHead, SearchPage, SearchRequest,
    Store, StoreError, StoredPerson, StoredRoom, Unread, Write, Written,
    checkpoint::{self, Checkpointer},
};

pub(super) mod accounts;
mod changes;
pub mod history;
pub mod retention;
mod search;
pub(super) mod snapshots;

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "confab.sqlite3";

/// The schema, one step per migration. Never edit a released step: add one.
fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(
            "CREATE TABLE rooms (
             name       TEXT PRIMARY KEY,
             created_at INTEGER NOT NULL
         ) WITHOUT ROWID;
         CREATE TABLE room_members (
             room TEXT NOT NULL REFERENCES rooms(name),
             name TEXT NOT NULL COLLATE NOCASE,
             PRIMARY KEY (room, name)
         ) WITHOUT ROWID;
         CREATE TABLE messages (
             id        INTEGER PRIMARY KEY,
             room      TEXT NOT NULL REFERENCES rooms(name),
             seq       INTEGER NOT NULL,
             sender    TEXT NOT NULL COLLATE NOCASE,
             client_id TEXT NOT NULL,
             body      TEXT NOT NULL,
             ts        INTEGER NOT NULL,
             UNIQUE (room, seq),
             UNIQUE (sender, client_id)
         );
         INSERT INTO rooms (name, created_at) VALUES ('general', 0);",
        ),
        // Accounts (see `super::accounts`). Usernames arrive lower-cased; NOCASE keeps
        // them unique even if a row were ever written another way.
        M::up(
            "CREATE TABLE users (
                 id            INTEGER PRIMARY KEY,
                 username      TEXT NOT NULL UNIQUE COLLATE NOCASE,
                 display_name  TEXT NOT NULL,
                 password_hash TEXT NOT NULL,
                 is_admin      INTEGER NOT NULL DEFAULT 0,
                 created_at    INTEGER NOT NULL
             );
             CREATE TABLE sessions (
                 token_hash BLOB PRIMARY KEY,
                 user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                 created_at INTEGER NOT NULL,
                 expires_at INTEGER NOT NULL
             ) WITHOUT ROWID;
             CREATE INDEX sessions_by_user ON sessions (user_id);",
        ),
        // Private rooms and direct conversations. Members and senders are now usernames
        // (usernames); the display name a message was sent under is kept with it, and
        // rows from before (where `sender` was a display name) fall back to `sender`.
        M::up(
            "ALTER TABLE rooms ADD COLUMN kind TEXT NOT NULL DEFAULT 'public';
             ALTER TABLE rooms ADD COLUMN title TEXT;
             ALTER TABLE rooms ADD COLUMN owner TEXT;
             ALTER TABLE messages ADD COLUMN sender_name TEXT;",
        ),
        // Invite links (see `super::invites`): only a hash of each secret; `created_by`
        // is NULL for invites made with `confab-server admin invite`. An invite goes
        // with the account that made it.
        M::up(
            "CREATE TABLE invites (
                 id         INTEGER PRIMARY KEY,
                 token_hash BLOB NOT NULL UNIQUE,
                 created_by INTEGER REFERENCES users(id) ON DELETE CASCADE,
                 created_at INTEGER NOT NULL,
                 expires_at INTEGER NOT NULL,
                 max_uses   INTEGER NOT NULL,
                 uses_left  INTEGER NOT NULL CHECK (uses_left >= 0)
             );
             CREATE INDEX invites_by_creator ON invites (created_by);",
        ),
        // Protocol 6: a room's log numbers changes too. `messages` keeps each message's
        // current state (`rev` is the seq of its last change, 0 for none); `changes` is
        // the log of edits, deletions and reactions (who, what, when: never the text);
        // `reactions` (`added`: the seq of the change that added it, for their order) and
        // `mentions` are current state; `read_markers` is per person and
        // room. Existing members start with everything read. `meta` holds the store's
        // identity (`epoch`), made here once.
        M::up(
            "ALTER TABLE messages ADD COLUMN reply_to INTEGER;
             ALTER TABLE messages ADD COLUMN edited_at INTEGER;
             ALTER TABLE messages ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
             ALTER TABLE messages ADD COLUMN rev INTEGER NOT NULL DEFAULT 0;
             CREATE TABLE changes (
                 id        INTEGER PRIMARY KEY,
                 room      TEXT NOT NULL REFERENCES rooms(name),
                 seq       INTEGER NOT NULL,
                 target    INTEGER NOT NULL,
                 kind      TEXT NOT NULL,
                 actor     TEXT NOT NULL COLLATE NOCASE,
                 emoji     TEXT,
                 client_id TEXT NOT NULL,
                 ts        INTEGER NOT NULL,
                 UNIQUE (room, seq),
                 UNIQUE (actor, client_id)
             );
             CREATE TABLE reactions (
                 room  TEXT NOT NULL,
                 seq   INTEGER NOT NULL,
                 emoji TEXT NOT NULL,
                 user  TEXT NOT NULL COLLATE NOCASE,
                 added INTEGER NOT NULL,
                 PRIMARY KEY (room, seq, emoji, user)
             ) WITHOUT ROWID;
             CREATE TABLE mentions (
                 user TEXT NOT NULL COLLATE NOCASE,
                 room TEXT NOT NULL,
                 seq  INTEGER NOT NULL,
                 PRIMARY KEY (user, room, seq)
             ) WITHOUT ROWID;
             CREATE INDEX mentions_by_message ON mentions (room, seq);
             CREATE TABLE read_markers (
                 user  TEXT NOT NULL COLLATE NOCASE,
                 room  TEXT NOT NULL,
                 seq   INTEGER NOT NULL DEFAULT 0,
                 muted INTEGER NOT NULL DEFAULT 0,
                 PRIMARY KEY (user, room)
             ) WITHOUT ROWID;
             INSERT INTO read_markers (user, room, seq)
                 SELECT rm.name, rm.room,
                        COALESCE((SELECT MAX(seq) FROM messages m WHERE m.room = rm.room), 0)
                 FROM room_members rm;
             CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
             INSERT INTO meta (key, value) VALUES ('epoch', lower(hex(randomblob(16))));",
        ),
        // Files (see `super::files` and `crate::files`): each distinct content once
        // (`file_blobs`, by SHA-256; its bytes are on disk, never here); each upload
        // (`file_uploads`: an unguessable id, its room and uploader, and `seq`/`pos`, the
        // message that shared it and its place there, NULL until shared); what each
        // person uploaded when (`file_usage`, for the daily budget: deleting a file does
        // not give its bytes back).
        M::up(
            "CREATE TABLE file_blobs (
                 hash       TEXT PRIMARY KEY,
                 size       INTEGER NOT NULL,
                 mime       TEXT NOT NULL,
                 width      INTEGER,
                 height     INTEGER,
                 created_at INTEGER NOT NULL
             ) WITHOUT ROWID;
             CREATE TABLE file_uploads (
                 id         TEXT PRIMARY KEY,
                 blob       TEXT NOT NULL REFERENCES file_blobs(hash),
                 room       TEXT NOT NULL REFERENCES rooms(name),
                 uploader   TEXT NOT NULL COLLATE NOCASE,
                 name       TEXT NOT NULL,
                 created_at INTEGER NOT NULL,
                 seq        INTEGER,
                 pos        INTEGER
             ) WITHOUT ROWID;
             CREATE INDEX file_uploads_by_message ON file_uploads (room, seq);
             CREATE INDEX file_uploads_by_blob ON file_uploads (blob);
             CREATE INDEX file_uploads_unshared ON file_uploads (created_at) WHERE seq IS NULL;
             CREATE TABLE file_usage (
                 user  TEXT NOT NULL COLLATE NOCASE,
                 ts    INTEGER NOT NULL,
                 bytes INTEGER NOT NULL
             );
             CREATE INDEX file_usage_by_user ON file_usage (user, ts);",
        ),
        // Search (see `search`): an FTS5 index of message bodies, and of each message's
        // room, sender and day (`day`: its UTC year, month and day as three tokens, a
        // column computed from `ts`, stored nowhere), so that `in:`, `from:` and dates
        // narrow a search inside the index instead of row by row. External content: the
        // index holds no second copy of the text, it reads `messages` when it needs the
        // text (highlighting). The writer keeps it in step in the transaction that
        // changes a message (`sqlite::search::index`, `unindex`: not triggers, which cost
        // three times as much per message), so an edit is found by its new text only and
        // a deletion (which empties the body) by nothing, from the commit on.
        // `secure-delete` makes FTS5 remove a deleted row's tokens from the index itself,
        // as `secure_delete` overwrites the freed text in the table. `columnsize=0`:
        // results are ordered by id, never ranked, so per-row token counts would be dead
        // weight. The rebuild indexes the messages stored before.
        M::up(concat!(
            "ALTER TABLE messages ADD COLUMN day TEXT GENERATED ALWAYS AS (",
            search::day_of!("ts"),
            ") VIRTUAL;
             CREATE VIRTUAL TABLE messages_fts USING fts5(
                 body, room, sender, day,
                 content = 'messages', content_rowid = 'id',
                 tokenize = 'unicode61 remove_diacritics 2',
                 columnsize = 0
             );
             INSERT INTO messages_fts (messages_fts, rank) VALUES ('secure-delete', 1);
             INSERT INTO messages_fts (messages_fts) VALUES ('rebuild');"
        )),
        // Retention (see `retention`): the highest `seq` of a room's log that was
        // pruned, so that a room whose every message got old keeps its numbering (the
        // next message is not numbered as an earlier one was, which clients hold); and
        // the log entries by the message they changed, which go with it.
        M::up(
            "ALTER TABLE rooms ADD COLUMN pruned_seq INTEGER NOT NULL DEFAULT 0;
             CREATE INDEX changes_by_target ON changes (room, target);",
        ),
        // An administrator's tools (see `crate::admin`): accounts can be disabled, and
        // when each last signed in is kept; the audit log of administrators' actions
        // (`actor` is a username, or `cli` for the command line); password reset links,
        // only a hash of each secret, gone with their account.
        M::up(
            "ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;
             ALTER TABLE users ADD COLUMN last_seen INTEGER;
             CREATE TABLE audit_log (
                 id     INTEGER PRIMARY KEY,
                 at     INTEGER NOT NULL,
                 actor  TEXT NOT NULL,
                 action TEXT NOT NULL,
                 target TEXT NOT NULL,
                 detail TEXT NOT NULL DEFAULT ''
             );
             CREATE TABLE password_resets (
                 token_hash BLOB PRIMARY KEY,
                 user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                 created_at INTEGER NOT NULL,
                 expires_at INTEGER NOT NULL
             ) WITHOUT ROWID;
             CREATE INDEX password_resets_by_user ON password_resets (user_id);",
        ),
    ])
}

/// A connection to the store. The server opens one for the writer thread, one for the
/// hub's own reads and one per reader thread; WAL lets them work at the same time.
pub struct SqliteStore {
    conn: Connection,
    /// Last sequence number per room, for assigning the next. Only the writer's
    /// connection uses it, and the writer is the only one that appends.
    last_seq: HashMap<String, u64>,
    /// Set on the writer's store: takes WAL checkpoints off the commit path.
    checkpointer: Option<Checkpointer>,
}

impl SqliteStore {
    /// Opens (creating and migrating if needed) the store in `data_dir`.
    pub fn open(data_dir: &Path, durability: Durability) -> Result<Self, StoreError> {
        let conn = open_migrated(data_dir, durability)?;
        Ok(Self {
            conn,
            last_seq: HashMap::new(),
            checkpointer: None,
        })
    }

    /// Opens a connection for reading only (a reader thread's), to a store the writer has
    /// already opened and migrated. `query_only` makes a write through it an error.
    pub fn open_reader(data_dir: &Path, durability: Durability) -> Result<Self, StoreError> {
        let conn = connect(data_dir, durability)?;
        conn.pragma_update(None, "query_only", true)?;
        Ok(Self {
            conn,
            last_seq: HashMap::new(),
            checkpointer: None,
        })
    }

    /// Opens the store for the writer: like [`SqliteStore::open`], but WAL checkpoints
    /// run on a thread of their own instead of inside commits (see [`super::checkpoint`]).
    pub fn open_writer(data_dir: &Path, durability: Durability) -> Result<Self, StoreError> {
        let mut store = Self::open(data_dir, durability)?;
        // The writer still waits for the write lock now and then, within `connect`'s
        // busy timeout: accounts (sign-ins, sign-ups, invites), uploads' rows and
        // `confab-server admin` write through connections of their own. Each is one
        // short transaction, seldom; retention, whose batches came one after another,
        // is a write of the writer's own (see `retention`).
        let checkpoints = connect(data_dir, durability)?;
        store.conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        store.checkpointer = Some(Checkpointer::spawn(checkpoints).map_err(StoreError::Thread)?);
        Ok(store)
    }

    /// Between transactions, copies the last frames of the log when the checkpoint
    /// thread asks, so the transaction that follows starts the log over.
    fn finish_checkpoint(&self) {
        let Some(checkpointer) = &self.checkpointer else {
            return;
        };
        if !checkpointer.rewind_wanted() {
            return;
        }
        match checkpoint::passive_checkpoint(&self.conn) {
            Ok(progress) if progress.complete() => checkpointer.rewound(),
            // The checkpoint thread is busy copying: try again before the next batch.
            Ok(_) => {}
            Err(e) => tracing::warn!("WAL checkpoint failed (will retry): {e}"),
        }
    }

    /// Runs `work` in one write transaction: committed if it succeeds, else rolled back.
    fn in_transaction<R>(
        &mut self,
        work: impl FnOnce(&mut Self) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        self.finish_checkpoint();
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        let result = work(self).and_then(|done| {
            self.conn.execute_batch("COMMIT")?;
            if let Some(checkpointer) = &self.checkpointer {
                checkpointer.nudge();
            }
            Ok(done)
        });
        if result.is_err() {
            // Nothing of the transaction is stored, so sequence numbers handed out in it
            // are free again: forget the cached ones and re-read them from the database.
            let _ = self.conn.execute_batch("ROLLBACK");
            self.last_seq.clear();
        }
        result
    }

    /// Applies `writes` inside the open transaction.
    fn apply_all(&mut self, writes: &[Write]) -> Result<Vec<Written>, StoreError> {
        // One statement handle for the whole batch: fetching it from the statement cache
        // for every message showed up in profiles (docs/PERFORMANCE.md, "What each change
        // bought", step 3).
        let mut insert = self.conn.prepare_cached(INSERT_MESSAGE)?;
        let conn = &self.conn;
        writes
            .iter()
            .map(|write| {
                match write {
                    Write::Append(m) => return append(conn, &mut self.last_seq, &mut insert, m),
                    Write::CreateRoom {
                        room,
                        ts,
                        kind,
                        title,
                        owner,
                    } => conn
                        .prepare_cached(
                            "INSERT OR IGNORE INTO rooms (name, created_at, kind, title, owner)
                             VALUES (?1, ?2, ?3, ?4, ?5)",
                        )?
                        .execute(params![room, ts, kind_to_sql(*kind), title, owner])?,
                    Write::RenameRoom { room, title } => conn
                        .prepare_cached("UPDATE rooms SET title = ?2 WHERE name = ?1")?
                        .execute(params![room, title])?,
                    Write::SetOwner { room, owner } => conn
                        .prepare_cached("UPDATE rooms SET owner = ?2 WHERE name = ?1")?
                        .execute(params![room, owner])?,
                    Write::Change(c) => {
                        return Ok(Written::Changed(changes::apply(conn, &mut self.last_seq, c)?));
                    }
                    Write::DeleteRoom { room } => {
                        search::unindex_room(conn, room)?;
                        for table in [
                            "DELETE FROM file_uploads WHERE room = ?1",
                            "DELETE FROM messages WHERE room = ?1",
                            "DELETE FROM changes WHERE room = ?1",
                            "DELETE FROM reactions WHERE room = ?1",
                            "DELETE FROM mentions WHERE room = ?1",
                            "DELETE FROM read_markers WHERE room = ?1",
                            "DELETE FROM room_members WHERE room = ?1",
                        ] {
                            conn.prepare_cached(table)?.execute([room])?;
                        }
                        self.last_seq.remove(room);
                        conn.prepare_cached("DELETE FROM rooms WHERE name = ?1")?
                            .execute([room])?
                    }
                    Write::AddMember { room, name } => {
                        // A new member has read what was said before they came.
                        let last = last_seq(conn, &mut self.last_seq, room)?;
                        conn.prepare_cached(
                            "INSERT OR IGNORE INTO read_markers (user, room, seq) VALUES (?1, ?2, ?3)",
                        )?
                        .execute(params![name, room, as_sql(last)])?;
                        conn.prepare_cached(
                            "INSERT OR IGNORE INTO room_members (room, name) VALUES (?1, ?2)",
                        )?
                        .execute(params![room, name])?
                    }
                    Write::RemoveMember { room, name } => {
                        conn.prepare_cached("DELETE FROM read_markers WHERE room = ?1 AND user = ?2")?
                            .execute(params![room, name])?;
                        conn.prepare_cached("DELETE FROM room_members WHERE room = ?1 AND name = ?2")?
                            .execute(params![room, name])?
                    }
                    Write::MarkRead { user, room, seq } => conn
                        .prepare_cached(
                            "INSERT INTO read_markers (user, room, seq) VALUES (?1, ?2, ?3)
                             ON CONFLICT (user, room) DO UPDATE SET seq = MAX(seq, excluded.seq)",
                        )?
                        .execute(params![user, room, as_sql(*seq)])?,
                    Write::Mute { user, room, muted } => conn
                        .prepare_cached(
                            "INSERT INTO read_markers (user, room, seq, muted) VALUES (?1, ?2, 0, ?3)
                             ON CONFLICT (user, room) DO UPDATE SET muted = excluded.muted",
                        )?
                        .execute(params![user, room, muted])?,
                };
                Ok(Written::Done)
            })
            .collect()
    }
}

const INSERT_MESSAGE: &str =
    "INSERT INTO messages (room, seq, sender, client_id, body, ts, sender_name, reply_to)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
     ON CONFLICT (sender, client_id) DO NOTHING";

/// The highest seq of `room`'s log: of its messages and of its changes. Cached: only the
/// writer's connection appends, so after one read the cache is the truth.
fn last_seq(
    conn: &Connection,
    cache: &mut HashMap<String, u64>,
    room: &str,
) -> Result<u64, StoreError> {
    if let Some(last) = cache.get(room) {
        return Ok(*last);
    }
    let last = conn.query_row(
        "SELECT MAX(COALESCE((SELECT MAX(seq) FROM messages WHERE room = ?1), 0),
                    COALESCE((SELECT MAX(seq) FROM changes WHERE room = ?1), 0),
                    COALESCE((SELECT pruned_seq FROM rooms WHERE name = ?1), 0))",
        [room],
        |row| row.get::<_, u64>(0),
    )?;
    cache.insert(room.to_owned(), last);
    Ok(last)
}

/// Records that `seq`, the next of `room`'s log, is taken.
fn claim_seq(cache: &mut HashMap<String, u64>, room: &str, seq: u64) {
    match cache.get_mut(room) {
        Some(last) => *last = seq,
        None => {
            cache.insert(room.to_owned(), seq);
        }
    }
}

/// Records who a message (`seq` of `room`) mentions, for their mention counts.
fn insert_mentions(
    conn: &Connection,
    room: &str,
    seq: u64,
    users: &[String],
) -> Result<(), StoreError> {
    if users.is_empty() {
        return Ok(());
    }
    let mut insert = conn
        .prepare_cached("INSERT OR IGNORE INTO mentions (user, room, seq) VALUES (?1, ?2, ?3)")?;
    for user in users {
        insert.execute(params![user, room, as_sql(seq)])?;
    }
    Ok(())
}

fn kind_to_sql(kind: RoomKind) -> &'static str {
    match kind {
        RoomKind::Public => "public",
        RoomKind::Private => "private",
        RoomKind::Direct => "direct",
    }
}

fn kind_from_sql(kind: &str) -> RoomKind {
    match kind {
        "private" => RoomKind::Private,
        "direct" => RoomKind::Direct,
        _ => RoomKind::Public,
    }
}

/// Stores one message with the next sequence number of its room, or finds the one the
/// same sender already stored under this client id.
fn append(
    conn: &Connection,
    cache: &mut HashMap<String, u64>,
    insert: &mut rusqlite::Statement<'_>,
    m: &NewMessage,
) -> Result<Written, StoreError> {
    let seq = last_seq(conn, cache, &m.room)? + 1;
    let quote = match m.reply_to {
        None => None,
        Some(target) => match snapshots::quote(conn, &m.room, target)? {
            Some(quote) => Some(quote),
            None => {
                // A repeat of a reply stored before is still a repeat, whatever became of
                // what it answers.
                if let Some(original) = snapshots::by_client_id(conn, &m.from, &m.client_id)? {
                    return Ok(Written::Appended(Appended::Duplicate(original)));
                }
                return Ok(Written::Appended(Appended::Refused(
                    Refused::UnknownMessage,
                )));
            }
        },
    };
    if !m.files.is_empty() && super::files::claimable(conn, &m.room, &m.from, &m.files)?.is_err() {
        // As for a reply: a repeat of a send stored before is still a repeat, though its
        // files are shared now (by it).
        if let Some(original) = snapshots::by_client_id(conn, &m.from, &m.client_id)? {
            return Ok(Written::Appended(Appended::Duplicate(original)));
        }
        return Ok(Written::Appended(Appended::Refused(Refused::UnknownFile)));
    }
    let inserted = insert.execute(params![
        m.room,
        seq,
        m.from,
        m.client_id,
        m.body,
        m.ts,
        m.name,
        m.reply_to.map(as_sql),
    ])?;
    if inserted == 1 {
        search::index(
            conn,
            &search::Indexed {
                id: conn.last_insert_rowid(),
                body: &m.body,
                room: &m.room,
                sender: &m.from,
                ts: m.ts,
            },
        )?;
        claim_seq(cache, &m.room, seq);
        insert_mentions(conn, &m.room, seq, &m.mentions)?;
        let mut stored = ChatMessage {
            id: u64::try_from(conn.last_insert_rowid()).unwrap_or_default(),
            seq,
            room: m.room.clone(),
            from: m.from.clone(),
            name: m.name.clone(),
            body: m.body.clone(),
            ts: m.ts,
            reply_to: quote,
            ..ChatMessage::default()
        };
        if !m.files.is_empty() {
            super::files::claim(conn, &m.room, seq, &m.files)?;
            super::files::attach(conn, &m.room, std::slice::from_mut(&mut stored))?;
        }
        return Ok(Written::Appended(Appended::Stored(stored)));
    }
    let original = snapshots::by_client_id(conn, &m.from, &m.client_id)?
        .ok_or(rusqlite::Error::QueryReturnedNoRows)?;
    Ok(Written::Appended(Appended::Duplicate(original)))
}

/// A connection to the database in `data_dir` (created if needed), set up for
/// `durability`.
fn connect(data_dir: &Path, durability: Durability) -> Result<Connection, StoreError> {
    std::fs::create_dir_all(data_dir).map_err(|source| StoreError::DataDir {
        path: data_dir.to_owned(),
        source,
    })?;
    let conn = Connection::open(data_dir.join(DB_FILE))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(
        None,
        "synchronous",
        match durability {
            Durability::Process => "NORMAL",
            Durability::Power => "FULL",
        },
    )?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // What is deleted (a message's text, a room) is overwritten, not only unlinked.
    conn.pragma_update(None, "secure_delete", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

/// A connection to the database in `data_dir`, created and migrated to the latest
/// schema if needed.
pub(super) fn open_migrated(
    data_dir: &Path,
    durability: Durability,
) -> Result<Connection, StoreError> {
    let mut conn = connect(data_dir, durability)?;
    migrations().to_latest(&mut conn)?;
    Ok(conn)
}

/// File in the data directory that a server running on it holds a shared lock on
/// (`flock`), for as long as it runs; `admin migrate-to-postgres` takes it exclusively
/// while it copies, so that neither starts while the other runs. SQLite's own locks
/// cannot tell: in WAL mode an idle connection holds none on the database file.
pub const LOCK_FILE: &str = "confab.lock";

/// Why the data directory's lock could not be had.
#[derive(Debug, thiserror::Error)]
pub enum DataDirLock {
    #[error("{0} is in use by another process")]
    InUse(std::path::PathBuf),
    #[error("cannot lock {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// Takes the data directory's lock (see [`LOCK_FILE`]), shared (a server) or
/// exclusive (a migration), without waiting; held until the file is dropped.
pub fn lock_data_dir(data_dir: &Path, exclusive: bool) -> Result<std::fs::File, DataDirLock> {
    let path = data_dir.join(LOCK_FILE);
    let io = |source| DataDirLock::Io {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(data_dir).map_err(io)?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io)?;
    let taken = if exclusive {
        file.try_lock()
    } else {
        file.try_lock_shared()
    };
    match taken {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(DataDirLock::InUse(data_dir.to_owned())),
        Err(std::fs::TryLockError::Error(e)) => Err(io(e)),
    }
}

/// Opens the store in `data_dir` (which must exist) migrated to the latest schema, for
/// `admin migrate-to-postgres`, which reads it in one transaction.
pub(super) fn open_existing(data_dir: &Path) -> Result<Connection, StoreError> {
    let mut conn = Connection::open_with_flags(
        data_dir.join(DB_FILE),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    migrations().to_latest(&mut conn)?;
    Ok(conn)
}

/// SQLite integers are signed: bounds past `i64::MAX` mean "no bound".
fn as_sql(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Store for SqliteStore {
    fn rooms(&mut self) -> Result<Vec<StoredRoom>, StoreError> {
        let mut rooms: Vec<StoredRoom> = self
            .conn
            .prepare(
                "SELECT r.name,
                        MAX(COALESCE((SELECT MAX(seq) FROM messages m WHERE m.room = r.name), 0),
                            COALESCE((SELECT MAX(seq) FROM changes c WHERE c.room = r.name), 0),
                            r.pruned_seq),
                        r.kind, COALESCE(r.title, r.name), r.owner
                 FROM rooms r ORDER BY r.name",
            )?
            .query_map([], |row| {
                let last_seq = row.get(1)?;
                Ok(StoredRoom {
                    name: row.get(0)?,
                    last_seq,
                    kind: kind_from_sql(&row.get::<_, String>(2)?),
                    title: row.get(3)?,
                    owner: row.get(4)?,
                    members: Vec::new(),
                    head: RoomHead {
                        last_seq,
                        ..RoomHead::default()
                    },
                })
            })?
            .collect::<Result<_, _>>()?;
        let mut members: HashMap<String, Vec<String>> = HashMap::new();
        let mut stmt = self
            .conn
            .prepare("SELECT room, name FROM room_members ORDER BY room, name")?;
        let rows = stmt.query_map([], |row| Ok((row.get::<_, String>(0)?, row.get(1)?)))?;
        for row in rows {
            let (room, name) = row?;
            members.entry(room).or_default().push(name);
        }
        for room in &mut rooms {
            room.members = members.remove(&room.name).unwrap_or_default();
        }
        debug_assert!(rooms.iter().any(|r| r.name == DEFAULT_ROOM));
        Ok(rooms)
    }

    fn people(&mut self) -> Result<Vec<StoredPerson>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT username, display_name FROM users ORDER BY username")?;
        let rows = stmt.query_map([], |row| {
            Ok(StoredPerson {
                username: row.get(0)?,
                display_name: row.get(1)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn person(&mut self, username: &str) -> Result<Option<StoredPerson>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT username, display_name FROM users WHERE username = ?1")?
            .query_row([username], |row| {
                Ok(StoredPerson {
                    username: row.get(0)?,
                    display_name: row.get(1)?,
                })
            })
            .optional()?)
    }

    fn apply(&mut self, writes: &[Write]) -> Result<Vec<Written>, StoreError> {
        self.in_transaction(|store| store.apply_all(writes))
    }

    fn prune(&mut self, ids: &[i64], before_ms: i64) -> Result<usize, StoreError> {
        self.in_transaction(|store| retention::delete(&store.conn, ids, before_ms))
    }

    fn mutes(&mut self) -> Result<Vec<(String, String)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT user, room FROM read_markers WHERE muted = 1")?;
        let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn epoch(&mut self) -> Result<String, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'epoch'", [], |row| {
                row.get(0)
            })?)
    }

    fn after(
        &mut self,
        room: &str,
        after: u64,
        until: u64,
        limit: usize,
    ) -> Result<Page, StoreError> {
        // One read transaction for the page's several queries: they see one state of the
        // store, and SQLite takes its locks once rather than per statement.
        let tx = self.conn.transaction()?;
        let page = snapshots::after(&tx, room, after, until, limit)?;
        tx.commit()?;
        Ok(page)
    }

    fn before(
        &mut self,
        room: &str,
        before: u64,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, StoreError> {
        let tx = self.conn.transaction()?;
        let page = snapshots::before(&tx, room, before, limit)?;
        tx.commit()?;
        Ok(page)
    }

    fn around(
        &mut self,
        room: &str,
        seq: u64,
        until: u64,
        side: usize,
    ) -> Result<Around, StoreError> {
        let tx = self.conn.transaction()?;
        let around = snapshots::around(&tx, room, seq, until, side)?;
        tx.commit()?;
        Ok(around)
    }

    fn search(&mut self, request: &SearchRequest) -> Result<SearchPage, StoreError> {
        let tx = self.conn.transaction()?;
        let page = search::search(&tx, request)?;
        tx.commit()?;
        Ok(page)
    }

    fn unread(&mut self, user: &str, room: &str, until: u64) -> Result<Unread, StoreError> {
        let read: Option<u64> = self
            .conn
            .prepare_cached("SELECT seq FROM read_markers WHERE user = ?1 AND room = ?2")?
            .query_row(params![user, room], |row| row.get(0))
            .optional()?;
        let Some(read) = read else {
            return Ok(Unread {
                read: until,
                ..Unread::default()
            });
        };
        let read = read.min(until);
        let cap = i64::from(limits::MAX_UNREAD_COUNT);
        let messages: u32 = self
            .conn
            .prepare_cached(
                "SELECT COUNT(*) FROM (SELECT 1 FROM messages
                 WHERE room = ?1 AND seq > ?2 AND seq <= ?3 AND deleted = 0 AND sender <> ?4
                 LIMIT ?5)",
            )?
            .query_row(
                params![room, as_sql(read), as_sql(until), user, cap],
                |row| row.get(0),
            )?;
        let mentions: u32 = self
            .conn
            .prepare_cached(
                "SELECT COUNT(*) FROM (SELECT 1 FROM mentions
                 WHERE user = ?1 AND room = ?2 AND seq > ?3 AND seq <= ?4 LIMIT ?5)",
            )?
            .query_row(
                params![user, room, as_sql(read), as_sql(until), cap],
                |row| row.get(0),
            )?;
        Ok(Unread {
            read,
            messages,
            mentions,
        })
    }
}

impl SqliteStore {
    /// Whether a room exists; for tests and diagnostics.
    pub fn has_room(&self, room: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT 1 FROM rooms WHERE name = ?1", [room], |_| Ok(()))
            .optional()?
            .is_some())
    }
}

#[cfg(test)]
mod tests;
