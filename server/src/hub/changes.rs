//! Changes to messages (edits, deletions, reactions), read markers and muting.
//!
//! A change travels like a message: the hub checks what it can know without the store
//! (the person is in the room, may edit at all, is within the edit rate), hands it to
//! the writer, and only once it is committed acknowledges it and delivers it to the room
//! as a [`ServerMsg::Changed`] with its own place in the room's log. Whether the message
//! exists, whose it is and how many reactions it has are the store's to decide, in the
//! transaction that stores the change (see `store::sqlite::changes`), so that no rule is
//! checked against a state that could change before the write.
//!
//! Read markers and mutes are a person's, not a connection's: once stored, every session
//! of that person hears of them, whichever device made them.

use confab_shared::{ClientId, ErrorCode, RoomName, ServerMsg, mention::mentions};

use super::{
    ConnId, Hub, MessageChange, Refusal, Waiter,
    delivery::{deliver, encode},
    now_ms,
    rooms::take_allowance,
};
use crate::store::{ChangeRequest, Changed, NewChange, Refused, Write};

/// Most people one message's mentions are counted for: a message naming a whole team
/// still counts for each, a pasted list of hundreds of names does not fan out writes.
const MAX_MENTIONS: usize = 20;

impl Hub {
    /// Hands an edit, deletion or reaction to the writer; the changer hears back once it
    /// is committed ([`Hub::change_committed`]).
    pub(super) fn change(
        &mut self,
        id: ConnId,
        room: RoomName,
        seq: u64,
        client_id: ClientId,
        change: MessageChange,
    ) -> Result<(), Refusal> {
        self.check_member(id, &room)
            .map_err(|r| r.for_send(&client_id))?;
        let Some(conn) = self.conns.get(&id) else {
            return Ok(());
        };
        let Some(by) = conn.username().map(str::to_owned) else {
            return Ok(());
        };
        let rewrites = matches!(change, MessageChange::Edit(_) | MessageChange::Delete);
        if rewrites && conn.is_guest() {
            // A guest's name is free again once they go, and a later guest of the same
            // name would inherit their messages.
            return Err(Refusal::about(
                &room,
                ErrorCode::Forbidden,
                "guests cannot edit or delete messages: sign up to".to_owned(),
            )
            .for_send(&client_id));
        }
        let may_delete_any = conn.is_admin()
            || self
                .rooms
                .get(room.as_str())
                .and_then(|r| r.owner.as_deref())
                == Some(&by);
        if matches!(change, MessageChange::Edit(_)) {
            take_allowance(
                &mut self.edit_buckets,
                self.settings.edits,
                &by,
                &room,
                "too many edits in a short time; wait a moment",
            )
            .map_err(|r| r.for_send(&client_id))?;
        }
        let what = match change {
            MessageChange::Edit(body) => ChangeRequest::Edit {
                mentions: self.mentioned(room.as_str(), body.as_str(), &by),
                body: body.into_string(),
            },
            MessageChange::Delete => ChangeRequest::Delete {
                any: may_delete_any,
            },
            MessageChange::React(emoji) => ChangeRequest::React(emoji.into_string()),
            MessageChange::Unreact(emoji) => ChangeRequest::Unreact(emoji.into_string()),
        };
        let write = Write::Change(NewChange {
            room: room.to_string(),
            target: seq,
            by,
            client_id: client_id.to_string(),
            ts: now_ms(),
            what,
        });
        let waiter = Waiter {
            conn: id,
            client_id: client_id.to_string(),
        };
        self.submit(write, Some(waiter))
            .map_err(|r| r.for_send(&client_id))
    }

    /// The people `body` mentions who should hear of it: members of the room other than
    /// the writer. Mentioning anyone else notifies nobody and tells the writer nothing.
    pub(super) fn mentioned(&self, room: &str, body: &str, writer: &str) -> Vec<String> {
        let Some(r) = self.rooms.get(room) else {
            return Vec::new();
        };
        if !body.contains('@') {
            return Vec::new();
        }
        let mut users: Vec<String> = mentions(body)
            .into_iter()
            .map(|m| m.user)
            .filter(|u| u != writer && r.members.contains(u))
            .collect();
        users.sort();
        users.dedup();
        users.truncate(MAX_MENTIONS);
        users
    }

