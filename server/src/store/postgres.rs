//! The server-database store: PostgreSQL, shared by every node of a cluster (issue 18).
//!
//! SQLite serves one process: its single writer thread computes each room's next `seq`
//! from what it wrote last. With several nodes writing one database that cache would be
//! wrong, so here the counter is a column, `rooms.last_seq`, taken inside the batch's
//! transaction (`UPDATE rooms SET last_seq = last_seq + 1 ... RETURNING last_seq`). The
//! row lock it takes lasts until the commit, so per room the commits come in `seq`
//! order, and a batch that rolls back gives its numbers back: no holes, which is what
//! a resuming client relies on (a gap means something it has not seen). A PostgreSQL
//! `SEQUENCE` would leave holes on rollback and hand out numbers in an order other than
//! the commits'.
//!
//! A batch locks the existing rooms it writes to first, in name order, so two nodes'
//! batches over the same rooms queue instead of deadlocking; and a message's client id
//! is checked for a repeat only once its room is locked, so a repeat sent to two nodes
//! at once is stored once (the second sees the first's commit). A repeat across rooms
//! racing on two nodes fails one batch on the unique key instead; its sender is told
//! `unavailable` and its resend is answered as a repeat.
//!
//! The client is the synchronous `postgres` crate, which fits the store's threads (the
//! writer, the readers): it runs a runtime of its own, so it must never be called from
//! a Tokio worker thread.
//!
//! Full-text search is a `tsvector` column and a GIN index (`search`), where SQLite has
//! FTS5 (`search` says where the two differ). A lost connection is made anew on the
//! next use. The accounts, sessions and invites are in [`accounts`], the files' store in
//! [`files`].

use std::collections::{HashMap, HashSet};

use confab_shared::{ChatMessage, RoomKind, limits};
use postgres::{Client, IsolationLevel, NoTls, Row, Statement, Transaction, types::ToSql};

use super::{
    Appended, Around, Changed, NewMessage, Page, Refused, RoomHead, SearchPage, SearchRequest,
    Store, StoreError, StoredPerson, StoredRoom, Unread, Write, Written,
};

pub(super) mod accounts;
mod changes;
pub mod files;
pub mod history;
mod off_runtime;
mod pool;
pub mod retention;
mod schema;
mod search;
mod snapshots;

pub use accounts::device_cookie_key;
pub use pool::{PgPool, PooledClient};

/// A connection to the PostgreSQL store, for the writer or a reader.
pub struct PgStore {
    url: String,
    client: off_runtime::OffRuntime<Client>,
    /// Statements prepared on this connection, by their text.
    statements: HashMap<&'static str, Statement>,
}

/// A transaction and the connection's prepared statements: what every query here goes
/// through, so that each statement is parsed once per connection.
pub(super) struct Db<'a> {
    tx: Transaction<'a>,
    statements: &'a mut HashMap<&'static str, Statement>,
}

type Params<'p> = &'p [&'p (dyn ToSql + Sync)];

impl Db<'_> {
    fn statement(&mut self, sql: &'static str) -> Result<Statement, StoreError> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.tx.prepare(sql)?;
        self.statements.insert(sql, statement.clone());
        Ok(statement)
    }

    fn query(&mut self, sql: &'static str, params: Params<'_>) -> Result<Vec<Row>, StoreError> {
        let statement = self.statement(sql)?;
        Ok(self.tx.query(&statement, params)?)
    }

    fn query_opt(
        &mut self,
        sql: &'static str,
        params: Params<'_>,
    ) -> Result<Option<Row>, StoreError> {
        let statement = self.statement(sql)?;
        Ok(self.tx.query_opt(&statement, params)?)
    }

    fn query_one(&mut self, sql: &'static str, params: Params<'_>) -> Result<Row, StoreError> {
        let statement = self.statement(sql)?;
        Ok(self.tx.query_one(&statement, params)?)
    }

    fn execute(&mut self, sql: &'static str, params: Params<'_>) -> Result<u64, StoreError> {
        let statement = self.statement(sql)?;
        Ok(self.tx.execute(&statement, params)?)
    }
}

