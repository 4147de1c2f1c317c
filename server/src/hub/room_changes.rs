//! Telling sessions that rooms changed, without any one request costing O(everyone).
//!
//! Sending every signed-in session its whole room list whenever one room was created,
//! renamed or deleted made a storm of creations cost sessions × rooms per request. So a
//! change is only noted here ([`Hub::room_changed`]): which room, and who may see it
//! (everyone for a public room, its members for the others). At most once per
//! [`HubSettings::room_list_interval`](super::HubSettings) [`Hub::tick`] sends each
//! session one `rooms_changed` with the entries of the noted rooms it may see now, and the
//! ids of those it no longer may. The public part is encoded once and shared by every
//! session that is not a member of a changed room, so a flush costs one push per session
//! however many rooms changed. The requester of a change is answered at once by
//! [`Hub::tell_requester`], which its own per-person rate limit bounds.

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    mem,
    time::Instant,
};

use confab_shared::{RoomInfo, RoomKind, ServerMsg};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::{
    ConnId, Hub, Room,
    delivery::{deliver, encode},
};

/// Rooms changed since the last flush, and who is to hear of each.
#[derive(Debug, Default)]
pub(super) struct RoomChanges {
    /// Public rooms (created, renamed, deleted): everyone hears of them.
    public: BTreeSet<String>,
    /// Other rooms, by the username of each person concerned.
    personal: HashMap<String, BTreeSet<String>>,
    /// The last flush: the next may not come before one interval after it.
    last_flush: Option<Instant>,
}

impl RoomChanges {
    fn is_empty(&self) -> bool {
        self.public.is_empty() && self.personal.is_empty()
    }
}

impl Hub {
    /// Notes that `room` changed for everyone who may see it now; call it before a
    /// deletion takes the room out of the hub (or use [`Hub::room_changed_for`]).
    pub(super) fn room_changed(&mut self, room: &str) {
        let Some(r) = self.rooms.get(room) else {
            return;
        };
        if r.kind == RoomKind::Public {
            self.room_changes.public.insert(room.to_owned());
        } else {
            let members: Vec<String> = r.members.iter().cloned().collect();
            self.room_changed_for(room, members);
        }
    }

    /// Notes that `room` changed for these people only (an invitation, a removal, the
    /// members of a deleted private room).
    pub(super) fn room_changed_for(
        &mut self,
        room: &str,
        people: impl IntoIterator<Item = String>,
    ) {
        for person in people {
            self.room_changes
                .personal
                .entry(person)
                .or_default()
                .insert(room.to_owned());
        }
    }

    /// When [`Hub::tick`] has something to send next, if anything is waiting.
    pub fn next_tick(&self) -> Option<Instant> {
        let room_changes = (!self.room_changes.is_empty()).then(|| {
            self.room_changes
                .last_flush
                .map_or_else(Instant::now, |t| t + self.settings.room_list_interval)
        });
        room_changes
            .into_iter()
            .chain(self.cluster_deadline())
            .min()
    }

    /// Sends the noted room changes, if any and if an interval has passed since the last
    /// time. The hub thread calls it after every event and when [`Hub::next_tick`] comes.
    pub fn tick(&mut self, now: Instant) {
        let due = self
            .room_changes
            .last_flush
            .is_none_or(|t| t + self.settings.room_list_interval <= now);
        if due && !self.room_changes.is_empty() {
            self.flush_room_changes(now);
        }
        self.cluster_tick(now);
        self.settle();
    }