    /// A change was committed, found a duplicate, changed nothing, or was refused.
    pub(super) fn change_committed(
        &mut self,
        waiter: Option<Waiter>,
        room: &str,
        outcome: Changed,
    ) {
        let ack = |seq| {
            waiter.as_ref().map(|w| {
                (
                    w.conn,
                    ServerMsg::Ack {
                        room: room.to_owned(),
                        client_id: w.client_id.clone(),
                        id: 0,
                        seq,
                        ts: now_ms(),
                    },
                )
            })
        };
        let reply = match outcome {
            Changed::Stored(change) => {
                let reply = ack(change.seq);
                if let Some((conn, msg)) = reply {
                    self.reply(conn, &msg);
                }
                let frame = ServerMsg::Changed(change);
                if let ServerMsg::Changed(c) = &frame {
                    self.deliver_log_entry(&c.room, c.seq, &frame);
                }
                return;
            }
            Changed::Duplicate { seq } => ack(seq),
            Changed::Unchanged { rev } => ack(rev),
            Changed::Refused(refused) => waiter.map(|w| {
                let (code, message) = refused_change(refused);
                (
                    w.conn,
                    ServerMsg::Error {
                        code,
                        message: message.to_owned(),
                        room: Some(room.to_owned()),
                        client_id: Some(w.client_id),
                        retry_after_ms: None,
                    },
                )
            }),
        };
        if let Some((conn, msg)) = reply {
            self.reply(conn, &msg);
        }
    }

    /// Moves the person's read marker in a room they belong to. Guests have none: nothing
    /// of theirs is stored.
    pub(super) fn mark_read(
        &mut self,
        id: ConnId,
        room: RoomName,
        seq: u64,
    ) -> Result<(), Refusal> {
        let r = self.visible_room(id, &room)?;
        let last = r.last_seq;
        let Some(conn) = self.conns.get(&id) else {
            return Ok(());
        };
        let Some(user) = conn.username().map(str::to_owned) else {
            return Ok(());
        };
        // A marker belongs to a member: one for a public room the person never joined
        // would outlive their joining it (which starts them with everything read).
        if conn.is_guest() || !r.members.contains(&user) {
            return Ok(());
        }
        self.submit_quietly(Write::MarkRead {
            user,
            room: room.to_string(),
            seq: seq.min(last),
        });
        Ok(())
    }

    /// Mutes or unmutes a room the person may see, for all their sessions.
    pub(super) fn mute(&mut self, id: ConnId, room: RoomName, muted: bool) -> Result<(), Refusal> {
        self.visible_room(id, &room)?;
        let Some(conn) = self.conns.get(&id) else {
            return Ok(());
        };
        if conn.is_guest() {
            return Err(Refusal::about(
                &room,
                ErrorCode::Forbidden,
                "guests cannot mute rooms: sign up to".to_owned(),
            ));
        }
        let Some(user) = conn.username().map(str::to_owned) else {
            return Ok(());
        };
        self.submit(
            Write::Mute {
                user,
                room: room.to_string(),
                muted,
            },
            None,
        )
    }

    /// A stored read marker or mute reaches every session of its person. Returns whether
    /// `write` was one.
    pub(super) fn personal_committed(&mut self, write: &Write) -> bool {
        match write {
            Write::MarkRead { user, room, seq } => {
                let frame = encode(&ServerMsg::Read {
                    room: room.clone(),
                    seq: *seq,
                });
                let ids = self.sessions.get(user).cloned().unwrap_or_default();
                deliver(&self.conns, &mut self.overflowed, ids.into_iter(), &frame);
                true
            }
            Write::Mute { user, room, muted } => {
                let set = self.muted.entry(user.clone()).or_default();
                if *muted {
                    set.insert(room.clone());
                } else {
                    set.remove(room);
                    if set.is_empty() {
                        self.muted.remove(user);
                    }
                }
                for id in self.sessions.get(user).cloned().unwrap_or_default() {
                    self.tell_requester(id, room, false);
                }
                true
            }
            _ => false,
        }
    }
}

/// What a person is told when the store refuses their change.
pub(super) fn refused_change(refused: Refused) -> (ErrorCode, &'static str) {
    match refused {
        Refused::UnknownMessage => (
            ErrorCode::UnknownMessage,
            "there is no such message (it may have been deleted)",
        ),
        Refused::NotYours => (
            ErrorCode::Forbidden,
            "only its author (or the room's owner, for a deletion) may change that message",
        ),
        Refused::TooManyReactions => (
            ErrorCode::TooManyReactions,
            "that message has as many reactions as it may",
        ),
        Refused::UnknownFile => (
            ErrorCode::UnknownFile,
            "a file is not an upload of yours to this room that is still unshared \
             (upload it again)",
        ),
    }
}
