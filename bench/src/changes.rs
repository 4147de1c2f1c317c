//! The fan-out scenario's edit/reaction mix (`fanout --changes-every N`): since protocol
//! 6 a room is a log of messages *and* changes to them, and the changes travel the same
//! path (stored, then broadcast to every member as `changed`), so the delivery path is
//! measured with both.
//!
//! After every N messages a publisher edits its own last acknowledged message and toggles
//! a reaction: it adds one to the message it edits, and the next time takes that one back
//! (so reactions and their removals come half and half, each a real change that the
//! server broadcasts). The edit's new text carries the send time the way message bodies
//! do, so members measure edits' latency as they measure messages'.
//!
//! Members find what they need in frames without decoding them, like the rest of the
//! fan-out scenario's hot loop.

use std::sync::LazyLock;

use confab_shared::ClientMsg;
use memchr::memmem::Finder;

/// The reaction publishers toggle.
const EMOJI: &str = "\u{1F44D}";
/// Client ids of messages; those of changes differ, so an ack tells which it answers.
pub(crate) const MESSAGE_ID_PREFIX: &str = "f";

pub(crate) const CHANGED_PREFIX: &str = r#"{"type":"changed""#;
pub(crate) const ACK_PREFIX: &str = r#"{"type":"ack""#;

/// One publisher's side of the mix.
#[derive(Debug)]
pub(crate) struct Changer {
    every: u64,
    /// The message holding this publisher's reaction, to take back next time.
    reacted: Option<u64>,
}

impl Changer {
    /// Changes after every `every` messages (at least 1).
    pub(crate) fn new(every: u64) -> Self {
        Changer {
            every: every.max(1),
            reacted: None,
        }
    }

    /// The changes to send after message number `n` (1, 2, …) of this publisher: none,
    /// or an edit of `last_acked` (the `seq` of its last acknowledged message; 0 for none
    /// yet) to `body` and a reaction added or taken back.
    pub(crate) fn after_message(
        &mut self,
        n: u64,
        last_acked: u64,
        room: &str,
        body: String,
    ) -> Vec<ClientMsg> {
        if !n.is_multiple_of(self.every) || last_acked == 0 {
            return Vec::new();
        }
        let edit = ClientMsg::Edit {
            room: room.to_owned(),
            seq: last_acked,
            body,
            client_id: format!("e{n}"),
        };
        let client_id = format!("r{n}");
        let emoji = EMOJI.to_owned();
        let reaction = match self.reacted.take() {
            Some(seq) => ClientMsg::Unreact {
                room: room.to_owned(),
                seq,
                emoji,
                client_id,
            },
            None => {
                self.reacted = Some(last_acked);
                ClientMsg::React {
                    room: room.to_owned(),
                    seq: last_acked,
                    emoji,
                    client_id,
                }
            }
        };
        vec![edit, reaction]
    }
}

/// What a `changed` frame did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Edited,
    /// Reacted or unreacted.
    Reaction,
    /// Deleted: the mix deletes nothing, so this one is not the bench's.
    Other,
}

