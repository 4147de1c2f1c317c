use confab_shared::{ChatMessage, Person, RoomInfo};

use super::*;

fn ada() -> Person {
    Person {
        user: "ada".into(),
        name: "Ada".into(),
        guest: false,
    }
}

fn room(name: &str, member: bool) -> RoomInfo {
    RoomInfo {
        name: name.into(),
        title: name.into(),
        kind: RoomKind::Public,
        owner: None,
        online: 1,
        peer: None,
        member,
        muted: false,
    }
}

fn welcome(rooms: Vec<RoomInfo>) -> ServerMsg {
    ServerMsg::Welcome {
        protocol: PROTOCOL_VERSION,
        epoch: "e1".into(),
        you: ada(),
        rooms,
    }
}

fn msg(room: &str, seq: u64) -> ChatMessage {
    ChatMessage {
        id: seq,
        room: room.into(),
        seq,
        from: "grace".into(),
        name: "Grace".into(),
        body: format!("m{seq}"),
        ts: 0,
        ..ChatMessage::default()
    }
}

fn joined(room: &str, history: Vec<ChatMessage>) -> ServerMsg {
    ServerMsg::Joined {
        room: room.into(),
        members: vec![],
        member_count: 0,
        online: vec![],
        through: history.last().map_or(0, |m| m.seq),
        history,
        read: 0,
        unread: 0,
        mentions: 0,
    }
}

fn join(room: &str, after: Option<u64>) -> ClientMsg {
    ClientMsg::Join {
        room: room.into(),
        after,
    }
}

fn pending(client_id: &str, room: &str) -> Pending {
    Pending {
        client_id: client_id.into(),
        room: room.into(),
        body: format!("body of {client_id}"),
        failed: None,
        reply_to: None,
        change: None,
        files: Vec::new(),
    }
}

fn send_of(p: &Pending) -> ClientMsg {
    p.to_send()
}

/// Signed in as Ada on a fresh connection, welcomed with `rooms`, and every join answered
/// with an empty `joined`.
fn connected(rooms: Vec<RoomInfo>) -> Resume {
    let mut r = Resume::new(Outbox::default());
    r.start(None, false);
    r.new_connection();
    let effects = r.observe(&welcome(rooms));
    for request in effects.send {
        if let ClientMsg::Join { room, .. } = request {
            r.observe(&joined(&room, vec![]));
        }
    }
    r
}

/// A connection drops and comes back: the joins the welcome calls for.
fn reconnect(r: &mut Resume, rooms: Vec<RoomInfo>) -> Vec<ClientMsg> {
    r.new_connection();
    assert_eq!(
        r.greeting(),
        ClientMsg::Hello {
            protocol: PROTOCOL_VERSION,
            name: None
        }
    );
    r.observe(&welcome(rooms)).send
}

#[test]
fn the_person_follows_their_rooms_the_default_one_and_those_with_unsent_messages() {
    let mut r = Resume::new(Outbox {
        user: Some("ada".into()),
        pending: vec![pending("c1", "design")],
        epoch: None,
    });
    r.start(None, false);
    r.new_connection();
    let effects = r.observe(&welcome(vec![
        room("general", false),
        room("ops", true),
        room("design", false),
        room("random", false),
    ]));
    assert_eq!(
        effects.send,
        [
            join("design", None),
            join("general", None),
            join("ops", None)
        ]
    );
    assert_eq!(
        effects.following,
        Some(["design", "general", "ops"].map(str::to_owned).into())
    );
    // The unsent message goes out once its room is joined, whatever room is on screen.
    let after_join = r.observe(&joined("design", vec![]));
    assert_eq!(after_join.send, [send_of(&pending("c1", "design"))]);
}

#[test]
fn a_reconnect_mid_replay_resumes_after_the_last_page() {
    let mut r = connected(vec![room("ops", true)]);
    r.observe(&ServerMsg::Message(msg("ops", 10)));
    // Cut: on the next connection the replay starts after 10 and sends a first page.
    let joins = reconnect(&mut r, vec![room("ops", true)]);
    assert!(joins.contains(&join("ops", Some(10))), "{joins:?}");
    let page: Vec<ChatMessage> = (11..=510).map(|s| msg("ops", s)).collect();
    let next = r.observe(&ServerMsg::Replay {
        room: "ops".into(),
        messages: page,
        through: 510,
    });
    assert_eq!(next.send, [join("ops", Some(510))]);
    // Cut again before the next page: the next connection resumes after 510, not 10.
    let joins = reconnect(&mut r, vec![room("ops", true)]);
    assert!(joins.contains(&join("ops", Some(510))), "{joins:?}");
}

