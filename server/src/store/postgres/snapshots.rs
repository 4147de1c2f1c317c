//! Reading messages as they are now, from PostgreSQL: the queries of
//! store/sqlite/snapshots.rs (whose module documentation says what a page is) in
//! PostgreSQL's dialect. How a page is cut to its bytes is shared with it
//! (`fit_after`, `fit_around`, `within_bytes`), so both stores page alike.

use std::collections::HashMap;

use confab_shared::{Attachment, ChatMessage, ImageSize, Quote};
use postgres::Row;

use super::{Db, as_sql, from_sql};
use crate::store::{
    Around, Page, StoreError,
    sqlite::snapshots::{add_reaction, excerpt, fit_after, fit_around, within_bytes},
};

/// A message (`m`) with what a reply quotes of its target (`q`), as [`row_to_message`]
/// reads them, and any `$extra` columns after those. Macros so that the queries built on
/// them stay `&'static str`s.
macro_rules! select_messages {
    ($rest:literal) => {
        select_messages!("", $rest)
    };
    ($extra:literal, $rest:literal) => {
        concat!(
            "SELECT m.id, m.room, m.seq, m.sender, COALESCE(m.sender_name, m.sender), m.body,
                    m.ts, m.reply_to, m.edited_at, m.deleted, m.rev,
                    q.sender, COALESCE(q.sender_name, q.sender), q.body, q.deleted",
            $extra,
            " FROM messages m LEFT JOIN messages q ON q.room = m.room AND q.seq = m.reply_to ",
            $rest
        )
    };
}
pub(super) use select_messages;

/// A message as [`select_messages`] reads it (columns 0 to 14), without reactions and
/// files.
pub(super) fn row_to_message(row: &Row) -> Result<ChatMessage, StoreError> {
    let reply_to = match row.try_get::<_, Option<i64>>(7)? {
        None => None,
        Some(seq) => Some(Quote {
            seq: from_sql(seq),
            from: row.try_get::<_, Option<String>>(11)?.unwrap_or_default(),
            name: row.try_get::<_, Option<String>>(12)?.unwrap_or_default(),
            excerpt: excerpt(row.try_get::<_, Option<&str>>(13)?.unwrap_or("")),
            deleted: row.try_get::<_, Option<bool>>(14)?.unwrap_or(true),
        }),
    };
    Ok(ChatMessage {
        id: from_sql(row.try_get(0)?),
        room: row.try_get(1)?,
        seq: from_sql(row.try_get(2)?),
        from: row.try_get(3)?,
        name: row.try_get(4)?,
        body: row.try_get(5)?,
        ts: row.try_get(6)?,
        reply_to,
        edited: row.try_get(8)?,
        deleted: row.try_get(9)?,
        reactions: Vec::new(),
        rev: from_sql(row.try_get(10)?),
        files: Vec::new(),
    })
}

fn rows_to_messages(rows: &[Row]) -> Result<Vec<ChatMessage>, StoreError> {
    rows.iter().map(row_to_message).collect()
}

/// The quote of message `seq` of `room`, for a reply to it; `None` if there is no such
/// message.
pub(super) fn quote(db: &mut Db<'_>, room: &str, seq: u64) -> Result<Option<Quote>, StoreError> {
    db.query_opt(
        "SELECT sender, COALESCE(sender_name, sender), body, deleted FROM messages
         WHERE room = $1 AND seq = $2",
        &[&room, &as_sql(seq)],
    )?
    .map(|row| {
        Ok(Quote {
            seq,
            from: row.try_get(0)?,
            name: row.try_get(1)?,
            excerpt: excerpt(row.try_get(2)?),
            deleted: row.try_get(3)?,
        })
    })
    .transpose()
}

