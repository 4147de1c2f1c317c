//! `confab-server admin migrate-to-postgres` (issue 18): moves a server's SQLite store,
//! with the files and the device cookie key next to it, into an empty PostgreSQL
//! database, so that an installation becomes a cluster keeping its history, its
//! accounts and its people signed in.
//!
//! What makes it safe to run and to trust:
//! - it takes the data directory's lock ([`sqlite::LOCK_FILE`]) exclusively. A server
//!   running on the directory holds it shared, so the command is refused rather than
//!   copy a store that is still changing; while it runs, no server can start there.
//!   Everything is read in one read transaction.
//! - everything is written in one PostgreSQL transaction, after checking, inside it,
//!   that the database holds no Confab data (nothing but the empty `general` room a
//!   fresh schema has). A refusal or a failure leaves the database as it was, and a
//!   second run is refused.
//! - ids are copied as they are (message ids are in clients' caches and permalinks,
//!   user ids in sessions and invites), then each identity's sequence is set past
//!   them so new rows do not collide. A room's `last_seq`, which SQLite computes from
//!   its log and PostgreSQL keeps on the row, is set to the highest `seq` of its
//!   messages and changes (or of what retention pruned, `pruned_seq`), so the next
//!   entry gets the next number. The store's epoch
//!   is copied: clients see the same store and resume where they were instead of
//!   reloading.
//! - a file's bytes are read from `files/blobs`, checked against their hash while
//!   they are written as [`CHUNK_BYTES`] rows, as an upload on PostgreSQL writes them;
//!   an image's preview comes from `files/thumbs`.
//!
//! Not copied: SQLite's search index (FTS5), made from the messages, as whatever
//! PostgreSQL searches by is; and the files' temporary uploads, which belong to no
//! row.

use std::{
    fmt,
    io::Read,
    path::{Path, PathBuf},
};

use anyhow::{Context, bail};
use postgres::{
    NoTls, Transaction,
    binary_copy::BinaryCopyInWriter,
    types::{ToSql, Type},
};
use rusqlite::types::ValueRef;
use sha2::{Digest, Sha256};

use super::{
    PgStore,
    postgres::files::CHUNK_BYTES,
    sqlite::{self, DB_FILE},
};

/// One table copied as it is: the same rows, these columns, read from SQLite with
/// `select` (its columns in the same order).
struct Table {
    name: &'static str,
    columns: &'static str,
    select: &'static str,
}

/// In an order the foreign keys accept. SQLite's `user` columns are `username` in
/// PostgreSQL (a reserved word there); its integer flags are booleans.
const TABLES: &[Table] = &[
    Table {
        name: "rooms",
        columns: "name, created_at, kind, title, owner, last_seq",
        select: "SELECT r.name, r.created_at, r.kind, r.title, r.owner,
                        MAX(COALESCE((SELECT MAX(seq) FROM messages m WHERE m.room = r.name), 0),
                            COALESCE((SELECT MAX(seq) FROM changes c WHERE c.room = r.name), 0),
                            r.pruned_seq)
                 FROM rooms r ORDER BY r.name",
    },
    Table {
        name: "room_members",
        columns: "room, name",
        select: "SELECT room, name FROM room_members ORDER BY room, name",
    },
    Table {
        name: "users",
        columns: "id, username, display_name, password_hash, is_admin, created_at, disabled, \
                  last_seen",
        select: "SELECT id, username, display_name, password_hash, is_admin, created_at,
                        disabled, last_seen
                 FROM users ORDER BY id",
    },
    Table {
        name: "sessions",
        columns: "token_hash, user_id, created_at, expires_at",
        select: "SELECT token_hash, user_id, created_at, expires_at FROM sessions",
    },
    Table {
        name: "invites",
        columns: "id, token_hash, created_by, created_at, expires_at, max_uses, uses_left",
        select: "SELECT id, token_hash, created_by, created_at, expires_at, max_uses, uses_left
                 FROM invites ORDER BY id",
    },
    Table {
        name: "messages",
        columns: "id, room, seq, sender, client_id, body, ts, sender_name, reply_to, \
                  edited_at, deleted, rev",
        select: "SELECT id, room, seq, sender, client_id, body, ts, sender_name, reply_to,
                        edited_at, deleted, rev
                 FROM messages ORDER BY id",
    },
    Table {
        name: "changes",
        columns: "id, room, seq, target, kind, actor, emoji, client_id, ts",
        select: "SELECT id, room, seq, target, kind, actor, emoji, client_id, ts
                 FROM changes ORDER BY id",
    },
    Table {
        name: "reactions",
        columns: "room, seq, emoji, username, added",
        select: "SELECT room, seq, emoji, user, added FROM reactions",
    },
    Table {
        name: "mentions",
        columns: "username, room, seq",
        select: "SELECT user, room, seq FROM mentions",
    },
    Table {
        name: "read_markers",
        columns: "username, room, seq, muted",
        select: "SELECT user, room, seq, muted FROM read_markers",
    },
    // Blobs are copied with their bytes, in `copy_blobs`.
    Table {
        name: "file_uploads",
        columns: "id, blob, room, uploader, name, created_at, seq, pos",
        select: "SELECT id, blob, room, uploader, name, created_at, seq, pos FROM file_uploads",
    },
    Table {
        name: "file_usage",
        columns: "username, ts, bytes",
        select: "SELECT user, ts, bytes FROM file_usage ORDER BY ts",
    },
    Table {
        name: "audit_log",
        columns: "id, at, actor, action, target, detail",
        select: "SELECT id, at, actor, action, target, detail FROM audit_log ORDER BY id",
    },
    Table {
        name: "password_resets",
        columns: "token_hash, user_id, created_at, expires_at",
        select: "SELECT token_hash, user_id, created_at, expires_at FROM password_resets",
    },
];

