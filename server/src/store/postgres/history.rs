//! `confab-server export --database-url`: a cluster's history in the export format
//! ([`crate::store::history`]), from one snapshot (a read-only repeatable-read
//! transaction), while the nodes run. The same bytes the embedded store gives for the
//! same history: orders are byte orders (`COLLATE "C"`, as SQLite's), usernames are read
//! as text.
//!
//! Import is the embedded store's only: on a cluster the nodes keep each room's position
//! in memory, and rows written behind their backs would reach them as if another node had
//! written them, without the checks a node makes.

use std::{collections::BTreeMap, io::Write};

use postgres::{Client, IsolationLevel, NoTls, Transaction};

use crate::store::history::{
    Exported, FileLine, Line, MessageLine, ReactionLine, RoomLine, write_line,
};

/// Writes the history of `room` (or of every room) of the PostgreSQL database at `url`
/// to `out`. Blocking: never on a Tokio worker.
pub fn export(url: &str, room: Option<&str>, out: &mut dyn Write) -> anyhow::Result<Exported> {
    let mut client = Client::connect(url, NoTls)?;
    let mut tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()?;
    let rooms = rooms(&mut tx, room)?;
    if let Some(name) = room {
        anyhow::ensure!(!rooms.is_empty(), "no room {name:?} in this store");
    }
    let mut exported = Exported::default();
    for line in rooms {
        let name = line.room.clone();
        write_line(out, &Line::Room(line))?;
        exported.rooms += 1;
        exported.messages += messages(&mut tx, &name, out)?;
    }
    tx.commit()?;
    out.flush()?;
    Ok(exported)
}

fn unsigned(n: i64) -> u64 {
    u64::try_from(n).unwrap_or_default()
}

fn rooms(tx: &mut Transaction<'_>, only: Option<&str>) -> anyhow::Result<Vec<RoomLine>> {
    let mut rooms = Vec::new();
    for row in tx.query(
        "SELECT name, kind, COALESCE(title, name), owner, created_at, last_seq FROM rooms
         WHERE $1::text IS NULL OR name = $1 ORDER BY name COLLATE \"C\"",
        &[&only],
    )? {
        rooms.push(RoomLine {
            room: row.try_get(0)?,
            kind: row.try_get(1)?,
            title: row.try_get(2)?,
            owner: row.try_get(3)?,
            created_at: row.try_get(4)?,
            members: Vec::new(),
            last_seq: unsigned(row.try_get(5)?),
        });
    }
    for room in &mut rooms {
        room.members = tx
            .query(
                "SELECT name::text FROM room_members WHERE room = $1
                 ORDER BY name::text COLLATE \"C\"",
                &[&room.room],
            )?
            .iter()
            .map(|row| row.try_get(0))
            .collect::<Result<_, _>>()?;
    }
    Ok(rooms)
}

/// Writes the messages of `room` in `seq` order; how many.
fn messages(tx: &mut Transaction<'_>, room: &str, out: &mut dyn Write) -> anyhow::Result<u64> {
    let mut mentions: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for row in tx.query(
        "SELECT seq, username::text FROM mentions WHERE room = $1
         ORDER BY seq, username::text COLLATE \"C\"",
        &[&room],
    )? {
        mentions
            .entry(row.try_get(0)?)
            .or_default()
            .push(row.try_get(1)?);
    }
    let mut reactions: BTreeMap<i64, Vec<ReactionLine>> = BTreeMap::new();
    for row in tx.query(
        "SELECT seq, emoji, username::text, added FROM reactions WHERE room = $1
         ORDER BY seq, added, emoji COLLATE \"C\", username::text COLLATE \"C\"",
        &[&room],
    )? {
        reactions
            .entry(row.try_get(0)?)
            .or_default()
            .push(ReactionLine {
                emoji: row.try_get(1)?,
                user: row.try_get(2)?,
                added: unsigned(row.try_get(3)?),
            });
    }
    let mut files: BTreeMap<i64, Vec<FileLine>> = BTreeMap::new();
    for row in tx.query(
        "SELECT u.seq, u.id, u.name, b.hash, b.size, b.mime, b.width, b.height
         FROM file_uploads u JOIN file_blobs b ON b.hash = u.blob
         WHERE u.room = $1 AND u.seq IS NOT NULL ORDER BY u.seq, u.pos",
        &[&room],
    )? {
        let width: Option<i64> = row.try_get(6)?;
        let height: Option<i64> = row.try_get(7)?;
        files.entry(row.try_get(0)?).or_default().push(FileLine {
            id: row.try_get(1)?,
            name: row.try_get(2)?,
            sha256: row.try_get(3)?,
            size: unsigned(row.try_get(4)?),
            mime: row.try_get(5)?,
            width: width.and_then(|w| u32::try_from(w).ok()),
            height: height.and_then(|h| u32::try_from(h).ok()),
        });
    }
    let mut count = 0;
    for row in tx.query(
        "SELECT seq, id, sender::text, COALESCE(sender_name, sender::text), client_id, ts,
                body, reply_to, edited_at, deleted, rev
         FROM messages WHERE room = $1 ORDER BY seq",
        &[&room],
    )? {
        let seq: i64 = row.try_get(0)?;
        let reply_to: Option<i64> = row.try_get(7)?;
        let message = MessageLine {
            room: room.to_owned(),
            seq: unsigned(seq),
            id: unsigned(row.try_get(1)?),
            from: row.try_get(2)?,
            name: row.try_get(3)?,
            client_id: row.try_get(4)?,
            ts: row.try_get(5)?,
            body: row.try_get(6)?,
            reply_to: reply_to.map(unsigned),
            edited_at: row.try_get(8)?,
            deleted: row.try_get(9)?,
            rev: unsigned(row.try_get(10)?),
            mentions: mentions.remove(&seq).unwrap_or_default(),
            reactions: reactions.remove(&seq).unwrap_or_default(),
            files: files.remove(&seq).unwrap_or_default(),
        };
        write_line(out, &Line::Message(message))?;
        count += 1;
    }
    Ok(count)
}
