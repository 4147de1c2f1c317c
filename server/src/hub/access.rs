//! The access rule, and the refusals it gives.
//!
//! One rule decides who may know of a room: a connection may if the room is public or the
//! connection's user is one of its members. Every request about a room the connection may not
//! know is answered exactly as if the room did not exist, so that probing a private
//! room's id tells a non-member nothing, not even that it exists. Every request that
//! names a room passes through [`Hub::visible_room`] or [`Hub::check_member`] before
//! any other rule is looked at.

use confab_shared::{ErrorCode, RoomKind, RoomName};

use super::{Conn, ConnId, Hub, Refusal, Room};

impl Room {
    /// The access rule (see the module documentation).
    pub(super) fn visible_to(&self, username: &str) -> bool {
        self.kind == RoomKind::Public || self.members.contains(username)
    }
}

impl Hub {
    /// The room named `room`, if the connection may know it exists.
    pub(super) fn visible_room(&self, id: ConnId, room: &RoomName) -> Result<&Room, Refusal> {
        let username = self.conns.get(&id).and_then(Conn::username);
        match (self.rooms.get(room.as_str()), username) {
            (Some(r), Some(username)) if r.visible_to(username) => Ok(r),
            _ => Err(unknown_room(room)),
        }
    }

    /// Whether the connection is in the room's live set, or joining it. A room it may not know of is
    /// unknown, not merely not joined.
    pub(super) fn check_member(&self, id: ConnId, room: &RoomName) -> Result<(), Refusal> {
        match self.rooms.get(room.as_str()) {
            // A join whose history is still being read counts: access was checked when
            // it was asked, and what the connection sends meanwhile is delivered to it
            // after its reply, like everything else that arrives during the read.
            Some(r) if r.online.contains(&id) || r.reading.contains_key(&id) => Ok(()),
            Some(_) => self
                .visible_room(id, room)
                .map(|_| ())
                .and(Err(not_in_room(room))),
            None => Err(unknown_room(room)),
        }
    }
}

pub(super) fn unknown_room(room: &RoomName) -> Refusal {
    Refusal::about(
        room,
        ErrorCode::UnknownRoom,
        format!("there is no room #{room}"),
    )
}

fn not_in_room(room: &RoomName) -> Refusal {
    Refusal::about(room, ErrorCode::NotInRoom, format!("join #{room} first"))
}
