//! The client's half of resuming: what the person wants to be true on the server — the
//! rooms to be in, where each one resumes from, the messages still to deliver — and what
//! each frame from the server changes about it.
//!
//! Plain data and plain functions: no `RefCell`, no callbacks, no browser types. The
//! socket service ([`crate::socket`]) owns one [`Resume`], feeds it every frame and every
//! user request, sends the requests it returns and carries out the [`Effects`] (saving the
//! outbox, telling the reducer). So the rules that make a reconnect lose nothing and
//! double nothing are unit-tested natively, like the reducer.
//!
//! The rules:
//! - After every (re)connect: `hello`, then once welcomed a `join` for every followed room
//!   from the highest `seq` seen there, then `replay` pages until `joined`.
//! - The followed rooms are `general`, every room the server marks `member`, and every room
//!   holding an unsent message; a room this tab was in but the person no longer belongs
//!   to (left on another device meanwhile) is not joined again.
//! - A message goes out as soon as its room is joined on the current connection, and again
//!   after every reconnect until acknowledged: the server stores a client id once. So do
//!   changes to messages (edits, deletions, reactions), from the same outbox.
//! - A room resumes from the furthest point of its log seen: the `through` of `joined` and
//!   `replay`, and the `seq` of every live message and change. A `replay` page is followed
//!   by a join from its `through`.
//! - A welcome from another store (its `epoch` differs from the one seen before, on this
//!   page or, kept with the outbox, an earlier one) makes every `seq` held meaningless:
//!   the rooms are joined afresh, and the outbox keeps its messages but not what referred
//!   to a `seq` (changes, and which message a reply answered).

use std::collections::{BTreeMap, BTreeSet};

use confab_shared::{
    ClientMsg, DEFAULT_ROOM, ErrorCode, PROTOCOL_VERSION, RoomInfo, RoomKind, ServerMsg,
};
use serde::{Deserialize, Serialize};

use crate::state::{Pending, PendingChange, retried_change};

/// How often a `name_taken` is taken to mean "our previous connection still holds it"
/// before the name is handed back to the user to change.
const MAX_NAME_HELD_RETRIES: u32 = 5;

/// Unsent messages and whose they are, so that another person signing in on the same
/// browser never sends them as their own. Saved to local storage as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outbox {
    /// Username of the writer; `None` until a server welcomed the session.
    pub user: Option<String>,
    pub pending: Vec<Pending>,
    /// The store whose `seq`s the pending changes and replies name (see
    /// [`ServerMsg::Welcome`]); `None` until a server welcomed a session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<String>,
}

/// What a guest's display name becomes in local storage after a welcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestName {
    /// Welcomed as a guest: a reload says hello with this name again.
    Remember(String),
    /// Welcomed as an account (the cookie won): no guest name any more.
    Forget,
}

/// What the socket service must do after [`Resume::observe`].
#[derive(Debug, Default, PartialEq)]
pub struct Effects {
    /// Requests to send now, in this order.
    pub send: Vec<ClientMsg>,
    /// The outbox changed: save it and show it.
    pub outbox_changed: bool,
    /// After a welcome: every room followed from now on (the reducer drops the others).
    pub following: Option<BTreeSet<String>>,
    pub guest_name: Option<GuestName>,
    /// Rooms whose `join` the server could not take right now (`unavailable`: too many
    /// history reads waiting): join them again after a pause ([`Resume::rejoin_due`]).
    pub rejoin_later: Vec<String>,
    /// A change could not be stored now: send the outbox again after a pause
    /// ([`Resume::resend_due`]).
    pub resend_soon: bool,
}

/// See the module documentation.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Resume {
    /// The display name a guest says hello with; `None` for an account, whose cookie
    /// tells the server who it is.
    guest: Option<String>,
    /// Rooms to be in.
    rooms: BTreeSet<String>,
    /// People whose direct conversation was asked for, which the server joins for us.
    opening: BTreeSet<String>,
    /// How far each room's log was received: where a re-join resumes from.
    last_seq: BTreeMap<String, u64>,
    /// Messages written but not acknowledged, oldest first.
    outbox: Outbox,
    /// Rooms joined on the current connection: sends to them can go out now.
    live: BTreeSet<String>,
    /// The server accepted this connection's hello.
    welcomed: bool,
    /// The guest name was accepted before (this page or a previous one), so a
    /// `name_taken` on reconnecting most likely means our own old connection holds it.
    name_was_ours: bool,
    name_held_retries: u32,
}

