//! Accounts, sign-in sessions, invites and the device cookie key on both databases:
//! each test body takes a [`Site`] and runs once on SQLite (a temporary data directory)
//! and once on a real PostgreSQL (tests/common/services.rs), so a cluster's accounts
//! behave exactly as a single server's. Each [`Site::database`] is a new handle of its
//! own (a connection, or a pool), the way another process or another node opens the same
//! data: the races below are between those.
//!
//! The administrators' part of the store (`store::admin::AdminStore`, `crate::admin`) is tested
//! here too, on both.
//!
//! Then the real `confab-server admin create` and `admin invite` against PostgreSQL, and
//! two servers on one PostgreSQL honouring each other's sessions.
//!
//! Plain `#[test]`s and std threads: the synchronous `postgres` client must not run
//! inside a Tokio runtime (the one async test only speaks HTTP to the servers).

mod common;

use std::{
    io::Write,
    process::{Command, Stdio},
    sync::{Arc, Barrier},
    thread,
    time::Duration,
};

use axum::http::{HeaderMap, HeaderValue, header};
use common::{
    PASSWORD, both_stores::on_both_stores, http_post, http_request, services::Postgres, start_with,
};
use confab_server::{
    accounts::{AccountError, Accounts},
    http::Devices,
    invites::{InviteError, InviteLimits},
    store::{
        Database, Durability,
        accounts::{self, AccountStore, CreateUserError, NewUser},
        admin::NewAuditEntry,
        invites::{InviteRefusal, NewInvite, Scope},
    },
};
use confab_shared::{DisplayName, Password, Username};
use tempfile::TempDir;

/// Where the accounts live.
enum Site {
    Sqlite(TempDir),
    Postgres(Postgres),
}

impl Site {
    /// A new handle on the site's database, as another process or node would open.
    fn database(&self) -> Database {
        match self {
            Site::Sqlite(dir) => Database::sqlite(dir.path(), Durability::Process),
            Site::Postgres(pg) => Database::postgres(&pg.url(), 4).expect("open PostgreSQL"),
        }
    }

    fn store(&self) -> Box<dyn AccountStore> {
        accounts::open(&self.database()).expect("open the account store")
    }

    fn accounts(&self) -> Accounts {
        Accounts::open(&self.database()).expect("open the accounts")
    }
}

fn site_on_sqlite(test: impl FnOnce(&Site)) {
    test(&Site::Sqlite(tempfile::tempdir().expect("tempdir")));
}

fn site_on_postgres(test: impl FnOnce(&Site)) {
    test(&Site::Postgres(
        Postgres::start().expect("start PostgreSQL"),
    ));
}

on_both_stores!(
    sqlite: site_on_sqlite,
    postgres: site_on_postgres;
    usernames_are_unique_whatever_their_case,
    sessions_expire_and_can_be_revoked,
    a_password_change_ends_the_other_sessions_together,
    accounts_survive_a_reopen,
    an_invite_creates_as_many_accounts_as_it_has_uses,
    a_taken_username_gives_the_use_back,
    expired_unknown_and_revoked_invites_create_nothing,
    members_see_and_revoke_only_their_own_and_creators_are_capped,
    sign_ups_racing_for_an_invite_get_exactly_its_uses,
    invites_made_at_once_stay_under_the_cap,
    sign_up_sign_in_and_sign_out,
    a_password_change_needs_the_current_password,
    invites_through_the_policy_layer,
    every_open_of_one_database_signs_device_cookies_alike,
    administrators_list_disable_grant_and_audit,
    a_reset_link_works_once_even_when_raced,
    rooms_and_statistics_count_what_is_stored,
);

fn person(username: &str, now_ms: i64) -> NewUser<'_> {
    NewUser {
        username,
        display_name: username,
        password_hash: "$argon2id$stub-for-the-store-test",
        is_admin: false,
        now_ms,
    }
}

fn invite(token_hash: &[u8], created_by: Option<i64>, uses: u32) -> NewInvite<'_> {
    NewInvite {
        token_hash,
        created_by,
        now_ms: 10,
        expires_at_ms: 1_000,
        uses,
        per_creator: 3,
    }
}

fn name(s: &str) -> Username {
    Username::parse(s).expect("username")
}

fn pw(s: &str) -> Password {
    Password::parse(s).expect("password")
}

