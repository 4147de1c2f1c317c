//! The reducer, natively: sign-in and sessions here, and the rest by what it is about.

use confab_shared::{ErrorCode, PresenceEvent, limits};

use super::*;

mod changes;
mod messages;
mod rooms;
mod search;
mod window;

fn person(user: &str, name: &str) -> Person {
    Person {
        user: user.into(),
        name: name.into(),
        guest: user.starts_with(confab_shared::GUEST_PREFIX),
    }
}

fn ada() -> Person {
    person("ada", "Ada Lovelace")
}

fn msg(id: u64, room: &str, from: &str) -> ChatMessage {
    ChatMessage {
        id,
        seq: id,
        room: room.into(),
        from: from.into(),
        name: from.to_uppercase(),
        body: format!("m{id}"),
        ts: 0,
        ..ChatMessage::default()
    }
}

fn room(name: &str, title: &str, kind: RoomKind) -> RoomInfo {
    RoomInfo {
        name: name.into(),
        title: title.into(),
        kind,
        owner: None,
        online: 1,
        peer: None,
        member: false,
        muted: false,
    }
}

fn direct(name: &str, peer: Person) -> RoomInfo {
    RoomInfo {
        title: peer.name.clone(),
        peer: Some(peer),
        ..room(name, "", RoomKind::Direct)
    }
}

fn server(state: &mut State, msg: ServerMsg) {
    state.apply(Action::Server { msg, now: 1000.0 });
}

fn error(code: ErrorCode, message: &str, room: Option<&str>) -> ServerMsg {
    ServerMsg::Error {
        code,
        message: message.into(),
        room: room.map(Into::into),
        client_id: None,
        retry_after_ms: None,
    }
}

fn joined(room: &str, history: Vec<ChatMessage>) -> ServerMsg {
    ServerMsg::Joined {
        room: room.into(),
        members: vec![ada()],
        member_count: 1,
        online: vec!["ada".into()],
        history,
        through: 0,
        read: 0,
        unread: 0,
        mentions: 0,
    }
}

fn me(you: Person, guests_allowed: bool) -> Me {
    Me {
        you,
        admin: false,
        guests_allowed,
        sign_up: confab_shared::api::SignUpPolicy::Open,
        can_invite: false,
    }
}

/// Signed in as ada, welcomed, in #general.
fn signed_in(rooms: Vec<RoomInfo>) -> State {
    let mut s = State::default();
    s.apply(Action::SignedIn(me(ada(), true)));
    server(
        &mut s,
        ServerMsg::Welcome {
            protocol: confab_shared::PROTOCOL_VERSION,
            epoch: "e1".into(),
            you: ada(),
            rooms,
        },
    );
    server(&mut s, joined("general", vec![]));
    s
}

#[test]
fn a_page_starts_by_checking_who_it_is() {
    let s = State::default();
    assert!(s.checking);
    assert_eq!(s.me, None);
}

#[test]
fn signing_in_shows_the_chat_and_connects() {
    let mut s = State::default();
    s.apply(Action::AuthBusy(AuthForm::SignIn));
    s.apply(Action::SignedIn(me(ada(), false)));
    assert!(!s.checking);
    assert_eq!(s.me.as_ref().map(|p| p.user.as_str()), Some("ada"));
    assert_eq!(s.conn, Conn::Connecting);
    assert_eq!(s.auth_busy, None);
    assert!(!s.guests_allowed);
}

#[test]
fn the_sign_up_policy_outlives_a_sign_out_and_the_right_to_invite_does_not() {
    use confab_shared::api::SignUpPolicy;
    let mut s = State::default();
    assert_eq!(s.sign_up, SignUpPolicy::Open, "until the server says");
    s.apply(Action::SignUpPolicy(SignUpPolicy::Closed));
    assert_eq!(s.sign_up, SignUpPolicy::Closed);
    s.apply(Action::SignedIn(Me {
        sign_up: SignUpPolicy::Invite,
        can_invite: true,
        ..me(ada(), false)
    }));
    assert!(s.can_invite);
    assert_eq!(s.sign_up, SignUpPolicy::Invite);
    s.apply(Action::SignedOut {
        guests_allowed: None,
    });
    assert!(
        !s.can_invite,
        "the next person to sign in here is someone else"
    );
    assert_eq!(s.sign_up, SignUpPolicy::Invite);
}

#[test]
fn a_refused_sign_in_shows_on_its_form_only() {
    let mut s = State::default();
    s.apply(Action::SignedOut {
        guests_allowed: Some(true),
    });
    s.apply(Action::AuthBusy(AuthForm::SignIn));
    s.apply(Action::AuthFailed(AuthError::new(
        AuthForm::SignIn,
        ApiError {
            retry_after_secs: Some(30),
            ..ApiError::new("too many attempts")
        },
    )));
    assert_eq!(s.auth_busy, None);
    let shown = s
        .auth_error_for(AuthForm::SignIn)
        .expect("error on sign-in");
    assert_eq!(shown.message, "too many attempts (try again in 30 s)");
    assert_eq!(s.auth_error_for(AuthForm::Guest), None);
    // Sending again clears it.
    s.apply(Action::AuthBusy(AuthForm::SignIn));
    assert_eq!(s.auth_error, None);
}

