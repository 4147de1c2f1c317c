//! The access rule (`hub/access.rs`): a room a connection may not know of is answered
//! exactly as if it did not exist, and a room it knows but is not in gives it nothing.

use super::*;

#[test]
fn rooms_are_isolated() {
    let mut f = Fixture::new();
    let mut ada = f.member(1, "ada");
    let mut bob = f.member(2, "bob");
    f.hub.apply(1, create("ops"));
    f.hub.apply(1, join("ops", None));
    ada.drain();
    bob.drain();
    f.say(&ada, "ops", "secret plans", "c1");
    assert_eq!(bodies(&ada.drain()), ["secret plans"]);
    assert!(bob.drain().is_empty());
    f.hub.apply(2, send("ops", "let me in", "c2"));
    let refused = bob.drain();
    assert!(matches!(
        refused.as_slice(),
        [ServerMsg::Error { code: ErrorCode::NotInRoom, client_id: Some(c), .. }] if c == "c2"
    ));
    f.hub.apply(2, send("nowhere", "hello?", "c3"));
    assert_eq!(error_code(&bob.drain()), Some(ErrorCode::UnknownRoom));
    f.hub.apply(
        2,
        Command::FetchHistory {
            room: room("ops"),
            before: 100,
            limit: 10,
        },
    );
    assert_eq!(error_code(&bob.drain()), Some(ErrorCode::NotInRoom));
}

#[test]
fn a_private_room_is_indistinguishable_from_none_to_non_members() {
    let mut f = Fixture::new();
    let mut ada = f.member(1, "ada");
    let mut bob = f.member(2, "bob");
    let plans = f.create_private(&mut ada, "plans");
    assert!(plans.starts_with("_p"), "{plans}");
    assert!(
        bob.drain().is_empty(),
        "nobody else hears of a private room"
    );
    f.hub.apply(1, join(&plans, None));
    f.say(&ada, &plans, "secret", "c1");
    f.settle_rooms();
    ada.drain();
    bob.drain();

    f.hub.apply(2, Command::ListRooms);
    assert_eq!(room_names(&bob.drain()), Some(vec!["general".to_owned()]));
    let about_plans = probe(&mut f, &mut bob, &plans);
    let nowhere = "_pnosuchroomatall00";
    let about_nothing = probe(&mut f, &mut bob, nowhere);
    assert_eq!(about_plans.len(), 15);
    for (real, none) in about_plans.iter().zip(&about_nothing) {
        let text = |m: &ServerMsg| m.to_json().replace(&plans, "ROOM").replace(nowhere, "ROOM");
        assert_eq!(text(real), text(none));
        assert!(matches!(
            real,
            ServerMsg::Error {
                code: ErrorCode::UnknownRoom,
                ..
            }
        ));
    }
    assert!(ada.drain().is_empty(), "probing tells the members nothing");

    // An invitation makes it visible, and then it is a room like any other.
    f.hub.apply(
        1,
        Command::Invite {
            room: room(&plans),
            user: Username::parse("bob").expect("username"),
        },
    );
    assert!(ada.drain().is_empty(), "not a member before it is stored");
    f.settle_rooms();
    assert!(matches!(
        ada.drain().as_slice(),
        [ServerMsg::Members { members, .. }] if usernames(members) == ["ada", "bob"]
    ));
    let lists = bob.drain();
    assert_eq!(changed_names(&lists), std::slice::from_ref(&plans));
    f.hub.apply(2, join(&plans, None));
    assert!(matches!(
        bob.drain().as_slice(),
        [ServerMsg::Joined { history, .. }] if bodies_of(history) == ["secret"]
    ));
}