fn display(s: &str) -> DisplayName {
    DisplayName::parse(s).expect("display name")
}

// The store.

fn usernames_are_unique_whatever_their_case(site: &Site) {
    let s = site.store();
    let user = s
        .create_user(NewUser {
            display_name: "Ada Lovelace",
            ..person("ada", 1)
        })
        .expect("created");
    assert_eq!(user.username, "ada");
    assert_eq!(user.display_name, "Ada Lovelace");
    assert_eq!(s.user_by_username("ada").expect("read"), Some(user.clone()));
    assert_eq!(
        s.user_by_username("AdA").expect("read"),
        Some(user),
        "found whatever the case"
    );
    assert!(matches!(
        s.create_user(person("ADA", 2)),
        Err(CreateUserError::UsernameTaken)
    ));
    assert_eq!(s.user_by_username("bob").expect("read"), None);
    assert_eq!(s.user_count().expect("count"), 1);
}

fn sessions_expire_and_can_be_revoked(site: &Site) {
    let s = site.store();
    let user = s.create_user(person("ada", 1)).expect("created");
    let bob = s.create_user(person("bob", 1)).expect("created");
    s.create_session(b"one", user.id, 10, 100).expect("session");
    s.create_session(b"two", user.id, 10, 100).expect("session");
    s.create_session(b"bob", bob.id, 10, 100).expect("session");
    assert_eq!(
        s.session_user(b"one", 50).expect("read"),
        Some(user.clone())
    );
    assert_eq!(s.session_user(b"one", 100).expect("read"), None, "expired");
    assert_eq!(s.session_user(b"nope", 50).expect("read"), None);
    s.delete_session(b"one").expect("sign out");
    assert_eq!(s.session_user(b"one", 50).expect("read"), None);
    assert!(s.session_user(b"two", 50).expect("read").is_some());
    s.delete_sessions_of(user.id).expect("sign out everywhere");
    assert_eq!(s.session_user(b"two", 50).expect("read"), None);
    assert_eq!(
        s.session_user(b"bob", 50).expect("read"),
        Some(bob.clone()),
        "someone else's stays"
    );

    s.create_session(b"four", user.id, 10, 100)
        .expect("session");
    s.create_session(b"five", user.id, 10, 100)
        .expect("session");
    s.delete_sessions_of_except(user.id, b"five")
        .expect("sign out the others");
    assert_eq!(s.session_user(b"four", 50).expect("read"), None);
    assert!(s.session_user(b"five", 50).expect("read").is_some());
    assert!(s.session_user(b"bob", 50).expect("read").is_some());

    s.create_session(b"three", user.id, 10, 20)
        .expect("session");
    assert_eq!(
        s.delete_expired_sessions(30).expect("sweep"),
        [("ada".to_owned(), b"three".to_vec())]
    );
    assert!(s.delete_expired_sessions(30).expect("sweep").is_empty());
    assert!(s.session_user(b"five", 50).expect("read").is_some());
}

fn a_password_change_ends_the_other_sessions_together(site: &Site) {
    let s = site.store();
    let ada = s.create_user(person("ada", 1)).expect("created");
    let bob = s.create_user(person("bob", 1)).expect("created");
    for token in [&b"here"[..], b"there", b"elsewhere"] {
        s.create_session(token, ada.id, 10, 100).expect("session");
    }
    s.create_session(b"bob", bob.id, 10, 100).expect("session");
    s.change_password(ada.id, "$argon2id$new", b"here")
        .expect("change");
    let changed = s.user_by_username("ada").expect("read").expect("ada");
    assert_eq!(changed.password_hash, "$argon2id$new");
    assert_eq!(s.session_user(b"here", 50).expect("read"), Some(changed));
    assert_eq!(s.session_user(b"there", 50).expect("read"), None);
    assert_eq!(s.session_user(b"elsewhere", 50).expect("read"), None);
    assert!(s.session_user(b"bob", 50).expect("read").is_some());
    assert_eq!(
        s.user_by_username("bob")
            .expect("read")
            .map(|u| u.password_hash),
        Some(bob.password_hash)
    );
}

