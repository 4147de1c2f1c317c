//! Reading messages as they are now: text (or a tombstone), the quote of what a reply
//! answers, reactions, and the `rev` that tells a client which changes a copy already
//! shows. Every page a client receives (a fresh join, a resume page, a scroll back) is
//! made here.
//!
//! A resume page walks the room's log (messages and changes, one sequence) after the
//! client's position and sends each message that was created *or changed* in that
//! stretch once, in its current state. Sending state rather than replaying each change
//! keeps a page to one entry per message, and the text of a deleted message is nowhere
//! to be replayed from.

use confab_shared::{ChatMessage, Quote, Reaction, limits};
use rusqlite::{Connection, OptionalExtension, params};

use super::as_sql;
use crate::store::{Around, Page, StoreError};

/// The columns [`row_to_message`] reads: a message (`m`) with what a reply quotes of its
/// target (`q`). Macros so that the queries built on them stay `&'static str`s.
macro_rules! message_columns {
    () => {
        "m.id, m.room, m.seq, m.sender, COALESCE(m.sender_name, m.sender), m.body, m.ts,
         m.reply_to, m.edited_at, m.deleted, m.rev,
         q.sender, COALESCE(q.sender_name, q.sender), q.body, q.deleted"
    };
}
pub(super) use message_columns;

macro_rules! select_messages {
    ($rest:literal) => {
        concat!(
            "SELECT ",
            message_columns!(),
            " FROM messages m LEFT JOIN messages q ON q.room = m.room AND q.seq = m.reply_to ",
            $rest
        )
    };
}

pub(super) fn row_to_message(row: &rusqlite::Row<'_>) -> rusqlite::Result<ChatMessage> {
    let reply_to = match row.get::<_, Option<u64>>(7)? {
        None => None,
        Some(seq) => Some(Quote {
            seq,
            from: row.get::<_, Option<String>>(11)?.unwrap_or_default(),
            name: row.get::<_, Option<String>>(12)?.unwrap_or_default(),
            excerpt: excerpt(row.get::<_, Option<String>>(13)?.as_deref().unwrap_or("")),
            deleted: row.get::<_, Option<bool>>(14)?.unwrap_or(true),
        }),
    };
    Ok(ChatMessage {
        id: row.get(0)?,
        room: row.get(1)?,
        seq: row.get(2)?,
        from: row.get(3)?,
        name: row.get(4)?,
        body: row.get(5)?,
        ts: row.get(6)?,
        reply_to,
        edited: row.get(8)?,
        deleted: row.get(9)?,
        reactions: Vec::new(),
        rev: row.get(10)?,
        files: Vec::new(),
    })
}

/// What a reply shows of a message: its first line, cut to [`limits::QUOTE_CHARS`].
pub(in crate::store) fn excerpt(body: &str) -> String {
    let line = body.lines().next().unwrap_or("").trim_end();
    match line.char_indices().nth(limits::QUOTE_CHARS) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line.to_owned(),
    }
}

/// The quote of message `seq` of `room`, for a reply to it; `None` if there is no such
/// message.
pub(super) fn quote(conn: &Connection, room: &str, seq: u64) -> Result<Option<Quote>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT sender, COALESCE(sender_name, sender), body, deleted FROM messages
             WHERE room = ?1 AND seq = ?2",
        )?
        .query_row(params![room, as_sql(seq)], |row| {
            Ok(Quote {
                seq,
                from: row.get(0)?,
                name: row.get(1)?,
                excerpt: excerpt(&row.get::<_, String>(2)?),
                deleted: row.get(3)?,
            })
        })
        .optional()?)
}

