//! Running a search on PostgreSQL: the counterpart of store/sqlite/search.rs (FTS5),
//! answering the same [`SearchRequest`] with the same [`SearchPage`].
//!
//! The index is `messages.search`, a generated `tsvector` column with a GIN index over
//! the messages not deleted (the schema's search step). Being generated, it is
//! recomputed by the statement that stores, edits or deletes the message, in its
//! transaction: an edited message is found by its new text only from the edit's commit
//! on, and a deleted one (its body emptied, and outside the index) never.
//!
//! Words match as on SQLite, whatever their case and accents: the text search
//! configuration `confab_search` is PostgreSQL's `simple` (lower case, no stop words,
//! no stemming) with word tokens put through the `unaccent` dictionary first. A
//! configuration rather than `unaccent()` around the body, so that `to_tsvector`,
//! the query and `ts_headline` all fold the same way without an immutable wrapper of
//! `unaccent()`: `to_tsvector` with a named configuration already is immutable. Where
//! the server lacks the `unaccent` extension the configuration is plain `simple` and
//! accented letters count (the migration warns). `simple` lower-cases under the
//! database's locale: in the C locale that is ASCII letters only (accented Latin ones
//! fold through `unaccent` first, but Greek or Cyrillic capitals stay apart), so a
//! cluster's database wants a UTF-8 locale (`C.UTF-8`, `en_US.UTF-8`). The text is
//! indexed as `confab_search_text(body)`: ASCII punctuation and the common blocks of punctuation,
//! symbols and emoji made spaces of the same byte length, so that words split where
//! FTS5's `unicode61` splits them (on letters and digits), whatever the database's
//! locale (in the C locale PostgreSQL's parser takes every non-ASCII character for a
//! letter), URLs, e-mail addresses and paths are words rather than single tokens, and
//! byte offsets in it are offsets in the body.
//!
//! The query is made from the typed terms by PostgreSQL's own functions, never by
//! writing user text into `tsquery` syntax: each term is `phraseto_tsquery` of its words
//! (a word or a phrase: the words in order, as an FTS5 quoted string is), so quotes,
//! `&|!:*()<->` and backslashes are just separators to the parser. A prefix is the same
//! with `:*` after the last lexeme: appended to the `tsquery`'s text as PostgreSQL
//! writes it out, every lexeme quoted and escaped by it, then read back. The terms are
//! joined with `&` the same way. Not `to_tsquery` of lexemes quoted here: a word still
//! goes through the configuration (split by the parser, unaccented, lower-cased), so
//! what a lexeme is is PostgreSQL's to say, and the only syntax added (`:*`, `&`,
//! parentheses) stands next to text it quoted itself. That is one statement, and the
//! query is then a
//! parameter of the search, so the planner sees it as a constant (with
//! `plan_cache_mode = force_custom_plan`) and can judge from the index's statistics
//! whether to read the GIN index or walk messages newest first.
//!
//! Marks come from `ts_headline` over the whole text (`HighlightAll`), with the
//! private-use markers of `search::marks` (others for a body that holds those), read
//! into byte ranges by the same code as SQLite's. Unlike FTS5's `highlight()` it marks
//! each word of a phrase apart, and every occurrence of a word of the query, in the
//! phrase or not.
//!
//! The time budget is `statement_timeout`, set for the search's statement only (in a
//! savepoint): rows are read as they come, so one stopped by the timeout answers with
//! the hits it had, `slow` set, as SQLite's progress handler does.

use confab_shared::SearchHit;
use postgres::{error::SqlState, fallible_iterator::FallibleIterator, types::ToSql};

use super::{
    Db, as_sql,
    snapshots::{attach_files, attach_reactions, row_to_message, select_messages},
};
use crate::{
    search::{
        marks::{CLOSE, OPEN, free_markers, holds_markers, marks},
        query::Term,
    },
    store::{SearchPage, SearchRequest, StoreError},
};

/// The `tsquery` of the terms ($1: each term's words, space-separated; $2: whether it
/// is a prefix), as text; NULL when no term has a lexeme.
const QUERY: &str = "SELECT string_agg(
         '(' || CASE WHEN t.prefix THEN p.q::text || ':*' ELSE p.q::text END || ')',
         ' & ')::tsquery::text
     FROM unnest($1::text[], $2::bool[]) AS t(words, prefix)
     CROSS JOIN LATERAL (
         SELECT phraseto_tsquery('confab_search', confab_search_text(t.words)) AS q
     ) AS p
     WHERE numnode(p.q) > 0";

const SEARCH: &str = select_messages!(
    ", ts_headline('confab_search', confab_search_text(m.body), $1::text::tsquery, $2),
       confab_search_text(m.body)",
    "WHERE m.search @@ $1::text::tsquery AND NOT m.deleted AND m.id < $3
       AND m.room = ANY($4::text[])
       AND (cardinality($5::text[]) = 0 OR m.sender = ANY($5::text[]::citext[]))
       AND m.ts >= $6 AND m.ts < $7
     ORDER BY m.id DESC
     LIMIT $8"
);

/// `select_messages!` puts the extra columns after its own: headline, indexed text.
const HEADLINE: usize = 15;
const TEXT: usize = 16;

const REMARK: &str =
    "SELECT ts_headline('confab_search', confab_search_text($1), $2::text::tsquery, $3)";

/// `ts_headline`'s options: the whole text, `open` and `close` around each match.
fn headline_options(open: char, close: char) -> String {
    format!("StartSel=\"{open}\", StopSel=\"{close}\", HighlightAll=true")
}

