//! `confab-server export` and `import` on the embedded store (the format is
//! [`crate::store::history`]'s).
//!
//! Import reads such a file into a store, new or in use (the server stopped):
//! - a room that does not exist is made as the line says; one that does keeps its
//!   settings and gains the members;
//! - a person named (author, member, reaction) without an account gets a placeholder
//!   one: the display name the file gives, and no password anyone can sign in with
//!   (an administrator can give it one); a guest's name, which no account can have,
//!   stays on its messages without one;
//! - a message whose author already has one with its client id (the way the store
//!   tells a repeat) is skipped, so importing a file twice changes nothing;
//! - a message keeps its `seq` and id where they are free (a new store), else it gets
//!   the next ones, and a reply follows its target's new `seq`;
//! - a shared file is linked when the store has its bytes already, or copied from
//!   `--files-from` (a data directory or backup that has them, checked against their
//!   hash); otherwise the message comes without it, and the import says how many.
//!
//! Since the log of changes is not in a file, only the state it led to, the round trip
//! export, import into a new store, export gives the same bytes.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    io::{BufRead, Write},
    path::Path,
};

use rusqlite::{Connection, OptionalExtension, params};

use super::{as_sql, kind_from_sql, kind_to_sql, search};
use crate::store::{
    StoreError,
    history::{Exported, FileLine, Line, MessageLine, ReactionLine, RoomLine, write_line},
};

/// The password hash of a placeholder account: not a PHC string, so no password
/// matches it (see `accounts::Accounts::sign_in`).
pub const PLACEHOLDER_HASH: &str = "!imported";

/// Writes the history of `room` (or of every room) of the store in `data_dir` to
/// `out`, from one snapshot. Reads only: the server may run meanwhile.
pub fn export(
    data_dir: &Path,
    room: Option<&str>,
    out: &mut dyn Write,
) -> anyhow::Result<Exported> {
    let db = data_dir.join(super::DB_FILE);
    anyhow::ensure!(
        db.is_file(),
        "no Confab store in {}: {} is not there",
        data_dir.display(),
        super::DB_FILE
    );
    let mut conn = Connection::open_with_flags(
        &db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "query_only", true)?;
    let tx = conn.transaction()?;
    let rooms = rooms(&tx, room)?;
    if let Some(name) = room {
        anyhow::ensure!(!rooms.is_empty(), "no room {name:?} in this store");
    }
    let mut exported = Exported::default();
    for line in rooms {
        let name = line.room.clone();
        write_line(out, &Line::Room(line))?;
        exported.rooms += 1;
        exported.messages += messages(&tx, &name, out)?;
    }
    tx.commit()?;
    out.flush()?;
    Ok(exported)
}

