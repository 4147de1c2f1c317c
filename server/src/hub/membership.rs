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
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::{
    Conn, ConnId, Hub, Refusal,
    access::unknown_room,
    delivery::{deliver, encode, encode_spliced},
    messages::history_unavailable,
    reads::{Found, Pending, Read, ReadKind},
};
use crate::store::{Page, Write};

/// How soon a client whose cursor is ahead of this node (in a cluster) tries again:
/// about a gap read's time.
const CATCHING_UP_RETRY_MS: u64 = 100;

impl Hub {
    /// Joins a room afresh (with its recent history), or resumes after the message
    /// `after`: a replay page while the connection is behind, the rest of it and the live
    /// traffic once it has caught up. Joining again without `after` while live answers
    /// `joined` without history: the connection has it already (everything since it went
    /// live came to it live), and resending a page of history on every repeat would
    /// make a cheap request an expensive answer. A client that wants history asks with
    /// `after` or `fetch_history`.
    ///
    /// Reading history happens off the hub's thread (see `reads.rs`); the answer is
    /// [`Hub::finish_join`]. Until then the room's live messages are kept for this
    /// connection, also when it was live already (a resume with `after`), so they follow
    /// the reply instead of overtaking it. A connection whose read is in flight counts as
    /// not live: a second `join` replaces the first.
    pub(super) fn join(
        &mut self,
        id: ConnId,
        room: RoomName,
        after: Option<u64>,
    ) -> Result<(), Refusal> {
        self.visible_room(id, &room)?;
        let in_rooms = self.conns.get(&id).map_or(0, Conn::room_count);
        let Some(r) = self.rooms.get(room.as_str()) else {
            return Err(unknown_room(&room));
        };
        let reading = r.reading.contains_key(&id);
        if !r.online.contains(&id) && !reading && in_rooms >= self.settings.max_rooms_per_connection
        {
            return Err(Refusal::about(
                &room,
                ErrorCode::TooManyRooms,
                format!(
                    "one connection may be in at most {} rooms: leave one first",
                    self.settings.max_rooms_per_connection
                ),
            ));
        }
        let live = r.online.contains(&id) && !reading;
        let last_seq = r.last_seq;
        // An account's join reads its read marker and unread counts too, even when there
        // is no history to send; a guest has none.
        let account = self.conns.get(&id).is_some_and(|c| !c.is_guest());
        let nothing_new = ReadKind::After {
            after: last_seq,
            limit: limits::REPLAY_PAGE,
        };
        let read = match after {
            None if live => account.then_some(nothing_new),
            None => Some(ReadKind::Recent {
                limit: self.settings.history_on_join,
            }),
            Some(after) if after > last_seq && self.cluster_behind(id, &room, after) => {
                return Err(Refusal {
                    retry_after_ms: Some(CATCHING_UP_RETRY_MS),
                    ..Refusal::about(
                        &room,
                        ErrorCode::Unavailable,
                        "this server is catching up with the room; retry".to_owned(),
                    )
                });
            }
            Some(after) if after >= last_seq => account.then_some(nothing_new),
            Some(after) => Some(ReadKind::After {
                after,
                limit: limits::REPLAY_PAGE,
            }),
        };
        match read {
            Some(kind) => self.request_read(id, &room, last_seq, kind),
            None => {
                // Whatever a replaced read kept is at most `last_seq`, which the client
                // has: nothing of it is owed.
                self.take_pending(id, room.as_str());
                let page = Found {
                    page: Page {
                        messages: Vec::new(),
                        through: last_seq,
                    },
                    ..Found::default()
                };
                self.joined(id, &room, page, None, Vec::new());
                Ok(())
            }
        }
    }