    /// Sends every identified session one `rooms_changed` with what it may see of the
    /// noted changes.
    pub(super) fn flush_room_changes(&mut self, now: Instant) {
        let public = mem::take(&mut self.room_changes.public);
        let personal = mem::take(&mut self.room_changes.personal);
        self.room_changes.last_flush = Some(now);
        self.prune_room_change_buckets(now);
        // What everyone is told about the public rooms, as seen by someone who belongs
        // to none of them.
        let mut shared = (Vec::new(), Vec::new());
        // People who see the public part differently (`member`), or have more.
        let mut own_view: HashSet<&str> = personal.keys().map(String::as_str).collect();
        for id in &public {
            match self.rooms.get(id) {
                Some(r) if r.kind == RoomKind::Public => {
                    shared.0.push(self.room_info(id, r, None));
                    own_view.extend(r.members.iter().map(String::as_str));
                }
                _ => shared.1.push(id.clone()),
            }
        }
        let shared_frame = (!shared.0.is_empty() || !shared.1.is_empty()).then(|| {
            encode(&ServerMsg::RoomsChanged {
                rooms: shared.0,
                removed: shared.1,
                created: None,
            })
        });
        let mut own_frames: HashMap<&str, Option<Utf8Bytes>> = HashMap::new();
        let mut sends: Vec<(ConnId, Utf8Bytes)> = Vec::new();
        for (&id, conn) in &self.conns {
            let Some(user) = conn.username() else {
                continue;
            };
            let frame = if own_view.contains(user) {
                own_frames
                    .entry(user)
                    .or_insert_with(|| {
                        let theirs = personal.get(user).into_iter().flatten();
                        let rooms: BTreeSet<&String> = public.iter().chain(theirs).collect();
                        self.changes_for(user, rooms).map(|m| encode(&m))
                    })
                    .clone()
            } else {
                shared_frame.clone()
            };
            if let Some(frame) = frame {
                sends.push((id, frame));
            }
        }
        for (id, frame) in sends {
            deliver(
                &self.conns,
                &mut self.overflowed,
                std::iter::once(id),
                &frame,
            );
        }
        self.settle();
    }

    /// `rooms_changed` for `user` about `rooms`, if there is anything to say.
    fn changes_for<'a>(
        &self,
        user: &str,
        rooms: impl IntoIterator<Item = &'a String>,
    ) -> Option<ServerMsg> {
        let (mut seen, mut removed) = (Vec::new(), Vec::new());
        for id in rooms {
            match self.rooms.get(id) {
                Some(r) if r.visible_to(user) => seen.push(self.room_info(id, r, Some(user))),
                _ => removed.push(id.clone()),
            }
        }
        (!seen.is_empty() || !removed.is_empty()).then_some(ServerMsg::RoomsChanged {
            rooms: seen,
            removed,
            created: None,
        })
    }

    /// Answers the requester of a change to `room` at once, with the room's entry as it
    /// sees it now (or its id among `removed`); `created` when its request made the room.
    pub(super) fn tell_requester(&mut self, id: ConnId, room: &str, created: bool) {
        let Some(user) = self.conns.get(&id).and_then(|c| c.username()) else {
            return;
        };
        let Some(ServerMsg::RoomsChanged { rooms, removed, .. }) =
            self.changes_for(user, [&room.to_owned()])
        else {
            return;
        };
        let msg = ServerMsg::RoomsChanged {
            rooms,
            removed,
            created: created.then(|| room.to_owned()),
        };
        self.reply(id, &msg);
    }

    /// A room's entry as `me` should see it; `None` for the view of someone who belongs
    /// to no room (the shared part of a flush).
    pub(super) fn room_info(&self, id: &str, r: &Room, me: Option<&str>) -> RoomInfo {
        let peer = (r.kind == RoomKind::Direct).then(|| {
            let me = me.unwrap_or_default();
            let other = r.members.iter().find(|m| *m != me).map_or(me, |m| m);
            self.person(other)
        });
        RoomInfo {
            name: id.to_owned(),
            title: peer
                .as_ref()
                .map_or_else(|| r.title.clone(), |p| p.name.clone()),
            kind: r.kind,
            owner: r.owner.clone(),
            online: u32::try_from(r.present.len() + self.online_only_elsewhere(r).count())
                .unwrap_or(u32::MAX),
            peer,
            member: me.is_some_and(|me| r.members.contains(me)),
            muted: me.is_some_and(|me| self.muted.get(me).is_some_and(|m| m.contains(id))),
        }
    }
}
