//! Search on both stores: each test body takes `&mut dyn Store` and runs once on SQLite
//! (FTS5) and once on a real PostgreSQL (`tsvector`, GIN), as in tests/pg_store.rs, so
//! that what a person finds does not depend on where the server keeps its messages.
//! The one difference the stores are allowed (a phrase is one mark on SQLite, a mark per
//! word on PostgreSQL) is compared with the marks between words joined.
//!
//! Plain `#[test]`s: the synchronous `postgres` client must not run inside a Tokio
//! runtime.

mod common;

use std::time::Duration;

use common::{both_stores::on_both_stores, services::Postgres};
use confab_server::{
    search::query,
    store::{
        ChangeRequest, NewChange, NewMessage, PgStore, SearchPage, SearchRequest, Store, Write,
    },
};
use confab_shared::{RoomKind, SearchHit, limits};

fn at(room: &str, from: &str, client_id: &str, body: &str, ts: i64) -> Write {
    Write::Append(NewMessage {
        room: room.into(),
        from: from.into(),
        name: from.to_uppercase(),
        body: body.into(),
        client_id: client_id.into(),
        ts,
        reply_to: None,
        mentions: Vec::new(),
        files: Vec::new(),
    })
}

fn append(room: &str, from: &str, client_id: &str, body: &str) -> Write {
    at(room, from, client_id, body, 7)
}

fn change(room: &str, target: u64, by: &str, client_id: &str, what: ChangeRequest) -> Write {
    Write::Change(NewChange {
        room: room.into(),
        target,
        by: by.into(),
        client_id: client_id.into(),
        ts: 50,
        what,
    })
}

fn create_room(room: &str, kind: RoomKind) -> Write {
    Write::CreateRoom {
        room: room.into(),
        ts: 1,
        kind,
        title: room.into(),
        owner: Some("ada".into()),
    }
}

/// The request the hub makes of `text` over `rooms`.
fn request(text: &str, rooms: &[&str]) -> SearchRequest {
    let q = query::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
    SearchRequest {
        terms: q.terms,
        rooms: rooms.iter().map(|r| (*r).to_owned()).collect(),
        from: q.from,
        since_ms: q.since_ms,
        until_ms: q.until_ms,
        before: None,
        limit: limits::SEARCH_PAGE,
        budget: Duration::from_secs(10),
    }
}