impl Resume {
    /// Nothing wanted yet; `outbox` is what an earlier visit left unsent (its files
    /// not uploaded then are lost: see `resume/files.rs`).
    pub fn new(mut outbox: Outbox) -> Self {
        outbox.forget_unsaved_files();
        Self {
            outbox,
            ..Self::default()
        }
    }

    /// A new session: as an account (`guest` `None`) or as a guest asking for that name
    /// (`name_was_ours`: a name this browser was welcomed with before). The outbox stays:
    /// [`Resume::claim_outbox`] decides whose it is.
    pub fn start(&mut self, guest: Option<String>, name_was_ours: bool) {
        *self = Self {
            guest,
            rooms: BTreeSet::from([DEFAULT_ROOM.to_owned()]),
            outbox: std::mem::take(&mut self.outbox),
            name_was_ours,
            ..Self::default()
        };
    }

    /// Forgets the session and everything unsent (signing out): nothing may go out later
    /// under the next person's name.
    pub fn clear(&mut self) {
        *self = Self::default();
    }

    pub fn is_guest(&self) -> bool {
        self.guest.is_some()
    }

    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// Unsent messages of someone else (another person used this browser before) are
    /// dropped, never sent as `user`'s. Returns whether the outbox changed.
    pub fn claim_outbox(&mut self, user: &str) -> bool {
        if self.outbox.user.as_deref() == Some(user) {
            return false;
        }
        if self.outbox.user.is_some() {
            self.outbox.pending.clear();
        }
        self.outbox.user = Some(user.to_owned());
        true
    }

    /// A socket just opened (or closed): nothing is joined on it, nobody welcomed it.
    pub fn new_connection(&mut self) {
        self.live.clear();
        self.welcomed = false;
    }

    pub fn welcomed(&self) -> bool {
        self.welcomed
    }

    /// The first request of a fresh connection. The rooms are joined once the hello is
    /// accepted, so a refused name does not earn a second, confusing error per join.
    pub fn greeting(&self) -> ClientMsg {
        ClientMsg::Hello {
            protocol: PROTOCOL_VERSION,
            name: self.guest.clone(),
        }
    }

    /// The person opened a room.
    pub fn join(&mut self, room: &str) -> ClientMsg {
        self.rooms.insert(room.to_owned());
        self.join_request(room.to_owned())
    }

    pub fn leave(&mut self, room: &str) -> ClientMsg {
        self.rooms.remove(room);
        ClientMsg::Leave {
            room: room.to_owned(),
        }
    }

    /// The direct conversation with `user` (a username) was asked for; the server joins
    /// us to it.
    pub fn open_direct(&mut self, user: &str) -> ClientMsg {
        self.opening.insert(user.to_owned());
        ClientMsg::OpenDirect {
            user: user.to_owned(),
        }
    }

    /// Queues a message; returns the `send` to make now if its room is joined (and it
    /// has no file to upload first).
    pub fn send(&mut self, pending: Pending) -> Option<ClientMsg> {
        let now = (pending.ready() && self.live.contains(&pending.room)).then(|| pending.to_send());
        self.outbox.pending.push(pending);
        now
    }

    /// A refused message is tried again under the same client id, without the files the
    /// page lost (a message left with nothing goes); returns the `send` to make now if
    /// its room is joined and its files are uploaded (else they upload first).
    pub fn retry(&mut self, client_id: &str) -> Option<ClientMsg> {
        let p = self
            .outbox
            .pending
            .iter_mut()
            .find(|p| p.client_id == client_id)?;
        p.failed = None;
        p.files.retain(|f| !f.lost);
        self.drop_empty();
        let p = self
            .outbox
            .pending
            .iter()
            .find(|p| p.client_id == client_id)?;
        (p.ready() && self.live.contains(&p.room)).then(|| p.to_send())
    }

    /// Gives up on an unsent message.
    pub fn discard(&mut self, client_id: &str) {
        self.outbox.pending.retain(|p| p.client_id != client_id);
    }

    /// Every unacknowledged message whose room is joined, to send again (after a
    /// `rate_limited`, which does not say which request it refused).
    pub fn resend_due(&self) -> Vec<ClientMsg> {
        self.outbox
            .pending
            .iter()
            .filter(|p| p.failed.is_none() && p.ready() && self.live.contains(&p.room))
            .map(Pending::to_send)
            .collect()
    }

