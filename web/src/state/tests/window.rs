//! Reading far back (`state/window.rs`): the messages around one `seq` join the log when
//! they touch it, and otherwise show as a window of their own while the log goes on
//! underneath.

use confab_shared::{Change, ChangeKind, ClientMsg};

use super::*;

fn msgs(seqs: std::ops::RangeInclusive<u64>, from: &str) -> Vec<ChatMessage> {
    seqs.map(|seq| msg(seq, "general", from)).collect()
}

fn around(seq: u64, messages: Vec<ChatMessage>, older: bool, newer: bool) -> ServerMsg {
    ServerMsg::Around {
        room: "general".into(),
        seq,
        messages,
        older,
        newer,
    }
}

fn seqs(messages: &Messages) -> Vec<u64> {
    messages.iter().map(|m| m.seq).collect()
}

fn view(s: &State) -> &RoomView {
    &s.joined["general"]
}

/// Ada in #general holding its newest messages, 901..=1000 (by Bob), read up to 1000.
fn at_the_live_end() -> State {
    let mut s = signed_in(vec![room("general", "general", RoomKind::Public)]);
    server(
        &mut s,
        ServerMsg::Joined {
            room: "general".into(),
            members: vec![ada()],
            member_count: 1,
            online: vec!["ada".into()],
            history: msgs(901..=1000, "bob"),
            through: 1000,
            read: 1000,
            unread: 0,
            mentions: 0,
        },
    );
    s
}

/// Asks for the messages around `seq` and receives these.
fn fetched(s: &mut State, seq: u64, messages: Vec<ChatMessage>, older: bool, newer: bool) {
    s.apply(Action::Window(WindowAction::Fetching {
        room: "general".into(),
        seq,
    }));
    server(s, around(seq, messages, older, newer));
}

/// The same, then the messages around 30 (10..=50) opened.
fn far_back() -> State {
    let mut s = at_the_live_end();
    fetched(&mut s, 30, msgs(10..=50, "bob"), true, true);
    s
}

#[test]
fn messages_far_back_show_as_a_window_and_the_log_stays_underneath() {
    let s = far_back();
    let v = view(&s);
    assert!(v.has_newer(), "detached");
    assert_eq!(seqs(v.shown()), (10..=50).collect::<Vec<_>>());
    assert_eq!(seqs(&v.messages), (901..=1000).collect::<Vec<_>>());
    assert_eq!(v.far.around, None, "answered");
    assert!(v.shown_has_older());
    assert_eq!(v.jump_step(30), JumpStep::Show);
    assert_eq!(v.jump_step(950), JumpStep::Latest);
    assert_eq!(
        s.joined["general"].message(30).map(|m| m.seq),
        Some(30),
        "loaded"
    );
}

#[test]
fn messages_around_that_overlap_the_log_join_it() {
    let mut s = at_the_live_end();
    server(&mut s, around(880, msgs(850..=930, "bob"), true, true));
    let v = view(&s);
    assert!(!v.has_newer());
    assert_eq!(seqs(&v.messages), (850..=1000).collect::<Vec<_>>());
    assert!(v.has_older);
    // Reaching the room's first message: nothing older.
    server(&mut s, around(820, msgs(1..=849, "bob"), false, true));
    assert!(!view(&s).has_newer(), "touches the log at 849/850");
    assert!(!view(&s).has_older);
    assert_eq!(view(&s).messages.len(), 1000);
}

#[test]
fn messages_around_that_reach_the_live_end_join_the_log() {
    let mut s = at_the_live_end();
    // A log that went on after the answer was read.
    server(&mut s, ServerMsg::Message(msg(1001, "general", "bob")));
    server(&mut s, around(960, msgs(910..=1000, "bob"), true, false));
    let v = view(&s);
    assert!(!v.has_newer());
    assert_eq!(seqs(&v.messages), (901..=1001).collect::<Vec<_>>());
}

