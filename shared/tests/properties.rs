//! Property tests of the wire protocol and the validation rules.
//!
//! - Every [`ClientMsg`] and [`ServerMsg`] variant, with arbitrary field values, survives
//!   encode → decode unchanged (and unknown extra fields do not change what a client
//!   message decodes to).
//! - [`ClientMsg::decode`] never panics, whatever the text, and classifies every failure
//!   the way `docs/PROTOCOL.md` says.
//! - `DisplayName`, `RoomName`, `Body` and `ClientId` accept exactly what their documented
//!   rules say, return the normalised value, and accept their own output unchanged.
//!
//! The rules are restated here from the documentation on purpose (not by calling the
//! code under test), so a change to either side shows up as a failure.

use std::collections::BTreeSet;

use confab_shared::{
    Attachment, Body, Change, ChangeKind, ChatMessage, ClientId, ClientMsg, DisplayName, ErrorCode,
    ImageSize, Person, PresenceEvent, Quote, Reaction, RoomInfo, RoomKind, RoomName, SearchHit,
    ServerMsg, ValidationError, has_invisible_chars, limits,
};
use proptest::{
    collection::vec, option, prelude::*, sample::select, strategy::ValueTree,
    test_runner::TestRunner,
};

// ---------------------------------------------------------------------------------------
// Strategies

/// Any text, with a bias towards the characters validation cares about: whitespace,
/// control characters, the room and client-id alphabets, quotes and non-ASCII.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-z0-9_-]{0,45}",
        "[A-Za-z0-9_ -]{0,70}",
        "[\\s\\x00-\\x1f\\x7f\\u{85}\\u{a0}\\u{200b}\\u{2028}\"\\\\<>]{0,8}",
        "[Ad\\u{200b}-\\u{200f}\\u{202a}-\\u{202e}\\u{2066}-\\u{2069}\\u{feff}\\u{1F469}\\u{1F4BB} ]{1,12}",
        "\\s{0,3}[^\\x00-\\x1f]{0,40}\\s{0,3}",
        "[a\\u{e9}\\u{1F600}\\t\\n ]{0,40}",
    ]
}

fn person() -> impl Strategy<Value = Person> {
    (text(), text(), any::<bool>()).prop_map(|(user, name, guest)| Person { user, name, guest })
}

fn room_info() -> impl Strategy<Value = RoomInfo> {
    (
        text(),
        text(),
        select(vec![RoomKind::Public, RoomKind::Private, RoomKind::Direct]),
        option::of(text()),
        any::<u32>(),
        option::of(person()),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(name, title, kind, owner, online, peer, member, muted)| RoomInfo {
                name,
                title,
                kind,
                owner,
                online,
                peer,
                member,
                muted,
            },
        )
}

fn chat_message() -> impl Strategy<Value = ChatMessage> {
    (
        any::<u64>(),
        text(),
        any::<u64>(),
        text(),
        text(),
        text(),
        any::<i64>(),
        (
            option::of(quote()),
            option::of(any::<i64>()),
            any::<bool>(),
            vec(reaction(), 0..3),
            any::<u64>(),
            vec(attachment(), 0..2),
        ),
    )
        .prop_map(
            |(
                id,
                room,
                seq,
                from,
                name,
                body,
                ts,
                (reply_to, edited, deleted, reactions, rev, files),
            )| {
                ChatMessage {
                    id,
                    room,
                    seq,
                    from,
                    name,
                    body,
                    ts,
                    reply_to,
                    edited,
                    deleted,
                    reactions,
                    rev,
                    files,
                }
            },
        )
}

fn attachment() -> impl Strategy<Value = Attachment> {
    (
        text(),
        text(),
        any::<u64>(),
        text(),
        option::of((any::<u32>(), any::<u32>())),
    )
        .prop_map(|(id, name, size, mime, image)| Attachment {
            id,
            name,
            size,
            mime,
            image: image.map(|(width, height)| ImageSize { width, height }),
        })
}

fn search_hit() -> impl Strategy<Value = SearchHit> {
    (chat_message(), vec(any::<[u32; 2]>(), 0..3))
        .prop_map(|(message, marks)| SearchHit { message, marks })
}