fn rooms(conn: &Connection, only: Option<&str>) -> Result<Vec<RoomLine>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT r.name, r.kind, COALESCE(r.title, r.name), r.owner, r.created_at,
                MAX(COALESCE((SELECT MAX(seq) FROM messages m WHERE m.room = r.name), 0),
                    COALESCE((SELECT MAX(seq) FROM changes c WHERE c.room = r.name), 0),
                    r.pruned_seq)
         FROM rooms r WHERE ?1 IS NULL OR r.name = ?1 ORDER BY r.name",
    )?;
    let mut rooms: Vec<RoomLine> = stmt
        .query_map([only], |row| {
            Ok(RoomLine {
                room: row.get(0)?,
                kind: row.get(1)?,
                title: row.get(2)?,
                owner: row.get(3)?,
                created_at: row.get(4)?,
                members: Vec::new(),
                last_seq: row.get(5)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    let mut members =
        conn.prepare("SELECT name FROM room_members WHERE room = ?1 ORDER BY name")?;
    for room in &mut rooms {
        room.members = members
            .query_map([&room.room], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
    }
    Ok(rooms)
}

/// Writes the messages of `room` in `seq` order; how many.
fn messages(conn: &Connection, room: &str, out: &mut dyn Write) -> anyhow::Result<u64> {
    let mut mentions: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for row in conn
        .prepare("SELECT seq, user FROM mentions WHERE room = ?1 ORDER BY seq, user")?
        .query_map([room], |row| Ok((row.get::<_, u64>(0)?, row.get(1)?)))?
    {
        let (seq, user) = row?;
        mentions.entry(seq).or_default().push(user);
    }
    let mut reactions: BTreeMap<u64, Vec<ReactionLine>> = BTreeMap::new();
    for row in conn
        .prepare(
            "SELECT seq, emoji, user, added FROM reactions WHERE room = ?1
             ORDER BY seq, added, emoji, user",
        )?
        .query_map([room], |row| {
            Ok((
                row.get::<_, u64>(0)?,
                ReactionLine {
                    emoji: row.get(1)?,
                    user: row.get(2)?,
                    added: row.get(3)?,
                },
            ))
        })?
    {
        let (seq, reaction) = row?;
        reactions.entry(seq).or_default().push(reaction);
    }
    let mut files: BTreeMap<u64, Vec<FileLine>> = BTreeMap::new();
    for row in conn
        .prepare(
            "SELECT u.seq, u.id, u.name, b.hash, b.size, b.mime, b.width, b.height
             FROM file_uploads u JOIN file_blobs b ON b.hash = u.blob
             WHERE u.room = ?1 AND u.seq IS NOT NULL ORDER BY u.seq, u.pos",
        )?
        .query_map([room], |row| {
            Ok((
                row.get::<_, u64>(0)?,
                FileLine {
                    id: row.get(1)?,
                    name: row.get(2)?,
                    sha256: row.get(3)?,
                    size: row.get(4)?,
                    mime: row.get(5)?,
                    width: row.get(6)?,
                    height: row.get(7)?,
                },
            ))
        })?
    {
        let (seq, file) = row?;
        files.entry(seq).or_default().push(file);
    }
    let mut stmt = conn.prepare(
        "SELECT seq, id, sender, COALESCE(sender_name, sender), client_id, ts, body,
                reply_to, edited_at, deleted, rev
         FROM messages WHERE room = ?1 ORDER BY seq",
    )?;
    let rows = stmt.query_map([room], |row| {
        Ok(MessageLine {
            room: room.to_owned(),
            seq: row.get(0)?,
            id: row.get(1)?,
            from: row.get(2)?,
            name: row.get(3)?,
            client_id: row.get(4)?,
            ts: row.get(5)?,
            body: row.get(6)?,
            reply_to: row.get(7)?,
            edited_at: row.get(8)?,
            deleted: row.get(9)?,
            rev: row.get(10)?,
            mentions: Vec::new(),
            reactions: Vec::new(),
            files: Vec::new(),
        })
    })?;
    let mut count = 0;
    for row in rows {
        let mut message = row?;
        message.mentions = mentions.remove(&message.seq).unwrap_or_default();
        message.reactions = reactions.remove(&message.seq).unwrap_or_default();
        message.files = files.remove(&message.seq).unwrap_or_default();
        write_line(out, &Line::Message(message))?;
        count += 1;
    }
    Ok(count)
}

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Imported {
    pub rooms_created: u64,
    pub accounts_created: u64,
    pub messages: u64,
    /// Messages the store had already (same author and client id).
    pub skipped: u64,
    /// Files linked, and the files whose bytes were nowhere to be found.
    pub files: u64,
    pub files_missing: u64,
}

impl std::fmt::Display for Imported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} messages imported, {} already there; {} rooms and {} placeholder accounts \
             created; {} files linked, {} left out (their bytes were not found)",
            self.messages,
            self.skipped,
            self.rooms_created,
            self.accounts_created,
            self.files,
            self.files_missing
        )
    }
}

/// Where the bytes of shared files come from during an import.
pub trait FileSource {
    /// Puts the bytes of blob `file` into the store's files (under `data_dir`), checked
    /// against its hash; `false` when this source does not have them.
    fn fetch(&self, file: &FileLine, data_dir: &Path) -> anyhow::Result<bool>;
}

/// Reads the export `input` into the store in `data_dir` (which must not be in use: the
/// caller holds its lock), in one transaction: a failure imports nothing.
pub fn import(
    data_dir: &Path,
    input: impl BufRead,
    files_from: Option<&dyn FileSource>,
) -> anyhow::Result<Imported> {
    let mut conn = super::open_migrated(data_dir, crate::store::Durability::Power)?;
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut state = Import {
        conn: &tx,
        data_dir,
        files_from,
        done: Imported::default(),
        people: HashSet::new(),
        new_rooms: HashMap::new(),
        seqs: HashMap::new(),
    };
    for (n, line) in input.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed: Line = serde_json::from_str(&line)
            .map_err(|e| anyhow::anyhow!("line {}: not an export line: {e}", n + 1))?;
        match parsed {
            Line::Room(room) => state.room(&room)?,
            Line::Message(message) => state.message(&message)?,
        }
    }
    // A new room's numbering goes on from where the original's was, also when its
    // last log entries were changes, which are not exported.
    for (room, last_seq) in &state.new_rooms {
        tx.execute(
            "UPDATE rooms SET pruned_seq = MAX(pruned_seq, ?2) WHERE name = ?1",
            params![room, as_sql(*last_seq)],
        )?;
    }
    let done = state.done;
    tx.commit()?;
    Ok(done)
}