fn accounts_survive_a_reopen(site: &Site) {
    let (id, session) = {
        let s = site.store();
        let id = s.create_user(person("ada", 1)).expect("created").id;
        s.create_session(b"kept", id, 10, 100).expect("session");
        (id, b"kept")
    };
    let s = site.store();
    assert_eq!(
        s.user_by_username("ada").expect("read").map(|u| u.id),
        Some(id)
    );
    assert_eq!(
        s.session_user(session, 50).expect("read").map(|u| u.id),
        Some(id),
        "a session made through one handle signs in through another"
    );
}

fn an_invite_creates_as_many_accounts_as_it_has_uses(site: &Site) {
    let s = site.store();
    let made = s
        .create_invite(invite(b"secret", None, 2))
        .expect("store")
        .expect("created");
    assert_eq!(
        (made.max_uses, made.uses_left, made.created_by),
        (2, 2, None)
    );
    assert_eq!((made.created_at, made.expires_at), (10, 1_000));
    assert_eq!(s.invite_refusal(b"secret", 20).expect("read"), None);
    s.create_user_invited(person("ada", 20), b"secret")
        .expect("first use");
    s.create_user_invited(person("bob", 20), b"secret")
        .expect("second use");
    assert!(matches!(
        s.create_user_invited(person("cy", 20), b"secret"),
        Err(CreateUserError::InviteRefused(InviteRefusal::UsedUp))
    ));
    assert_eq!(
        s.user_count().expect("count"),
        2,
        "no account without a use"
    );
    assert_eq!(
        s.invite_refusal(b"secret", 20).expect("read"),
        Some(InviteRefusal::UsedUp)
    );
    let listed = s.invites(Scope::All, 20, 100).expect("list");
    assert_eq!(
        listed
            .iter()
            .map(|i| (i.id, i.uses_left))
            .collect::<Vec<_>>(),
        [(made.id, 0)]
    );
}

fn a_taken_username_gives_the_use_back(site: &Site) {
    let s = site.store();
    s.create_user(person("ada", 1)).expect("ada");
    s.create_invite(invite(b"secret", None, 1))
        .expect("store")
        .expect("created");
    assert!(matches!(
        s.create_user_invited(person("ADA", 20), b"secret"),
        Err(CreateUserError::UsernameTaken)
    ));
    assert_eq!(s.invite_refusal(b"secret", 20).expect("read"), None);
    s.create_user_invited(person("bob", 20), b"secret")
        .expect("the use is still there");
    assert_eq!(s.user_count().expect("count"), 2);
}

fn expired_unknown_and_revoked_invites_create_nothing(site: &Site) {
    let s = site.store();
    let made = s
        .create_invite(invite(b"secret", None, 5))
        .expect("store")
        .expect("created");
    assert_eq!(
        s.invite_refusal(b"secret", 1_000).expect("read"),
        Some(InviteRefusal::Expired)
    );
    assert!(matches!(
        s.create_user_invited(person("ada", 1_000), b"secret"),
        Err(CreateUserError::InviteRefused(InviteRefusal::Expired))
    ));
    assert!(matches!(
        s.create_user_invited(person("ada", 20), b"other"),
        Err(CreateUserError::InviteRefused(InviteRefusal::Unknown))
    ));
    assert!(s.delete_invite(made.id, Scope::All).expect("revoke"));
    assert!(!s.delete_invite(made.id, Scope::All).expect("again"));
    assert!(matches!(
        s.create_user_invited(person("ada", 20), b"secret"),
        Err(CreateUserError::InviteRefused(InviteRefusal::Unknown))
    ));
    assert_eq!(s.user_count().expect("count"), 0);
}

