//! Running a search against the FTS5 index of message bodies (`messages_fts`, see the
//! migration that makes it), and reading each hit as it is now.
//!
//! The plan is fixed rather than left to the planner: the index drives, newest id first
//! (`ORDER BY rowid DESC` is FTS5's own order, so nothing is sorted), and each match is
//! checked against the room list and filters by its row in `messages` until a page is
//! full. A common word then costs a page's worth of lookups, not every match. The index
//! also holds each message's room, sender and day: a search of a few rooms (`in:`, or a
//! person who sees few), by a few people (`from:`) or up to a date says so in the MATCH
//! expression, so FTS5 intersects those lists itself and a common word in a small room
//! or on one day long ago does not walk the word's every match elsewhere. Those clauses
//! only narrow (room ids and usernames tokenize to their alphanumeric runs, so
//! `rust-help` and `rust_help` are alike to the index; a date range is covered by whole
//! days); the SQL conditions stay the exact rule.
//!
//! Where a body matched comes from FTS5's own `highlight()`, so it uses the index's
//! tokenizer exactly. A body may hold any character, so the markers are characters the
//! body does not contain, checked per hit: the output is then parsed unambiguously into
//! byte ranges (`search::marks`, shared with PostgreSQL), and no markup ever leaves the
//! server.
//!
//! A query runs under a time budget (an SQLite progress handler): one that would scan too
//! much stops with what it found, so it cannot hold a reader thread, which joins wait for
//! too.

use std::time::Instant;

use confab_shared::SearchHit;
use rusqlite::{Connection, ErrorCode, OptionalExtension, params};

use super::{
    as_sql,
    snapshots::{attach_reactions, message_columns, row_to_message},
};
use crate::{
    search::{
        marks::{CLOSE, OPEN, free_markers, holds_markers, marks},
        query::{civil_from_days, days_from_civil, fts_match},
    },
    store::{SearchPage, SearchRequest, StoreError},
};

const SEARCH: &str = concat!(
    "SELECT ",
    message_columns!(),
    ", highlight(messages_fts, 0, ?2, ?3)
     FROM messages_fts
     CROSS JOIN messages m ON m.id = messages_fts.rowid
     LEFT JOIN messages q ON q.room = m.room AND q.seq = m.reply_to
     WHERE messages_fts MATCH ?1 AND messages_fts.rowid < ?4
       AND m.deleted = 0
       AND m.room IN (SELECT value FROM json_each(?5))
       AND (?6 IS NULL OR m.sender IN (SELECT value FROM json_each(?6)))
       AND m.ts >= ?7 AND m.ts < ?8
     ORDER BY messages_fts.rowid DESC
     LIMIT ?9"
);

/// The day tokens of a message sent at `ts` (ms), as SQL: the `day` column's definition,
/// and what the index is given for it, so that the two are one expression.
macro_rules! day_of {
    ($ts:literal) => {
        concat!(
            "strftime('y%Y m%Y%m d%Y%m%d', ",
            $ts,
            " / 1000, 'unixepoch')"
        )
    };
}
pub(super) use day_of;

/// A message as the search index holds it: exactly as stored (the external-content rule:
/// what is taken out must be what was put in, or the index is corrupt).
#[derive(Debug, Clone, Copy)]
pub(super) struct Indexed<'a> {
    pub id: i64,
    pub body: &'a str,
    pub room: &'a str,
    pub sender: &'a str,
    pub ts: i64,
}

// The values are given, not read back with `INSERT … SELECT` (nor written by triggers):
// that form cost about three times as much per message (docs/PERFORMANCE.md, "Search"),
// most likely as SQLite then opens a statement savepoint, at which FTS5 writes out what it
// holds in memory.

/// Adds a message to the search index, in the transaction that stores it.
pub(super) fn index(conn: &Connection, m: &Indexed<'_>) -> Result<(), StoreError> {
    conn.prepare_cached(concat!(
        "INSERT INTO messages_fts (rowid, body, room, sender, day) VALUES (?1, ?2, ?3, ?4, ",
        day_of!("?5"),
        ")"
    ))?
    .execute(params![m.id, m.body, m.room, m.sender, m.ts])?;
    Ok(())
}

