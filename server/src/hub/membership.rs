//! Joining and leaving rooms, and the presence that follows.
//!
//! The resume invariant lives in [`Hub::join`]: a connection being replayed what it missed
//! is not in the room's live set until the replay has caught up, and the page that
//! catches up is sent in the same step that puts it back, so nothing arrives both
//! replayed and live, and nothing falls between. Presence is per person, not per
//! connection: someone with two tabs arrives once and leaves once. An account's
//! membership outlives its connections and ends by leaving or being removed; when a
//! private room's owner leaves, the room is handed to someone still in it, since nobody
//! outside could ever manage it again, and when its last member goes, the room goes too.

use confab_shared::{ErrorCode, Person, PresenceEvent, RoomKind, RoomName, ServerMsg, limits};

use super::{
    Conn, ConnId, Hub, Refusal,
    access::unknown_room,
    delivery::{deliver, encode},
    messages::history_unavailable,
};
use crate::store::Write;

impl Hub {
    /// Joins a room afresh (with its recent history), or resumes after the message
    /// `after`: a replay page while the connection is behind, the rest of it and the live
    /// traffic once it has caught up. Joining again without `after` while live answers
    /// `joined` without history: the connection has it already (everything since it went
    /// live came to it live), and resending a page of history on every repeat would
    /// make a cheap request an expensive answer. A client that wants history asks with
    /// `after` or `fetch_history`.
    pub(super) fn join(
        &mut self,
        id: ConnId,
        room: RoomName,
        after: Option<u64>,
    ) -> Result<(), Refusal> {
        self.visible_room(id, &room)?;
        let in_rooms = self.conns.get(&id).map_or(0, |s| s.rooms.len());
        let Some(r) = self.rooms.get_mut(room.as_str()) else {
            return Err(unknown_room(&room));
        };
        if !r.online.contains(&id) && in_rooms >= self.settings.max_rooms_per_connection {
            return Err(Refusal::about(
                &room,
                ErrorCode::TooManyRooms,
                format!(
                    "one connection may be in at most {} rooms: leave one first",
                    self.settings.max_rooms_per_connection
                ),
            ));
        }
        // Replay pages take a connection off the live set (silently: the person is still
        // there) until the replay has caught up, so nothing arrives both replayed and
        // live. Within one call nothing else happens: the hub is single-threaded.
        let was_online = r.online.contains(&id);
        let last_seq = r.last_seq;
        let store_failed = |e| history_unavailable(&room, &e);
        let history = match after {
            None if was_online => Vec::new(),
            None => self
                .store
                .before(room.as_str(), last_seq + 1, self.settings.history_on_join)
                .map_err(store_failed)?,
            Some(after) if after >= last_seq => Vec::new(),
            Some(after) => {
                let page = self
                    .store
                    .after(room.as_str(), after, last_seq, limits::REPLAY_PAGE)
                    .map_err(store_failed)?;
                if page.last().is_some_and(|m| m.seq < last_seq) {
                    if was_online {
                        self.go_offline_quietly(id, room.as_str());
                    }
                    self.reply(
                        id,
                        &ServerMsg::Replay {
                            room: room.to_string(),
                            messages: page,
                        },
                    );
                    return Ok(());
                }
                page
            }
        };
        let new_member = !was_online && self.go_live(id, &room);
        let r = &self.rooms[room.as_str()];
        let joined = ServerMsg::Joined {
            room: room.to_string(),
            members: r.members.iter().map(|m| self.person(m)).collect(),
            online: r.present.keys().cloned().collect(),
            history,
        };
        self.reply(id, &joined);
        if new_member {
            // Their other tabs and devices follow the rooms they belong to: the room
            // list tells them this one is theirs now.
            let user = self.username_of(id);
            self.room_changed_for(room.as_str(), [user]);
        }
        Ok(())
    }

    /// Puts a connection in a room's live set, making its user a member of a public room
    /// and announcing them if this is their first connection there. Returns whether an
    /// account became a member just now.
    fn go_live(&mut self, id: ConnId, room: &RoomName) -> bool {
        let Some(person) = self.conns.get(&id).and_then(|s| s.person.clone()) else {
            return false;
        };
        let Some(r) = self.rooms.get_mut(room.as_str()) else {
            return false;
        };
        r.online.insert(id);
        let conns_here = r.present.entry(person.user.clone()).or_insert(0);
        *conns_here += 1;
        let arrived = *conns_here == 1;
        let new_member = r.members.insert(person.user.clone());
        let stored_member = new_member && !person.guest;
        if let Some(conn) = self.conns.get_mut(&id)
            && !conn.rooms.iter().any(|r| r == room.as_str())
        {
            conn.rooms.push(room.to_string());
        }
        // Guests belong to a room only while they are there: storing them would keep
        // every name a guest ever used in the room's members for good.
        if stored_member {
            self.submit_quietly(Write::AddMember {
                room: room.to_string(),
                name: person.user.clone(),
            });
        }
        if arrived {
            let presence = ServerMsg::Presence {
                room: room.to_string(),
                who: person,
                event: PresenceEvent::Joined,
            };
            self.tell_others(room.as_str(), id, &presence);
        }
        stored_member
    }

