//! Managing rooms: creating public and private ones, direct conversations,
//! invitations, removals, renames, deletions, and the per-person room lists that
//! follow from them.
//!
//! Every request names a room by id and goes through [`Hub::visible_room`] or
//! [`Hub::check_member`] first, so a room the requester may not know of is answered as
//! unknown before any other rule is looked at: whether it exists, who owns it, what
//! kind it is.

use std::{collections::HashMap, time::Instant};

use confab_shared::{
    DEFAULT_ROOM, ErrorCode, RESERVED_ROOM_PREFIX, RoomInfo, RoomKind, RoomName, ServerMsg,
    Username,
};
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};

use super::{
    Conn, ConnId, Hub, Refusal, Room,
    delivery::{deliver, encode},
    now_ms,
    pending::AccessChange,
};
use crate::{
    ratelimit::{Bucket, RateLimit, Verdict},
    store::Write,
};

impl Room {
    /// Whether `conn` may rename, delete and remove members. Never a guest, whose
    /// username the next guest of the same name gets.
    fn managed_by(&self, conn: &Conn) -> bool {
        conn.is_admin()
            || (!conn.is_guest()
                && self.owner.is_some()
                && self.owner.as_deref() == conn.username())
    }
}

impl Hub {
    pub(super) fn create_room(
        &mut self,
        id: ConnId,
        room: RoomName,
        private: bool,
    ) -> Result<(), Refusal> {
        self.take_room_change(id, &room)?;
        let Some(conn) = self.conns.get(&id) else {
            return Ok(());
        };
        if room.as_str().starts_with(RESERVED_ROOM_PREFIX) {
            return Err(Refusal::about(
                &room,
                ErrorCode::InvalidRoom,
                format!("room names starting with {RESERVED_ROOM_PREFIX} are the server's"),
            ));
        }
        if private && conn.is_guest() {
            return Err(forbidden(&room, "guests cannot create private rooms"));
        }
        // A guest owns nothing: their username is free for the next guest to take, who
        // must not inherit the room. Only administrators manage a guest's room.
        let owner = conn
            .username()
            .filter(|_| !conn.is_guest())
            .map(str::to_owned);
        if !private && self.rooms.contains_key(room.as_str()) {
            return Err(Refusal::about(
                &room,
                ErrorCode::RoomExists,
                format!("#{room} already exists"),
            ));
        }
        let counted = self
            .rooms
            .values()
            .filter(|r| r.kind != RoomKind::Direct)
            .count();
        if counted >= self.settings.max_rooms {
            return Err(Refusal::about(
                &room,
                ErrorCode::TooManyRooms,
                format!(
                    "this server holds at most {} rooms",
                    self.settings.max_rooms
                ),
            ));
        }
        let (room_id, kind) = if private {
            (self.new_private_id(), RoomKind::Private)
        } else {
            (room.to_string(), RoomKind::Public)
        };
        // Queued before any message to the room, so the writer stores it first.
        self.submit(
            Write::CreateRoom {
                room: room_id.clone(),
                ts: now_ms(),
                kind,
                title: room.to_string(),
                owner: owner.clone(),
            },
            None,
        )?;
        let mut created = Room::new(kind, room.into_string(), owner.clone());
        if let (RoomKind::Private, Some(owner)) = (kind, &owner) {
            created.members.insert(owner.clone());
            self.submit_quietly(Write::AddMember {
                room: room_id.clone(),
                name: owner.clone(),
            });
        }
        self.rooms.insert(room_id.clone(), created);
        self.room_changed(&room_id);
        // Answered once stored (`Hub::room_stored`): a client that goes on to upload a
        // file to the room, on this node or another, finds it in the database.
        self.creations.push_back((id, room_id));
        Ok(())
    }