fn search(s: &mut dyn Store, text: &str, rooms: &[&str]) -> SearchPage {
    s.search(&request(text, rooms))
        .unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

fn found(page: &SearchPage) -> Vec<&str> {
    page.hits.iter().map(|h| h.message.body.as_str()).collect()
}

/// The marked text of a hit, marks with no letter or digit between them joined (a
/// phrase: one mark on SQLite, one per word on PostgreSQL). Checks that the marks are
/// in order, apart, and on character boundaries of the body.
fn marked(hit: &SearchHit) -> Vec<&str> {
    let body = hit.message.body.as_str();
    let mut joined: Vec<(usize, usize)> = Vec::new();
    for &[start, end] in &hit.marks {
        let (start, end) = (start as usize, end as usize);
        assert!(
            start < end && end <= body.len(),
            "{:?} in {body:?}",
            hit.marks
        );
        assert!(body.is_char_boundary(start) && body.is_char_boundary(end));
        match joined.last_mut() {
            Some(last) if !body[last.1..start].contains(char::is_alphanumeric) => {
                assert!(last.1 <= start, "marks in order: {:?}", hit.marks);
                last.1 = end;
            }
            Some(last) => {
                assert!(last.1 < start, "marks in order: {:?}", hit.marks);
                joined.push((start, end));
            }
            None => joined.push((start, end)),
        }
    }
    joined.iter().map(|&(a, b)| &body[a..b]).collect()
}

/// Two rooms and four messages, the last on the second day.
fn fill(s: &mut dyn Store) {
    s.apply(&[create_room("ops", RoomKind::Private)])
        .expect("room");
    s.apply(&[
        at("general", "ada", "1", "The borrow checker is strict", 1_000),
        at("general", "bob", "1", "checkers and chess, borrowed", 2_000),
        at("ops", "ada", "2", "deploy the borrow checker fix", 3_000),
        at("general", "bob", "2", "Café au lait in Zürich", 86_400_000),
    ])
    .expect("append");
}

const BOTH: [&str; 2] = ["general", "ops"];

// The bodies run on both stores.

fn words_prefixes_and_phrases_newest_first(s: &mut dyn Store) {
    fill(s);
    let page = search(s, "borrow", &BOTH);
    assert_eq!(
        found(&page),
        [
            "deploy the borrow checker fix",
            "The borrow checker is strict"
        ]
    );
    assert!(!page.more && !page.slow);
    assert_eq!(page.hits[0].marks, [[11, 17]]);
    let page = search(s, "borrow*", &BOTH);
    assert_eq!(page.hits.len(), 3, "borrowed too");
    assert_eq!(page.hits[1].marks, [[20, 28]]);
    assert_eq!(marked(&page.hits[1]), ["borrowed"]);
    let page = search(s, "\"checker is\"", &BOTH);
    assert_eq!(found(&page), ["The borrow checker is strict"]);
    assert_eq!(marked(&page.hits[0]), ["checker is"], "the phrase");
    assert!(
        search(s, "\"is checker\"", &BOTH).hits.is_empty(),
        "in order"
    );
    assert!(
        search(s, "\"borrow is\"", &BOTH).hits.is_empty(),
        "next to each other"
    );
    let page = search(s, "borrow checker", &BOTH);
    assert_eq!(page.hits.len(), 2, "every word, anywhere");
    assert!(
        search(s, "borrow chess", &BOTH).hits.is_empty(),
        "every word"
    );
}

fn case_and_accents_do_not_count(s: &mut dyn Store) {
    fill(s);
    for text in ["zurich CAFE", "ZÜRICH café", "zür*", "Cafe"] {
        let page = search(s, text, &BOTH);
        assert_eq!(found(&page), ["Café au lait in Zürich"], "{text}");
    }
    let page = search(s, "zurich CAFE", &BOTH);
    assert_eq!(
        marked(&page.hits[0]),
        ["Café", "Zürich"],
        "byte ranges on char boundaries"
    );
    assert!(search(s, "caf", &BOTH).hits.is_empty(), "a word is whole");
}

fn words_split_at_punctuation_and_symbols(s: &mut dyn Store) {
    let body = "日本語 naïve—café «quoted» see example.com/x?y=1, ok😀word it's under_score";
    s.apply(&[append("general", "ada", "1", body)])
        .expect("append");
    for (text, expected) in [
        ("naive", vec!["naïve"]),
        ("naive quoted", vec!["naïve", "quoted"]),
        ("example", vec!["example"]),
        ("com", vec!["com"]),
        ("word", vec!["word"]),
        ("ok", vec!["ok"]),
        ("score", vec!["score"]),
        ("日本語", vec!["日本語"]),
        ("\"it s under\"", vec!["it's under"]),
    ] {
        let page = search(s, text, &["general"]);
        assert_eq!(found(&page), [body], "{text}");
        assert_eq!(marked(&page.hits[0]), expected, "{text}");
    }
}

fn only_the_rooms_asked_and_the_filters(s: &mut dyn Store) {
    fill(s);
    let page = search(s, "borrow", &["general"]);
    assert_eq!(found(&page), ["The borrow checker is strict"]);
    assert!(
        search(s, "borrow", &[]).hits.is_empty(),
        "no rooms, nothing"
    );
    let page = search(s, "borrow* from:bob", &BOTH);
    assert_eq!(found(&page), ["checkers and chess, borrowed"]);
    let page = search(s, "borrow* from:ada from:BOB", &BOTH);
    assert_eq!(page.hits.len(), 3);
    let page = search(s, "in on:1970-01-02", &BOTH);
    assert_eq!(found(&page), ["Café au lait in Zürich"]);
    let page = search(s, "borrow* before:1970-01-02", &BOTH);
    assert_eq!(page.hits.len(), 3);
    let page = search(s, "zurich after:1970-01-01", &BOTH);
    assert_eq!(page.hits.len(), 1, "sent on the 2nd");
    let page = search(s, "zurich after:1970-01-02", &BOTH);
    assert!(page.hits.is_empty(), "after a day is from the next one on");
    let page = search(s, "general from:checker", &["general"]);
    assert!(page.hits.is_empty(), "a sender is not a word of the body");
    assert!(
        search(s, "ada", &BOTH).hits.is_empty(),
        "nor is a sender's name"
    );
    // Many rooms, none of them ops: the rule alone narrows.
    let mut rooms: Vec<String> = (0..30).map(|i| format!("room{i}")).collect();
    rooms.push("general".into());
    let mut asked = request("borrow", &[]);
    asked.rooms = rooms;
    let page = s.search(&asked).expect("search");
    assert_eq!(found(&page), ["The borrow checker is strict"], "not ops");
}

fn rooms_whose_ids_look_alike_are_apart(s: &mut dyn Store) {
    s.apply(&[
        create_room("rust-help", RoomKind::Public),
        create_room("rust_help", RoomKind::Public),
        create_room("-", RoomKind::Public),
    ])
    .expect("rooms");
    s.apply(&[
        append("rust-help", "ada", "h1", "needle dash"),
        append("rust_help", "ada", "h2", "needle underscore"),
        append("-", "__", "h3", "needle nowhere"),
    ])
    .expect("append");
    assert_eq!(found(&search(s, "needle", &["rust-help"])), ["needle dash"]);
    assert_eq!(found(&search(s, "needle", &["-"])), ["needle nowhere"]);
    assert_eq!(
        found(&search(s, "needle from:__", &["-", "general"])),
        ["needle nowhere"]
    );
}

fn pages_go_back_by_id(s: &mut dyn Store) {
    let writes: Vec<Write> = (1..=45)
        .map(|i| append("general", "ada", &format!("c{i}"), &format!("needle {i}")))
        .collect();
    s.apply(&writes).expect("append");
    let mut asked = request("needle", &["general"]);
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = s.search(&asked).expect("search");
        pages += 1;
        assert!(page.hits.len() <= limits::SEARCH_PAGE);
        seen.extend(page.hits.iter().map(|h| h.message.seq));
        if !page.more {
            break;
        }
        asked.before = page.hits.last().map(|h| h.message.id);
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, (1..=45).rev().collect::<Vec<_>>());
}