#[test]
fn a_message_whose_ack_was_lost_is_sent_again_until_acknowledged_once() {
    let mut r = connected(vec![]);
    let p = pending("c1", "general");
    assert_eq!(r.send(p.clone()), Some(send_of(&p)), "joined: out at once");
    // The connection drops before the ack arrives.
    let joins = reconnect(&mut r, vec![]);
    assert_eq!(joins, [join("general", None)]);
    assert_eq!(r.send_due_after_join("general"), [send_of(&p)]);
    let ack = ServerMsg::Ack {
        room: "general".into(),
        client_id: "c1".into(),
        id: 7,
        seq: 3,
        ts: 0,
    };
    assert!(r.observe(&ack).outbox_changed);
    assert!(r.outbox().pending.is_empty());
    // The server answers a repeated send with the same ack: nothing changes twice.
    assert!(!r.observe(&ack).outbox_changed);
    assert!(
        reconnect(&mut r, vec![])
            .iter()
            .all(|m| matches!(m, ClientMsg::Join { .. }))
    );
    assert!(r.send_due_after_join("general").is_empty());
}

#[test]
fn duplicate_and_out_of_order_frames_never_move_the_resume_point_back() {
    let mut r = connected(vec![room("ops", true)]);
    for seq in [5, 3, 5, 4] {
        r.observe(&ServerMsg::Message(msg("ops", seq)));
    }
    r.observe(&joined("ops", vec![msg("ops", 2)]));
    let joins = reconnect(&mut r, vec![room("ops", true)]);
    assert!(joins.contains(&join("ops", Some(5))), "{joins:?}");
}

#[test]
fn a_room_left_on_another_device_is_not_joined_again() {
    let mut r = connected(vec![room("ops", true)]);
    r.observe(&ServerMsg::Message(msg("ops", 4)));
    // While this tab was away, the person left #ops elsewhere: no longer a member.
    let effects = {
        r.new_connection();
        r.observe(&welcome(vec![room("general", true), room("ops", false)]))
    };
    assert_eq!(effects.send, [join("general", None)]);
    assert_eq!(effects.following, Some(["general".to_owned()].into()));
}

#[test]
fn rooms_joined_elsewhere_or_invited_to_are_joined_here_once() {
    let mut r = connected(vec![]);
    let list = ServerMsg::Rooms {
        rooms: vec![room("general", true), room("ops", true)],
    };
    assert_eq!(r.observe(&list).send, [join("ops", None)]);
    assert!(r.observe(&list).send.is_empty(), "already followed");
}

#[test]
fn a_direct_conversation_we_opened_is_joined_by_the_server_not_by_us() {
    let mut r = connected(vec![]);
    assert_eq!(
        r.open_direct("grace"),
        ClientMsg::OpenDirect {
            user: "grace".into()
        }
    );
    let direct = RoomInfo {
        kind: RoomKind::Direct,
        peer: Some(Person {
            user: "grace".into(),
            name: "Grace".into(),
            guest: false,
        }),
        ..room("_d1", true)
    };
    let effects = r.observe(&ServerMsg::Rooms {
        rooms: vec![direct.clone()],
    });
    assert!(effects.send.is_empty(), "{:?}", effects.send);
    r.observe(&joined("_d1", vec![msg("_d1", 1)]));
    // After a reconnect it is joined like any other room of the person's, from where it was.
    let joins = reconnect(&mut r, vec![direct]);
    assert!(joins.contains(&join("_d1", Some(1))), "{joins:?}");
}

#[test]
fn an_unknown_room_fails_what_waited_for_it() {
    let mut r = connected(vec![]);
    r.send(pending("c1", "gone"));
    let effects = r.observe(&ServerMsg::Error {
        code: ErrorCode::UnknownRoom,
        message: "there is no room #gone".into(),
        room: Some("gone".into()),
        client_id: None,
        retry_after_ms: None,
    });
    assert!(effects.outbox_changed);
    assert_eq!(
        r.outbox().pending[0].failed.as_deref(),
        Some("there is no room #gone")
    );
    // A failed message is not sent again by itself; Retry sends it (once joined).
    assert!(r.resend_due().is_empty());
    assert_eq!(r.retry("c1"), None, "not joined");
    assert_eq!(r.outbox().pending[0].failed, None);
}

#[test]
fn another_persons_unsent_messages_are_dropped_not_sent() {
    let mut r = Resume::new(Outbox {
        user: Some("bob".into()),
        pending: vec![pending("c1", "general")],
        epoch: None,
    });
    r.start(None, false);
    r.new_connection();
    let effects = r.observe(&welcome(vec![]));
    assert!(effects.outbox_changed);
    assert!(r.outbox().pending.is_empty());
    assert_eq!(r.outbox().user.as_deref(), Some("ada"));
}

