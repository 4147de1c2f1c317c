//! Search (`hub/search.rs`): exactly the rooms the person may see, narrowed by `in:`,
//! checked again when the answer comes back; counted with the reads in flight.

use super::*;
use crate::search::query;

fn search(text: &str) -> Command {
    Command::Search {
        text: text.to_owned(),
        query: query::parse(text).expect("a query"),
        before: None,
    }
}

/// The bodies of the hits of the one search answer in `msgs`.
fn hits(msgs: &[ServerMsg]) -> Vec<String> {
    match msgs {
        [ServerMsg::SearchResults { hits, .. }] => {
            hits.iter().map(|h| h.message.body.clone()).collect()
        }
        other => panic!("expected search results, got {other:?}"),
    }
}

/// ada's private room `plans` and her direct conversation with cy, each with a needle,
/// and one in #general.
fn needles(f: &mut Fixture) -> (Client, Client, Client, String) {
    let mut ada = f.member(1, "ada");
    let mut bob = f.member(2, "bob");
    let mut cy = f.member(3, "cy");
    let plans = f.create_private(&mut ada, "plans");
    f.hub.apply(1, join(&plans, None));
    f.say(&ada, &plans, "needle in plans", "c1");
    f.hub.apply(
        1,
        Command::OpenDirect(Username::parse("cy").expect("username")),
    );
    f.settle_rooms();
    let dm = super::super::rooms::direct_room_id("ada", "cy");
    f.say(&ada, &dm, "needle between us", "c2");
    f.say(&ada, "general", "needle for all", "c3");
    f.settle_rooms();
    for c in [&mut ada, &mut bob, &mut cy] {
        c.drain();
    }
    (ada, bob, cy, plans)
}

#[test]
fn everyone_finds_exactly_what_they_may_see() {
    let mut f = Fixture::new();
    let (mut ada, mut bob, mut cy, _plans) = needles(&mut f);
    f.hub.apply(1, search("needle"));
    assert_eq!(
        hits(&ada.drain()),
        ["needle for all", "needle between us", "needle in plans"],
        "newest first"
    );
    f.hub.apply(2, search("needle"));
    assert_eq!(hits(&bob.drain()), ["needle for all"]);
    f.hub.apply(3, search("needle"));
    assert_eq!(hits(&cy.drain()), ["needle for all", "needle between us"]);
    let mut guest = f.connect(4, 64);
    f.hub.apply(4, hello("Visitor"));
    guest.drain();
    f.hub.apply(4, search("needle"));
    assert_eq!(
        hits(&guest.drain()),
        ["needle for all"],
        "public rooms only"
    );
}

#[test]
fn in_narrows_to_rooms_the_person_sees_by_id_or_title() {
    let mut f = Fixture::new();
    let (mut ada, mut bob, _cy, plans) = needles(&mut f);
    f.hub.apply(1, search("needle in:plans"));
    assert_eq!(hits(&ada.drain()), ["needle in plans"], "by title");
    f.hub
        .apply(1, search(&format!("needle in:{plans} in:general")));
    assert_eq!(hits(&ada.drain()), ["needle for all", "needle in plans"]);
    f.hub.apply(1, search("needle in:cy"));
    assert_eq!(hits(&ada.drain()), ["needle between us"], "by the peer");
    // Someone who may not see the room is answered as for one that does not exist.
    f.hub.apply(2, search("needle in:plans"));
    let refused = bob.drain();
    f.hub.apply(2, search("needle in:nowhere"));
    let none = bob.drain();
    assert_eq!(error_code(&refused), Some(ErrorCode::InvalidQuery));
    let text = |m: &[ServerMsg]| m[0].to_json().replace("plans", "X").replace("nowhere", "X");
    assert_eq!(text(&refused), text(&none));
}

#[test]
fn a_room_left_during_the_search_is_not_in_its_answer() {
    let mut f = Fixture::held(HubSettings::default());
    let mut ada = f.signed_in(1, "ada");
    let mut bob = f.signed_in(2, "bob");
    let plans = f.create_private(&mut ada, "plans");
    f.hub.apply(
        1,
        Command::Invite {
            room: room(&plans),
            user: Username::parse("bob").expect("username"),
        },
    );
    f.settle_rooms();
    f.hub.apply(1, join(&plans, None));
    f.answer_reads();
    f.say(&ada, &plans, "needle in plans", "c1");
    ada.drain();
    bob.drain();
    f.hub.apply(2, search("needle"));
    f.hub.apply(
        1,
        Command::Remove {
            room: room(&plans),
            user: Username::parse("bob").expect("username"),
        },
    );
    f.settle_rooms();
    bob.drain();
    assert_eq!(f.answer_reads(), 1);
    assert!(hits(&bob.drain()).is_empty(), "read before, answered after");
}

#[test]
fn searches_count_with_the_reads_in_flight() {
    let settings = HubSettings {
        history_reads_per_connection: 2,
        ..HubSettings::default()
    };
    let mut f = Fixture::held(settings);
    let mut ada = f.signed_in(1, "ada");
    f.hub.apply(1, search("one"));
    f.hub.apply(1, search("two"));
    f.hub.apply(1, search("three"));
    assert_eq!(error_code(&ada.drain()), Some(ErrorCode::RateLimited));
    assert_eq!(f.answer_reads(), 2);
    let answers = ada.drain();
    assert!(
        matches!(
            answers.as_slice(),
            [ServerMsg::SearchResults { query: a, .. }, ServerMsg::SearchResults { query: b, .. }]
                if a == "one" && b == "two"
        ),
        "{answers:?}"
    );
    f.hub.apply(1, search("four"));
    assert_eq!(f.answer_reads(), 1, "room again once answered");
}

#[test]
fn pages_follow_each_other() {
    let mut f = Fixture::new();
    let mut ada = f.member(1, "ada");
    for i in 1..=25 {
        f.hub
            .apply(1, send("general", &format!("needle {i}"), &format!("c{i}")));
    }
    f.flush();
    ada.drain();
    f.hub.apply(1, search("needle"));
    let (last, first_page) = match ada.drain().as_slice() {
        [
            ServerMsg::SearchResults {
                hits,
                more: true,
                before: None,
                ..
            },
        ] => (hits[hits.len() - 1].message.id, hits.len()),
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(first_page, limits::SEARCH_PAGE);
    f.hub.apply(
        1,
        Command::Search {
            text: "needle".into(),
            query: query::parse("needle").expect("query"),
            before: Some(last),
        },
    );
    match ada.drain().as_slice() {
        [
            ServerMsg::SearchResults {
                hits,
                more: false,
                before,
                ..
            },
        ] => {
            assert_eq!(*before, Some(last));
            assert_eq!(
                hits.iter().map(|h| h.message.seq).collect::<Vec<_>>(),
                [5, 4, 3, 2, 1]
            );
        }
        other => panic!("unexpected {other:?}"),
    }
}