#[test]
fn live_messages_while_detached_go_to_the_log_not_the_window_and_count() {
    let mut s = far_back();
    server(&mut s, ServerMsg::Message(msg(1001, "general", "bob")));
    server(&mut s, ServerMsg::Message(msg(1002, "general", "ada")));
    let v = view(&s);
    assert_eq!(seqs(v.shown()), (10..=50).collect::<Vec<_>>(), "no hole");
    assert_eq!(v.messages.last().map(|m| m.seq), Some(1002));
    assert_eq!(
        v.new_since_detached("ada"),
        1,
        "Bob's; Ada's own is no news"
    );
    // The unread count is the log's, as if nothing were detached.
    assert_eq!(s.unread("general").messages, 1);
    // Reading the window's end is not reading the room's.
    assert_eq!(s.mark_target(0), None);
}

#[test]
fn the_read_marker_and_the_counts_of_a_rejoin_ignore_the_window() {
    let mut s = far_back();
    server(&mut s, ServerMsg::Message(msg(1001, "general", "bob")));
    // A reconnect: the resume brings the new message again, and one older message
    // changed meanwhile, which is in the window.
    let mut edited = msg(20, "general", "bob");
    edited.body = "new text".into();
    edited.rev = 1003;
    server(
        &mut s,
        ServerMsg::Joined {
            room: "general".into(),
            members: vec![ada()],
            member_count: 1,
            online: vec![],
            history: vec![
                edited,
                msg(1001, "general", "bob"),
                msg(1002, "general", "bob"),
            ],
            through: 1003,
            read: 1000,
            unread: 2,
            mentions: 0,
        },
    );
    let v = view(&s);
    assert_eq!(v.message(20).map(|m| m.body.as_str()), Some("new text"));
    assert_eq!(seqs(v.shown()), (10..=50).collect::<Vec<_>>());
    assert_eq!(seqs(&v.messages), (901..=1002).collect::<Vec<_>>());
    assert_eq!(s.unread("general").messages, 2);
}

#[test]
fn scrolling_the_window_down_grows_it_until_it_meets_the_log() {
    let mut s = far_back();
    assert!(view(&s).can_load_newer());
    s.apply(Action::Window(WindowAction::Fetching {
        room: "general".into(),
        seq: 50,
    }));
    assert!(!view(&s).can_load_newer(), "one request at a time");
    server(&mut s, around(50, msgs(1..=100, "bob"), false, true));
    let v = view(&s);
    assert!(v.has_newer());
    assert_eq!(seqs(v.shown()), (1..=100).collect::<Vec<_>>());
    assert!(!v.shown_has_older(), "the room's first message is in it");
    let returns = v.far.returns;
    // Messages touching neither (101..=649 lie between): a new window replaces it, and
    // what arrived since the first detaching still counts from then.
    fetched(&mut s, 700, msgs(650..=750, "bob"), true, true);
    assert!(view(&s).has_newer());
    assert_eq!(seqs(view(&s).shown()), (650..=750).collect::<Vec<_>>());
    assert_eq!(view(&s).far.window.as_ref().map(|w| w.since), Some(1000));
    // Its next page ends just before the log's first message: attached, in place.
    server(&mut s, around(750, msgs(700..=900, "bob"), true, true));
    let v = view(&s);
    assert!(!v.has_newer());
    assert_eq!(seqs(&v.messages), (650..=1000).collect::<Vec<_>>());
    assert!(v.has_older);
    assert_eq!(v.far.returns, returns, "the reader keeps their place");
}

#[test]
fn jump_to_latest_drops_the_window() {
    let mut s = far_back();
    let returns = view(&s).far.returns;
    s.apply(Action::Window(WindowAction::Latest {
        room: "general".into(),
    }));
    let v = view(&s);
    assert!(!v.has_newer());
    assert_eq!(seqs(v.shown()), (901..=1000).collect::<Vec<_>>());
    assert_eq!(v.far.returns, returns + 1, "the list goes to its end");
    assert_eq!(v.jump_step(30), JumpStep::Fetch, "far back again");
}