/// The message `sender` stored under `client_id`, as it is now.
pub(super) fn by_client_id(
    conn: &Connection,
    sender: &str,
    client_id: &str,
) -> Result<Option<ChatMessage>, StoreError> {
    let message = conn
        .prepare_cached(select_messages!("WHERE m.sender = ?1 AND m.client_id = ?2"))?
        .query_row(params![sender, client_id], row_to_message)
        .optional()?;
    let Some(mut message) = message else {
        return Ok(None);
    };
    let room = message.room.clone();
    attach_reactions(conn, &room, std::slice::from_mut(&mut message))?;
    crate::store::files::attach(conn, &room, std::slice::from_mut(&mut message))?;
    Ok(Some(message))
}

/// Message `seq` of `room` as it is now.
pub(super) fn one(
    conn: &Connection,
    room: &str,
    seq: u64,
) -> Result<Option<ChatMessage>, StoreError> {
    let message = conn
        .prepare_cached(select_messages!("WHERE m.room = ?1 AND m.seq = ?2"))?
        .query_row(params![room, as_sql(seq)], row_to_message)
        .optional()?;
    Ok(message)
}

/// The lowest and highest `seq` of `messages`, for the range reads that fill in what
/// a page's messages carry; `None` for no messages.
pub(in crate::store) fn seq_span(messages: &[ChatMessage]) -> Option<(u64, u64)> {
    let seqs = messages.iter().map(|m| m.seq);
    Some((seqs.clone().min()?, seqs.max()?))
}

/// Fills in the reactions of `messages`, all of `room`: one range read when they are
/// close together (a page), one read each when they are scattered (a resume page's
/// changed messages).
pub(super) fn attach_reactions(
    conn: &Connection,
    room: &str,
    messages: &mut [ChatMessage],
) -> Result<(), StoreError> {
    let Some((lo, hi)) = seq_span(messages) else {
        return Ok(());
    };
    let scattered = hi - lo > 4 * messages.len() as u64 + 16;
    let mut rows = Vec::new();
    // Oldest reaction first: emoji keep the order they were first used in, people the
    // order they reacted in.
    if scattered {
        let mut stmt = conn.prepare_cached(
            "SELECT seq, emoji, user FROM reactions WHERE room = ?1 AND seq = ?2
             ORDER BY added",
        )?;
        for m in messages.iter() {
            let found = stmt.query_map(params![room, as_sql(m.seq)], |row| {
                Ok((row.get::<_, u64>(0)?, row.get(1)?, row.get(2)?))
            })?;
            for row in found {
                rows.push(row?);
            }
        }
    } else {
        let mut stmt = conn.prepare_cached(
            "SELECT seq, emoji, user FROM reactions WHERE room = ?1 AND seq BETWEEN ?2 AND ?3
             ORDER BY added",
        )?;
        let found = stmt.query_map(params![room, as_sql(lo), as_sql(hi)], |row| {
            Ok((row.get::<_, u64>(0)?, row.get(1)?, row.get(2)?))
        })?;
        for row in found {
            rows.push(row?);
        }
    }
    for (seq, emoji, user) in rows {
        let Some(message) = messages.iter_mut().find(|m| m.seq == seq) else {
            continue;
        };
        add_reaction(&mut message.reactions, emoji, user);
    }
    Ok(())
}

pub(in crate::store) fn add_reaction(reactions: &mut Vec<Reaction>, emoji: String, user: String) {
    match reactions.iter_mut().find(|r| r.emoji == emoji) {
        Some(r) => r.users.push(user),
        None => reactions.push(Reaction {
            emoji,
            users: vec![user],
        }),
    }
}

/// The length of `message` as JSON, counted without building the string.
pub(in crate::store) fn encoded_len(message: &ChatMessage) -> usize {
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

/// How many of `messages`, taken in order, fit [`limits::MAX_PAGE_BYTES`]: the one that
/// crosses it is the last (a page is never empty while messages are left). The callers
/// already treat a short page as "more to come".
pub(in crate::store) fn within_bytes<'a>(messages: impl Iterator<Item = &'a ChatMessage>) -> usize {
    let mut bytes = 0;
    let mut taken = 0;
    for message in messages {
        bytes += encoded_len(message);
        taken += 1;
        if bytes >= limits::MAX_PAGE_BYTES {
            break;
        }
    }
    taken
}