/// Takes a message out of the index as it is stored now, before it changes.
pub(super) fn unindex(conn: &Connection, m: &Indexed<'_>) -> Result<(), StoreError> {
    conn.prepare_cached(concat!(
        "INSERT INTO messages_fts (messages_fts, rowid, body, room, sender, day)
         VALUES ('delete', ?1, ?2, ?3, ?4, ",
        day_of!("?5"),
        ")"
    ))?
    .execute(params![m.id, m.body, m.room, m.sender, m.ts])?;
    Ok(())
}

/// Takes every message of `room` out of the index, before the room is deleted.
pub(super) fn unindex_room(conn: &Connection, room: &str) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO messages_fts (messages_fts, rowid, body, room, sender, day)
         SELECT 'delete', id, body, room, sender, day FROM messages WHERE room = ?1",
    )?
    .execute([room])?;
    Ok(())
}

/// How many steps of SQLite's virtual machine between two looks at the clock.
const CHECK_EVERY: i32 = 4_000;

/// Rooms or senders a MATCH expression names at most; past that the SQL conditions alone
/// narrow (a person seeing a thousand public rooms would make a thousand-term OR).
const MAX_NAMED: usize = 16;

/// The MATCH expression of `request`: its words in the body, and its rooms and senders
/// when they are few. Every piece of user text in it is a double-quoted string.
fn match_expression(request: &SearchRequest) -> String {
    fn any_of(column: &str, values: &[String]) -> Option<String> {
        // A value without a letter or digit (a room called `-`, a user `__`) is no token
        // to the index, and a phrase of none matches nothing: then the SQL condition
        // alone narrows. ASCII ones are tokens to every tokenizer setting.
        let tokens = values
            .iter()
            .all(|v| v.chars().any(|c| c.is_ascii_alphanumeric()));
        (tokens && values.len() <= MAX_NAMED && !values.is_empty()).then(|| {
            let quoted: Vec<String> = values
                .iter()
                .map(|v| format!("\"{}\"", v.replace('"', "\"\"")))
                .collect();
            format!(" AND {column} : ({})", quoted.join(" OR "))
        })
    }
    let mut expression = format!("body : ({})", fts_match(&request.terms));
    expression.extend(any_of("room", &request.rooms));
    expression.extend(any_of("sender", &request.from));
    if let Some(days) = days_searched(request) {
        expression.push_str(&format!(" AND day : ({})", days.join(" OR ")));
    }
    expression
}

const DAY_MS: i64 = 86_400_000;

/// Most tokens of a date range in a MATCH expression (years, months and days: about 60
/// years of messages and the odd months and days at the ends fit).
const MAX_DAY_TOKENS: usize = 200;

/// The day tokens (as the `day` column makes them) that cover the request's date range,
/// when it has an end: a range open to today is best searched newest first without them,
/// as the newest matches are in it.
fn days_searched(request: &SearchRequest) -> Option<Vec<String>> {
    let until = request.until_ms?;
    let today = crate::hub::now_ms().div_euclid(DAY_MS);
    let last = until.saturating_add(DAY_MS - 1).div_euclid(DAY_MS);
    if last > today + 2 {
        // No message is that new: the end narrows nothing.
        return None;
    }
    let first = request.since_ms.map_or(0, |s| s.div_euclid(DAY_MS)).max(0);
    let tokens = day_tokens(first, last);
    (!tokens.is_empty() && tokens.len() <= MAX_DAY_TOKENS).then_some(tokens)
}

/// The fewest `yYYYY`, `mYYYYMM` and `dYYYYMMDD` tokens that cover the days `first..last`
/// (counted from 1970-01-01), quoted; more than [`MAX_DAY_TOKENS`] stops early.
fn day_tokens(first: i64, last: i64) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut day = first;
    while day < last && tokens.len() <= MAX_DAY_TOKENS {
        let (y, m, d) = civil_from_days(day);
        let next_year = days_from_civil(y + 1, 1, 1);
        let next_month = if m == 12 {
            next_year
        } else {
            days_from_civil(y, m + 1, 1)
        };
        if m == 1 && d == 1 && next_year <= last {
            tokens.push(format!("\"y{y:04}\""));
            day = next_year;
        } else if d == 1 && next_month <= last {
            tokens.push(format!("\"m{y:04}{m:02}\""));
            day = next_month;
        } else {
            tokens.push(format!("\"d{y:04}{m:02}{d:02}\""));
            day += 1;
        }
    }
    tokens
}