    /// A room's creation was committed (`Ok`) or failed: if it is the oldest creation
    /// waiting, its creator is answered. A failed one is undone. Returns whether it was
    /// one.
    pub(super) fn room_stored(&mut self, room: &str, result: Result<(), &str>) -> bool {
        if self.creations.front().map(|(_, r)| r.as_str()) != Some(room) {
            return false;
        }
        let Some((requester, room)) = self.creations.pop_front() else {
            return false;
        };
        match result {
            Ok(()) => self.tell_requester(requester, &room, true),
            Err(e) => {
                tracing::error!(room, "room not stored: {e}");
                self.room_deleted(&room);
                let msg = ServerMsg::Error {
                    code: ErrorCode::Unavailable,
                    message: format!("the room could not be stored ({e}); retry"),
                    room: Some(room),
                    client_id: None,
                    retry_after_ms: None,
                };
                self.reply(requester, &msg);
            }
        }
        true
    }

    /// Opens the conversation between the requester and `user`, creating it the first
    /// time, and joins the requester to it.
    pub(super) fn open_direct(&mut self, id: ConnId, user: Username) -> Result<(), Refusal> {
        let Some(conn) = self.conns.get(&id) else {
            return Ok(());
        };
        if conn.is_guest() {
            return Err(Refusal::new(
                ErrorCode::Forbidden,
                "guests cannot open direct conversations",
            ));
        }
        let me = self.username_of(id);
        let peer = user.as_str();
        if !self.known_user(peer) {
            return Err(Refusal::new(
                ErrorCode::UnknownUser,
                format!("there is no user {peer:?}"),
            ));
        }
        if peer == me {
            return Err(Refusal::new(
                ErrorCode::Forbidden,
                "a direct conversation needs someone else",
            ));
        }
        let room_id = direct_room_id(&me, peer);
        if !self.rooms.contains_key(&room_id) {
            self.submit(
                Write::CreateRoom {
                    room: room_id.clone(),
                    ts: now_ms(),
                    kind: RoomKind::Direct,
                    title: String::new(),
                    owner: None,
                },
                None,
            )?;
            let mut room = Room::new(RoomKind::Direct, String::new(), None);
            for member in [me.as_str(), peer] {
                room.members.insert(member.to_owned());
                self.submit_quietly(Write::AddMember {
                    room: room_id.clone(),
                    name: member.to_owned(),
                });
            }
            self.rooms.insert(room_id.clone(), room);
            // The opener's client needs the entry before `joined`; the peer hears of it
            // with the next changes.
            self.room_changed_for(&room_id, [peer.to_owned()]);
            self.tell_requester(id, &room_id, false);
        }
        let room = RoomName::parse(&room_id).map_err(|_| unknown_room_id(&room_id))?;
        self.join(id, room, None)
    }

    pub(super) fn invite(
        &mut self,
        id: ConnId,
        room: RoomName,
        user: Username,
    ) -> Result<(), Refusal> {
        self.check_member(id, &room)?;
        self.take_room_change(id, &room)?;
        if self.rooms[room.as_str()].kind != RoomKind::Private {
            return Err(forbidden(
                &room,
                "only private rooms take invitations: anyone can join a public room",
            ));
        }
        let invitee = user.as_str();
        if !self.known_user(invitee) {
            return Err(Refusal::about(
                &room,
                ErrorCode::UnknownUser,
                format!("there is no user {invitee:?}"),
            ));
        }
        if self.rooms[room.as_str()].members.contains(invitee) {
            // The inviter's confirmation: nothing to store.
            self.send_members(room.as_str());
            return Ok(());
        }
        self.submit_access(
            id,
            AccessChange::Invite {
                room: room.into_string(),
                user: invitee.to_owned(),
            },
        )
    }