/// Tables whose ids are copied: their identity sequences are set past the ids.
const IDENTITIES: &[&str] = &["users", "invites", "messages", "changes", "audit_log"];

/// Tables that must be empty for the database to count as holding no Confab data
/// (`rooms` apart: a fresh schema has `general`).
const MUST_BE_EMPTY: &[&str] = &[
    "users",
    "sessions",
    "invites",
    "room_members",
    "messages",
    "changes",
    "reactions",
    "mentions",
    "read_markers",
    "file_blobs",
    "file_uploads",
    "file_usage",
    "audit_log",
    "password_resets",
];

/// What was copied: rows per table, in the order they were written.
#[derive(Debug, Default)]
pub struct Summary {
    pub rows: Vec<(&'static str, u64)>,
    /// The store's identity, as clients see it in `welcome`.
    pub epoch: String,
    /// Whether `device-cookie.key` was there (else PostgreSQL's first node makes one,
    /// and browsers are asked for their second factor again).
    pub device_key: bool,
}

impl Summary {
    /// Rows copied into `table`.
    pub fn count(&self, table: &str) -> Option<u64> {
        self.rows.iter().find(|(t, _)| *t == table).map(|(_, n)| *n)
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (table, rows) in &self.rows {
            writeln!(f, "  {table:<16} {rows:>10}")?;
        }
        writeln!(f, "  store epoch      {}", self.epoch)?;
        write!(
            f,
            "  device key       {}",
            if self.device_key {
                "copied"
            } else {
                "none in the data directory (a new one will be made)"
            }
        )
    }
}

/// Copies the SQLite store of `data_dir` (and its files and device cookie key) into
/// the PostgreSQL database at `url`, whose schema it first creates or brings up to
/// date. Refuses, writing no data, when the store is in use or missing, or when the
/// database already holds Confab data. Blocking: call it off the Tokio workers.
pub fn migrate(data_dir: &Path, url: &str) -> anyhow::Result<Summary> {
    if !data_dir.join(DB_FILE).is_file() {
        bail!(
            "no Confab store in {}: {DB_FILE} is not there",
            data_dir.display()
        );
    }
    // Held until the copy is committed: no server starts on the directory meanwhile.
    let _lock = sqlite::lock_data_dir(data_dir, true).map_err(|e| match e {
        sqlite::DataDirLock::InUse(_) => anyhow::anyhow!(
            "the store in {} is in use: stop the server running on it first",
            data_dir.display()
        ),
        other => other.into(),
    })?;
    let mut sqlite = sqlite::open_existing(data_dir)
        .with_context(|| format!("cannot open the store in {}", data_dir.display()))?;
    drop(PgStore::open(url).context("cannot open the PostgreSQL database")?);
    let mut client =
        postgres::Client::connect(url, NoTls).context("cannot connect to PostgreSQL")?;

    let from = sqlite.transaction()?;
    let mut to = client.transaction()?;
    refuse_unless_empty(&mut to)?;
    // A fresh schema's `general`, replaced by the store's own (with its creation and
    // counter).
    to.execute("DELETE FROM rooms WHERE name = 'general'", &[])?;

    let mut summary = Summary::default();
    for table in TABLES {
        if table.name == "file_uploads" {
            let (blobs, chunks, thumbs) = copy_blobs(&from, &mut to, data_dir)?;
            summary.rows.push(("file_blobs", blobs));
            summary.rows.push(("file_chunks", chunks));
            summary.rows.push(("file_thumbs", thumbs));
        }
        let rows =
            copy_table(&from, &mut to, table).with_context(|| format!("copying {}", table.name))?;
        summary.rows.push((table.name, rows));
    }
    for table in IDENTITIES {
        // `is_called = false`: the next id is MAX(id) + 1 (1 for an empty table).
        to.execute(
            &format!(
                "SELECT setval(pg_get_serial_sequence('{table}', 'id'),
                               COALESCE(MAX(id), 0) + 1, false) FROM {table}"
            ),
            &[],
        )?;
    }
    summary.epoch = from.query_row("SELECT value FROM meta WHERE key = 'epoch'", [], |row| {
        row.get(0)
    })?;
    to.execute(
        "UPDATE meta SET value = $1 WHERE key = 'epoch'",
        &[&summary.epoch],
    )?;
    summary.device_key = copy_device_key(&mut to, data_dir)?;
    to.commit().context("cannot commit the copy")?;
    from.commit()?;
    Ok(summary)
}

