//! The embedded store: SQLite in WAL mode, one file in the data directory.

use std::{collections::HashMap, path::Path};

use confab_shared::{ChatMessage, DEFAULT_ROOM, RoomKind, limits};
use rusqlite::{Connection, OptionalExtension, params};
use rusqlite_migration::{M, Migrations};

use super::{
    Appended, Durability, NewMessage, Store, StoreError, StoredPerson, StoredRoom, Write, Written,
    checkpoint::{self, Checkpointer},
};

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "confab.sqlite3";

/// The columns [`row_to_message`] reads, in its order. A macro so the queries that use
/// it stay `&'static str`s.
macro_rules! message_columns {
    () => {
        "id, room, seq, sender, COALESCE(sender_name, sender), body, ts"
    };
}

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
                    Write::DeleteRoom { room } => {
                        conn.prepare_cached("DELETE FROM messages WHERE room = ?1")?
                            .execute([room])?;
                        conn.prepare_cached("DELETE FROM room_members WHERE room = ?1")?
                            .execute([room])?;
                        self.last_seq.remove(room);
                        conn.prepare_cached("DELETE FROM rooms WHERE name = ?1")?
                            .execute([room])?
                    }
                    Write::AddMember { room, name } => conn
                        .prepare_cached(
                            "INSERT OR IGNORE INTO room_members (room, name) VALUES (?1, ?2)",
                        )?
                        .execute(params![room, name])?,
                    Write::RemoveMember { room, name } => conn
                        .prepare_cached("DELETE FROM room_members WHERE room = ?1 AND name = ?2")?
                        .execute(params![room, name])?,
                };
                Ok(Written::Done)
            })
            .collect()
    }
}

const INSERT_MESSAGE: &str =
    "INSERT INTO messages (room, seq, sender, client_id, body, ts, sender_name)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
     ON CONFLICT (sender, client_id) DO NOTHING";

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
    last_seq: &mut HashMap<String, u64>,
    insert: &mut rusqlite::Statement<'_>,
    m: &NewMessage,
) -> Result<Written, StoreError> {
    let seq = match last_seq.get(&m.room) {
        Some(last) => *last,
        None => conn.query_row(
            "SELECT COALESCE(MAX(seq), 0) FROM messages WHERE room = ?1",
            [&m.room],
            |row| row.get::<_, u64>(0),
        )?,
    } + 1;
    let inserted = insert.execute(params![
        m.room,
        seq,
        m.from,
        m.client_id,
        m.body,
        m.ts,
        m.name
    ])?;
    if inserted == 1 {
        match last_seq.get_mut(&m.room) {
            Some(last) => *last = seq,
            None => {
                last_seq.insert(m.room.clone(), seq);
            }
        }
        return Ok(Written::Appended(Appended::Stored(ChatMessage {
            id: u64::try_from(conn.last_insert_rowid()).unwrap_or_default(),
            seq,
            room: m.room.clone(),
            from: m.from.clone(),
            name: m.name.clone(),
            body: m.body.clone(),
            ts: m.ts,
        })));
    }
    let original = conn
        .prepare_cached(concat!(
            "SELECT ",
            message_columns!(),
            " FROM messages WHERE sender = ?1 AND client_id = ?2"
        ))?
        .query_row(params![m.from, m.client_id], row_to_message)?;
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

/// SQLite integers are signed: bounds past `i64::MAX` mean "no bound".
fn as_sql(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Collects rows until their encoded size would pass [`limits::MAX_PAGE_BYTES`] (the
/// message that crosses it is the last one; a page is never empty while rows are left).
/// The callers already treat a short page as "more to come": a `replay` that ends before
/// the room's last seq asks to be followed, a history page that does not reach seq 1
/// says `more`.
fn page_within_bytes(
    rows: impl Iterator<Item = rusqlite::Result<ChatMessage>>,
) -> Result<Vec<ChatMessage>, StoreError> {
    let mut page = Vec::new();
    let mut bytes = 0;
    for row in rows {
        let message = row?;
        bytes += encoded_len(&message);
        page.push(message);
        if bytes >= limits::MAX_PAGE_BYTES {
            break;
        }
    }
    Ok(page)
}

/// The length of `message` as JSON, counted without building the string.
fn encoded_len(message: &ChatMessage) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing to a counter cannot fail, and a message always serializes.
    let _ = serde_json::to_writer(&mut count, message);
    count.0
}

fn row_to_message(row: &rusqlite::Row<'_>) -> rusqlite::Result<ChatMessage> {
    Ok(ChatMessage {
        id: row.get(0)?,
        room: row.get(1)?,
        seq: row.get(2)?,
        from: row.get(3)?,
        name: row.get(4)?,
        body: row.get(5)?,
        ts: row.get(6)?,
    })
}

impl Store for SqliteStore {
    fn rooms(&mut self) -> Result<Vec<StoredRoom>, StoreError> {
        let mut rooms: Vec<StoredRoom> = self
            .conn
            .prepare(
                "SELECT r.name, COALESCE((SELECT MAX(seq) FROM messages m WHERE m.room = r.name), 0),
                        r.kind, COALESCE(r.title, r.name), r.owner
                 FROM rooms r ORDER BY r.name",
            )?
            .query_map([], |row| {
                Ok(StoredRoom {
                    name: row.get(0)?,
                    last_seq: row.get(1)?,
                    kind: kind_from_sql(&row.get::<_, String>(2)?),
                    title: row.get(3)?,
                    owner: row.get(4)?,
                    members: Vec::new(),
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
        self.finish_checkpoint();
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        let result = self.apply_all(writes).and_then(|written| {
            self.conn.execute_batch("COMMIT")?;
            if let Some(checkpointer) = &self.checkpointer {
                checkpointer.nudge();
            }
            Ok(written)
        });
        if result.is_err() {
            // Nothing of the batch is stored, so sequence numbers handed out in it are
            // free again: forget the cached ones and re-read them from the database.
            let _ = self.conn.execute_batch("ROLLBACK");
            self.last_seq.clear();
        }
        result
    }

    fn after(
        &mut self,
        room: &str,
        after: u64,
        until: u64,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut stmt = self.conn.prepare_cached(concat!(
            "SELECT ",
            message_columns!(),
            " FROM messages WHERE room = ?1 AND seq > ?2 AND seq <= ?3 ORDER BY seq LIMIT ?4"
        ))?;
        let rows = stmt.query_map(
            params![room, as_sql(after), as_sql(until), limit],
            row_to_message,
        )?;
        page_within_bytes(rows)
    }

    fn before(
        &mut self,
        room: &str,
        before: u64,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut stmt = self.conn.prepare_cached(concat!(
            "SELECT ",
            message_columns!(),
            " FROM messages WHERE room = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3"
        ))?;
        let rows = stmt.query_map(params![room, as_sql(before), limit], row_to_message)?;
        // Newest first, so a page cut short by its size keeps the newest messages.
        let mut page = page_within_bytes(rows)?;
        page.reverse();
        Ok(page)
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