struct Import<'a> {
    conn: &'a Connection,
    data_dir: &'a Path,
    files_from: Option<&'a dyn FileSource>,
    done: Imported,
    /// Usernames known to have an account.
    people: HashSet<String>,
    /// Rooms this import made, with the last `seq` their line gave.
    new_rooms: HashMap<String, u64>,
    /// `(room, seq in the file)` to the `seq` that message has in the store.
    seqs: HashMap<(String, u64), u64>,
}

impl Import<'_> {
    fn room(&mut self, room: &RoomLine) -> anyhow::Result<()> {
        confab_shared::RoomName::parse(&room.room)
            .map_err(|e| anyhow::anyhow!("room {:?}: {e}", room.room))?;
        let kind = kind_to_sql(kind_from_sql(&room.kind));
        if let Some(owner) = &room.owner {
            self.person(owner, owner)?;
        }
        let created = self.conn.execute(
            "INSERT OR IGNORE INTO rooms (name, created_at, kind, title, owner)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![room.room, room.created_at, kind, room.title, room.owner],
        )?;
        self.done.rooms_created += created as u64;
        // A room made now, or one with nothing in it yet (a new store's `general`):
        // its messages keep their numbers, and its numbering goes on from the file's.
        if created == 1 || last_seq(self.conn, &room.room)? == 0 {
            self.new_rooms.insert(room.room.clone(), room.last_seq);
        }
        for member in &room.members {
            self.person(member, member)?;
            // A new member has read what was there before the import.
            let last = last_seq(self.conn, &room.room)?;
            self.conn.execute(
                "INSERT OR IGNORE INTO read_markers (user, room, seq) VALUES (?1, ?2, ?3)",
                params![member, room.room, as_sql(last.max(room.last_seq))],
            )?;
            self.conn.execute(
                "INSERT OR IGNORE INTO room_members (room, name) VALUES (?1, ?2)",
                params![room.room, member],
            )?;
        }
        Ok(())
    }

    /// Makes a placeholder account for `username` unless it has one.
    fn person(&mut self, username: &str, display_name: &str) -> anyhow::Result<()> {
        if self.people.contains(username) {
            return Ok(());
        }
        // A guest's name is no account's: the messages keep it, with no account made.
        let Ok(username) = confab_shared::Username::parse(username) else {
            self.people.insert(username.to_owned());
            return Ok(());
        };
        let display_name = confab_shared::DisplayName::parse(display_name)
            .or_else(|_| confab_shared::DisplayName::parse(username.as_str()))
            .map_err(|e| anyhow::anyhow!("display name {display_name:?}: {e}"))?;
        let made = self.conn.execute(
            "INSERT OR IGNORE INTO users (username, display_name, password_hash, created_at)
             VALUES (?1, ?2, ?3, ?4)",
            params![
                username.as_str(),
                display_name.as_str(),
                PLACEHOLDER_HASH,
                crate::hub::now_ms()
            ],
        )?;
        self.done.accounts_created += made as u64;
        self.people.insert(username.as_str().to_owned());
        Ok(())
    }

    fn message(&mut self, m: &MessageLine) -> anyhow::Result<()> {
        let exists = self
            .conn
            .query_row("SELECT 1 FROM rooms WHERE name = ?1", [&m.room], |_| Ok(()))
            .optional()?
            .is_some();
        anyhow::ensure!(
            exists,
            "message {} of room {:?} comes before its room's line",
            m.seq,
            m.room
        );
        let repeat: Option<u64> = self
            .conn
            .query_row(
                "SELECT seq FROM messages WHERE sender = ?1 AND client_id = ?2",
                params![m.from, m.client_id],
                |row| row.get(0),
            )
            .optional()?;
        if let Some(seq) = repeat {
            self.seqs.insert((m.room.clone(), m.seq), seq);
            self.done.skipped += 1;
            return Ok(());
        }
        self.person(&m.from, &m.name)?;
        let last = last_seq(self.conn, &m.room)?;
        let seq = if m.seq > last { m.seq } else { last + 1 };
        let id_free = self
            .conn
            .query_row(
                "SELECT 1 FROM messages WHERE id = ?1",
                [as_sql(m.id)],
                |_| Ok(()),
            )
            .optional()?
            .is_none();
        let id = id_free.then_some(as_sql(m.id));
        let reply_to = m.reply_to.map(|target| {
            self.seqs
                .get(&(m.room.clone(), target))
                .copied()
                .unwrap_or(target)
        });
        let rev = match (m.rev, seq == m.seq) {
            (0, _) => 0,
            (rev, true) => rev,
            // Its changes are not imported: it is as it is at its new place.
            (_, false) => seq,
        };
        self.conn
            .prepare_cached(
                "INSERT INTO messages (id, room, seq, sender, client_id, body, ts, sender_name,
                                       reply_to, edited_at, deleted, rev)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )?
            .execute(params![
                id,
                m.room,
                as_sql(seq),
                m.from,
                m.client_id,
                m.body,
                m.ts,
                m.name,
                reply_to.map(as_sql),
                m.edited_at,
                m.deleted,
                as_sql(rev),
            ])?;
        let id = self.conn.last_insert_rowid();
        search::index(
            self.conn,
            &search::Indexed {
                id,
                body: &m.body,
                room: &m.room,
                sender: &m.from,
                ts: m.ts,
            },
        )?;
        self.seqs.insert((m.room.clone(), m.seq), seq);
        for user in &m.mentions {
            self.conn.execute(
                "INSERT OR IGNORE INTO mentions (user, room, seq) VALUES (?1, ?2, ?3)",
                params![user, m.room, as_sql(seq)],
            )?;
        }
        for r in &m.reactions {
            self.person(&r.user, &r.user)?;
            self.conn.execute(
                "INSERT OR IGNORE INTO reactions (room, seq, emoji, user, added)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![m.room, as_sql(seq), r.emoji, r.user, as_sql(r.added)],
            )?;
        }
        for (pos, file) in m.files.iter().enumerate() {
            if self.file(m, seq, pos, file)? {
                self.done.files += 1;
            } else {
                self.done.files_missing += 1;
            }
        }
        self.done.messages += 1;
        Ok(())
    }

    /// Links `file` to message `seq` (its `pos`-th), its blob found in the store or
    /// fetched; `false` when its bytes are nowhere.
    fn file(&self, m: &MessageLine, seq: u64, pos: usize, file: &FileLine) -> anyhow::Result<bool> {
        anyhow::ensure!(
            crate::files::is_upload_id(&file.id),
            "message {} of {:?}: {:?} is not a file id",
            m.seq,
            m.room,
            file.id
        );
        let stored = self
            .conn
            .query_row(
                "SELECT 1 FROM file_blobs WHERE hash = ?1",
                [&file.sha256],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        if !stored {
            let fetched = match self.files_from {
                Some(source) => source.fetch(file, self.data_dir)?,
                None => false,
            };
            if !fetched {
                return Ok(false);
            }
            self.conn.execute(
                "INSERT INTO file_blobs (hash, size, mime, width, height, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    file.sha256,
                    as_sql(file.size),
                    file.mime,
                    file.width,
                    file.height,
                    m.ts
                ],
            )?;
        }
        self.conn.execute(
            "INSERT OR IGNORE INTO file_uploads (id, blob, room, uploader, name, created_at, seq, pos)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                file.id,
                file.sha256,
                m.room,
                m.from,
                file.name,
                m.ts,
                as_sql(seq),
                as_sql(pos as u64)
            ],
        )?;
        Ok(true)
    }
}

/// The last `seq` of `room`'s log, as the writer counts it.
fn last_seq(conn: &Connection, room: &str) -> Result<u64, StoreError> {
    Ok(conn.query_row(
        "SELECT MAX(COALESCE((SELECT MAX(seq) FROM messages WHERE room = ?1), 0),
                    COALESCE((SELECT MAX(seq) FROM changes WHERE room = ?1), 0),
                    COALESCE((SELECT pruned_seq FROM rooms WHERE name = ?1), 0))",
        [room],
        |row| row.get(0),
    )?)
}