#[test]
fn a_guest_is_welcomed_or_sent_back_to_the_form_with_why() {
    let mut s = State::default();
    s.apply(Action::SignedOut {
        guests_allowed: Some(true),
    });
    s.apply(Action::JoiningAsGuest {
        name: "ada".into(),
        resumed: false,
    });
    assert_eq!(s.auth_busy, Some(AuthForm::Guest));
    assert!(!s.checking, "the form stays on screen");
    server(&mut s, error(ErrorCode::NameTaken, "taken", None));
    assert_eq!(s.me, None);
    assert_eq!(s.joining_as, None);
    let shown = s
        .auth_error_for(AuthForm::Guest)
        .expect("error on guest form");
    assert_eq!(
        (shown.message.as_str(), shown.field.as_deref()),
        ("taken", Some("display_name"))
    );
    assert_eq!(s.notice, None, "the refusal is the only problem shown");

    s.apply(Action::JoiningAsGuest {
        name: "ada2".into(),
        resumed: false,
    });
    assert_eq!(s.auth_error, None);
    let guest = person("~ada2", "ada2");
    server(
        &mut s,
        ServerMsg::Welcome {
            protocol: 3,
            epoch: "e1".into(),
            you: guest.clone(),
            rooms: vec![],
        },
    );
    assert_eq!(s.me, Some(guest));
    assert_eq!(s.joining_as, None);
    assert_eq!(s.auth_busy, None);
}

#[test]
fn a_remembered_guest_rejoins_without_showing_the_forms() {
    let mut s = State::default();
    s.apply(Action::SignedOut {
        guests_allowed: Some(true),
    });
    s.apply(Action::JoiningAsGuest {
        name: "ada".into(),
        resumed: true,
    });
    assert!(s.checking);
    // Its name went to someone else meanwhile: the form, with why.
    server(&mut s, error(ErrorCode::NameTaken, "taken", None));
    assert!(!s.checking);
    assert!(s.auth_error_for(AuthForm::Guest).is_some());
}

#[test]
fn signing_out_forgets_the_session_but_not_what_the_server_allows() {
    let mut s = signed_in(vec![room("general", "general", RoomKind::Public)]);
    server(&mut s, ServerMsg::Message(msg(1, "general", "bob")));
    s.apply(Action::Notice("something".into()));
    s.apply(Action::SignedOut {
        guests_allowed: None,
    });
    assert_eq!(s.me, None);
    assert!(s.joined.is_empty() && s.rooms.is_empty());
    assert_eq!(s.notice, None);
    assert_eq!(s.conn, Conn::Idle);
    assert!(!s.checking);
    assert!(s.guests_allowed, "kept from /api/me");
    s.apply(Action::SignedOut {
        guests_allowed: Some(false),
    });
    assert!(!s.guests_allowed);
}

#[test]
fn a_tick_that_expires_nothing_is_the_same_state_and_renders_nothing() {
    let mut s = State::default();
    server(&mut s, joined("general", vec![msg(1, "general", "ada")]));
    server(
        &mut s,
        ServerMsg::Typing {
            room: "general".into(),
            who: person("grace", "Grace"),
        },
    );
    let before = Rc::new(s);
    // The indicator lasts 5 s from the server time 1000 ms of `server`.
    let after = Rc::clone(&before).reduce(Action::Tick { now: 2_000.0 });
    assert!(
        Rc::ptr_eq(&before, &after),
        "nothing expired: the same state"
    );
    let expired = Rc::clone(&before).reduce(Action::Tick {
        now: 1_000.0 + limits::TYPING_TTL_MS as f64,
    });
    assert!(!Rc::ptr_eq(&before, &expired));
    assert!(expired.joined["general"].typing.is_empty());
}

#[test]
fn a_message_in_one_room_shares_every_other_room_with_the_previous_state() {
    let mut s = State::default();
    server(&mut s, joined("general", vec![msg(1, "general", "ada")]));
    server(&mut s, joined("ops", vec![msg(2, "ops", "ada")]));
    let before = Rc::new(s);
    let after = Rc::clone(&before).reduce(Action::Server {
        msg: ServerMsg::Message(msg(3, "ops", "grace")),
        now: 1_000.0,
    });
    assert!(Rc::ptr_eq(
        &before.joined["general"],
        &after.joined["general"]
    ));
    assert_eq!(after.joined["ops"].messages.len(), 2);
    // The messages themselves are shared too; only the list of them was copied.
    assert!(Rc::ptr_eq(
        &before.joined["ops"].messages[0],
        &after.joined["ops"].messages[0]
    ));
    // A message seen twice (history re-sent on a re-join) changes nothing at all.
    let again = Rc::clone(&after).reduce(Action::Server {
        msg: ServerMsg::Message(msg(3, "ops", "grace")),
        now: 1_000.0,
    });
    assert!(Rc::ptr_eq(&after, &again));
}