/// The message `sender` stored under `client_id`, as it is now.
pub(super) fn by_client_id(
    db: &mut Db<'_>,
    sender: &str,
    client_id: &str,
) -> Result<Option<ChatMessage>, StoreError> {
    let row = db.query_opt(
        select_messages!("WHERE m.sender = $1 AND m.client_id = $2"),
        &[&sender, &client_id],
    )?;
    let Some(row) = row else {
        return Ok(None);
    };
    let mut message = row_to_message(&row)?;
    let room = message.room.clone();
    attach_reactions(db, &room, std::slice::from_mut(&mut message))?;
    attach_files(db, &room, std::slice::from_mut(&mut message))?;
    Ok(Some(message))
}

/// Message `seq` of `room` as it is now (without reactions and files).
fn one(db: &mut Db<'_>, room: &str, seq: u64) -> Result<Option<ChatMessage>, StoreError> {
    db.query_opt(
        select_messages!("WHERE m.room = $1 AND m.seq = $2"),
        &[&room, &as_sql(seq)],
    )?
    .as_ref()
    .map(row_to_message)
    .transpose()
}

/// Fills in the reactions of `messages`, all of `room`, in one read.
pub(super) fn attach_reactions(
    db: &mut Db<'_>,
    room: &str,
    messages: &mut [ChatMessage],
) -> Result<(), StoreError> {
    if messages.is_empty() {
        return Ok(());
    }
    let seqs: Vec<i64> = messages.iter().map(|m| as_sql(m.seq)).collect();
    // Oldest reaction first: emoji keep the order they were first used in, people the
    // order they reacted in.
    let rows = db.query(
        "SELECT seq, emoji, username FROM reactions WHERE room = $1 AND seq = ANY($2)
         ORDER BY added",
        &[&room, &seqs],
    )?;
    for row in rows {
        let seq = from_sql(row.try_get(0)?);
        let Some(message) = messages.iter_mut().find(|m| m.seq == seq) else {
            continue;
        };
        add_reaction(&mut message.reactions, row.try_get(1)?, row.try_get(2)?);
    }
    Ok(())
}

/// Fills in the files `messages`, all of `room`, share, in one read.
pub(super) fn attach_files(
    db: &mut Db<'_>,
    room: &str,
    messages: &mut [ChatMessage],
) -> Result<(), StoreError> {
    if messages.is_empty() {
        return Ok(());
    }
    let seqs: Vec<i64> = messages.iter().map(|m| as_sql(m.seq)).collect();
    let rows = db.query(
        "SELECT u.seq, u.id, u.name, b.size, b.mime, b.width, b.height
         FROM file_uploads u JOIN file_blobs b ON b.hash = u.blob
         WHERE u.room = $1 AND u.seq = ANY($2)
         ORDER BY u.seq, u.pos",
        &[&room, &seqs],
    )?;
    let mut by_seq: HashMap<u64, Vec<Attachment>> = HashMap::new();
    for row in rows {
        let width: Option<i64> = row.try_get(5)?;
        let height: Option<i64> = row.try_get(6)?;
        let image = match (width, height) {
            (Some(width), Some(height)) => Some(ImageSize {
                width: u32::try_from(width).unwrap_or_default(),
                height: u32::try_from(height).unwrap_or_default(),
            }),
            _ => None,
        };
        by_seq
            .entry(from_sql(row.try_get(0)?))
            .or_default()
            .push(Attachment {
                id: row.try_get(1)?,
                name: row.try_get(2)?,
                size: from_sql(row.try_get(3)?),
                mime: row.try_get(4)?,
                image,
            });
    }
    for message in messages.iter_mut() {
        if let Some(files) = by_seq.remove(&message.seq) {
            message.files = files;
        }
    }
    Ok(())
}

fn attach(db: &mut Db<'_>, room: &str, messages: &mut [ChatMessage]) -> Result<(), StoreError> {
    attach_reactions(db, room, messages)?;
    attach_files(db, room, messages)
}

/// Up to `limit` messages before `before`, the newest of them, oldest first.
pub(super) fn before(
    db: &mut Db<'_>,
    room: &str,
    before: u64,
    limit: usize,
) -> Result<Vec<ChatMessage>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = db.query(
        select_messages!("WHERE m.room = $1 AND m.seq < $2 ORDER BY m.seq DESC LIMIT $3"),
        &[&room, &as_sql(before), &limit],
    )?;
    let mut page = rows_to_messages(&rows)?;
    attach(db, room, &mut page)?;
    // Newest first, so a page cut short by its size keeps the newest messages.
    page.truncate(within_bytes(page.iter()));
    page.reverse();
    Ok(page)
}