fn quote() -> impl Strategy<Value = Quote> {
    (any::<u64>(), text(), text(), text(), any::<bool>()).prop_map(
        |(seq, from, name, excerpt, deleted)| Quote {
            seq,
            from,
            name,
            excerpt,
            deleted,
        },
    )
}

fn reaction() -> impl Strategy<Value = Reaction> {
    (text(), vec(text(), 0..3)).prop_map(|(emoji, users)| Reaction { emoji, users })
}

fn change() -> impl Strategy<Value = Change> {
    let kind = prop_oneof![
        text().prop_map(|body| ChangeKind::Edited { body }),
        Just(ChangeKind::Deleted),
        text().prop_map(|emoji| ChangeKind::Reacted { emoji }),
        text().prop_map(|emoji| ChangeKind::Unreacted { emoji }),
    ];
    (
        text(),
        any::<u64>(),
        any::<u64>(),
        text(),
        any::<i64>(),
        kind,
    )
        .prop_map(|(room, seq, target, by, ts, change)| Change {
            room,
            seq,
            target,
            by,
            ts,
            change,
        })
}

fn error_code() -> impl Strategy<Value = ErrorCode> {
    select(ErrorCode::ALL.to_vec())
}

fn client_msg() -> impl Strategy<Value = ClientMsg> {
    prop_oneof![
        (any::<u32>(), option::of(text()))
            .prop_map(|(protocol, name)| ClientMsg::Hello { protocol, name }),
        Just(ClientMsg::ListRooms),
        (text(), any::<bool>()).prop_map(|(room, private)| ClientMsg::CreateRoom { room, private }),
        (text(), option::of(any::<u64>()))
            .prop_map(|(room, after)| ClientMsg::Join { room, after }),
        text().prop_map(|room| ClientMsg::Leave { room }),
        (
            text(),
            text(),
            text(),
            option::of(any::<u64>()),
            vec(text(), 0..3)
        )
            .prop_map(|(room, body, client_id, reply_to, files)| ClientMsg::Send {
                room,
                body,
                client_id,
                reply_to,
                files,
            }),
        (text(), any::<u64>(), text(), text()).prop_map(|(room, seq, body, client_id)| {
            ClientMsg::Edit {
                room,
                seq,
                body,
                client_id,
            }
        }),
        (text(), any::<u64>(), text()).prop_map(|(room, seq, client_id)| ClientMsg::Delete {
            room,
            seq,
            client_id
        }),
        (text(), any::<u64>(), text(), text()).prop_map(|(room, seq, emoji, client_id)| {
            ClientMsg::React {
                room,
                seq,
                emoji,
                client_id,
            }
        }),
        (text(), any::<u64>(), text(), text()).prop_map(|(room, seq, emoji, client_id)| {
            ClientMsg::Unreact {
                room,
                seq,
                emoji,
                client_id,
            }
        }),
        (text(), any::<u64>()).prop_map(|(room, seq)| ClientMsg::MarkRead { room, seq }),
        (text(), any::<bool>()).prop_map(|(room, muted)| ClientMsg::Mute { room, muted }),
        (text(), any::<u64>(), option::of(any::<u32>())).prop_map(|(room, before, limit)| {
            ClientMsg::FetchHistory {
                room,
                before,
                limit,
            }
        }),
        (text(), any::<u64>()).prop_map(|(room, seq)| ClientMsg::FetchAround { room, seq }),
        (text(), option::of(any::<u64>()))
            .prop_map(|(query, before)| ClientMsg::Search { query, before }),
        text().prop_map(|room| ClientMsg::Typing { room }),
        text().prop_map(|user| ClientMsg::OpenDirect { user }),
        (text(), text()).prop_map(|(room, user)| ClientMsg::Invite { room, user }),
        (text(), text()).prop_map(|(room, user)| ClientMsg::Remove { room, user }),
        (text(), text()).prop_map(|(room, title)| ClientMsg::RenameRoom { room, title }),
        text().prop_map(|room| ClientMsg::DeleteRoom { room }),
        Just(ClientMsg::Ping),
    ]
}