/// PostgreSQL integers are signed: bounds past `i64::MAX` mean "no bound".
fn as_sql(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A seq, id or count as stored; the schema keeps them non-negative.
fn from_sql(n: i64) -> u64 {
    u64::try_from(n).unwrap_or_default()
}

/// A room from `SELECT name, last_seq, kind, COALESCE(title, name), owner, id, version`,
/// without its members.
fn room_from_row(row: &Row) -> Result<StoredRoom, StoreError> {
    let last_seq = from_sql(row.try_get(1)?);
    Ok(StoredRoom {
        name: row.try_get(0)?,
        last_seq,
        kind: kind_from_sql(row.try_get(2)?),
        title: row.try_get(3)?,
        owner: row.try_get(4)?,
        members: Vec::new(),
        head: RoomHead {
            id: from_sql(row.try_get(5)?),
            last_seq,
            version: from_sql(row.try_get(6)?),
        },
    })
}

impl PgStore {
    /// Connects to the database at `url` (a `postgres://` URL) and brings its schema to
    /// the latest version; safe when several nodes do it at once.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        let mut store = Self::connect(url)?;
        schema::migrate(&mut store.client)?;
        Ok(store)
    }

    /// Connects without migrating: for a reader, once a writer has opened the store.
    pub fn connect(url: &str) -> Result<Self, StoreError> {
        Ok(Self {
            url: url.to_owned(),
            client: off_runtime::OffRuntime::new(Client::connect(url, NoTls)?),
            statements: HashMap::new(),
        })
    }

    /// The connection, made anew if the last one was lost (PostgreSQL restarted, the
    /// network failed): the operation that met the loss failed, and this one goes on.
    /// Statements are prepared per connection, so they are forgotten with it.
    fn reconnect_if_lost(&mut self) -> Result<(), StoreError> {
        if self.client.is_closed() {
            let client = Client::connect(&self.url, NoTls)?;
            self.statements.clear();
            self.client = off_runtime::OffRuntime::new(client);
            tracing::info!("reconnected to PostgreSQL");
        }
        Ok(())
    }

    /// Brings the schema to the latest version; how many steps this call applied (0
    /// when it already was). [`PgStore::open`] does it; public for tests and tools.
    pub fn migrate(&mut self) -> Result<usize, StoreError> {
        self.reconnect_if_lost()?;
        schema::migrate(&mut self.client)
    }

    /// How many migration steps the program knows, for tests and diagnostics.
    pub fn schema_steps() -> usize {
        schema::MIGRATIONS.len()
    }

    /// A read transaction: one snapshot for all the queries of a page, as SQLite's read
    /// transaction gives.
    fn read(&mut self) -> Result<Db<'_>, StoreError> {
        self.reconnect_if_lost()?;
        let tx = self
            .client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()?;
        Ok(Db {
            tx,
            statements: &mut self.statements,
        })
    }

    /// Reads with one snapshot, then ends the transaction.
    fn reading<T>(
        &mut self,
        read: impl FnOnce(&mut Db<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut db = self.read()?;
        let value = read(&mut db)?;
        db.tx.commit()?;
        Ok(value)
    }
}

/// The rooms a batch has locked (their `rooms` row, `FOR UPDATE`), which makes it the
/// only writer of their logs until it commits.
#[derive(Default)]
struct Locked(HashSet<String>);

impl Locked {
    /// Locks `room` if this batch has not yet; whether there is such a room.
    fn try_lock(&mut self, db: &mut Db<'_>, room: &str) -> Result<bool, StoreError> {
        if self.0.contains(room) {
            return Ok(true);
        }
        let found = db
            .query_opt("SELECT 1 FROM rooms WHERE name = $1 FOR UPDATE", &[&room])?
            .is_some();
        if found {
            self.0.insert(room.to_owned());
        }
        Ok(found)
    }

    /// Locks `room` if this batch has not yet: an error if there is no such room (a
    /// write SQLite's foreign keys refuse too).
    fn lock(&mut self, db: &mut Db<'_>, room: &str) -> Result<(), StoreError> {
        if self.try_lock(db, room)? {
            Ok(())
        } else {
            Err(StoreError::NoSuchRoom(room.to_owned()))
        }
    }