    /// The joins to send again for `rooms` after an `unavailable`: those still followed
    /// and not joined meanwhile.
    pub fn rejoin_due(&self, rooms: &[String]) -> Vec<ClientMsg> {
        rooms
            .iter()
            .filter(|r| self.welcomed && self.rooms.contains(*r) && !self.live.contains(*r))
            .map(|r| self.join_request(r.clone()))
            .collect()
    }

    /// Whether a `name_taken` should be waited out rather than shown.
    pub fn name_probably_held_by_us(&mut self) -> bool {
        if !self.name_was_ours || self.name_held_retries >= MAX_NAME_HELD_RETRIES {
            return false;
        }
        self.name_held_retries += 1;
        true
    }

    /// Updates what the person wants from what the server said, and returns what that
    /// calls for.
    pub fn observe(&mut self, msg: &ServerMsg) -> Effects {
        let mut effects = Effects::default();
        match msg {
            ServerMsg::Message(m) => self.saw(&m.room, m.seq),
            ServerMsg::Changed(c) => self.saw(&c.room, c.seq),
            ServerMsg::Joined { room, through, .. } => {
                self.saw(room, *through);
                // Also how a direct conversation we opened becomes one to re-join.
                self.rooms.insert(room.clone());
                self.live.insert(room.clone());
                effects.send = self
                    .outbox
                    .pending
                    .iter()
                    .filter(|p| p.room == *room && p.failed.is_none() && p.ready())
                    .map(Pending::to_send)
                    .collect();
            }
            ServerMsg::Replay { room, through, .. } => {
                // A page may hold no message at all (changes to messages older than
                // any the client has are left out) and still move the cursor.
                self.saw(room, *through);
                effects.send.push(self.join_request(room.clone()));
            }
            ServerMsg::Left { room } => {
                // Left, removed or deleted: either way not to be re-joined.
                self.live.remove(room);
                self.rooms.remove(room);
                self.last_seq.remove(room);
            }
            ServerMsg::Ack { client_id, .. } => {
                let before = self.outbox.pending.len();
                self.outbox.pending.retain(|p| p.client_id != *client_id);
                effects.outbox_changed = self.outbox.pending.len() != before;
            }
            ServerMsg::Welcome {
                you, rooms, epoch, ..
            } => {
                self.welcomed = true;
                effects.outbox_changed = self.epoch_is(epoch);
                self.name_held_retries = 0;
                effects.guest_name = Some(if you.guest {
                    self.name_was_ours = true;
                    GuestName::Remember(you.name.clone())
                } else {
                    // The handshake carried a session cookie (signed in from another
                    // tab, say), which wins over a guest name: an account from now on,
                    // also after a reload.
                    self.guest = None;
                    GuestName::Forget
                });
                effects.outbox_changed |= self.claim_outbox(&you.user);
                self.rooms = BTreeSet::from([DEFAULT_ROOM.to_owned()]);
                self.follow(rooms);
                effects.following = Some(self.rooms.clone());
                effects.send = self
                    .rooms
                    .iter()
                    .map(|room| self.join_request(room.clone()))
                    .collect();
            }
            ServerMsg::Rooms { rooms } => {
                effects.send = self
                    .follow(rooms)
                    .into_iter()
                    .map(|room| self.join_request(room))
                    .collect();
            }
            ServerMsg::RoomsChanged { rooms, created, .. } => {
                let mut to_join = self.follow(rooms);
                if let Some(room) = created
                    && self.rooms.insert(room.clone())
                {
                    to_join.push(room.clone());
                }
                effects.send = to_join
                    .into_iter()
                    .map(|room| self.join_request(room))
                    .collect();
            }
            ServerMsg::Error {
                client_id: Some(client_id),
                message,
                code,
                ..
            } => {
                let Some(at) = self
                    .outbox
                    .pending
                    .iter()
                    .position(|p| p.client_id == *client_id)
                else {
                    return effects;
                };
                let p = &mut self.outbox.pending[at];
                if p.change.is_none() {
                    // A message the person wrote: kept, with why, for Retry or Discard.
                    p.failed = Some(message.clone());
                    if *code == ErrorCode::UnknownFile {
                        // Its uploads are gone (never shared within a day, say): Retry
                        // uploads the files again.
                        for f in &mut p.files {
                            f.uploaded = None;
                        }
                    }
                    effects.outbox_changed = true;
                } else if retried_change(*code) {
                    // Goes again by itself: after `retry_after_ms` (the socket service
                    // resends the outbox on any `rate_limited`), or now for `unavailable`.
                    effects.resend_soon = *code == ErrorCode::Unavailable;
                } else {
                    // A change refused for what it is (not the author's, a message gone,
                    // a bad emoji) would be refused again: the reducer says why.
                    self.outbox.pending.remove(at);
                    effects.outbox_changed = true;
                }
            }
            ServerMsg::Error {
                code: ErrorCode::Unavailable,
                room: Some(room),
                client_id: None,
                ..
            } if self.rooms.contains(room) && !self.live.contains(room) => {
                effects.rejoin_later.push(room.clone());
            }
            ServerMsg::Error {
                code: ErrorCode::UnknownRoom,
                room: Some(room),
                message,
                ..
            } => {
                self.rooms.remove(room);
                // What waited to go there never will: say so, with Retry and Discard.
                for p in &mut self.outbox.pending {
                    if p.room == *room && p.failed.is_none() {
                        p.failed = Some(message.clone());
                        effects.outbox_changed = true;
                    }
                }
            }
            _ => {}
        }
        effects
    }

