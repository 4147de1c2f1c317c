//! Connections (`hub/connections.rs`): nothing before hello, guest names unique while
//! online, signing out and shutting down closing the right sockets, accounts made
//! outside the server, and ping.

use super::*;

#[test]
fn hello_then_welcome_lists_general() {
    let mut f = Fixture::new();
    let mut c = f.connect(1, 8);
    f.hub.apply(1, hello("Ada"));
    match c.drain().as_slice() {
        [ServerMsg::Welcome { you, rooms, .. }] => {
            assert_eq!(
                you,
                &Person {
                    user: "~ada".into(),
                    name: "Ada".into(),
                    guest: true
                }
            );
            assert_eq!(rooms[0].name, "general");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn everything_but_hello_needs_a_name_first() {
    let mut f = Fixture::new();
    let mut c = f.connect(1, 8);
    f.hub.apply(1, join("general", None));
    assert_eq!(error_code(&c.drain()), Some(ErrorCode::HelloRequired));
}

#[test]
fn guest_names_are_unique_case_insensitively_and_freed_on_disconnect() {
    let mut f = Fixture::new();
    let _ada = f.connect(1, 8);
    f.hub.apply(1, hello("Ada"));
    // An account called Ada is someone else: usernames differ, guests are marked.
    let _account = f.member(3, "ada");
    let mut other = f.connect(2, 8);
    f.hub.apply(2, hello("ada"));
    assert_eq!(error_code(&other.drain()), Some(ErrorCode::NameTaken));
    f.hub.disconnect(1);
    f.hub.apply(2, hello("ada"));
    assert!(matches!(
        other.drain().as_slice(),
        [ServerMsg::Welcome { .. }]
    ));
    f.hub.apply(2, hello("bob"));
    assert_eq!(
        error_code(&other.drain()),
        Some(ErrorCode::AlreadyIdentified)
    );
}

#[test]
fn signing_out_closes_that_sign_in_or_all_of_them() {
    let mut f = Fixture::new();
    let phone = f.member(1, "ada");
    let laptop = f.connect_with(2, 64, user("ada", "Ada", 2));
    let bob = f.member(3, "bob");
    let phone_key = match user("ada", "Ada", 1) {
        Identity::User { session, .. } => session,
        Identity::Guest => unreachable!(),
    };
    f.hub
        .signed_out("ada", Sessions::One(phone_key), Instant::now());
    assert_eq!(phone.close_code(), Some(close::SIGNED_OUT));
    assert_eq!(laptop.close_code(), None);
    f.hub.signed_out("ada", Sessions::All, Instant::now());
    assert_eq!(laptop.close_code(), Some(close::SIGNED_OUT));
    assert_eq!(bob.close_code(), None);
}

#[test]
fn signing_out_the_other_sessions_keeps_this_one() {
    let mut f = Fixture::new();
    let phone = f.member(1, "ada");
    let laptop = f.connect_with(2, 64, user("ada", "Ada", 2));
    let tablet = f.connect_with(3, 64, user("ada", "Ada", 3));
    let bob = f.member(4, "bob");
    let laptop_key = match user("ada", "Ada", 2) {
        Identity::User { session, .. } => session,
        Identity::Guest => unreachable!(),
    };
    let checked = Instant::now();
    f.hub
        .signed_out("ada", Sessions::AllBut(laptop_key), Instant::now());
    assert_eq!(phone.close_code(), Some(close::SIGNED_OUT));
    assert_eq!(tablet.close_code(), Some(close::SIGNED_OUT));
    assert_eq!(laptop.close_code(), None, "the device that asked stays");
    assert_eq!(bob.close_code(), None);
    // A socket of another sign-in, checked before and arriving after, is closed too;
    // one more socket of the kept sign-in is not.
    let mut late = user("ada", "Ada", 5);
    if let Identity::User { checked_at, .. } = &mut late {
        *checked_at = checked;
    }
    assert_eq!(
        f.connect_with(5, 64, late).close_code(),
        Some(close::SIGNED_OUT)
    );
    let mut kept = user("ada", "Ada", 2);
    if let Identity::User { checked_at, .. } = &mut kept {
        *checked_at = checked;
    }
    assert_eq!(f.connect_with(6, 64, kept).close_code(), None);
}

#[test]
fn shutdown_closes_everyone_with_going_away() {
    let mut f = Fixture::new();
    let a = f.member(1, "ada");
    let b = f.connect(2, 8);
    f.hub.shutdown();
    assert_eq!(a.close_code(), Some(close::GOING_AWAY));
    assert_eq!(b.close_code(), Some(close::GOING_AWAY));
    let late = f.connect(3, 8);
    assert_eq!(late.close_code(), Some(close::GOING_AWAY));
}

#[test]
fn an_account_made_outside_the_server_can_be_messaged_at_once() {
    let mut f = Fixture::new();
    let mut ada = f.member(1, "ada");
    // As `confab-server admin create` does while the server runs: straight into the store.
    let database = crate::store::Database::sqlite(f.dir.path(), Durability::Process);
    crate::store::accounts::open(&database)
        .expect("accounts")
        .create_user(crate::store::accounts::NewUser {
            username: "root",
            display_name: "The Admin",
            password_hash: "$argon2id$not-used-here",
            is_admin: true,
            now_ms: 1,
        })
        .expect("created");
    f.hub.apply(
        1,
        Command::OpenDirect(Username::parse("root").expect("username")),
    );
    assert!(matches!(
        ada.drain().as_slice(),
        [ServerMsg::RoomsChanged { rooms, .. }, ServerMsg::Joined { .. }]
            if rooms.iter().any(|r| r.title == "The Admin")
    ));
}

#[test]
fn ping_is_answered_with_pong() {
    let mut f = Fixture::new();
    let mut ada = f.member(1, "ada");
    f.hub.apply(1, Command::Ping);
    assert_eq!(ada.drain(), [ServerMsg::Pong]);
}

/// A socket whose cookie was checked just before its sign-in ended, but which reaches the
/// hub only after the sign-out did: it is closed too. A sign-in made after the sign-out
/// is not.
#[test]
fn a_socket_checked_before_a_sign_out_that_arrives_after_it_is_closed() {
    let mut f = Fixture::new();
    let checked = Instant::now();
    let key = [7u8; 32];
    let identity = |key: [u8; 32], checked_at: Instant| Identity::User {
        username: "ada".into(),
        display_name: "Ada".into(),
        admin: false,
        session: key,
        checked_at,
    };
    // The phone signs out; the laptop's socket, opened with that sign-in, is late.
    f.hub.signed_out("ada", Sessions::One(key), Instant::now());
    let late = f.connect_with(1, 64, identity(key, checked));
    assert_eq!(late.close_code(), Some(close::SIGNED_OUT));
    // Another sign-in of Ada's is untouched by that sign-out.
    let other = f.connect_with(2, 64, identity([8u8; 32], checked));
    assert_eq!(other.close_code(), None);
    // Signing out everywhere reaches sockets of every sign-in checked before it...
    f.hub.signed_out("ada", Sessions::All, Instant::now());
    let late_too = f.connect_with(3, 64, identity([9u8; 32], checked));
    assert_eq!(late_too.close_code(), Some(close::SIGNED_OUT));
    // ...but not a sign-in made, and checked, after it.
    let fresh = f.connect_with(4, 64, identity([10u8; 32], Instant::now()));
    assert_eq!(fresh.close_code(), None);
}