    /// Locks, in name order, the rooms that exist of those whose logs `writes` may
    /// add to (the others are created by the batch, or make it fail).
    fn lock_in_order(&mut self, db: &mut Db<'_>, writes: &[Write]) -> Result<(), StoreError> {
        let mut rooms: Vec<&str> = writes
            .iter()
            .filter_map(|write| match write {
                Write::Append(m) => Some(m.room.as_str()),
                Write::Change(c) => Some(c.room.as_str()),
                Write::AddMember { room, .. } => Some(room.as_str()),
                _ => None,
            })
            .collect();
        rooms.sort_unstable();
        rooms.dedup();
        for room in rooms {
            self.try_lock(db, room)?;
        }
        Ok(())
    }
}

/// The (sender, client id) pairs of a batch's messages that are stored already: looked
/// up once per batch, under the rooms' locks (so a repeat another node committed first
/// is seen), and kept up to date as the batch stores messages. Usernames are ASCII
/// (`confab_shared::validate`), so ASCII lower case matches `CITEXT`'s comparison.
#[derive(Default)]
struct Repeats(HashSet<(String, String)>);

impl Repeats {
    fn key(sender: &str, client_id: &str) -> (String, String) {
        (sender.to_ascii_lowercase(), client_id.to_owned())
    }

    fn find(db: &mut Db<'_>, writes: &[Write]) -> Result<Self, StoreError> {
        let (senders, client_ids): (Vec<&str>, Vec<&str>) = writes
            .iter()
            .filter_map(|write| match write {
                Write::Append(m) => Some((m.from.as_str(), m.client_id.as_str())),
                _ => None,
            })
            .unzip();
        if senders.is_empty() {
            return Ok(Self::default());
        }
        let rows = db.query(
            "SELECT m.sender::text, m.client_id
             FROM messages m
             JOIN unnest($1::text[], $2::text[]) AS u(sender, client_id)
               ON m.sender = u.sender::citext AND m.client_id = u.client_id",
            &[&senders, &client_ids],
        )?;
        let mut found = HashSet::with_capacity(rows.len());
        for row in rows {
            found.insert(Self::key(row.try_get(0)?, row.try_get(1)?));
        }
        Ok(Self(found))
    }

    fn contains(&self, m: &NewMessage) -> bool {
        self.0.contains(&Self::key(&m.from, &m.client_id))
    }

    fn stored(&mut self, m: &NewMessage) {
        self.0.insert(Self::key(&m.from, &m.client_id));
    }
}

/// Takes the next `seq` of `room`'s log (locked by the batch).
fn next_seq(db: &mut Db<'_>, room: &str) -> Result<u64, StoreError> {
    let row = db
        .query_opt(
            "UPDATE rooms SET last_seq = last_seq + 1 WHERE name = $1 RETURNING last_seq",
            &[&room],
        )?
        .ok_or_else(|| StoreError::NoSuchRoom(room.to_owned()))?;
    Ok(from_sql(row.try_get(0)?))
}