fn server_msg() -> impl Strategy<Value = ServerMsg> {
    let names = || vec(text(), 0..4);
    let people = || vec(person(), 0..4);
    let messages = || vec(chat_message(), 0..3);
    prop_oneof![
        (any::<u32>(), text(), person(), vec(room_info(), 0..4)).prop_map(
            |(protocol, epoch, you, rooms)| ServerMsg::Welcome {
                protocol,
                epoch,
                you,
                rooms,
            }
        ),
        vec(room_info(), 0..4).prop_map(|rooms| ServerMsg::Rooms { rooms }),
        (vec(room_info(), 0..4), names(), option::of(text())).prop_map(
            |(rooms, removed, created)| ServerMsg::RoomsChanged {
                rooms,
                removed,
                created,
            }
        ),
        (
            text(),
            people(),
            any::<u32>(),
            names(),
            messages(),
            (any::<u64>(), any::<u64>(), any::<u32>(), any::<u32>())
        )
            .prop_map(
                |(
                    room,
                    members,
                    member_count,
                    online,
                    history,
                    (through, read, unread, mentions),
                )| {
                    ServerMsg::Joined {
                        room,
                        members,
                        member_count: member_count as usize,
                        online,
                        history,
                        through,
                        read,
                        unread,
                        mentions,
                    }
                }
            ),
        (text(), messages(), any::<u64>()).prop_map(|(room, messages, through)| {
            ServerMsg::Replay {
                room,
                messages,
                through,
            }
        }),
        (text(), messages(), any::<bool>()).prop_map(|(room, messages, more)| {
            ServerMsg::History {
                room,
                messages,
                more,
            }
        }),
        (text(), text(), any::<u64>(), any::<u64>(), any::<i64>()).prop_map(
            |(room, client_id, id, seq, ts)| ServerMsg::Ack {
                room,
                client_id,
                id,
                seq,
                ts,
            }
        ),
        (
            text(),
            any::<u64>(),
            messages(),
            any::<bool>(),
            any::<bool>()
        )
            .prop_map(|(room, seq, messages, older, newer)| ServerMsg::Around {
                room,
                seq,
                messages,
                older,
                newer,
            }),
        (
            text(),
            option::of(any::<u64>()),
            vec(search_hit(), 0..3),
            any::<bool>()
        )
            .prop_map(|(query, before, hits, more)| ServerMsg::SearchResults {
                query,
                before,
                hits,
                more,
            }),
        text().prop_map(|room| ServerMsg::Left { room }),
        (text(), people()).prop_map(|(room, members)| ServerMsg::Members { room, members }),
        chat_message().prop_map(ServerMsg::Message),
        change().prop_map(ServerMsg::Changed),
        (text(), any::<u64>()).prop_map(|(room, seq)| ServerMsg::Read { room, seq }),
        (
            text(),
            person(),
            prop_oneof![Just(PresenceEvent::Joined), Just(PresenceEvent::Left)],
            any::<u32>()
        )
            .prop_map(|(room, who, event, count)| ServerMsg::Presence {
                room,
                who,
                event,
                member_count: count as usize,
            }),
        (text(), person()).prop_map(|(room, who)| ServerMsg::Typing { room, who }),
        Just(ServerMsg::Pong),
        (
            error_code(),
            text(),
            option::of(text()),
            option::of(text()),
            option::of(any::<u64>()),
        )
            .prop_map(|(code, message, room, client_id, retry_after_ms)| {
                // Built from its wire form so that every optional field the error frame
                // has is covered without listing them twice.
                let mut wire = serde_json::json!({
                    "type": "error",
                    "code": code,
                    "message": message,
                    "room": room,
                    "client_id": client_id,
                    "retry_after_ms": retry_after_ms,
                });
                if let Some(fields) = wire.as_object_mut() {
                    fields.retain(|_, v| !v.is_null());
                }
                serde_json::from_value::<ServerMsg>(wire).expect("an error frame")
            }),
    ]
}