/// Runs `request` in `db`'s read transaction (see the module documentation).
pub(super) fn search(db: &mut Db<'_>, request: &SearchRequest) -> Result<SearchPage, StoreError> {
    if request.rooms.is_empty() || request.limit == 0 {
        return Ok(SearchPage::default());
    }
    let (words, prefix): (Vec<String>, Vec<bool>) = request.terms.iter().map(term).unzip();
    let query: Option<String> = db.query_one(QUERY, &[&words, &prefix])?.try_get(0)?;
    let Some(query) = query else {
        // Not a word PostgreSQL's parser keeps: nothing matches.
        return Ok(SearchPage::default());
    };
    let (mut hits, slow) = matches(db, request, &query)?;
    let more = hits.len() > request.limit || (slow && !hits.is_empty());
    hits.truncate(request.limit);
    for hit in &mut hits {
        let room = hit.message.room.clone();
        let one = std::slice::from_mut(&mut hit.message);
        attach_reactions(db, &room, one)?;
        attach_files(db, &room, one)?;
    }
    Ok(SearchPage { hits, more, slow })
}

/// A term as the query statement takes it: its words, and whether it is a prefix.
fn term(term: &Term) -> (String, bool) {
    match term {
        Term::Word(word) => (word.clone(), false),
        Term::Prefix(prefix) => (prefix.clone(), true),
        Term::Phrase(words) => (words.join(" "), false),
    }
}

/// Up to `limit + 1` hits (one more tells whether another page follows), and whether
/// the budget ran out first.
fn matches(
    db: &mut Db<'_>,
    request: &SearchRequest,
    query: &str,
) -> Result<(Vec<SearchHit>, bool), StoreError> {
    let statement = db.statement(SEARCH)?;
    let options = headline_options(OPEN, CLOSE);
    let before = request.before.map_or(i64::MAX, as_sql);
    let since = request.since_ms.unwrap_or(i64::MIN);
    let until = request.until_ms.unwrap_or(i64::MAX);
    let limit = i64::try_from(request.limit.saturating_add(1)).unwrap_or(i64::MAX);
    // 0 would be no limit at all.
    let budget_ms = request.budget.as_millis().clamp(1, i32::MAX as u128);
    let params: [&(dyn ToSql + Sync); 8] = [
        &query,
        &options,
        &before,
        &request.rooms,
        &request.from,
        &since,
        &until,
        &limit,
    ];
    let mut found = Vec::new();
    let mut slow = false;
    {
        // A savepoint, so that the settings end with it and a timeout leaves the
        // transaction usable for reading the hits' reactions and files.
        let mut savepoint = db.tx.transaction()?;
        savepoint.execute(
            "SELECT set_config('statement_timeout', $1, true),
                    set_config('plan_cache_mode', 'force_custom_plan', true)",
            &[&format!("{budget_ms}ms")],
        )?;
        let mut rows = savepoint.query_raw(&statement, params)?;
        loop {
            match rows.next() {
                Ok(Some(row)) => found.push(row),
                Ok(None) => break,
                Err(e) if e.code() == Some(&SqlState::QUERY_CANCELED) => {
                    slow = true;
                    break;
                }
                Err(e) => return Err(e.into()),
            }
        }
        drop(rows);
        // Nothing was written: ending it undoes the settings alone.
        savepoint.rollback()?;
    }
    let mut hits = Vec::with_capacity(found.len());
    for row in &found {
        let message = row_to_message(row)?;
        let text: &str = row.try_get(TEXT)?;
        let marks = if holds_markers(&message.body) {
            remark(db, query, &message.body, text)?
        } else {
            body_marks(row.try_get(HEADLINE)?, text, &message.body, OPEN, CLOSE)
        };
        hits.push(SearchHit { message, marks });
    }
    Ok((hits, slow))
}

/// The marks of a body that holds the usual markers: highlighted again with two
/// private-use characters it does not hold.
fn remark(
    db: &mut Db<'_>,
    query: &str,
    body: &str,
    text: &str,
) -> Result<Vec<[u32; 2]>, StoreError> {
    let Some((open, close)) = free_markers(body) else {
        return Ok(Vec::new());
    };
    let highlighted: String = db
        .query_one(REMARK, &[&body, &query, &headline_options(open, close)])?
        .try_get(0)?;
    Ok(body_marks(&highlighted, text, body, open, close))
}

/// The marks of `highlighted` (`text`, the body as indexed, with markers) as byte ranges
/// of `body`. The indexed text keeps every byte offset and every letter and digit of
/// the body; a mark over anything else in it gives no marks rather than wrong ones.
fn body_marks(highlighted: &str, text: &str, body: &str, open: char, close: char) -> Vec<[u32; 2]> {
    let found = marks(highlighted, text, open, close);
    let same = |[start, end]: &[u32; 2]| {
        let range = *start as usize..*end as usize;
        text.len() == body.len() && body.get(range.clone()) == text.get(range)
    };
    if found.iter().all(same) {
        found
    } else {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::body_marks;

    #[test]
    fn marks_of_the_indexed_text_are_marks_of_the_body() {
        let (o, c) = ('<', '>');
        // The body's dash and emoji are spaces of as many bytes in the indexed text.
        let body = "née—😀x";
        let text = format!("née{}x", " ".repeat(7));
        assert_eq!(text.len(), body.len());
        let marks = body_marks(&format!("<née>{}<x>", " ".repeat(7)), &text, body, o, c);
        assert_eq!(marks, [[0, 4], [11, 12]]);
        assert_eq!(&body[11..12], "x");
        // Not the indexed text; a mark over what it changed: no marks.
        assert!(body_marks("<nee>", &text, body, o, c).is_empty());
        let over = format!("née<{}>x", " ".repeat(7));
        assert!(body_marks(&over, &text, body, o, c).is_empty());
    }
}
