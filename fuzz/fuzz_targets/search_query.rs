//! Any text as a search query, through the parser the server uses
//! (`confab_server::search::query::parse`), and every query it accepts run on a real
//! FTS5 table made as the store makes its index.
//!
//! Besides "never panics", it checks that:
//! - an accepted query has at least one word, prefix or phrase, and a refusal a reason;
//! - the MATCH string is nothing but double-quoted strings (quotes inside doubled), each
//!   perhaps followed by `*`, one space apart: no user text is FTS5 syntax;
//! - FTS5 runs it without an error (the "never an error of the index" promise).
#![no_main]

use std::cell::RefCell;

use confab_server::search::query;
use libfuzzer_sys::fuzz_target;

thread_local! {
    static DB: RefCell<rusqlite::Connection> = RefCell::new(index());
}

fn index() -> rusqlite::Connection {
    let db = rusqlite::Connection::open_in_memory().expect("in-memory database");
    db.execute_batch(
        "CREATE VIRTUAL TABLE t USING fts5(body,
             tokenize = 'unicode61 remove_diacritics 2', columnsize = 0);
         INSERT INTO t (body) VALUES ('hello world'), ('Zürich café'),
             ('NEAR AND OR NOT'), ('日本語のテキスト'), ('borrow checker');",
    )
    .expect("fts5 table");
    db
}

/// Whether `m` is `"…"` strings (with `""` inside), each perhaps followed by `*`,
/// separated by single spaces.
fn only_quoted_strings(m: &str) -> bool {
    let mut chars = m.chars().peekable();
    loop {
        if chars.next() != Some('"') {
            return false;
        }
        loop {
            match chars.next() {
                None => return false,
                Some('"') if chars.peek() == Some(&'"') => {
                    chars.next();
                }
                Some('"') => break,
                Some(_) => {}
            }
        }
        if chars.peek() == Some(&'*') {
            chars.next();
        }
        match chars.next() {
            None => return true,
            Some(' ') => {}
            Some(_) => return false,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // Queries arrive in JSON strings: always valid UTF-8.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match query::parse(text) {
        Err(e) => assert!(!e.to_string().is_empty()),
        Ok(q) => {
            assert!(!q.terms.is_empty());
            let m = q.fts_match();
            assert!(only_quoted_strings(&m), "{m:?}");
            DB.with(|db| {
                let db = db.borrow();
                let mut stmt = db
                    .prepare_cached("SELECT rowid FROM t WHERE t MATCH ?1 ORDER BY rowid DESC LIMIT 21")
                    .expect("prepare");
                let rows = stmt
                    .query_map([&m], |_| Ok(()))
                    .and_then(|rows| rows.collect::<Result<Vec<_>, _>>());
                assert!(rows.is_ok(), "{text:?} -> {m:?}: {rows:?}");
            });
        }
    }
});