#[test]
fn an_answer_coming_after_jump_to_latest_opens_no_window() {
    let mut s = far_back();
    s.apply(Action::Window(WindowAction::Fetching {
        room: "general".into(),
        seq: 50,
    }));
    s.apply(Action::Window(WindowAction::Latest {
        room: "general".into(),
    }));
    server(&mut s, around(50, msgs(1..=100, "bob"), false, true));
    assert!(!view(&s).has_newer());
    assert_eq!(seqs(view(&s).shown()), (901..=1000).collect::<Vec<_>>());
    // One that overlaps the newest messages still joins them.
    server(&mut s, around(880, msgs(850..=930, "bob"), true, true));
    assert_eq!(view(&s).messages.len(), 151);
}

/// Something written to #general: a message, or a change to one.
fn written(client_id: &str, change: Option<PendingChange>) -> Pending {
    Pending {
        client_id: client_id.into(),
        room: "general".into(),
        body: if change.is_none() { "hi" } else { "" }.into(),
        failed: None,
        reply_to: None,
        change,
        files: Vec::new(),
    }
}

#[test]
fn writing_a_message_while_detached_goes_back_to_the_newest() {
    let mut s = far_back();
    s.apply(Action::Outbox(vec![written("c1", None)]));
    assert!(!view(&s).has_newer());
    // A change (a reaction in the window) does not.
    let mut s = far_back();
    let react = PendingChange::React {
        seq: 20,
        emoji: "\u{1F44D}".into(),
    };
    s.apply(Action::Outbox(vec![written("c2", Some(react))]));
    assert!(view(&s).has_newer());
}

#[test]
fn leaving_the_room_drops_its_window() {
    let mut s = far_back();
    server(&mut s, joined("ops", vec![]));
    s.apply(Action::Switch("ops".into()));
    assert!(!view(&s).has_newer());
}

#[test]
fn changes_apply_in_the_window_and_wait_for_messages_not_loaded() {
    let mut s = far_back();
    let change = |seq, target| {
        ServerMsg::Changed(Change {
            room: "general".into(),
            seq,
            target,
            by: "bob".into(),
            ts: 9,
            change: ChangeKind::Edited {
                body: format!("edit {seq}"),
            },
        })
    };
    server(&mut s, change(1001, 20));
    server(&mut s, change(1002, 950));
    server(&mut s, change(1003, 5));
    let body = |s: &State, seq| view(s).message(seq).map(|m| m.body.clone());
    assert_eq!(body(&s, 20).as_deref(), Some("edit 1001"));
    assert_eq!(body(&s, 950).as_deref(), Some("edit 1002"));
    assert_eq!(view(&s).orphans.len(), 1);
    // Scrolling the window up brings 5, read before the change.
    s.apply(Action::LoadingOlder("general".into()));
    assert!(view(&s).shown_loading_older());
    assert!(
        !view(&s).loading_older,
        "the window's request, not the log's"
    );
    server(
        &mut s,
        ServerMsg::History {
            room: "general".into(),
            messages: msgs(1..=9, "bob"),
            more: false,
        },
    );
    let v = view(&s);
    assert_eq!(seqs(v.shown()), (1..=50).collect::<Vec<_>>());
    assert!(!v.shown_has_older() && !v.shown_loading_older());
    assert!(v.has_older, "the log's own flag is untouched");
    assert_eq!(body(&s, 5).as_deref(), Some("edit 1003"));
    assert!(view(&s).orphans.is_empty());
}

#[test]
fn a_page_of_the_log_asked_before_detaching_still_goes_to_the_log() {
    let mut s = at_the_live_end();
    s.apply(Action::LoadingOlder("general".into()));
    fetched(&mut s, 30, msgs(10..=50, "bob"), true, true);
    server(
        &mut s,
        ServerMsg::History {
            room: "general".into(),
            messages: msgs(801..=900, "bob"),
            more: true,
        },
    );
    let v = view(&s);
    assert_eq!(seqs(&v.messages), (801..=1000).collect::<Vec<_>>());
    assert_eq!(seqs(v.shown()), (10..=50).collect::<Vec<_>>());
    assert!(!v.loading_older);
}