fn an_edit_is_found_by_its_new_text_and_a_deletion_never(s: &mut dyn Store) {
    fill(s);
    s.apply(&[
        change(
            "general",
            1,
            "ada",
            "e1",
            ChangeRequest::Edit {
                body: "the lender verifier is strict".into(),
                mentions: Vec::new(),
            },
        ),
        change("ops", 1, "ada", "d1", ChangeRequest::Delete { any: false }),
    ])
    .expect("change");
    let page = search(s, "borrow", &BOTH);
    assert!(page.hits.is_empty(), "{:?}", found(&page));
    let page = search(s, "lender", &BOTH);
    assert_eq!(found(&page), ["the lender verifier is strict"]);
    assert!(page.hits[0].message.edited.is_some());
    assert_eq!(marked(&page.hits[0]), ["lender"]);
    assert!(search(s, "deploy", &BOTH).hits.is_empty(), "deleted");
    assert!(search(s, "fix", &BOTH).hits.is_empty(), "deleted");
    // Edited again, and back to a word it had: found by that.
    s.apply(&[change(
        "general",
        1,
        "ada",
        "e2",
        ChangeRequest::Edit {
            body: "borrow again".into(),
            mentions: Vec::new(),
        },
    )])
    .expect("edit");
    assert!(search(s, "lender", &BOTH).hits.is_empty());
    assert_eq!(found(&search(s, "borrow", &BOTH)), ["borrow again"]);
    // A deleted room's messages are gone with it.
    s.apply(&[Write::DeleteRoom { room: "ops".into() }])
        .expect("delete room");
    assert_eq!(search(s, "checker", &BOTH).hits.len(), 0);
}

fn a_body_holding_the_markers_is_still_marked_right(s: &mut dyn Store) {
    let body = "\u{E000}x\u{E001} needle \u{E000}";
    s.apply(&[append("general", "ada", "1", body)])
        .expect("append");
    let page = search(s, "needle", &["general"]);
    assert_eq!(marked(&page.hits[0]), ["needle"]);
}

/// Text with every kind of syntax either index has: never an error, found as words.
fn hostile_text_is_words(s: &mut dyn Store) {
    let body = r#"it's a back\slash & pipe | bang! star* colon: (paren) <-> 'quote' "dq" x:*a"#;
    s.apply(&[append("general", "ada", "1", body)])
        .expect("append");
    // Whose words are all in the body (a phrase's in order): found. The others are
    // only checked to run, except those with a word the body lacks (`zz`): none.
    let findable = [
        "it's",
        "back\\slash",
        "pipe | bang!",
        "(paren)",
        "'quote'",
        "\"dq\"",
        "x:*a",
        "star*",
        "\"back slash & pipe\"",
        "in:general pipe",
    ];
    for text in findable.iter().copied().chain([
        "'",
        "''",
        "\\",
        "\\\\",
        ":*",
        "&|!:*()<->",
        "\"a & pipe\"",
        "!bang",
        "colon:",
        "<-> quote",
        "''quote''",
        "a:* & b:A | c:*AB",
        "NEAR(back slash)",
        "\\' \\\" '\\'",
        "quote' & !'x",
        "a''b",
        "pipe:*",
        "zz' | !zz",
        "\"zz\\\" & 'zz'",
    ]) {
        let Ok(q) = query::parse(text) else {
            continue;
        };
        let mut asked = request("x", &["general"]);
        asked.terms = q.terms;
        let page = s
            .search(&asked)
            .unwrap_or_else(|e| panic!("{text:?} is an error: {e}"));
        let expected: &[&str] = if findable.contains(&text) {
            &[body]
        } else {
            &[]
        };
        if findable.contains(&text) || text.contains("zz") {
            assert_eq!(found(&page), expected, "{text:?}");
        }
    }
}