/// The variant's name. No wildcard arm: a new variant does not compile until it is
/// listed here, and then [`the_strategies_cover_every_variant`] fails until the
/// strategy generates it too.
fn client_variant(msg: &ClientMsg) -> &'static str {
    match msg {
        ClientMsg::Hello { .. } => "hello",
        ClientMsg::ListRooms => "list_rooms",
        ClientMsg::CreateRoom { .. } => "create_room",
        ClientMsg::Join { .. } => "join",
        ClientMsg::Leave { .. } => "leave",
        ClientMsg::Send { .. } => "send",
        ClientMsg::Edit { .. } => "edit",
        ClientMsg::Delete { .. } => "delete",
        ClientMsg::React { .. } => "react",
        ClientMsg::Unreact { .. } => "unreact",
        ClientMsg::MarkRead { .. } => "mark_read",
        ClientMsg::Mute { .. } => "mute",
        ClientMsg::FetchHistory { .. } => "fetch_history",
        ClientMsg::FetchAround { .. } => "fetch_around",
        ClientMsg::Search { .. } => "search",
        ClientMsg::Typing { .. } => "typing",
        ClientMsg::OpenDirect { .. } => "open_direct",
        ClientMsg::Invite { .. } => "invite",
        ClientMsg::Remove { .. } => "remove",
        ClientMsg::RenameRoom { .. } => "rename_room",
        ClientMsg::DeleteRoom { .. } => "delete_room",
        ClientMsg::Ping => "ping",
    }
}

const CLIENT_VARIANTS: [&str; 22] = [
    "hello",
    "list_rooms",
    "create_room",
    "join",
    "leave",
    "send",
    "edit",
    "delete",
    "react",
    "unreact",
    "mark_read",
    "mute",
    "fetch_history",
    "fetch_around",
    "search",
    "typing",
    "open_direct",
    "invite",
    "remove",
    "rename_room",
    "delete_room",
    "ping",
];

fn server_variant(msg: &ServerMsg) -> &'static str {
    match msg {
        ServerMsg::Welcome { .. } => "welcome",
        ServerMsg::Rooms { .. } => "rooms",
        ServerMsg::RoomsChanged { .. } => "rooms_changed",
        ServerMsg::Joined { .. } => "joined",
        ServerMsg::Replay { .. } => "replay",
        ServerMsg::History { .. } => "history",
        ServerMsg::Around { .. } => "around",
        ServerMsg::SearchResults { .. } => "search_results",
        ServerMsg::Ack { .. } => "ack",
        ServerMsg::Left { .. } => "left",
        ServerMsg::Members { .. } => "members",
        ServerMsg::Message(_) => "message",
        ServerMsg::Changed(_) => "changed",
        ServerMsg::Read { .. } => "read",
        ServerMsg::Presence { .. } => "presence",
        ServerMsg::Typing { .. } => "typing",
        ServerMsg::Pong => "pong",
        ServerMsg::Error { .. } => "error",
    }
}

const SERVER_VARIANTS: [&str; 18] = [
    "welcome",
    "rooms",
    "rooms_changed",
    "joined",
    "replay",
    "history",
    "around",
    "search_results",
    "ack",
    "left",
    "members",
    "message",
    "changed",
    "read",
    "presence",
    "typing",
    "pong",
    "error",
];

/// Names `strategy` produces in `samples` draws from a fixed seed.
fn variants_drawn<T: std::fmt::Debug>(
    strategy: impl Strategy<Value = T>,
    name: fn(&T) -> &'static str,
    samples: usize,
) -> BTreeSet<&'static str> {
    let mut runner = TestRunner::deterministic();
    (0..samples)
        .map(|_| {
            let tree = strategy.new_tree(&mut runner).expect("strategy draws");
            name(&tree.current())
        })
        .collect()
}