    pub(super) fn remove(
        &mut self,
        id: ConnId,
        room: RoomName,
        user: Username,
    ) -> Result<(), Refusal> {
        self.visible_room(id, &room)?;
        self.take_room_change(id, &room)?;
        let r = self.visible_room(id, &room)?;
        let managed = self.conns.get(&id).is_some_and(|s| r.managed_by(s));
        if r.kind != RoomKind::Private {
            return Err(forbidden(
                &room,
                "only private rooms have members to remove",
            ));
        }
        if !managed {
            return Err(forbidden(&room, "only the room's owner can remove members"));
        }
        let target = user.as_str();
        if r.owner.as_deref() == Some(target) {
            return Err(forbidden(&room, "the owner cannot be removed"));
        }
        if !r.members.contains(target) {
            return Err(Refusal::about(
                &room,
                ErrorCode::UnknownUser,
                format!("{target} is not a member of this room"),
            ));
        }
        let change = if r.members.len() == 1 {
            // Its last member: the room goes with them, as when they leave.
            AccessChange::Delete {
                room: room.into_string(),
            }
        } else {
            AccessChange::Remove {
                room: room.into_string(),
                user: target.to_owned(),
            }
        };
        self.submit_access(id, change)
    }

    pub(super) fn rename(
        &mut self,
        id: ConnId,
        room: RoomName,
        title: RoomName,
    ) -> Result<(), Refusal> {
        self.visible_room(id, &room)?;
        self.take_room_change(id, &room)?;
        let r = self.visible_room(id, &room)?;
        if r.kind == RoomKind::Direct {
            return Err(forbidden(&room, "a direct conversation has no title"));
        }
        if !self.conns.get(&id).is_some_and(|s| r.managed_by(s)) {
            return Err(forbidden(&room, "only the room's owner can rename it"));
        }
        self.submit_access(
            id,
            AccessChange::Rename {
                room: room.into_string(),
                title: title.into_string(),
            },
        )
    }

    pub(super) fn delete(&mut self, id: ConnId, room: RoomName) -> Result<(), Refusal> {
        self.visible_room(id, &room)?;
        self.take_room_change(id, &room)?;
        let r = self.visible_room(id, &room)?;
        if room.as_str() == DEFAULT_ROOM {
            return Err(forbidden(&room, "#general cannot be deleted"));
        }
        if r.kind == RoomKind::Direct {
            return Err(forbidden(&room, "a direct conversation cannot be deleted"));
        }
        if !self.conns.get(&id).is_some_and(|s| r.managed_by(s)) {
            return Err(forbidden(&room, "only the room's owner can delete it"));
        }
        self.submit_access(
            id,
            AccessChange::Delete {
                room: room.into_string(),
            },
        )
    }

    /// Deletes a room with its messages, once the writer has taken the deletion (a full
    /// queue refuses it as unavailable, and nothing changes). How a private room ends
    /// when its last member leaves.
    pub(super) fn delete_room(&mut self, room: &str) -> Result<(), Refusal> {
        self.submit(
            Write::DeleteRoom {
                room: room.to_owned(),
            },
            None,
        )?;
        self.room_deleted(room);
        Ok(())
    }

    /// Takes a deleted room out of the hub: everyone in it gets `left`, everyone who saw
    /// it hears it is gone.
    pub(super) fn room_deleted(&mut self, room: &str) {
        // Its audience, while it is still there to ask.
        self.room_changed(room);
        let present: Vec<confab_shared::Person> = self
            .rooms
            .get(room)
            .map(|r| r.present.keys().map(|user| self.person(user)).collect())
            .unwrap_or_default();
        for who in &present {
            self.publish_presence(room, who, false);
        }
        let online: Vec<ConnId> = self
            .rooms
            .get(room)
            .map(|r| r.online.iter().copied().collect())
            .unwrap_or_default();
        for conn in online {
            if let Some(s) = self.conns.get_mut(&conn) {
                s.rooms.retain(|r| r != room);
                s.last_typing.remove(room);
            }
            self.reply(
                conn,
                &ServerMsg::Left {
                    room: room.to_owned(),
                },
            );
        }
        self.rooms.remove(room);
    }