/// The messages around `seq` of `room` up to `until` (see `Store::around`).
pub(super) fn around(
    db: &mut Db<'_>,
    room: &str,
    seq: u64,
    until: u64,
    side: usize,
) -> Result<Around, StoreError> {
    // One more than a side holds tells whether there are more.
    let fetch = i64::try_from(side.saturating_add(1)).unwrap_or(i64::MAX);
    let (at_seq, until) = (as_sql(seq), as_sql(until));
    let rows = db.query(
        select_messages!(
            "WHERE m.room = $1 AND m.seq < $2 AND m.seq <= $3 ORDER BY m.seq DESC LIMIT $4"
        ),
        &[&room, &at_seq, &until, &fetch],
    )?;
    let mut older = rows_to_messages(&rows)?;
    let rows = db.query(
        select_messages!(
            "WHERE m.room = $1 AND m.seq > $2 AND m.seq <= $3 ORDER BY m.seq LIMIT $4"
        ),
        &[&room, &at_seq, &until, &fetch],
    )?;
    let mut newer = rows_to_messages(&rows)?;
    let mut at = if at_seq <= until {
        one(db, room, seq)?
    } else {
        None
    };
    let more_older = older.len() > side;
    let more_newer = newer.len() > side;
    older.truncate(side);
    newer.truncate(side);
    // Reactions and files first: they count towards a page's bytes.
    for part in [&mut older[..], &mut newer[..], at.as_mut_slice()] {
        attach(db, room, part)?;
    }
    Ok(fit_around(older, at, newer, more_older, more_newer))
}

/// A resume page (see store/sqlite/snapshots.rs).
pub(super) fn after(
    db: &mut Db<'_>,
    room: &str,
    after: u64,
    until: u64,
    limit: usize,
) -> Result<Page, StoreError> {
    let fetch = i64::try_from(limit).unwrap_or(i64::MAX);
    let entries: Vec<(u64, u64)> = db
        .query(
            "SELECT seq, seq FROM messages WHERE room = $1 AND seq > $2 AND seq <= $3
             UNION ALL
             SELECT seq, target FROM changes WHERE room = $1 AND seq > $2 AND seq <= $3
             ORDER BY 1 LIMIT $4",
            &[&room, &as_sql(after), &as_sql(until), &fetch],
        )?
        .iter()
        .map(|row| Ok((from_sql(row.try_get(0)?), from_sql(row.try_get(1)?))))
        .collect::<Result<_, StoreError>>()?;
    let through = match entries.last() {
        Some((seq, _)) if entries.len() >= limit => *seq,
        _ => until,
    };
    // Each message once, where the log first touches it.
    let mut targets: Vec<u64> = Vec::new();
    let mut first_touch: Vec<(u64, usize)> = Vec::new();
    for (seq, target) in &entries {
        if !targets.contains(target) {
            first_touch.push((*seq, targets.len()));
            targets.push(*target);
        }
    }
    let wanted: Vec<i64> = targets.iter().map(|t| as_sql(*t)).collect();
    let rows = db.query(
        select_messages!("WHERE m.room = $1 AND m.seq = ANY($2)"),
        &[&room, &wanted],
    )?;
    let mut found: HashMap<u64, ChatMessage> = rows
        .iter()
        .map(|row| row_to_message(row).map(|m| (m.seq, m)))
        .collect::<Result<_, _>>()?;
    // A change's target exists while its room does (a deleted message stays as a
    // tombstone); a missing one is skipped rather than failing the page.
    let mut messages: Vec<ChatMessage> = targets.iter().filter_map(|t| found.remove(t)).collect();
    attach(db, room, &mut messages)?;
    Ok(fit_after(messages, &targets, &first_touch, through))
}