    /// The answer to a join's read: a replay page if the connection is still behind
    /// (it stays off the live set, and what was kept for it is dropped: the next page
    /// holds it), else `joined` and then the live messages kept meanwhile, without
    /// those the reply holds. Dropped if the read was replaced, the connection left or
    /// went; answered as a fresh request would be if the room went or the person may
    /// no longer see it.
    pub(super) fn finish_join(
        &mut self,
        read: Read,
        result: Result<Found, String>,
        encoded: Option<String>,
    ) {
        let id = read.conn;
        let room = &read.room;
        let awaited = self
            .rooms
            .get(room.as_str())
            .and_then(|r| r.reading.get(&id))
            .is_some_and(|p| p.ticket == read.ticket);
        let still_joining = self
            .conns
            .get(&id)
            .is_some_and(|c| c.reading.iter().any(|r| r == room.as_str()));
        if !awaited {
            if still_joining && !self.rooms.contains_key(room.as_str()) {
                // Deleted during the read.
                self.take_pending(id, room.as_str());
                self.reply(id, &unknown_room(room).into_msg());
            }
            return;
        }
        let Some(pending) = self.take_pending(id, room.as_str()) else {
            return;
        };
        if let Err(refusal) = self.visible_room(id, room) {
            self.reply(id, &refusal.into_msg());
            return;
        }
        let was_online = self.rooms[room.as_str()].online.contains(&id);
        let found = match result {
            Ok(found) => found,
            Err(e) => {
                // As before the read: a live connection stays live and gets what it
                // was kept; the client retries the resume.
                if was_online {
                    self.flush_kept(id, pending, read.until);
                }
                self.reply(id, &history_unavailable(room, &e).into_msg());
                return;
            }
        };
        let behind = found.page.through < read.until;
        if behind {
            if was_online {
                self.go_offline_quietly(id, room.as_str());
            }
            let through = found.page.through;
            let replay = |messages| ServerMsg::Replay {
                room: room.to_string(),
                through,
                messages,
            };
            let spliced = encoded
                .as_deref()
                .and_then(|json| encode_spliced(&replay(Vec::new()), json));
            let frame = spliced.unwrap_or_else(|| encode(&replay(found.page.messages)));
            self.reply_frame(id, &frame);
            return;
        }
        let kept = pending
            .buffer
            .into_iter()
            .filter(|(seq, _)| *seq > read.until)
            .map(|(_, frame)| frame)
            .collect();
        self.joined(id, room, found, encoded.as_deref(), kept);
    }

    /// Sends a live connection what was kept for it during a read that failed.
    fn flush_kept(&mut self, id: ConnId, pending: Pending, until: u64) {
        for (seq, frame) in pending.buffer {
            if seq > until {
                deliver(
                    &self.conns,
                    &mut self.overflowed,
                    std::iter::once(id),
                    &frame,
                );
            }
        }
    }