#[test]
fn the_strategies_cover_every_variant() {
    let want = |names: &[&'static str]| names.iter().copied().collect::<BTreeSet<_>>();
    assert_eq!(
        variants_drawn(client_msg(), client_variant, 500),
        want(&CLIENT_VARIANTS)
    );
    assert_eq!(
        variants_drawn(server_msg(), server_variant, 500),
        want(&SERVER_VARIANTS)
    );
}

// ---------------------------------------------------------------------------------------
// The documented rules, restated

fn chars(s: &str) -> usize {
    s.chars().count()
}

/// "Display names are 1..=32 characters after trimming", "no control characters".
fn name_rule(raw: &str) -> bool {
    let t = raw.trim();
    (1..=limits::MAX_NAME_CHARS).contains(&chars(t))
        && !t.chars().any(char::is_control)
        && !has_invisible_chars(t)
}

/// "Room names are 1..=40 characters of `[a-z0-9-_]`" (no trimming).
fn room_rule(raw: &str) -> bool {
    (1..=limits::MAX_ROOM_CHARS).contains(&chars(raw))
        && raw
            .chars()
            .all(|c| matches!(c, 'a'..='z' | '0'..='9' | '-' | '_'))
}

/// "Message bodies are 1..=4000 characters after trimming."
fn body_rule(raw: &str) -> bool {
    (1..=limits::MAX_BODY_CHARS).contains(&chars(raw.trim()))
}

/// "Client ids are 1..=64 characters of `[A-Za-z0-9_-]`."
fn client_id_rule(raw: &str) -> bool {
    (1..=limits::MAX_CLIENT_ID_CHARS).contains(&chars(raw))
        && raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Text whose length (after trimming) is near `limit`: just below, at, or just above it.
fn around_limit(limit: usize) -> impl Strategy<Value = String> {
    (
        "\\s{0,2}",
        limit - 2..=limit + 2,
        "[xé\\u{1F600} ]",
        "\\s{0,2}",
    )
        .prop_map(|(lead, n, fill, trail)| format!("{lead}{}{trail}", fill.repeat(n)))
}

proptest! {
    // -----------------------------------------------------------------------------------
    // Round trips

    #[test]
    fn every_client_message_round_trips(msg in client_msg()) {
        let json = msg.to_json();
        prop_assert_eq!(ClientMsg::decode(&json), Ok(msg), "{}", json);
    }

    #[test]
    fn every_server_message_round_trips(msg in server_msg()) {
        let json = msg.to_json();
        let back: ServerMsg = serde_json::from_str(&json).expect("the server's JSON decodes");
        prop_assert_eq!(back, msg, "{}", json);
    }

    /// "Unknown extra fields in client messages are ignored."
    #[test]
    fn unknown_fields_do_not_change_a_client_message(
        msg in client_msg(),
        key in "zz_[a-z_]{0,8}",
        value in prop_oneof![
            any::<i64>().prop_map(serde_json::Value::from),
            text().prop_map(serde_json::Value::from),
            Just(serde_json::Value::Null),
        ],
    ) {
        let mut object: serde_json::Value = serde_json::from_str(&msg.to_json()).expect("JSON");
        object
            .as_object_mut()
            .expect("a JSON object")
            .insert(key, value);
        let json = object.to_string();
        prop_assert_eq!(ClientMsg::decode(&json), Ok(msg), "{}", json);
    }

    // -----------------------------------------------------------------------------------
    // Decoding hostile text

    /// Never panics, and every failure has the code the protocol documents: `bad_json`
    /// for text that is not JSON, `unknown_type` for a `type` this version does not
    /// know, `bad_message` for anything else. What does decode re-encodes to the same
    /// message.
    #[test]
    fn decode_never_panics_and_classifies_every_failure(
        raw in prop_oneof![
            any::<String>(),
            text(),
            // JSON-shaped: a known or unknown type and a few fields of any kind.
            (
                prop_oneof![select(CLIENT_VARIANTS.to_vec()).prop_map(String::from), text()],
                vec(
                    (
                        prop_oneof![
                            select(vec!["room", "name", "protocol", "after", "before", "limit", "body", "client_id", "type"]).prop_map(String::from),
                            text(),
                        ],
                        prop_oneof![
                            any::<i64>().prop_map(|n| n.to_string()),
                            any::<u64>().prop_map(|n| n.to_string()),
                            Just("-1".to_owned()), Just("1e3".to_owned()), Just("2.5".to_owned()),
                            Just("null".to_owned()), Just("true".to_owned()), Just("[]".to_owned()), Just("{}".to_owned()),
                            text().prop_map(|s| serde_json::Value::from(s).to_string()),
                        ],
                    ),
                    0..5,
                ),
            )
                .prop_map(|(ty, fields)| {
                    let mut json = format!("{{\"type\":{}", serde_json::Value::from(ty));
                    for (k, v) in fields {
                        json.push_str(&format!(",{}:{v}", serde_json::Value::from(k)));
                    }
                    json.push('}');
                    json
                }),
        ]
    ) {
        match ClientMsg::decode(&raw) {
            Ok(msg) => {
                prop_assert_eq!(ClientMsg::decode(&msg.to_json()), Ok(msg));
            }
            Err(e) => {
                let expected = match serde_json::from_str::<serde_json::Value>(&raw) {
                    Err(_) => ErrorCode::BadJson,
                    Ok(v) => match v.get("type").and_then(|t| t.as_str()) {
                        Some(t) if !CLIENT_VARIANTS.contains(&t) => ErrorCode::UnknownType,
                        _ => ErrorCode::BadMessage,
                    },
                };
                prop_assert_eq!(e.code, expected, "{:?}: {}", raw, e.detail);
            }
        }
    }

    // -----------------------------------------------------------------------------------
    // Validation rules

    #[test]
    fn display_names_follow_the_documented_rule(
        raw in prop_oneof![text(), around_limit(limits::MAX_NAME_CHARS)]
    ) {
        match DisplayName::parse(&raw) {
            Ok(name) => {
                prop_assert!(name_rule(&raw), "accepted {:?}", raw);
                prop_assert_eq!(name.as_str(), raw.trim());
                prop_assert_eq!(DisplayName::parse(name.as_str()), Ok(name.clone()));
            }
            Err(e) => {
                prop_assert!(!name_rule(&raw), "refused {:?}: {}", raw, e);
                let t = raw.trim();
                let length_ok = (1..=limits::MAX_NAME_CHARS).contains(&chars(t));
                let expected = if !length_ok {
                    ValidationError::NameLength
                } else if t.chars().any(char::is_control) {
                    ValidationError::NameControlChars
                } else {
                    ValidationError::NameInvisibleChars
                };
                prop_assert_eq!(e, expected);
            }
        }
    }

    /// Two names that differ only in ASCII case share a key, so cannot both be online.
    #[test]
    fn name_keys_ignore_case(raw in "[A-Za-z0-9 ]{1,32}") {
        if let (Ok(a), Ok(b)) = (
            DisplayName::parse(&raw.to_ascii_lowercase()),
            DisplayName::parse(&raw.to_ascii_uppercase()),
        ) {
            prop_assert_eq!(a.key(), b.key());
        }
    }

    #[test]
    fn room_names_are_exactly_the_small_alphabet(
        raw in prop_oneof![text(), "[a-z0-9_-]{38,42}", "[a-z0-9_A-Z .-]{0,42}"]
    ) {
        match RoomName::parse(&raw) {
            Ok(room) => {
                prop_assert!(room_rule(&raw), "accepted {:?}", raw);
                prop_assert_eq!(room.as_str(), raw.as_str());
                prop_assert_eq!(RoomName::parse(room.as_str()), Ok(room.clone()));
            }
            Err(e) => prop_assert!(!room_rule(&raw), "refused {:?}: {}", raw, e),
        }
    }

    #[test]
    fn every_name_of_the_room_alphabet_is_accepted(raw in "[a-z0-9_-]{1,40}") {
        prop_assert_eq!(RoomName::parse(&raw).map(RoomName::into_string), Ok(raw));
    }

    #[test]
    fn bodies_follow_the_documented_rule(
        raw in prop_oneof![text(), around_limit(limits::MAX_BODY_CHARS)]
    ) {
        match Body::parse(&raw) {
            Ok(body) => {
                prop_assert!(body_rule(&raw), "accepted {:?}", raw);
                prop_assert_eq!(body.as_str(), raw.trim());
                prop_assert_eq!(Body::parse(body.as_str()), Ok(body.clone()));
            }
            Err(e) => {
                prop_assert!(!body_rule(&raw), "refused {:?}: {}", raw, e);
                prop_assert_eq!(e, ValidationError::BodyLength);
            }
        }
    }

    #[test]
    fn client_ids_follow_the_documented_rule(
        raw in prop_oneof![text(), "[A-Za-z0-9_-]{1,64}", "[A-Za-z0-9_-]{62,66}", "[A-Za-z0-9_ .é-]{0,66}"]
    ) {
        match ClientId::parse(&raw) {
            Ok(id) => {
                prop_assert!(client_id_rule(&raw), "accepted {:?}", raw);
                prop_assert_eq!(id.as_str(), raw.as_str());
                prop_assert_eq!(ClientId::parse(id.as_str()), Ok(id.clone()));
            }
            Err(e) => prop_assert!(!client_id_rule(&raw), "refused {:?}: {}", raw, e),
        }
    }
}