    /// Takes one of the requester's room changes (creating, renaming, deleting, inviting,
    /// removing) from their per-person allowance, or refuses it as `rate_limited`.
    fn take_room_change(&mut self, id: ConnId, room: &RoomName) -> Result<(), Refusal> {
        let Some(user) = self.conns.get(&id).and_then(Conn::username) else {
            return Ok(());
        };
        take_allowance(
            &mut self.room_change_buckets,
            self.settings.room_changes,
            user,
            room,
            "too many room changes; wait a moment",
        )
    }

    /// Forgets the allowances that have filled up again: they are as a new one would be.
    pub(super) fn prune_room_change_buckets(&mut self, now: Instant) {
        self.room_change_buckets.retain(|_, b| !b.is_full(now));
        self.edit_buckets.retain(|_, b| !b.is_full(now));
    }

    /// Tells a room's online connections who its members are now.
    pub(super) fn send_members(&mut self, room: &str) {
        let Some(r) = self.rooms.get(room) else {
            return;
        };
        let frame = encode(&ServerMsg::Members {
            room: room.to_owned(),
            members: r.members.iter().map(|m| self.person(m)).collect(),
        });
        let online = r.online.iter().copied();
        deliver(&self.conns, &mut self.overflowed, online, &frame);
    }

    /// The rooms a connection may know of, as it should show them.
    pub(super) fn room_list_for(&self, id: ConnId) -> Vec<RoomInfo> {
        let Some(me) = self.conns.get(&id).and_then(|s| s.username()) else {
            return Vec::new();
        };
        self.rooms
            .iter()
            .filter(|(_, r)| r.visible_to(me))
            .map(|(name, r)| self.room_info(name, r, Some(me)))
            .collect()
    }

    /// A fresh id for a private room. Random, so that it says nothing about the room
    /// and cannot be guessed.
    fn new_private_id(&self) -> String {
        loop {
            let mut bytes = [0u8; 10];
            OsRng.fill_bytes(&mut bytes);
            let id = format!(
                "{RESERVED_ROOM_PREFIX}p{}",
                data_encoding::BASE32_NOPAD
                    .encode(&bytes)
                    .to_ascii_lowercase()
            );
            if !self.rooms.contains_key(&id) {
                return id;
            }
        }
    }
}

/// The id of the conversation between two users: the same whoever opens it.
pub(super) fn direct_room_id(a: &str, b: &str) -> String {
    let (first, second) = if a <= b { (a, b) } else { (b, a) };
    let digest = Sha256::digest(format!("{first}\n{second}").as_bytes());
    format!(
        "{RESERVED_ROOM_PREFIX}d{}",
        data_encoding::HEXLOWER.encode(&digest[..8])
    )
}

fn forbidden(room: &RoomName, message: &str) -> Refusal {
    Refusal::about(room, ErrorCode::Forbidden, message.to_owned())
}

fn unknown_room_id(room: &str) -> Refusal {
    Refusal::new(ErrorCode::UnknownRoom, format!("there is no room #{room}"))
}

/// Takes one request from `user`'s allowance in `buckets` (made with `limit` the first
/// time), or refuses it as `rate_limited`, saying when the next would be allowed.
pub(super) fn take_allowance(
    buckets: &mut HashMap<String, Bucket>,
    limit: RateLimit,
    user: &str,
    room: &RoomName,
    refusal: &str,
) -> Result<(), Refusal> {
    let now = Instant::now();
    let bucket = buckets
        .entry(user.to_owned())
        .or_insert_with(|| Bucket::new(limit, now));
    match bucket.take(now) {
        Verdict::Allow => Ok(()),
        // Going on regardless is no worse here than once: refused all the same.
        verdict @ (Verdict::Refuse { .. } | Verdict::Flooding) => {
            let retry_after = match verdict {
                Verdict::Refuse { retry_after } => retry_after,
                _ => bucket.next_token(),
            };
            Err(Refusal {
                retry_after_ms: Some(
                    u64::try_from(retry_after.as_millis())
                        .unwrap_or(u64::MAX)
                        .max(1),
                ),
                ..Refusal::about(room, ErrorCode::RateLimited, refusal.to_owned())
            })
        }
    }
}