/// The kind of an encoded `changed` frame.
pub(crate) fn kind_of(frame: &str) -> Option<Kind> {
    static KEY: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(r#""kind":""#));
    Some(match string_after(frame, &KEY)? {
        "edited" => Kind::Edited,
        "reacted" | "unreacted" => Kind::Reaction,
        _ => Kind::Other,
    })
}

/// The `seq` of the message an encoded `ack` frame acknowledges; `None` for the ack of a
/// change (or anything else).
pub(crate) fn acked_message(frame: &str) -> Option<u64> {
    static CLIENT_ID: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(r#""client_id":""#));
    static SEQ: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(r#","seq":"#));
    if !string_after(frame, &CLIENT_ID)?.starts_with(MESSAGE_ID_PREFIX) {
        return None;
    }
    let start = SEQ.find(frame.as_bytes())? + SEQ.needle().len();
    let digits = frame.as_bytes()[start..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    frame.get(start..start + digits)?.parse().ok()
}

/// The string value after `key` (which ends with the opening quote). Values the bench
/// looks at need no JSON escaping.
fn string_after<'a>(frame: &'a str, key: &Finder<'_>) -> Option<&'a str> {
    let start = key.find(frame.as_bytes())? + key.needle().len();
    let len = memchr::memchr(b'"', &frame.as_bytes()[start..])?;
    frame.get(start..start + len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fanout::{body, body_of, sent_micros};
    use confab_shared::{Change, ChangeKind, ServerMsg};

    fn changed(kind: ChangeKind) -> String {
        ServerMsg::Changed(Change {
            room: "fan-0".into(),
            seq: 41,
            target: 17,
            by: "fan-3".into(),
            ts: 1_764_000_000_000,
            change: kind,
        })
        .to_json()
    }

    #[test]
    fn reads_the_kind_of_real_changed_frames() {
        let edited = changed(ChangeKind::Edited {
            body: body(3, 987_654),
        });
        assert!(edited.starts_with(CHANGED_PREFIX), "{edited}");
        assert_eq!(kind_of(&edited), Some(Kind::Edited));
        // The edit's new text carries the send time, read as a message's is.
        let text = body_of(&edited).expect("body");
        assert_eq!(text, body(3, 987_654));
        assert_eq!(sent_micros(text), Some(987_654));

        let emoji = || EMOJI.to_owned();
        for (kind, expected) in [
            (ChangeKind::Reacted { emoji: emoji() }, Kind::Reaction),
            (ChangeKind::Unreacted { emoji: emoji() }, Kind::Reaction),
            (ChangeKind::Deleted, Kind::Other),
        ] {
            let frame = changed(kind);
            assert!(frame.starts_with(CHANGED_PREFIX), "{frame}");
            assert_eq!(kind_of(&frame), Some(expected), "{frame}");
            assert_eq!(body_of(&frame), None, "{frame}");
        }
        assert_eq!(kind_of(r#"{"type":"changed","room":"x"}"#), None);
    }

    #[test]
    fn tells_the_ack_of_a_message_from_the_ack_of_a_change() {
        let ack = |client_id: &str, seq| {
            ServerMsg::Ack {
                room: "fan-0".into(),
                client_id: client_id.into(),
                id: 12_345,
                seq,
                ts: 1_764_000_000_000,
            }
            .to_json()
        };
        let message = ack("f12", 907);
        assert!(message.starts_with(ACK_PREFIX), "{message}");
        assert_eq!(acked_message(&message), Some(907));
        assert_eq!(acked_message(&ack("e16", 908)), None);
        assert_eq!(acked_message(&ack("r16", 909)), None);
        assert_eq!(acked_message(r#"{"type":"ack","client_id":"f1"}"#), None);
    }

    #[test]
    fn edits_the_last_acknowledged_message_and_toggles_a_reaction_every_n() {
        let mut changer = Changer::new(4);
        let body = |n| format!("body {n}");
        for n in 1..4 {
            assert!(changer.after_message(n, 2, "fan-0", body(n)).is_empty());
        }
        assert_eq!(
            changer.after_message(4, 3, "fan-0", body(4)),
            [
                ClientMsg::Edit {
                    room: "fan-0".into(),
                    seq: 3,
                    body: body(4),
                    client_id: "e4".into(),
                },
                ClientMsg::React {
                    room: "fan-0".into(),
                    seq: 3,
                    emoji: EMOJI.into(),
                    client_id: "r4".into(),
                },
            ]
        );
        // The next round takes the reaction back from where it was put.
        assert_eq!(
            changer.after_message(8, 7, "fan-0", body(8)),
            [
                ClientMsg::Edit {
                    room: "fan-0".into(),
                    seq: 7,
                    body: body(8),
                    client_id: "e8".into(),
                },
                ClientMsg::Unreact {
                    room: "fan-0".into(),
                    seq: 3,
                    emoji: EMOJI.into(),
                    client_id: "r8".into(),
                },
            ]
        );
        let third = changer.after_message(12, 11, "fan-0", body(12));
        assert!(
            matches!(
                third.as_slice(),
                [
                    ClientMsg::Edit { seq: 11, .. },
                    ClientMsg::React { seq: 11, .. }
                ]
            ),
            "{third:?}"
        );
    }

    #[test]
    fn nothing_is_changed_before_a_message_is_acknowledged() {
        let mut changer = Changer::new(1);
        assert!(changer.after_message(1, 0, "fan-0", "x".into()).is_empty());
        assert_eq!(changer.after_message(2, 5, "fan-0", "x".into()).len(), 2);
    }
}