/// Up to `limit` messages before `before`, the newest of them, oldest first.
pub(super) fn before(
    conn: &Connection,
    room: &str,
    before: u64,
    limit: usize,
) -> Result<Vec<ChatMessage>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut stmt = conn.prepare_cached(select_messages!(
        "WHERE m.room = ?1 AND m.seq < ?2 ORDER BY m.seq DESC LIMIT ?3"
    ))?;
    let mut page = stmt
        .query_map(params![room, as_sql(before), limit], row_to_message)?
        .collect::<Result<Vec<_>, _>>()?;
    attach_reactions(conn, room, &mut page)?;
    crate::store::files::attach(conn, room, &mut page)?;
    // Newest first, so a page cut short by its size keeps the newest messages.
    page.truncate(within_bytes(page.iter()));
    page.reverse();
    Ok(page)
}

/// The messages around `seq` of `room` up to `until`: up to `side` on each side of it
/// and the one at `seq`, oldest first, and whether the room has more before and after
/// them. Like every page it keeps to [`limits::MAX_PAGE_BYTES`], growing outwards from
/// `seq` one message a side at a time, so the one asked for (and its neighbours) are
/// what a cut keeps.
pub(super) fn around(
    conn: &Connection,
    room: &str,
    seq: u64,
    until: u64,
    side: usize,
) -> Result<Around, StoreError> {
    // One more than a side holds tells whether there are more.
    let fetch = i64::try_from(side.saturating_add(1)).unwrap_or(i64::MAX);
    let mut older = conn
        .prepare_cached(select_messages!(
            "WHERE m.room = ?1 AND m.seq < ?2 AND m.seq <= ?3 ORDER BY m.seq DESC LIMIT ?4"
        ))?
        .query_map(
            params![room, as_sql(seq), as_sql(until), fetch],
            row_to_message,
        )?
        .collect::<Result<Vec<_>, _>>()?;
    let mut newer = conn
        .prepare_cached(select_messages!(
            "WHERE m.room = ?1 AND m.seq > ?2 AND m.seq <= ?3 ORDER BY m.seq LIMIT ?4"
        ))?
        .query_map(
            params![room, as_sql(seq), as_sql(until), fetch],
            row_to_message,
        )?
        .collect::<Result<Vec<_>, _>>()?;
    let mut at = if seq <= until {
        one(conn, room, seq)?
    } else {
        None
    };
    let more_older = older.len() > side;
    let more_newer = newer.len() > side;
    older.truncate(side);
    newer.truncate(side);
    // Reactions and files first: they count towards a page's bytes.
    for part in [&mut older[..], &mut newer[..], at.as_mut_slice()] {
        attach_reactions(conn, room, part)?;
        crate::store::files::attach(conn, room, part)?;
    }
    Ok(fit_around(older, at, newer, more_older, more_newer))
}

/// What of the messages around one (`older` newest first, `newer` oldest first, each
/// already cut to a side, reactions and files attached) a page keeps: the one at the
/// middle, then outwards one a side at a time while [`limits::MAX_PAGE_BYTES`] lasts.
/// Every store's `around` ends here, so their pages are cut alike.
pub(in crate::store) fn fit_around(
    mut older: Vec<ChatMessage>,
    at: Option<ChatMessage>,
    mut newer: Vec<ChatMessage>,
    mut more_older: bool,
    mut more_newer: bool,
) -> Around {
    let mut bytes = at.as_ref().map_or(0, encoded_len);
    let (mut keep_older, mut keep_newer) = (0, 0);
    while bytes < limits::MAX_PAGE_BYTES && (keep_older < older.len() || keep_newer < newer.len()) {
        if let Some(m) = newer.get(keep_newer) {
            bytes += encoded_len(m);
            keep_newer += 1;
        }
        if bytes >= limits::MAX_PAGE_BYTES {
            break;
        }
        if let Some(m) = older.get(keep_older) {
            bytes += encoded_len(m);
            keep_older += 1;
        }
    }
    more_older |= keep_older < older.len();
    more_newer |= keep_newer < newer.len();
    older.truncate(keep_older);
    newer.truncate(keep_newer);
    older.reverse();
    let mut messages = older;
    messages.extend(at);
    messages.extend(newer);
    Around {
        messages,
        older: more_older,
        newer: more_newer,
    }
}