#[test]
fn a_guest_name_taken_by_our_own_old_connection_is_waited_out_a_few_times() {
    let mut r = Resume::default();
    r.start(Some("Ada".into()), true);
    let waited = (0..10).filter(|_| r.name_probably_held_by_us()).count();
    assert_eq!(waited, MAX_NAME_HELD_RETRIES as usize);
    let mut fresh = Resume::default();
    fresh.start(Some("Ada".into()), false);
    assert!(
        !fresh.name_probably_held_by_us(),
        "a name never ours is someone else's"
    );
}

impl Resume {
    /// What a `joined` for `room` would send now.
    fn send_due_after_join(&mut self, room: &str) -> Vec<ClientMsg> {
        self.observe(&joined(room, vec![])).send
    }
}

#[test]
fn a_room_in_a_delta_that_is_ours_is_joined_and_our_created_room_too() {
    let mut r = connected(vec![]);
    let delta = ServerMsg::RoomsChanged {
        rooms: vec![room("ops", true), room("music", false)],
        removed: vec![],
        created: Some("made".into()),
    };
    assert_eq!(
        r.observe(&delta).send,
        [join("ops", None), join("made", None)]
    );
    assert!(r.observe(&delta).send.is_empty(), "already followed");
}

/// A join the server could not take now (too many history reads waiting) is sent again
/// later, resuming from where the client is; not once the room is joined meanwhile.
#[test]
fn a_join_refused_as_unavailable_is_tried_again_later() {
    let mut r = Resume::default();
    r.start(None, false);
    r.observe(&welcome(vec![room("general", true)]));
    r.observe(&joined("general", vec![msg("general", 1)]));
    r.new_connection();
    r.observe(&welcome(vec![room("general", true)]));
    let refused = ServerMsg::Error {
        code: ErrorCode::Unavailable,
        message: "busy".into(),
        room: Some("general".into()),
        client_id: None,
        retry_after_ms: None,
    };
    let effects = r.observe(&refused);
    assert_eq!(effects.rejoin_later, ["general"]);
    assert_eq!(
        r.rejoin_due(&effects.rejoin_later),
        [ClientMsg::Join {
            room: "general".into(),
            after: Some(1),
        }]
    );
    r.observe(&joined("general", vec![]));
    assert!(r.rejoin_due(&effects.rejoin_later).is_empty());
}

fn welcome_from(epoch: &str, rooms: Vec<RoomInfo>) -> ServerMsg {
    match welcome(rooms) {
        ServerMsg::Welcome {
            protocol,
            you,
            rooms,
            ..
        } => ServerMsg::Welcome {
            protocol,
            epoch: epoch.into(),
            you,
            rooms,
        },
        other => other,
    }
}

/// A `joined` whose log goes on past its last message (changes came after it).
fn joined_through(room: &str, history: Vec<ChatMessage>, through: u64) -> ServerMsg {
    match joined(room, history) {
        ServerMsg::Joined {
            room,
            members,
            member_count,
            online,
            history,
            read,
            unread,
            mentions,
            ..
        } => ServerMsg::Joined {
            room,
            members,
            member_count,
            online,
            history,
            through,
            read,
            unread,
            mentions,
        },
        other => other,
    }
}

fn changed(room: &str, seq: u64, target: u64) -> ServerMsg {
    ServerMsg::Changed(confab_shared::Change {
        room: room.into(),
        seq,
        target,
        by: "grace".into(),
        ts: 0,
        change: confab_shared::ChangeKind::Deleted,
    })
}

fn edit(client_id: &str, room: &str, seq: u64) -> Pending {
    Pending {
        body: String::new(),
        change: Some(PendingChange::Edit {
            seq,
            body: format!("edit by {client_id}"),
        }),
        ..pending(client_id, room)
    }
}

/// Since protocol 6 a room's `seq` numbers changes too: a replay page may be all
/// changes to messages the client does not hold (so no message at all), and the log
/// may end in a change rather than a message.
#[test]
fn the_resume_point_is_the_furthest_point_of_the_log_seen() {
    let mut r = connected(vec![room("ops", true)]);
    r.observe(&joined_through("ops", vec![msg("ops", 5)], 7));
    let rejoin = |r: &mut Resume| reconnect(r, vec![room("ops", true)]);
    assert!(
        rejoin(&mut r).contains(&join("ops", Some(7))),
        "joined.through"
    );
    r.observe(&changed("ops", 9, 5));
    assert!(
        rejoin(&mut r).contains(&join("ops", Some(9))),
        "a live change"
    );
    let empty_page = ServerMsg::Replay {
        room: "ops".into(),
        messages: vec![],
        through: 600,
    };
    assert_eq!(
        r.observe(&empty_page).send,
        [join("ops", Some(600))],
        "the next page starts after this one's through"
    );
    r.observe(&ServerMsg::Message(msg("ops", 601)));
    r.observe(&changed("ops", 602, 1));
    r.observe(&joined_through("ops", vec![], 602));
    assert!(rejoin(&mut r).contains(&join("ops", Some(602))));
}