fn members_see_and_revoke_only_their_own_and_creators_are_capped(site: &Site) {
    let s = site.store();
    let ada = s.create_user(person("ada", 1)).expect("ada").id;
    let bob = s.create_user(person("bob", 1)).expect("bob").id;
    let theirs = s
        .create_invite(invite(b"a1", Some(ada), 1))
        .expect("store")
        .expect("created");
    assert_eq!(theirs.created_by.as_deref(), Some("ada"));
    s.create_invite(invite(b"a2", Some(ada), 1))
        .expect("store")
        .expect("created");
    s.create_invite(invite(b"a3", Some(ada), 1))
        .expect("store")
        .expect("created");
    assert_eq!(
        s.create_invite(invite(b"a4", Some(ada), 1)).expect("store"),
        None,
        "a fourth is over the cap of 3"
    );
    s.create_invite(invite(b"b1", Some(bob), 1))
        .expect("store")
        .expect("bob has his own cap");
    s.create_invite(invite(b"c1", None, 1))
        .expect("store")
        .expect("so has the command line");
    let ids = |scope, now_ms| -> Vec<i64> {
        s.invites(scope, now_ms, 100)
            .expect("list")
            .iter()
            .map(|i| i.id)
            .collect()
    };
    assert_eq!(ids(Scope::CreatedBy(bob), 20).len(), 1);
    let adas = ids(Scope::CreatedBy(ada), 20);
    assert_eq!(adas.len(), 3);
    assert!(adas.windows(2).all(|w| w[0] > w[1]), "newest first");
    assert_eq!(ids(Scope::All, 20).len(), 5);
    assert_eq!(
        s.invites(Scope::All, 20, 2).expect("list").len(),
        2,
        "limited"
    );
    assert!(
        !s.delete_invite(theirs.id, Scope::CreatedBy(bob))
            .expect("revoke")
    );
    assert!(
        s.delete_invite(theirs.id, Scope::CreatedBy(ada))
            .expect("revoke")
    );
    assert_eq!(ids(Scope::All, 20).len(), 4);
    // Expired ones leave the list, free their place and are swept.
    assert!(ids(Scope::All, 1_000).is_empty());
    let later = NewInvite {
        now_ms: 1_000,
        expires_at_ms: 2_000,
        ..invite(b"a5", Some(ada), 1)
    };
    assert!(s.create_invite(later).expect("store").is_some());
    assert_eq!(s.delete_expired_invites(1_000).expect("sweep"), 4);
    assert_eq!(ids(Scope::All, 1_000).len(), 1);
}