/// A resume page: see the module documentation.
pub(super) fn after(
    conn: &Connection,
    room: &str,
    after: u64,
    until: u64,
    limit: usize,
) -> Result<Page, StoreError> {
    let entries = log_after(conn, room, after, until, limit)?;
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
    // The messages made in this stretch of the log come in one range read; those made
    // before it and changed in it (few, usually) one read each.
    let mut made: std::collections::HashMap<u64, ChatMessage> = conn
        .prepare_cached(select_messages!(
            "WHERE m.room = ?1 AND m.seq > ?2 AND m.seq <= ?3"
        ))?
        .query_map(
            params![room, as_sql(after), as_sql(through)],
            row_to_message,
        )?
        .map(|row| row.map(|m| (m.seq, m)))
        .collect::<Result<_, _>>()?;
    let mut messages = Vec::with_capacity(targets.len());
    for target in &targets {
        // A change's target exists while its room does (a deleted message stays as a
        // tombstone); a missing one is skipped rather than failing the page.
        let message = match made.remove(target) {
            Some(message) => Some(message),
            None => one(conn, room, *target)?,
        };
        messages.extend(message);
    }
    attach_reactions(conn, room, &mut messages)?;
    crate::store::files::attach(conn, room, &mut messages)?;
    Ok(fit_after(messages, &targets, &first_touch, through))
}

/// The part of a resume page that fits [`limits::MAX_PAGE_BYTES`]: `messages` in the
/// order of `targets` (the seqs the log touched, each once), `first_touch` where the log
/// first touched each (seq, index into `targets`). A cut page ends before the log entry
/// that first touched the first message left out; the next page starts there. Every
/// store's `after` ends here.
pub(in crate::store) fn fit_after(
    mut messages: Vec<ChatMessage>,
    targets: &[u64],
    first_touch: &[(u64, usize)],
    mut through: u64,
) -> Page {
    let fit = within_bytes(messages.iter());
    if fit < messages.len() {
        let left_out = messages[fit].seq;
        if let Some(at) = targets.iter().position(|t| *t == left_out)
            && let Some((seq, _)) = first_touch.iter().find(|(_, i)| *i == at)
        {
            through = seq - 1;
        }
        messages.truncate(fit);
    }
    Page { messages, through }
}

/// The room's log entries after `after` up to `until`, at most `limit`, in order: each
/// as its seq and the seq of the message it created or changed.
fn log_after(
    conn: &Connection,
    room: &str,
    after: u64,
    until: u64,
    limit: usize,
) -> Result<Vec<(u64, u64)>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut stmt = conn.prepare_cached(
        "SELECT seq, seq FROM messages WHERE room = ?1 AND seq > ?2 AND seq <= ?3
         UNION ALL
         SELECT seq, target FROM changes WHERE room = ?1 AND seq > ?2 AND seq <= ?3
         ORDER BY 1 LIMIT ?4",
    )?;
    let rows = stmt.query_map(params![room, as_sql(after), as_sql(until), limit], |row| {
        Ok((row.get(0)?, row.get(1)?))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::excerpt;

    #[test]
    fn an_excerpt_is_the_first_line_cut_short() {
        assert_eq!(excerpt("hello\nworld"), "hello");
        assert_eq!(excerpt(""), "");
        let long = "é".repeat(200);
        let cut = excerpt(&long);
        assert_eq!(cut.chars().count(), 121);
        assert!(cut.ends_with('…'));
    }
}