#[test]
fn a_change_waits_in_the_outbox_and_goes_again_after_a_reconnect_until_acknowledged() {
    let mut r = connected(vec![]);
    r.new_connection();
    let e = edit("e1", "general", 3);
    assert_eq!(r.send(e.clone()), None, "not joined on this connection yet");
    r.observe(&welcome(vec![]));
    let sent = r.send_due_after_join("general");
    assert_eq!(
        sent,
        [ClientMsg::Edit {
            room: "general".into(),
            seq: 3,
            body: "edit by e1".into(),
            client_id: "e1".into(),
        }]
    );
    // Cut before the ack: the same change, the same client id, once joined again.
    reconnect(&mut r, vec![]);
    assert_eq!(r.send_due_after_join("general"), sent);
    let ack = ServerMsg::Ack {
        room: "general".into(),
        client_id: "e1".into(),
        id: 0,
        seq: 12,
        ts: 0,
    };
    assert!(r.observe(&ack).outbox_changed);
    assert!(r.outbox().pending.is_empty());
    reconnect(&mut r, vec![]);
    assert!(r.send_due_after_join("general").is_empty());
}

#[test]
fn a_refused_change_is_dropped_unless_the_refusal_is_about_now() {
    let mut r = connected(vec![]);
    for p in [
        edit("forbidden", "general", 1),
        edit("limited", "general", 2),
        edit("busy", "general", 3),
    ] {
        r.send(p);
    }
    let refuse = |r: &mut Resume, code, client_id: &str| {
        r.observe(&ServerMsg::Error {
            code,
            message: "no".into(),
            room: Some("general".into()),
            client_id: Some(client_id.into()),
            retry_after_ms: Some(100),
        })
    };
    assert!(refuse(&mut r, ErrorCode::Forbidden, "forbidden").outbox_changed);
    let limited = refuse(&mut r, ErrorCode::RateLimited, "limited");
    assert!(!limited.outbox_changed && !limited.resend_soon);
    assert!(refuse(&mut r, ErrorCode::Unavailable, "busy").resend_soon);
    let left: Vec<&str> = r
        .outbox()
        .pending
        .iter()
        .map(|p| p.client_id.as_str())
        .collect();
    assert_eq!(left, ["limited", "busy"]);
    assert_eq!(r.resend_due().len(), 2, "both go again, unmarked");
}

/// The server's data was replaced: its `seq`s name other messages, in this page's
/// memory and in an outbox saved by an earlier one.
#[test]
fn a_welcome_from_another_store_rejoins_afresh_and_keeps_only_plain_messages() {
    let mut r = Resume::new(Outbox {
        user: Some("ada".into()),
        pending: vec![
            Pending {
                reply_to: Some(4),
                ..pending("reply", "ops")
            },
            edit("edit", "ops", 4),
        ],
        epoch: Some("old".into()),
    });
    r.start(None, false);
    r.new_connection();
    let effects = r.observe(&welcome_from("old", vec![room("ops", true)]));
    assert!(!effects.outbox_changed, "the same store");
    r.observe(&joined_through("ops", vec![], 9));
    r.new_connection();
    assert!(
        r.observe(&welcome_from("old", vec![room("ops", true)]))
            .send
            .contains(&join("ops", Some(9)))
    );
    r.new_connection();
    let effects = r.observe(&welcome_from("new", vec![room("ops", true)]));
    assert!(effects.outbox_changed);
    assert_eq!(
        effects.send,
        [join("general", None), join("ops", None)],
        "no cursor survives"
    );
    assert_eq!(r.outbox().epoch.as_deref(), Some("new"));
    assert_eq!(
        r.outbox().pending,
        [pending("reply", "ops")],
        "the message stays, without what it answered; the edit goes"
    );
}

#[test]
fn an_outbox_saved_before_changes_existed_still_loads() {
    let saved = r#"{"user":"ada","pending":[{"client_id":"c1","room":"general","body":"hi","failed":null}]}"#;
    let outbox: Outbox = serde_json::from_str(saved).expect("loads");
    assert_eq!(
        outbox,
        Outbox {
            user: Some("ada".into()),
            pending: vec![Pending {
                body: "hi".into(),
                ..pending("c1", "general")
            }],
            epoch: None,
        }
    );
    let round_trip: Outbox =
        serde_json::from_str(&serde_json::to_string(&edit_outbox()).expect("encodes"))
            .expect("decodes");
    assert_eq!(round_trip, edit_outbox());
}

fn edit_outbox() -> Outbox {
    Outbox {
        user: Some("ada".into()),
        pending: vec![edit("e1", "general", 3)],
        epoch: Some("e".into()),
    }
}
