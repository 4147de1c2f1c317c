//! The search box's state: answers to replaced queries are dropped, pages add up, a
//! refusal shows next to the box.

use confab_shared::SearchHit;

use super::*;

fn hit(id: u64) -> SearchHit {
    SearchHit {
        message: msg(id, "general", "bob"),
        marks: vec![[0, 1]],
    }
}

fn results(query: &str, before: Option<u64>, ids: &[u64], more: bool) -> ServerMsg {
    ServerMsg::SearchResults {
        query: query.into(),
        before,
        hits: ids.iter().map(|id| hit(*id)).collect(),
        more,
    }
}

fn asked(s: &mut State, query: &str, before: Option<u64>) {
    s.apply(Action::Search(SearchAction::Asked {
        query: query.into(),
        before,
    }));
}

fn ids(s: &State) -> Vec<u64> {
    s.search.hits.iter().map(|h| h.message.id).collect()
}

#[test]
fn only_the_answer_to_the_last_request_is_shown() {
    let mut s = signed_in(vec![]);
    asked(&mut s, "rust", None);
    assert!(s.search.open && s.search.busy && !s.search.answered);
    asked(&mut s, "rust borrow", None);
    // The answer to the replaced query comes after all.
    server(&mut s, results("rust", None, &[9, 8], false));
    assert!(ids(&s).is_empty());
    assert!(s.search.busy);
    server(&mut s, results("rust borrow", None, &[7, 3], true));
    assert_eq!(ids(&s), [7, 3]);
    assert!(!s.search.busy && s.search.answered && s.search.more);
    assert_eq!(s.search.next_page(), Some(3));

    asked(&mut s, "rust borrow", Some(3));
    // A first page again (sent twice) is not the page asked for.
    server(&mut s, results("rust borrow", None, &[7, 3], true));
    assert_eq!(ids(&s), [7, 3]);
    server(&mut s, results("rust borrow", Some(3), &[3, 2, 1], false));
    assert_eq!(ids(&s), [7, 3, 2, 1], "added, a hit seen already not twice");
    assert_eq!(s.search.next_page(), None);
}

#[test]
fn a_search_finding_nothing_is_answered_and_empty() {
    let mut s = signed_in(vec![]);
    asked(&mut s, "zebra", None);
    server(&mut s, results("zebra", None, &[], false));
    assert!(s.search.answered && s.search.hits.is_empty());
}

#[test]
fn a_refused_query_shows_by_the_box_not_as_a_notice() {
    let mut s = signed_in(vec![]);
    asked(&mut s, "in:general", None);
    server(
        &mut s,
        error(
            ErrorCode::InvalidQuery,
            "a search needs at least one word",
            None,
        ),
    );
    assert_eq!(
        s.search.error.as_deref(),
        Some("a search needs at least one word")
    );
    assert!(!s.search.busy);
    assert_eq!(s.notice, None);
    // A late refusal with nothing asked is not about anything on screen.
    asked(&mut s, "hello", None);
    server(&mut s, results("hello", None, &[1], false));
    server(&mut s, error(ErrorCode::InvalidQuery, "late", None));
    assert_eq!(s.search.error, None);
    assert_eq!(ids(&s), [1]);
}

#[test]
fn a_busy_server_is_said_by_the_box_and_results_still_coming_show() {
    let mut s = signed_in(vec![]);
    asked(&mut s, "hello", None);
    server(&mut s, error(ErrorCode::Unavailable, "busy", None));
    assert_eq!(s.search.error.as_deref(), Some("busy"));
    assert_eq!(s.notice, None);
    server(&mut s, results("hello", None, &[1], false));
    assert_eq!((ids(&s), s.search.error.clone()), (vec![1], None));
    // With nothing asked, it is news for the notice as ever.
    server(&mut s, error(ErrorCode::Unavailable, "busy", None));
    assert_eq!(s.notice.as_deref(), Some("busy"));
}

#[test]
fn a_dropped_connection_ends_the_wait_and_closing_keeps_the_results() {
    let mut s = signed_in(vec![]);
    asked(&mut s, "hello", None);
    s.apply(Action::Conn(Conn::Reconnecting { retry_in_ms: 500 }));
    assert!(!s.search.busy);
    assert!(s.search.error.is_some());
    asked(&mut s, "hello", None);
    server(&mut s, results("hello", None, &[1], false));
    s.apply(Action::Search(SearchAction::Close));
    assert!(!s.search.open);
    assert_eq!(ids(&s), [1]);
    s.apply(Action::Search(SearchAction::Open));
    assert!(s.search.open);
}