    /// Makes the connection live in the room and tells it so with `joined` (and
    /// `history`), followed by the live messages `kept` for it during its read.
    fn joined(
        &mut self,
        id: ConnId,
        room: &RoomName,
        found: Found,
        encoded: Option<&str>,
        kept: Vec<Utf8Bytes>,
    ) {
        let was_online = self
            .rooms
            .get(room.as_str())
            .is_some_and(|r| r.online.contains(&id));
        let new_member = !was_online && self.go_live(id, room);
        let Some(r) = self.rooms.get(room.as_str()) else {
            return;
        };
        // A public room's members are everyone who ever joined it: listing them all
        // would make each join cost megabytes in a big room. Those online and a count
        // are what a client shows; a private room's members came by invitation.
        let listed: Box<dyn Iterator<Item = &String>> = match r.kind {
            RoomKind::Public => Box::new(r.present.keys()),
            RoomKind::Private | RoomKind::Direct => Box::new(r.members.iter()),
        };
        let unread = found.unread.unwrap_or_default();
        // Those online only on other nodes of a cluster count as online here too.
        let elsewhere: Vec<&Person> = self.online_only_elsewhere(r).collect();
        let mut members: Vec<Person> = listed.map(|m| self.person(m)).collect();
        if r.kind == RoomKind::Public {
            members.extend(elsewhere.iter().map(|p| (*p).clone()));
        }
        let mut online: Vec<String> = r.present.keys().cloned().collect();
        online.extend(elsewhere.iter().map(|p| p.user.clone()));
        let mut joined = ServerMsg::Joined {
            room: room.to_string(),
            members,
            member_count: r.member_count(),
            online,
            through: found.page.through,
            read: unread.read,
            unread: unread.messages,
            mentions: unread.mentions,
            history: Vec::new(),
        };
        let spliced = encoded.and_then(|json| encode_spliced(&joined, json));
        let frame = match spliced {
            Some(frame) => frame,
            None => {
                if let ServerMsg::Joined { history: h, .. } = &mut joined {
                    *h = found.page.messages;
                }
                encode(&joined)
            }
        };
        self.reply_frame(id, &frame);
        for frame in kept {
            deliver(
                &self.conns,
                &mut self.overflowed,
                std::iter::once(id),
                &frame,
            );
        }
        if new_member {
            // Their other tabs and devices follow the rooms they belong to: the room
            // list tells them this one is theirs now.
            let user = self.username_of(id);
            self.room_changed_for(room.as_str(), [user]);
        }
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
        let member_count = r.member_count();
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
            self.publish_presence(room.as_str(), &person, true);
        }
        // Seen online already if they are on another node.
        if arrived && !self.online_elsewhere(room.as_str(), &person.user) {
            let presence = ServerMsg::Presence {
                room: room.to_string(),
                who: person,
                event: PresenceEvent::Joined,
                member_count,
            };
            self.tell_others(room.as_str(), id, &presence);
        }
        stored_member
    }

    /// Takes a connection out of a room's live set. Returns whether that was its user's
    /// last connection there, so the caller announces the departure.
    fn go_offline_quietly(&mut self, id: ConnId, room: &str) -> bool {
        let person = self.conns.get(&id).and_then(|c| c.person.clone());
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.rooms.retain(|r| r != room);
            conn.last_typing.remove(room);
        }
        let (Some(r), Some(person)) = (self.rooms.get_mut(room), person) else {
            return false;
        };
        if !r.online.remove(&id) {
            return false;
        }
        match r.present.get_mut(&person.user) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            Some(_) => {
                r.present.remove(&person.user);
                self.publish_presence(room, &person, false);
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
        if self.go_offline_quietly(id, room) && !self.online_elsewhere(room, &person.user) {
            self.announce(room, person, PresenceEvent::Left);
        }
    }

    /// Tells everyone live in the room that `who` arrived or left.
    pub(super) fn announce(&mut self, room: &str, who: Person, event: PresenceEvent) {
        let Some(r) = self.rooms.get(room) else {
            return;
        };
        let frame = encode(&ServerMsg::Presence {
            room: room.to_owned(),
            who,
            event,
            member_count: r.member_count(),
        });
        let online = r.online.iter().copied();
        deliver(&self.conns, &mut self.overflowed, online, &frame);
    }

    /// Ends the requester's membership, on all their connections; a direct conversation
    /// cannot be left and is only closed on this one.
    pub(super) fn leave(&mut self, id: ConnId, room: RoomName) -> Result<(), Refusal> {
        // Leaving during a join's read takes the join back: its answer is dropped.
        let joining = self.take_pending(id, room.as_str()).is_some();
        let online = self
            .rooms
            .get(room.as_str())
            .is_some_and(|r| r.online.contains(&id));
        if joining && !online {
            self.reply(
                id,
                &ServerMsg::Left {
                    room: room.into_string(),
                },
            );
            return Ok(());
        }
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
        let is_theirs = |s: &ConnId| self.conns.get(s).and_then(Conn::username) == Some(username);
        let theirs: Vec<ConnId> = self.rooms[room]
            .online
            .iter()
            .copied()
            .filter(is_theirs)
            .collect();
        let joining: Vec<ConnId> = self.rooms[room]
            .reading
            .keys()
            .copied()
            .filter(is_theirs)
            .collect();
        // Their joins in flight end here too: no history reaches a removed member.
        for conn in joining {
            self.take_pending(conn, room);
            if !theirs.contains(&conn) {
                self.reply(
                    conn,
                    &ServerMsg::Left {
                        room: room.to_owned(),
                    },
                );
            }
        }
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
