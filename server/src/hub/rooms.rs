//! Managing rooms: creating public and private ones, direct conversations,
//! invitations, removals, renames, deletions, and the per-person room lists that
//! follow from them.
//!
//! Every request names a room by id and goes through [`Hub::visible_room`] or
//! [`Hub::check_member`] first, so a room the requester may not know of is answered as
//! unknown before any other rule is looked at: whether it exists, who owns it, what
//! kind it is.

use confab_shared::{
    DEFAULT_ROOM, ErrorCode, Person, RESERVED_ROOM_PREFIX, RoomInfo, RoomKind, RoomName, ServerMsg,
    Username,
};
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};

use super::{
    Conn, ConnId, Hub, Refusal, Room,
    delivery::{deliver, encode},
    now_ms,
};
use crate::store::Write;

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
        match kind {
            RoomKind::Public => self.send_room_lists(|_| true, Some((id, &room_id))),
            _ => {
                let owner = owner.unwrap_or_default();
                self.send_room_lists(|h| h == owner, Some((id, &room_id)));
            }
        }
        Ok(())
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
            self.send_room_lists(|h| h == me || h == peer, None);
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
        if !self.rooms[room.as_str()].members.contains(invitee) {
            if let Some(r) = self.rooms.get_mut(room.as_str()) {
                r.members.insert(invitee.to_owned());
            }
            self.submit_quietly(Write::AddMember {
                room: room.to_string(),
                name: invitee.to_owned(),
            });
            self.send_room_lists(|h| h == invitee, None);
        }
        // Also the inviter's confirmation when the invitee was a member already.
        self.send_members(room.as_str());
        Ok(())
    }

    pub(super) fn remove(
        &mut self,
        id: ConnId,
        room: RoomName,
        user: Username,
    ) -> Result<(), Refusal> {
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
        self.end_membership(room.as_str(), target)
    }

    pub(super) fn rename(
        &mut self,
        id: ConnId,
        room: RoomName,
        title: RoomName,
    ) -> Result<(), Refusal> {
        let r = self.visible_room(id, &room)?;
        if r.kind == RoomKind::Direct {
            return Err(forbidden(&room, "a direct conversation has no title"));
        }
        if !self.conns.get(&id).is_some_and(|s| r.managed_by(s)) {
            return Err(forbidden(&room, "only the room's owner can rename it"));
        }
        self.submit(
            Write::RenameRoom {
                room: room.to_string(),
                title: title.to_string(),
            },
            None,
        )?;
        let Some(r) = self.rooms.get_mut(room.as_str()) else {
            return Ok(());
        };
        r.title = title.into_string();
        // Who can see it, as of now; the room list itself is read from the hub.
        let viewers = Room {
            members: r.members.clone(),
            ..Room::new(r.kind, String::new(), None)
        };
        self.send_room_lists_to_viewers(&viewers);
        Ok(())
    }

    pub(super) fn delete(&mut self, id: ConnId, room: RoomName) -> Result<(), Refusal> {
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
        self.delete_room(room.as_str())
    }

    /// Deletes a room with its messages, once the writer has taken the deletion (a full
    /// queue refuses it as unavailable, and nothing changes): everyone in it gets `left`,
    /// everyone who saw it a room list without it. Also how a private room ends when its
    /// last member goes.
    pub(super) fn delete_room(&mut self, room: &str) -> Result<(), Refusal> {
        self.submit(
            Write::DeleteRoom {
                room: room.to_owned(),
            },
            None,
        )?;
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
        let Some(gone) = self.rooms.remove(room) else {
            return Ok(());
        };
        self.send_room_lists_to_viewers(&gone);
        Ok(())
    }

    /// Sends every connection that can see `room` (by [`Room::visible_to`]) its room list
    /// again. `room` may already be out of the hub, as after a deletion.
    fn send_room_lists_to_viewers(&mut self, room: &Room) {
        self.send_room_lists(|h| room.visible_to(h), None);
    }

    /// Sends each identified connection whose username `concerned` accepts its own room
    /// list; the connection in `created` learns which room its request made.
    pub(super) fn send_room_lists(
        &mut self,
        concerned: impl Fn(&str) -> bool,
        created: Option<(ConnId, &str)>,
    ) {
        let lists: Vec<(ConnId, ServerMsg)> = self
            .conns
            .iter()
            .filter(|(_, s)| s.username().is_some_and(&concerned))
            .map(|(sid, _)| {
                let created = created
                    .filter(|(creator, _)| creator == sid)
                    .map(|(_, room)| room.to_owned());
                let rooms = self.room_list_for(*sid);
                (*sid, ServerMsg::Rooms { rooms, created })
            })
            .collect();
        for (sid, msg) in lists {
            self.reply(sid, &msg);
        }
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
            .map(|(name, r)| {
                let peer: Option<Person> = (r.kind == RoomKind::Direct).then(|| {
                    let other = r.members.iter().find(|m| *m != me).map_or(me, |m| m);
                    self.person(other)
                });
                RoomInfo {
                    name: name.clone(),
                    title: peer
                        .as_ref()
                        .map_or_else(|| r.title.clone(), |p| p.name.clone()),
                    kind: r.kind,
                    owner: r.owner.clone(),
                    online: u32::try_from(r.present.len()).unwrap_or(u32::MAX),
                    peer,
                    member: r.members.contains(me),
                }
            })
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