/// Records who a message (`seq` of `room`) mentions, for their mention counts.
fn insert_mentions(
    db: &mut Db<'_>,
    room: &str,
    seq: u64,
    users: &[String],
) -> Result<(), StoreError> {
    for user in users {
        db.execute(
            "INSERT INTO mentions (username, room, seq) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
            &[user, &room, &as_sql(seq)],
        )?;
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

/// Whether each of `ids` is an unshared upload of `uploader`'s to `room`. Each row is
/// locked until the batch commits, so that a file sweep on any node (which deletes
/// unshared uploads) cannot take it between this check and the claim: the sweep waits
/// and then finds it shared.
fn claimable(
    db: &mut Db<'_>,
    room: &str,
    uploader: &str,
    ids: &[String],
) -> Result<bool, StoreError> {
    for id in ids {
        let found = db.query_opt(
            "SELECT 1 FROM file_uploads
             WHERE id = $1 AND room = $2 AND uploader = $3 AND seq IS NULL
             FOR UPDATE",
            &[id, &room, &uploader],
        )?;
        if found.is_none() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Stores one message with the next sequence number of its room, or finds the one the
/// same sender already stored under this client id.
fn append(
    db: &mut Db<'_>,
    locked: &mut Locked,
    repeats: &mut Repeats,
    m: &NewMessage,
) -> Result<Written, StoreError> {
    locked.lock(db, &m.room)?;
    if repeats.contains(m)
        && let Some(original) = snapshots::by_client_id(db, &m.from, &m.client_id)?
    {
        return Ok(Written::Appended(Appended::Duplicate(original)));
    }
    let quote = match m.reply_to {
        None => None,
        Some(target) => match snapshots::quote(db, &m.room, target)? {
            Some(quote) => Some(quote),
            None => {
                return Ok(Written::Appended(Appended::Refused(
                    Refused::UnknownMessage,
                )));
            }
        },
    };
    if !m.files.is_empty() && !claimable(db, &m.room, &m.from, &m.files)? {
        return Ok(Written::Appended(Appended::Refused(Refused::UnknownFile)));
    }
    // The room's next seq and the message in one round trip.
    let row = db
        .query_opt(
            "WITH next AS (
                 UPDATE rooms SET last_seq = last_seq + 1 WHERE name = $1 RETURNING last_seq
             )
             INSERT INTO messages (room, seq, sender, client_id, body, ts, sender_name, reply_to)
             SELECT $1, last_seq, $2, $3, $4, $5, $6, $7 FROM next
             RETURNING id, seq",
            &[
                &m.room,
                &m.from,
                &m.client_id,
                &m.body,
                &m.ts,
                &m.name,
                &m.reply_to.map(as_sql),
            ],
        )?
        .ok_or_else(|| StoreError::NoSuchRoom(m.room.clone()))?;
    repeats.stored(m);
    let seq = from_sql(row.try_get(1)?);
    insert_mentions(db, &m.room, seq, &m.mentions)?;
    let mut stored = ChatMessage {
        id: from_sql(row.try_get(0)?),
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
        for (pos, id) in m.files.iter().enumerate() {
            db.execute(
                "UPDATE file_uploads SET seq = $3, pos = $4
                 WHERE id = $1 AND room = $2 AND seq IS NULL",
                &[id, &m.room, &as_sql(seq), &as_sql(pos as u64)],
            )?;
        }
        snapshots::attach_files(db, &m.room, std::slice::from_mut(&mut stored))?;
    }
    Ok(Written::Appended(Appended::Stored(stored)))
}

/// Applies `writes` inside the batch's transaction.
fn apply_all(db: &mut Db<'_>, writes: &[Write]) -> Result<Vec<Written>, StoreError> {
    let mut locked = Locked::default();
    locked.lock_in_order(db, writes)?;
    let mut repeats = Repeats::find(db, writes)?;
    let mut written = Vec::with_capacity(writes.len());
    for write in writes {
        match write {
            Write::Append(m) => {
                written.push(append(db, &mut locked, &mut repeats, m)?);
                continue;
            }
            Write::Change(c) => {
                // A change in no room (deleted earlier in the batch, say) has no message
                // to change: refused, as on SQLite, not failing everyone's batch.
                written.push(Written::Changed(if locked.try_lock(db, &c.room)? {
                    changes::apply(db, c)?
                } else {
                    Changed::Refused(Refused::UnknownMessage)
                }));
                continue;
            }
            Write::CreateRoom {
                room,
                ts,
                kind,
                title,
                owner,
            } => db.execute(
                "INSERT INTO rooms (name, created_at, kind, title, owner)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING",
                &[room, ts, &kind_to_sql(*kind), title, owner],
            )?,
            Write::RenameRoom { room, title } => db.execute(
                "UPDATE rooms SET title = $2, version = version + 1 WHERE name = $1",
                &[room, title],
            )?,
            Write::SetOwner { room, owner } => db.execute(
                "UPDATE rooms SET owner = $2, version = version + 1 WHERE name = $1",
                &[room, owner],
            )?,
            Write::DeleteRoom { room } => {
                db.execute("DELETE FROM file_uploads WHERE room = $1", &[room])?;
                db.execute("DELETE FROM messages WHERE room = $1", &[room])?;
                db.execute("DELETE FROM changes WHERE room = $1", &[room])?;
                db.execute("DELETE FROM reactions WHERE room = $1", &[room])?;
                db.execute("DELETE FROM mentions WHERE room = $1", &[room])?;
                db.execute("DELETE FROM read_markers WHERE room = $1", &[room])?;
                db.execute("DELETE FROM room_members WHERE room = $1", &[room])?;
                locked.0.remove(room);
                db.execute("DELETE FROM rooms WHERE name = $1", &[room])?
            }
            Write::AddMember { room, name } => {
                // A new member has read what was said before they came: the log as this
                // batch (holding the room's lock) sees it.
                locked.lock(db, room)?;
                let last: i64 = db
                    .query_one("SELECT last_seq FROM rooms WHERE name = $1", &[room])?
                    .try_get(0)?;
                db.execute(
                    "INSERT INTO read_markers (username, room, seq) VALUES ($1, $2, $3)
                     ON CONFLICT DO NOTHING",
                    &[name, room, &last],
                )?;
                let added = db.execute(
                    "INSERT INTO room_members (room, name) VALUES ($1, $2)
                     ON CONFLICT DO NOTHING",
                    &[room, name],
                )?;
                if added > 0 {
                    db.execute(
                        "UPDATE rooms SET version = version + 1 WHERE name = $1",
                        &[room],
                    )?;
                }
                added
            }
            Write::RemoveMember { room, name } => {
                db.execute(
                    "DELETE FROM read_markers WHERE room = $1 AND username = $2",
                    &[room, name],
                )?;
                let removed = db.execute(
                    "DELETE FROM room_members WHERE room = $1 AND name = $2",
                    &[room, name],
                )?;
                if removed > 0 {
                    db.execute(
                        "UPDATE rooms SET version = version + 1 WHERE name = $1",
                        &[room],
                    )?;
                }
                removed
            }
            Write::MarkRead { user, room, seq } => db.execute(
                "INSERT INTO read_markers (username, room, seq) VALUES ($1, $2, $3)
                 ON CONFLICT (username, room)
                 DO UPDATE SET seq = GREATEST(read_markers.seq, excluded.seq)",
                &[user, room, &as_sql(*seq)],
            )?,
            Write::Mute { user, room, muted } => db.execute(
                "INSERT INTO read_markers (username, room, seq, muted) VALUES ($1, $2, 0, $3)
                 ON CONFLICT (username, room) DO UPDATE SET muted = excluded.muted",
                &[user, room, muted],
            )?,
        };
        written.push(Written::Done);
    }
    Ok(written)
}

impl Store for PgStore {
    fn rooms(&mut self) -> Result<Vec<StoredRoom>, StoreError> {
        self.reading(|db| {
            // `COLLATE "C"`: byte order, as SQLite sorts.
            let mut rooms = db
                .query(
                    "SELECT name, last_seq, kind, COALESCE(title, name), owner, id, version
                     FROM rooms ORDER BY name COLLATE \"C\"",
                    &[],
                )?
                .iter()
                .map(room_from_row)
                .collect::<Result<Vec<_>, StoreError>>()?;
            let mut members: HashMap<String, Vec<String>> = HashMap::new();
            for row in db.query(
                "SELECT room, name FROM room_members ORDER BY room, name COLLATE \"C\"",
                &[],
            )? {
                members
                    .entry(row.try_get(0)?)
                    .or_default()
                    .push(row.try_get(1)?);
            }
            for room in &mut rooms {
                room.members = members.remove(&room.name).unwrap_or_default();
            }
            Ok(rooms)
        })
    }

    fn heads(&mut self) -> Result<Vec<(String, RoomHead)>, StoreError> {
        self.reading(|db| {
            db.query("SELECT name, id, last_seq, version FROM rooms", &[])?
                .iter()
                .map(|row| {
                    Ok((
                        row.try_get(0)?,
                        RoomHead {
                            id: from_sql(row.try_get(1)?),
                            last_seq: from_sql(row.try_get(2)?),
                            version: from_sql(row.try_get(3)?),
                        },
                    ))
                })
                .collect()
        })
    }

    fn room(&mut self, name: &str) -> Result<Option<StoredRoom>, StoreError> {
        self.reading(|db| {
            let Some(row) = db.query_opt(
                "SELECT name, last_seq, kind, COALESCE(title, name), owner, id, version
                 FROM rooms WHERE name = $1",
                &[&name],
            )?
            else {
                return Ok(None);
            };
            let mut room = room_from_row(&row)?;
            for row in db.query(
                "SELECT name FROM room_members WHERE room = $1 ORDER BY name COLLATE \"C\"",
                &[&name],
            )? {
                room.members.push(row.try_get(0)?);
            }
            Ok(Some(room))
        })
    }

    fn people(&mut self) -> Result<Vec<StoredPerson>, StoreError> {
        self.reading(|db| {
            db.query(
                "SELECT username, display_name FROM users ORDER BY username COLLATE \"C\"",
                &[],
            )?
            .iter()
            .map(|row| {
                Ok(StoredPerson {
                    username: row.try_get(0)?,
                    display_name: row.try_get(1)?,
                })
            })
            .collect()
        })
    }

    fn person(&mut self, username: &str) -> Result<Option<StoredPerson>, StoreError> {
        self.reading(|db| {
            db.query_opt(
                "SELECT username, display_name FROM users WHERE username = $1",
                &[&username],
            )?
            .map(|row| {
                Ok(StoredPerson {
                    username: row.try_get(0)?,
                    display_name: row.try_get(1)?,
                })
            })
            .transpose()
        })
    }

    fn apply(&mut self, writes: &[Write]) -> Result<Vec<Written>, StoreError> {
        self.reconnect_if_lost()?;
        let tx = self.client.transaction()?;
        let mut db = Db {
            tx,
            statements: &mut self.statements,
        };
        // On an error the transaction is dropped, which rolls it back: nothing of the
        // batch is stored and the `last_seq`s it took are as they were.
        let written = apply_all(&mut db, writes)?;
        db.tx.commit()?;
        Ok(written)
    }

    fn mutes(&mut self) -> Result<Vec<(String, String)>, StoreError> {
        self.reading(|db| {
            db.query("SELECT username, room FROM read_markers WHERE muted", &[])?
                .iter()
                .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
                .collect()
        })
    }

    fn epoch(&mut self) -> Result<String, StoreError> {
        self.reading(|db| {
            Ok(db
                .query_one("SELECT value FROM meta WHERE key = 'epoch'", &[])?
                .try_get(0)?)
        })
    }

    fn after(
        &mut self,
        room: &str,
        after: u64,
        until: u64,
        limit: usize,
    ) -> Result<Page, StoreError> {
        self.reading(|db| snapshots::after(db, room, after, until, limit))
    }

    fn before(
        &mut self,
        room: &str,
        before: u64,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, StoreError> {
        self.reading(|db| snapshots::before(db, room, before, limit))
    }

    fn around(
        &mut self,
        room: &str,
        seq: u64,
        until: u64,
        side: usize,
    ) -> Result<Around, StoreError> {
        self.reading(|db| snapshots::around(db, room, seq, until, side))
    }

    fn search(&mut self, request: &SearchRequest) -> Result<SearchPage, StoreError> {
        self.reading(|db| search::search(db, request))
    }

    fn unread(&mut self, user: &str, room: &str, until: u64) -> Result<Unread, StoreError> {
        self.reading(|db| {
            let read = db.query_opt(
                "SELECT seq FROM read_markers WHERE username = $1 AND room = $2",
                &[&user, &room],
            )?;
            let Some(read) = read else {
                return Ok(Unread {
                    read: until,
                    ..Unread::default()
                });
            };
            let read = from_sql(read.try_get(0)?).min(until);
            let cap = i64::from(limits::MAX_UNREAD_COUNT);
            let messages: i64 = db
                .query_one(
                    "SELECT COUNT(*) FROM (SELECT 1 FROM messages
                     WHERE room = $1 AND seq > $2 AND seq <= $3 AND NOT deleted AND sender <> $4
                     LIMIT $5) AS unread",
                    &[&room, &as_sql(read), &as_sql(until), &user, &cap],
                )?
                .try_get(0)?;
            let mentions: i64 = db
                .query_one(
                    "SELECT COUNT(*) FROM (SELECT 1 FROM mentions
                     WHERE username = $1 AND room = $2 AND seq > $3 AND seq <= $4
                     LIMIT $5) AS unread",
                    &[&user, &room, &as_sql(read), &as_sql(until), &cap],
                )?
                .try_get(0)?;
            Ok(Unread {
                read,
                messages: u32::try_from(messages).unwrap_or(u32::MAX),
                mentions: u32::try_from(mentions).unwrap_or(u32::MAX),
            })
        })
    }
}