/// Fails, naming what it found, if the database holds anything a server stored.
fn refuse_unless_empty(to: &mut Transaction<'_>) -> anyhow::Result<()> {
    let mut found: Vec<&str> = Vec::new();
    for table in MUST_BE_EMPTY {
        let any: bool = to
            .query_one(&format!("SELECT EXISTS (SELECT 1 FROM {table})"), &[])?
            .try_get(0)?;
        if any {
            found.push(table);
        }
    }
    let rooms: bool = to
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM rooms WHERE name <> 'general' OR last_seq <> 0)",
            &[],
        )?
        .try_get(0)?;
    if rooms {
        found.insert(0, "rooms");
    }
    if !found.is_empty() {
        bail!(
            "the PostgreSQL database already holds Confab data ({}): \
             migrate into an empty database; nothing was written",
            found.join(", ")
        );
    }
    Ok(())
}

/// Copies `table`'s rows with one binary `COPY`; how many.
fn copy_table(
    from: &rusqlite::Transaction<'_>,
    to: &mut Transaction<'_>,
    table: &Table,
) -> anyhow::Result<u64> {
    let types: Vec<Type> = to
        .prepare(&format!(
            "SELECT {} FROM {} LIMIT 0",
            table.columns, table.name
        ))?
        .columns()
        .iter()
        .map(|c| c.type_().clone())
        .collect();
    let sink = to.copy_in(&format!(
        "COPY {} ({}) FROM STDIN BINARY",
        table.name, table.columns
    ))?;
    let mut writer = BinaryCopyInWriter::new(sink, &types);
    let mut select = from.prepare(table.select)?;
    let mut rows = select.query([])?;
    while let Some(row) = rows.next()? {
        let values = types
            .iter()
            .enumerate()
            .map(|(i, ty)| value(row.get_ref(i)?, ty).with_context(|| format!("column {i}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let refs: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| &**v).collect();
        writer.write(&refs)?;
    }
    Ok(writer.finish()?)
}

/// A SQLite value as the PostgreSQL column of type `ty` takes it; an error for one it
/// cannot be (the schemas disagree).
fn value(v: ValueRef<'_>, ty: &Type) -> anyhow::Result<Box<dyn ToSql + Sync>> {
    Ok(match (v, ty) {
        (ValueRef::Null, &Type::INT8) => Box::new(None::<i64>),
        (ValueRef::Null, &Type::BOOL) => Box::new(None::<bool>),
        (ValueRef::Null, &Type::BYTEA) => Box::new(None::<Vec<u8>>),
        (ValueRef::Null, _) => Box::new(None::<String>),
        (ValueRef::Integer(n), &Type::INT8) => Box::new(n),
        (ValueRef::Integer(n), &Type::BOOL) => Box::new(n != 0),
        (ValueRef::Blob(b), &Type::BYTEA) => Box::new(b.to_vec()),
        (ValueRef::Text(t), _) if *ty == Type::TEXT || ty.name() == "citext" => {
            Box::new(std::str::from_utf8(t)?.to_owned())
        }
        (v, ty) => bail!("a {:?} value for a {ty} column", v.data_type()),
    })
}

/// Copies every blob's row and its bytes (and an image's preview); how many blobs,
/// chunks and previews.
fn copy_blobs(
    from: &rusqlite::Transaction<'_>,
    to: &mut Transaction<'_>,
    data_dir: &Path,
) -> anyhow::Result<(u64, u64, u64)> {
    let insert = to.prepare(
        "INSERT INTO file_blobs (hash, size, mime, width, height, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )?;
    let insert_thumb = to.prepare("INSERT INTO file_thumbs (hash, bytes) VALUES ($1, $2)")?;
    let mut select = from.prepare(
        "SELECT hash, size, mime, width, height, created_at FROM file_blobs ORDER BY hash",
    )?;
    let mut rows = select.query([])?;
    let (mut blobs, mut chunks, mut thumbs) = (0, 0, 0);
    while let Some(row) = rows.next()? {
        let hash: String = row.get(0)?;
        let size: i64 = row.get(1)?;
        let width: Option<i64> = row.get(3)?;
        to.execute(
            &insert,
            &[
                &hash,
                &size,
                &row.get::<_, String>(2)?,
                &width,
                &row.get::<_, Option<i64>>(4)?,
                &row.get::<_, i64>(5)?,
            ],
        )?;
        let path = stored_path(data_dir, &hash, false)?;
        chunks += copy_chunks(to, &hash, size, &path)
            .with_context(|| format!("copying the bytes of {}", path.display()))?;
        let thumb = stored_path(data_dir, &hash, true)?;
        if width.is_some() && thumb.is_file() {
            let bytes = std::fs::read(&thumb)
                .with_context(|| format!("cannot read {}", thumb.display()))?;
            to.execute(&insert_thumb, &[&hash, &bytes])?;
            thumbs += 1;
        }
        blobs += 1;
    }
    Ok((blobs, chunks, thumbs))
}

fn stored_path(data_dir: &Path, hash: &str, thumb: bool) -> anyhow::Result<PathBuf> {
    crate::files::stored_path(data_dir, hash, thumb)
        .with_context(|| format!("a file's hash is not a SHA-256: {hash:?}"))
}

/// Writes the file at `path` as the chunks of blob `hash`, checking that it is the
/// blob's content (its size and hash); how many chunks.
fn copy_chunks(
    to: &mut Transaction<'_>,
    hash: &str,
    size: i64,
    path: &Path,
) -> anyhow::Result<u64> {
    let insert = to.prepare("INSERT INTO file_chunks (hash, n, bytes) VALUES ($1, $2, $3)")?;
    let mut file = std::fs::File::open(path)?;
    let mut chunk = vec![0u8; CHUNK_BYTES];
    let mut hasher = Sha256::new();
    let (mut n, mut read) = (0i32, 0i64);
    loop {
        let len = read_full(&mut file, &mut chunk)?;
        if len == 0 {
            break;
        }
        hasher.update(&chunk[..len]);
        to.execute(&insert, &[&hash, &n, &&chunk[..len]])?;
        n += 1;
        read += i64::try_from(len)?;
        if len < CHUNK_BYTES {
            break;
        }
    }
    let found = data_encoding::HEXLOWER.encode(&hasher.finalize());
    if read != size || found != hash {
        bail!(
            "its content is not the blob's ({read} bytes, SHA-256 {found}; expected {size} bytes)"
        );
    }
    Ok(u64::try_from(n)?)
}

/// Reads until `buf` is full or the file ends; how many bytes it read.
fn read_full(file: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Puts the server's device cookie key (`device-cookie.key`) in the database, so
/// browsers it knew stay known; whether there was one.
fn copy_device_key(to: &mut Transaction<'_>, data_dir: &Path) -> anyhow::Result<bool> {
    let path = data_dir.join(crate::http::DEVICE_KEY_FILE);
    let key = match std::fs::read(&path) {
        Ok(key) => key,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    if key.len() != 32 {
        bail!("{} is {} bytes, not 32", path.display(), key.len());
    }
    // A node started on the empty database may have made one: this one wins, as the
    // browsers hold cookies signed with it.
    to.execute(
        "INSERT INTO device_cookie_key (key) VALUES ($1)
         ON CONFLICT (only_row) DO UPDATE SET key = excluded.key",
        &[&key],
    )?;
    Ok(true)
}