#[test]
fn a_jump_asks_for_what_is_not_loaded_and_knows_what_does_not_exist() {
    let s = at_the_live_end();
    let v = view(&s);
    assert_eq!(v.jump_step(950), JumpStep::Show);
    assert_eq!(v.jump_step(30), JumpStep::Fetch);
    assert_eq!(v.jump_step(5_000), JumpStep::Missing, "after the newest");
    let s = far_back();
    let v = view(&s);
    assert_eq!(v.jump_step(500), JumpStep::Fetch, "between window and log");
    assert_eq!(v.jump_step(5), JumpStep::Fetch, "before the window");
    let mut gappy = far_back();
    // A seq in the window that is no message (a change took it).
    let view_mut = gappy.view_mut("general").expect("joined");
    if let Some(window) = &mut view_mut.far.window {
        Rc::make_mut(&mut window.messages).retain(|m| m.seq != 25);
    }
    assert_eq!(view(&gappy).jump_step(25), JumpStep::Missing);
    gappy.apply(Action::Window(WindowAction::Fetching {
        room: "general".into(),
        seq: 500,
    }));
    assert_eq!(view(&gappy).jump_step(500), JumpStep::Wait);
}

#[test]
fn a_refused_fetch_ends_the_jump_with_why_and_a_dropped_connection_ends_the_wait() {
    let mut s = at_the_live_end();
    s.apply(Action::JumpTo {
        room: "general".into(),
        seq: 30,
    });
    s.apply(Action::Window(WindowAction::Fetching {
        room: "general".into(),
        seq: 30,
    }));
    server(
        &mut s,
        error(
            ErrorCode::UnknownMessage,
            "no such message",
            Some("general"),
        ),
    );
    assert_eq!(s.jump, None);
    assert_eq!(s.notice.as_deref(), Some("no such message"));
    assert_eq!(view(&s).far.around, None);

    s.apply(Action::JumpTo {
        room: "general".into(),
        seq: 30,
    });
    s.apply(Action::Window(WindowAction::Fetching {
        room: "general".into(),
        seq: 30,
    }));
    s.apply(Action::Conn(Conn::Reconnecting { retry_in_ms: 500 }));
    assert_eq!(
        s.jump, None,
        "asked again before the rejoin, it would be refused"
    );
    assert_eq!(view(&s).far.around, None);
}

#[test]
fn an_answer_for_an_older_request_does_not_end_the_wait_for_the_newer() {
    let mut s = at_the_live_end();
    for seq in [30, 400] {
        s.apply(Action::Window(WindowAction::Fetching {
            room: "general".into(),
            seq,
        }));
    }
    server(&mut s, around(30, msgs(10..=50, "bob"), true, true));
    assert_eq!(view(&s).far.around, Some(400));
    assert!(!view(&s).has_newer(), "a place the reader left behind");
    server(&mut s, around(400, msgs(350..=450, "bob"), true, true));
    assert_eq!(seqs(view(&s).shown()), (350..=450).collect::<Vec<_>>());
    assert_eq!(view(&s).far.around, None);
}

/// The resume cursor comes from the log's frames only: a window of old messages, and
/// changes to them, never take it back.
#[test]
fn the_resume_point_ignores_windows_far_back() {
    use crate::resume::{Outbox, Resume};
    let mut r = Resume::new(Outbox::default());
    r.start(None, false);
    r.new_connection();
    r.observe(&ServerMsg::Welcome {
        protocol: confab_shared::PROTOCOL_VERSION,
        epoch: "e1".into(),
        you: ada(),
        rooms: vec![],
    });
    r.observe(&ServerMsg::Joined {
        room: "general".into(),
        members: vec![],
        member_count: 0,
        online: vec![],
        history: msgs(901..=1000, "bob"),
        through: 1000,
        read: 0,
        unread: 0,
        mentions: 0,
    });
    r.observe(&around(30, msgs(10..=50, "bob"), true, true));
    assert_eq!(
        r.join("general"),
        ClientMsg::Join {
            room: "general".into(),
            after: Some(1000)
        }
    );
}