on_both_stores!(
    words_prefixes_and_phrases_newest_first,
    case_and_accents_do_not_count,
    words_split_at_punctuation_and_symbols,
    only_the_rooms_asked_and_the_filters,
    rooms_whose_ids_look_alike_are_apart,
    pages_go_back_by_id,
    an_edit_is_found_by_its_new_text_and_a_deletion_never,
    a_body_holding_the_markers_is_still_marked_right,
    hostile_text_is_words,
);

// PostgreSQL only (SQLite's counterpart is a unit test of store::sqlite).

/// A search over its budget stops (`statement_timeout`) and says so; the connection
/// works normally afterwards.
#[test]
fn a_search_over_its_budget_stops_on_postgres() {
    let pg = Postgres::start().expect("start PostgreSQL");
    let mut store = PgStore::open(&pg.url()).expect("open");
    let mut client = postgres::Client::connect(&pg.url(), postgres::NoTls).expect("connect");
    client
        .batch_execute(
            "INSERT INTO messages (room, seq, sender, client_id, body, ts)
             SELECT 'general', i, 'ada', 'c' || i, 'common word ' || i, i
             FROM generate_series(1, 60000) AS i;
             UPDATE rooms SET last_seq = 60000 WHERE name = 'general';
             ANALYZE messages;",
        )
        .expect("fill");
    // A date none of the matches has (no index has dates): every one is looked at.
    let mut asked = request("common word", &["general"]);
    asked.until_ms = Some(0);
    asked.budget = Duration::ZERO;
    let page = store.search(&asked).expect("search");
    assert!(page.slow, "60,000 matches take more than a millisecond");
    assert!(page.hits.is_empty() && !page.more);
    let page = store
        .search(&request("common", &["general"]))
        .expect("search");
    assert!(!page.slow && page.more);
    assert_eq!(page.hits.len(), limits::SEARCH_PAGE);
    assert_eq!(page.hits[0].message.body, "common word 60000");
}

/// The index is the `unaccent`-folding one on this server (it ships with PostgreSQL's
/// contrib modules); without it the migration still runs, and accents count.
#[test]
fn the_search_configuration_folds_accents_on_postgres() {
    let pg = Postgres::start().expect("start PostgreSQL");
    PgStore::open(&pg.url()).expect("open");
    let mut client = postgres::Client::connect(&pg.url(), postgres::NoTls).expect("connect");
    let row = client
        .query_one(
            "SELECT to_tsvector('confab_search', confab_search_text('Zürich—Café!'))::text",
            &[],
        )
        .expect("vector");
    assert_eq!(row.get::<_, String>(0), "'cafe':2 'zurich':1");
}

/// A server where `unaccent` cannot be created (here: the role running the migrations
/// may not create extensions): the migration still runs, and search works, telling
/// accented letters apart (the documented difference).
#[test]
fn without_unaccent_search_works_and_accents_count_on_postgres() {
    let pg = Postgres::start().expect("start PostgreSQL");
    let mut admin = postgres::Client::connect(&pg.url(), postgres::NoTls).expect("connect");
    admin
        .batch_execute("CREATE ROLE confab LOGIN")
        .expect("role");
    admin
        .batch_execute("CREATE DATABASE confab OWNER postgres")
        .expect("database");
    let port = pg.port();
    let url = format!("postgres://confab@127.0.0.1:{port}/confab");
    let mut db = postgres::Client::connect(
        &format!("postgres://postgres@127.0.0.1:{port}/confab"),
        postgres::NoTls,
    )
    .expect("connect to confab");
    // What the first step needs the owner for; `unaccent` is left out.
    db.batch_execute(
        "CREATE EXTENSION citext;
         GRANT ALL ON SCHEMA public TO confab;",
    )
    .expect("set up");
    let mut store = PgStore::open(&url).expect("migrations run without unaccent");
    let installed = db
        .query_opt("SELECT 1 FROM pg_extension WHERE extname = 'unaccent'", &[])
        .expect("extensions");
    assert!(installed.is_none(), "the role could not create it");
    store
        .apply(&[append("general", "ada", "1", "Café au LAIT")])
        .expect("append");
    let page = store
        .search(&request("café lait", &["general"]))
        .expect("search");
    assert_eq!(found(&page), ["Café au LAIT"]);
    assert_eq!(page.hits[0].marks, [[0, 5], [9, 13]]);
    assert!(
        store
            .search(&request("cafe", &["general"]))
            .expect("search")
            .hits
            .is_empty(),
        "accents count"
    );
}