    /// Starts following the rooms of `rooms` that are the person's (their member flag)
    /// or that hold one of their unsent messages, and returns the ones this client must
    /// join now: the server joins us itself to a direct conversation we just opened.
    fn follow(&mut self, rooms: &[RoomInfo]) -> Vec<String> {
        let unsent: BTreeSet<&str> = self
            .outbox
            .pending
            .iter()
            .map(|p| p.room.as_str())
            .collect();
        let mut to_join = Vec::new();
        for room in rooms {
            let wanted = room.member || unsent.contains(room.name.as_str());
            if !wanted || !self.rooms.insert(room.name.clone()) {
                continue;
            }
            let opened_by_us = room.kind == RoomKind::Direct
                && room
                    .peer
                    .as_ref()
                    .is_some_and(|p| self.opening.remove(&p.user));
            if !opened_by_us {
                to_join.push(room.name.clone());
            }
        }
        to_join
    }

    fn join_request(&self, room: String) -> ClientMsg {
        let after = self.last_seq.get(&room).copied();
        ClientMsg::Join { room, after }
    }

    /// Notes the store a welcome came from; another one than the outbox names forgets
    /// every room's cursor and what of the outbox names a `seq`. Returns whether the
    /// outbox changed.
    fn epoch_is(&mut self, epoch: &str) -> bool {
        match self.outbox.epoch.as_deref() {
            Some(seen) if seen == epoch => return false,
            Some(_) => {
                self.last_seq.clear();
                self.outbox.pending.retain(|p| p.change.is_none());
                for p in &mut self.outbox.pending {
                    p.reply_to = None;
                }
            }
            None => {}
        }
        self.outbox.epoch = Some(epoch.to_owned());
        true
    }

    fn saw(&mut self, room: &str, seq: u64) {
        if seq == 0 {
            // An empty room: a re-join is a fresh one, not a replay from the start.
            return;
        }
        let last = self.last_seq.entry(room.to_owned()).or_default();
        *last = (*last).max(seq);
    }
}

impl Pending {
    fn to_send(&self) -> ClientMsg {
        let (room, client_id) = (self.room.clone(), self.client_id.clone());
        match self.change.clone() {
            None => ClientMsg::Send {
                room,
                body: self.body.clone(),
                client_id,
                reply_to: self.reply_to,
                files: self.file_ids(),
            },
            Some(PendingChange::Edit { seq, body }) => ClientMsg::Edit {
                room,
                seq,
                body,
                client_id,
            },
            Some(PendingChange::Delete { seq }) => ClientMsg::Delete {
                room,
                seq,
                client_id,
            },
            Some(PendingChange::React { seq, emoji }) => ClientMsg::React {
                room,
                seq,
                emoji,
                client_id,
            },
            Some(PendingChange::Unreact { seq, emoji }) => ClientMsg::Unreact {
                room,
                seq,
                emoji,
                client_id,
            },
        }
    }
}

mod files;

#[cfg(test)]
mod tests;