/// Threads as many as it takes, each with a handle of its own (a connection to the
/// SQLite file; a pool to PostgreSQL, as each node has), all started at once.
fn race<T: Send + 'static>(
    site: &Site,
    racers: usize,
    work: impl Fn(usize, &dyn AccountStore) -> T + Send + Sync + 'static,
) -> Vec<T> {
    let work = Arc::new(work);
    let start = Arc::new(Barrier::new(racers));
    let handles: Vec<_> = (0..racers)
        .map(|n| {
            let store = site.store();
            let (work, start) = (Arc::clone(&work), Arc::clone(&start));
            thread::spawn(move || {
                start.wait();
                work(n, &*store)
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().expect("racer"))
        .collect()
}

fn sign_ups_racing_for_an_invite_get_exactly_its_uses(site: &Site) {
    let s = site.store();
    s.create_invite(invite(b"secret", None, 3))
        .expect("store")
        .expect("created");
    let won = race(site, 10, |n, store| {
        let name = format!("racer{n}");
        match store.create_user_invited(person(&name, 20), b"secret") {
            Ok(_) => true,
            Err(CreateUserError::InviteRefused(InviteRefusal::UsedUp)) => false,
            Err(e) => panic!("{name}: {e}"),
        }
    });
    assert_eq!(won.iter().filter(|w| **w).count(), 3, "{won:?}");
    assert_eq!(s.user_count().expect("count"), 3);
    assert_eq!(
        s.invite_refusal(b"secret", 20).expect("read"),
        Some(InviteRefusal::UsedUp)
    );
}

fn invites_made_at_once_stay_under_the_cap(site: &Site) {
    let s = site.store();
    let ada = s.create_user(person("ada", 1)).expect("ada").id;
    let made = race(site, 8, move |n, store| {
        let hash = format!("secret{n}");
        store
            .create_invite(invite(hash.as_bytes(), Some(ada), 1))
            .expect("store")
            .is_some()
    });
    assert_eq!(made.iter().filter(|m| **m).count(), 3, "{made:?}");
    assert_eq!(
        s.invites(Scope::CreatedBy(ada), 20, 100)
            .expect("list")
            .len(),
        3
    );
}

// The policy layer over the store.

fn sign_up_sign_in_and_sign_out(site: &Site) {
    let a = site.accounts();
    let ada = a
        .sign_up(
            &name("Ada"),
            &display("Ada L."),
            &pw("correct horse"),
            false,
        )
        .expect("sign up");
    assert_eq!(ada.username, "ada");
    assert!(matches!(
        a.sign_up(&name("ADA"), &display("Other"), &pw("whatever1"), false),
        Err(AccountError::UsernameTaken)
    ));
    let stored = site
        .store()
        .user_by_username("ada")
        .expect("read")
        .expect("ada");
    assert!(
        stored
            .password_hash
            .starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{}",
        stored.password_hash
    );
    assert!(matches!(
        a.sign_in(&name("ada"), &pw("wrong horse!")),
        Err(AccountError::InvalidCredentials)
    ));
    assert!(matches!(
        a.sign_in(&name("nobody"), &pw("correct horse")),
        Err(AccountError::InvalidCredentials)
    ));
    let (user, token) = a
        .sign_in(&name("ADA"), &pw("correct horse"))
        .expect("sign in");
    assert_eq!(user, ada);
    // Another node (another handle) knows the session.
    let elsewhere = site.accounts();
    assert_eq!(
        elsewhere.authenticate(token.as_str()).expect("auth"),
        Some(ada.clone())
    );
    let (_, other_device) = a
        .sign_in(&name("ada"), &pw("correct horse"))
        .expect("again");
    elsewhere.sign_out(token.as_str()).expect("sign out");
    assert_eq!(a.authenticate(token.as_str()).expect("auth"), None);
    assert!(
        a.authenticate(other_device.as_str())
            .expect("auth")
            .is_some()
    );
    a.sign_out_everywhere(ada.id).expect("everywhere");
    assert_eq!(a.authenticate(other_device.as_str()).expect("auth"), None);
    assert!(a.purge_expired().expect("purge").is_empty());
}

fn a_password_change_needs_the_current_password(site: &Site) {
    let a = site.accounts();
    let ada = a
        .sign_up(&name("ada"), &display("Ada"), &pw("correct horse"), false)
        .expect("sign up");
    let (_, here) = a.sign_in(&name("ada"), &pw("correct horse")).expect("in");
    let (_, there) = a.sign_in(&name("ada"), &pw("correct horse")).expect("in");
    assert!(matches!(
        a.change_password(&ada, &pw("wrong horse"), &pw("new battery"), here.as_str()),
        Err(AccountError::InvalidCredentials)
    ));
    assert!(a.authenticate(there.as_str()).expect("auth").is_some());
    a.change_password(
        &ada,
        &pw("correct horse"),
        &pw("new battery"),
        here.as_str(),
    )
    .expect("change");
    assert_eq!(
        a.authenticate(here.as_str()).expect("auth"),
        Some(ada.clone())
    );
    assert_eq!(a.authenticate(there.as_str()).expect("auth"), None);
    assert!(matches!(
        a.sign_in(&name("ada"), &pw("correct horse")),
        Err(AccountError::InvalidCredentials)
    ));
    let (_, third) = a.sign_in(&name("ada"), &pw("new battery")).expect("new");
    a.sign_out_others(ada.id, third.as_str()).expect("others");
    assert_eq!(a.authenticate(here.as_str()).expect("auth"), None);
    assert!(a.authenticate(third.as_str()).expect("auth").is_some());
}

fn invites_through_the_policy_layer(site: &Site) {
    const LIMITS: InviteLimits = InviteLimits {
        max_lifetime: Duration::from_secs(30 * 86_400),
        max_uses: 100,
        per_person: 2,
    };
    let a = site.accounts();
    let ada = a
        .sign_up(&name("ada"), &display("Ada"), &pw("correct horse"), false)
        .expect("sign up");
    let (made, token) = a
        .create_invite(Some(&ada), 1, Duration::from_secs(3_600), LIMITS)
        .expect("invite");
    a.create_invite(Some(&ada), 1, Duration::from_secs(3_600), LIMITS)
        .expect("a second");
    assert!(matches!(
        a.create_invite(Some(&ada), 1, Duration::from_secs(3_600), LIMITS),
        Err(InviteError::TooMany(2))
    ));
    assert_eq!(a.invites_for(&ada).expect("list").len(), 2);
    assert_eq!(a.invite_refusal(token.as_str()).expect("check"), None);
    let bob = site
        .accounts()
        .sign_up_invited(
            &name("bob"),
            &display("Bob"),
            &pw("correct horse"),
            token.as_str(),
        )
        .expect("signed up with it");
    assert_eq!(bob.username, "bob");
    assert!(matches!(
        a.sign_up_invited(
            &name("cy"),
            &display("Cy"),
            &pw("correct horse"),
            token.as_str()
        ),
        Err(AccountError::InviteRefused(InviteRefusal::UsedUp))
    ));
    assert!(!a.revoke_invite(&bob, made.id).expect("not bob's"));
    assert!(a.revoke_invite(&ada, made.id).expect("ada's"));
    assert_eq!(
        a.invite_refusal(token.as_str()).expect("check"),
        Some(InviteRefusal::Unknown)
    );
    assert_eq!(a.purge_expired_invites().expect("purge"), 0);
}

fn cookie_header(set_cookie: &str) -> HeaderMap {
    let pair = set_cookie.split(';').next().expect("name=value");
    let mut h = HeaderMap::new();
    h.insert(header::COOKIE, HeaderValue::from_str(pair).expect("cookie"));
    h
}

fn every_open_of_one_database_signs_device_cookies_alike(site: &Site) {
    let opened = match site {
        // A data directory belongs to one server, which opens its key once at start.
        Site::Sqlite(_) => (0..2)
            .map(|_| Devices::open(&site.database()).expect("open the key"))
            .collect::<Vec<_>>(),
        // Opened at once, as nodes starting together: they must agree on the key.
        Site::Postgres(_) => {
            let start = Arc::new(Barrier::new(4));
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    let database = site.database();
                    let start = Arc::clone(&start);
                    thread::spawn(move || {
                        start.wait();
                        Devices::open(&database).expect("open the key")
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("opener"))
                .collect()
        }
    };
    let later = Devices::open(&site.database()).expect("open again");
    for (n, devices) in opened.iter().enumerate() {
        let set = devices.set_cookie("ada", None, false).expect("cookie");
        let id = devices.of_request(&cookie_header(&set), false, "ada");
        assert!(id.is_some());
        for other in opened.iter().chain([&later]) {
            assert_eq!(
                other.of_request(&cookie_header(&set), false, "ada"),
                id,
                "made by opener {n}"
            );
        }
    }
    // Another database's key does not pass.
    let set = later.set_cookie("ada", None, false).expect("cookie");
    let stranger = tempfile::tempdir().expect("tempdir");
    let stranger =
        Devices::open(&Database::sqlite(stranger.path(), Durability::Process)).expect("open");
    assert_eq!(
        stranger.of_request(&cookie_header(&set), false, "ada"),
        None
    );
}

// An administrator's tools.

fn administrators_list_disable_grant_and_audit(site: &Site) {
    let a = site.accounts();
    let ada = a
        .sign_up(
            &name("ada"),
            &display("Ada Lovelace"),
            &pw("correct horse"),
            true,
        )
        .expect("ada");
    a.sign_up(&name("bob"), &display("Bobby"), &pw("correct horse"), false)
        .expect("bob");
    let (_, bobs) = a.sign_in(&name("bob"), &pw("correct horse")).expect("in");
    let s = site.store();
    let all = s.users("", 10).expect("list");
    let names: Vec<&str> = all.iter().map(|u| u.username.as_str()).collect();
    assert_eq!(names, ["ada", "bob"]);
    assert!(all[0].admin && !all[1].admin);
    assert!(all[1].last_seen.is_some(), "bob signed in");
    assert_eq!(all[0].last_seen, None, "ada never did");
    // By username or display name, any case; `%` is no wildcard.
    assert_eq!(s.users("BOB", 10).expect("q")[0].username, "bob");
    assert_eq!(s.users("lovelace", 10).expect("q")[0].username, "ada");
    assert!(s.users("%", 10).expect("q").is_empty());
    assert_eq!(s.users("", 1).expect("q").len(), 1);

    // Another handle disables Bob: his session is over for everyone at once.
    let other = site.store();
    assert!(other.set_disabled("bob", true).expect("disable").is_some());
    assert_eq!(other.set_disabled("nobody", true).expect("disable"), None);
    assert_eq!(a.authenticate(bobs.as_str()).expect("auth"), None);
    assert!(matches!(
        a.sign_in(&name("bob"), &pw("correct horse")),
        Err(AccountError::Disabled)
    ));
    // A wrong password says only that, disabled or not.
    assert!(matches!(
        a.sign_in(&name("bob"), &pw("wrong horse")),
        Err(AccountError::InvalidCredentials)
    ));
    assert!(s.users("bob", 10).expect("q")[0].disabled);
    assert!(other.set_disabled("bob", false).expect("enable").is_some());
    let (_, again) = a
        .sign_in(&name("bob"), &pw("correct horse"))
        .expect("in again");
    assert!(a.authenticate(again.as_str()).expect("auth").is_some());

    assert!(s.set_admin("bob", true).expect("grant"));
    assert!(s.set_admin("ada", false).expect("revoke"));
    assert!(!s.set_admin("nobody", true).expect("grant"));
    let roles: Vec<bool> = s
        .users("", 10)
        .expect("list")
        .iter()
        .map(|u| u.admin)
        .collect();
    assert_eq!(roles, [false, true]);
    assert_eq!(
        a.authenticate(again.as_str())
            .expect("auth")
            .map(|u| u.is_admin),
        Some(true)
    );

    for (n, action) in ["disable", "enable", "grant"].iter().enumerate() {
        s.record(NewAuditEntry {
            at: 100 + n as i64,
            actor: if n == 0 { "cli" } else { "@ada" },
            action,
            target: "bob",
            detail: "",
        })
        .expect("record");
    }
    let log = other.audit(2).expect("audit");
    let seen: Vec<(&str, &str, i64)> = log
        .iter()
        .map(|e| (e.actor.as_str(), e.action.as_str(), e.at))
        .collect();
    assert_eq!(seen, [("@ada", "grant", 102), ("@ada", "enable", 101)]);
    assert!(log[0].id > log[1].id);
    let _ = ada;
}

fn a_reset_link_works_once_even_when_raced(site: &Site) {
    let a = site.accounts();
    let carol = a
        .sign_up(
            &name("carol"),
            &display("Carol"),
            &pw("correct horse"),
            false,
        )
        .expect("carol");
    let (_, session) = a.sign_in(&name("carol"), &pw("correct horse")).expect("in");
    let s = site.store();
    s.create_reset(carol.id, b"first-link", 10, 1_000)
        .expect("first");
    // A second link replaces the first.
    s.create_reset(carol.id, b"second-link", 20, 1_000)
        .expect("second");
    assert_eq!(s.reset_user(b"first-link", 30).expect("read"), None);
    assert_eq!(
        s.reset_user(b"second-link", 30).expect("read").as_deref(),
        Some("carol")
    );
    // Expired: nothing happens.
    assert_eq!(
        s.use_reset(b"second-link", "$argon2id$x", 1_000)
            .expect("use"),
        None
    );
    assert!(a.authenticate(session.as_str()).expect("auth").is_some());

    s.create_reset(carol.id, b"third-link", 40, 1_000)
        .expect("third");
    let used = race(site, 4, |_, store| {
        store
            .use_reset(b"third-link", "$argon2id$new", 50)
            .expect("use")
    });
    assert_eq!(
        used.iter()
            .filter(|u| u.as_deref() == Some("carol"))
            .count(),
        1,
        "{used:?}"
    );
    assert_eq!(used.iter().filter(|u| u.is_none()).count(), 3);
    assert_eq!(a.authenticate(session.as_str()).expect("auth"), None);
    assert_eq!(
        s.user_by_username("carol")
            .expect("read")
            .expect("carol")
            .password_hash,
        "$argon2id$new"
    );
}

fn rooms_and_statistics_count_what_is_stored(site: &Site) {
    use confab_server::store::{NewMessage, Write};
    use confab_shared::RoomKind;

    let a = site.accounts();
    a.sign_up(&name("ada"), &display("Ada"), &pw("correct horse"), false)
        .expect("ada");
    let mut writer = site.database().writer().expect("writer");
    let said = |body: &str, client_id: &str, ts: i64| {
        Write::Append(NewMessage {
            room: "plans".into(),
            from: "ada".into(),
            name: "Ada".into(),
            body: body.into(),
            client_id: client_id.into(),
            ts,
            reply_to: None,
            mentions: Vec::new(),
            files: Vec::new(),
        })
    };
    writer
        .apply(&[
            Write::CreateRoom {
                room: "plans".into(),
                ts: 1,
                kind: RoomKind::Private,
                title: "Plans".into(),
                owner: Some("ada".into()),
            },
            Write::AddMember {
                room: "plans".into(),
                name: "ada".into(),
            },
            said("one", "c1", 5_000),
            said("two", "c2", 6_000),
        ])
        .expect("write");
    let s = site.store();
    let rooms = s.rooms().expect("rooms");
    let plans = rooms.iter().find(|r| r.name == "plans").expect("plans");
    assert_eq!(plans.kind, "private");
    assert_eq!(plans.title.as_deref(), Some("Plans"));
    assert_eq!((plans.members, plans.messages), (1, 2));
    assert_eq!(plans.last_activity, Some(6_000));
    let general = rooms.iter().find(|r| r.name == "general").expect("general");
    assert_eq!((general.messages, general.last_activity), (0, None));
    let stats = s.stats().expect("stats");
    assert_eq!((stats.users, stats.disabled_users), (1, 0));
    assert_eq!((stats.rooms, stats.messages, stats.files), (2, 2, 0));
    assert!(stats.database_bytes > 0);
}

// The real admin commands, against PostgreSQL.

#[test]
fn the_admin_commands_work_on_postgres() {
    let pg = Postgres::start().expect("start PostgreSQL");
    // No data directory is used: give one that cannot be made, to be sure.
    let nowhere = "/dev/null/confab-data";
    let mut child = Command::new(env!("CARGO_BIN_EXE_confab-server"))
        .args(["admin", "create", "Root", "--display-name", "The Admin"])
        .args(["--database-url", &pg.url(), "--data-dir", nowhere])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run admin create");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .expect("password on stdin");
    let done = child.wait_with_output().expect("admin create finishes");
    let stdout = String::from_utf8_lossy(&done.stdout);
    assert!(
        done.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert!(
        stdout.contains(&format!("in postgres://127.0.0.1:{}/postgres", pg.port())),
        "{stdout}"
    );
    assert!(!stdout.contains("nowhere"), "{stdout}");

    let database = Database::postgres(&pg.url(), 2).expect("open PostgreSQL");
    let root = accounts::open(&database)
        .expect("store")
        .user_by_username("root")
        .expect("read")
        .expect("the account is in PostgreSQL");
    assert!(root.is_admin);
    assert_eq!(root.display_name, "The Admin");
    let accounts = Accounts::open(&database).expect("accounts");
    accounts
        .sign_in(&name("root"), &pw(PASSWORD))
        .expect("signs in with the password given on stdin");

    let out = Command::new(env!("CARGO_BIN_EXE_confab-server"))
        .args(["admin", "invite", "--uses", "2", "--expires-in", "1h"])
        .args(["--database-url", &pg.url(), "--data-dir", nowhere])
        .output()
        .expect("run admin invite");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = stdout
        .lines()
        .find_map(|l| l.strip_prefix("/?invite="))
        .expect("a line with the link's path");
    assert_eq!(accounts.invite_refusal(token).expect("check"), None);
    accounts
        .sign_up_invited(&name("ada"), &display("Ada"), &pw(PASSWORD), token)
        .expect("the invite signs up");
}

#[tokio::test]
async fn a_session_opened_on_one_node_works_on_another() {
    let pg = Postgres::start().expect("start PostgreSQL");
    let node = |url: String| {
        start_with(move |c| {
            c.allow_guests = false;
            c.database_url = Some(url);
        })
    };
    let a = node(pg.url()).await;
    let b = node(pg.url()).await;
    let me = |addr, cookie: String| async move {
        http_request(addr, "GET", "/api/me", &[("cookie", &cookie)], None)
            .await
            .status
    };

    let cookie = common::sign_up(a.addr, "ada").await;
    assert_eq!(
        me(b.addr, cookie.clone()).await,
        200,
        "signed up on A, known on B"
    );
    let on_b = common::sign_in(b.addr, "ADA", PASSWORD).await;
    assert_eq!(on_b.status, 200, "{on_b:?}");
    let on_b = on_b.session_cookie().expect("cookie");
    let out = http_post(
        b.addr,
        "/api/signout",
        &[("cookie", &cookie)],
        &serde_json::json!({}),
    )
    .await;
    assert_eq!(out.status, 204);
    assert_eq!(me(a.addr, cookie).await, 401, "signed out on B, gone on A");
    assert_eq!(me(a.addr, on_b).await, 200, "the other session stays");
    for server in [a, b] {
        server
            .shutdown()
            .await
            .expect("server task")
            .expect("clean shutdown");
    }
}