    /// Takes a connection out of a room's live set. Returns whether that was its user's
    /// last connection there, so the caller announces the departure.
    fn go_offline_quietly(&mut self, id: ConnId, room: &str) -> bool {
        let username = self
            .conns
            .get(&id)
            .and_then(Conn::username)
            .map(str::to_owned);
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.rooms.retain(|r| r != room);
            conn.last_typing.remove(room);
        }
        let (Some(r), Some(username)) = (self.rooms.get_mut(room), username) else {
            return false;
        };
        if !r.online.remove(&id) {
            return false;
        }
        match r.present.get_mut(&username) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            Some(_) => {
                r.present.remove(&username);
                true
            }
            None => false,
        }
    }

    /// Takes a connection out of a room's live set and tells the others if its user is
    /// gone from the room.
    pub(super) fn go_offline(&mut self, id: ConnId, room: &str) {
        let Some(person) = self.conns.get(&id).and_then(|s| s.person.clone()) else {
            return;
        };
        if self.go_offline_quietly(id, room) {
            self.announce(room, person, PresenceEvent::Left);
        }
    }

    /// Tells everyone live in the room that `who` arrived or left.
    fn announce(&mut self, room: &str, who: Person, event: PresenceEvent) {
        let Some(r) = self.rooms.get(room) else {
            return;
        };
        let frame = encode(&ServerMsg::Presence {
            room: room.to_owned(),
            who,
            event,
        });
        let online = r.online.iter().copied();
        deliver(&self.conns, &mut self.overflowed, online, &frame);
    }

    /// Ends the requester's membership, on all their connections; a direct conversation
    /// cannot be left and is only closed on this one.
    pub(super) fn leave(&mut self, id: ConnId, room: RoomName) -> Result<(), Refusal> {
        self.check_member(id, &room)?;
        let username = self.username_of(id);
        if self.rooms[room.as_str()].kind == RoomKind::Direct {
            // A conversation cannot be left, only closed on this device.
            self.go_offline(id, room.as_str());
            self.reply(
                id,
                &ServerMsg::Left {
                    room: room.into_string(),
                },
            );
            return Ok(());
        }
        let successor = self.hand_over(room.as_str(), &username);
        self.end_membership(room.as_str(), &username)?;
        if successor.is_some()
            && let Some(r) = self.rooms.get(room.as_str())
        {
            // Everyone left in the room sees who is in charge now.
            let members: Vec<String> = r.members.iter().cloned().collect();
            self.room_changed_for(room.as_str(), members);
        }
        Ok(())
    }

    /// When the owner of a private room leaves it while others remain, ownership passes
    /// to one of them (someone online if anyone is, else the first by username): nobody
    /// else could ever manage the room again, as only members may see it. Returns the
    /// new owner.
    fn hand_over(&mut self, room: &str, leaving: &str) -> Option<String> {
        let r = self.rooms.get_mut(room)?;
        if r.kind != RoomKind::Private || r.owner.as_deref() != Some(leaving) {
            return None;
        }
        let others = || r.members.iter().filter(|m| *m != leaving);
        let successor = others()
            .find(|m| r.present.contains_key(*m))
            .or_else(|| others().next())?
            .clone();
        r.owner = Some(successor.clone());
        self.submit_quietly(Write::SetOwner {
            room: room.to_owned(),
            owner: successor.clone(),
        });
        Some(successor)
    }

    /// Removes `username` from a room: every one of their connections in it is told it
    /// left, the rest of the room sees them go, and a private room drops off their
    /// room list. A private room's last member takes the room with them: nobody could
    /// see, join, manage or delete it any more, and it would count against the room cap
    /// for good. That deletion is refused as unavailable when the writer cannot take it,
    /// and then nothing changes.
    pub(super) fn end_membership(&mut self, room: &str, username: &str) -> Result<(), Refusal> {
        let Some(r) = self.rooms.get_mut(room) else {
            return Ok(());
        };
        if r.kind == RoomKind::Private && r.members.len() == 1 && r.members.contains(username) {
            return self.delete_room(room);
        }
        if r.members.contains(username) {
            self.submit_quietly(Write::RemoveMember {
                room: room.to_owned(),
                name: username.to_owned(),
            });
        }
        self.membership_ended(room, username);
        Ok(())
    }

    /// The in-memory side of [`Hub::end_membership`], also for a removal once it is
    /// stored ([`Hub::access_committed`]).
    pub(super) fn membership_ended(&mut self, room: &str, username: &str) {
        let Some(r) = self.rooms.get_mut(room) else {
            return;
        };
        r.members.remove(username);
        let theirs: Vec<ConnId> = self.rooms[room]
            .online
            .iter()
            .copied()
            .filter(|s| self.conns.get(s).and_then(Conn::username) == Some(username))
            .collect();
        for conn in theirs {
            self.go_offline(conn, room);
            self.reply(
                conn,
                &ServerMsg::Left {
                    room: room.to_owned(),
                },
            );
        }
        // A private room drops off their list; a public one stays, no longer theirs.
        self.room_changed_for(room, [username.to_owned()]);
        if self
            .rooms
            .get(room)
            .is_some_and(|r| r.kind == RoomKind::Private)
        {
            self.send_members(room);
        }
    }
}