/// Runs `request` (see the module documentation).
pub(super) fn search(conn: &Connection, request: &SearchRequest) -> Result<SearchPage, StoreError> {
    if request.rooms.is_empty() || request.limit == 0 {
        return Ok(SearchPage::default());
    }
    let deadline = Instant::now() + request.budget;
    conn.progress_handler(CHECK_EVERY, Some(move || Instant::now() >= deadline))?;
    let found = matches(conn, request);
    conn.progress_handler(0, None::<fn() -> bool>)?;
    let (mut hits, slow) = found?;
    let more = hits.len() > request.limit || (slow && !hits.is_empty());
    hits.truncate(request.limit);
    // Each hit as a page shows it: its reactions and files.
    for hit in &mut hits {
        let room = hit.message.room.clone();
        let one = std::slice::from_mut(&mut hit.message);
        attach_reactions(conn, &room, one)?;
        crate::store::files::attach(conn, &room, one)?;
    }
    Ok(SearchPage { hits, more, slow })
}

/// Up to `limit + 1` hits (one more tells whether another page follows), and whether
/// the budget ran out first.
fn matches(
    conn: &Connection,
    request: &SearchRequest,
) -> Result<(Vec<SearchHit>, bool), StoreError> {
    let rooms = serde_json::to_string(&request.rooms).unwrap_or_else(|_| "[]".into());
    let from = (!request.from.is_empty())
        .then(|| serde_json::to_string(&request.from).unwrap_or_else(|_| "[]".into()));
    let mut stmt = conn.prepare_cached(SEARCH)?;
    let expression = match_expression(request);
    let mut rows = stmt.query(params![
        expression,
        OPEN.to_string(),
        CLOSE.to_string(),
        request.before.map_or(i64::MAX, as_sql),
        rooms,
        from,
        request.since_ms.unwrap_or(i64::MIN),
        request.until_ms.unwrap_or(i64::MAX),
        i64::try_from(request.limit.saturating_add(1)).unwrap_or(i64::MAX),
    ])?;
    let mut hits = Vec::new();
    loop {
        let row = match rows.next() {
            Ok(Some(row)) => row,
            Ok(None) => return Ok((hits, false)),
            Err(e) if interrupted(&e) => return Ok((hits, true)),
            Err(e) => return Err(e.into()),
        };
        let message = row_to_message(row)?;
        let highlighted: String = row.get(15)?;
        let marks = if holds_markers(&message.body) {
            remark(conn, &expression, message.id, &message.body)?
        } else {
            marks(&highlighted, &message.body, OPEN, CLOSE)
        };
        hits.push(SearchHit { message, marks });
    }
}

fn interrupted(e: &rusqlite::Error) -> bool {
    e.sqlite_error_code() == Some(ErrorCode::OperationInterrupted)
}

/// The marks of a body that holds the usual markers: highlighted again with two
/// private-use characters it does not hold.
fn remark(
    conn: &Connection,
    expression: &str,
    id: u64,
    body: &str,
) -> Result<Vec<[u32; 2]>, StoreError> {
    let Some((open, close)) = free_markers(body) else {
        return Ok(Vec::new());
    };
    let highlighted: Option<String> = conn
        .prepare_cached(
            "SELECT highlight(messages_fts, 0, ?2, ?3) FROM messages_fts
             WHERE messages_fts MATCH ?1 AND rowid = ?4",
        )?
        .query_row(
            params![expression, open.to_string(), close.to_string(), as_sql(id)],
            |row| row.get(0),
        )
        .optional()?;
    Ok(highlighted.map_or_else(Vec::new, |h| marks(&h, body, open, close)))
}

#[cfg(test)]
mod tests {
    use super::{day_tokens, days_from_civil};

    #[test]
    fn a_date_range_is_whole_years_months_and_days() {
        let day = |y, m, d| days_from_civil(y, m, d);
        assert_eq!(
            day_tokens(day(2024, 12, 30), day(2026, 2, 3)),
            [
                "\"d20241230\"",
                "\"d20241231\"",
                "\"y2025\"",
                "\"m202601\"",
                "\"d20260201\"",
                "\"d20260202\""
            ]
        );
        assert_eq!(
            day_tokens(day(2026, 3, 1), day(2026, 3, 2)),
            ["\"d20260301\""]
        );
        assert!(day_tokens(5, 5).is_empty());
        assert_eq!(day_tokens(0, day(2026, 12, 1)).len(), 56 + 11);
    }
}
