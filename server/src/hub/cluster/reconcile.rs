//! A node's view of rooms made, changed or deleted on other nodes: read again when news
//! or a look at the heads says so, and reconciled with what the hub holds, without
//! undoing this node's own changes still on their way to the store.

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use confab_shared::{GUEST_PREFIX, RoomKind};

use super::{Room, at_once};
use crate::{
    cluster::Published,
    hub::{Hub, Look, reads::Job},
    store::{RoomHead, StoredRoom, Write},
};

impl Hub {
    /// Counts an access write submitted for its room (see the module documentation).
    pub(in crate::hub) fn note_local_write(&self, write: &Write) {
        if self.cluster.is_none() {
            return;
        }
        let room = match write {
            Write::CreateRoom { room, .. }
            | Write::RenameRoom { room, .. }
            | Write::SetOwner { room, .. }
            | Write::DeleteRoom { room }
            | Write::AddMember { room, .. }
            | Write::RemoveMember { room, .. } => room,
            _ => return,
        };
        if let Some(r) = self.rooms.get(room) {
            r.sync.local_writes.set(r.sync.local_writes.get() + 1);
        }
    }

    /// The creation of `room`, made here, committed.
    pub(in crate::hub) fn created_here(&mut self, room: &str) {
        if self.cluster.is_some()
            && let Some(r) = self.rooms.get_mut(room)
        {
            r.sync.created = true;
        }
    }

    /// A committed write with no one waiting for it: the other nodes hear of what it
    /// changed.
    pub(in crate::hub) fn publish_committed(&self, write: &Write) {
        if self.cluster.is_none() {
            return;
        }
        let news = match write {
            Write::CreateRoom { room, .. }
            | Write::RenameRoom { room, .. }
            | Write::SetOwner { room, .. }
            | Write::DeleteRoom { room }
            | Write::AddMember { room, .. }
            | Write::RemoveMember { room, .. } => Published::RoomChanged { room: room.clone() },
            Write::MarkRead { user, room, seq } => Published::Read {
                user: user.clone(),
                room: room.clone(),
                seq: *seq,
            },
            Write::Mute { user, room, muted } => Published::Mute {
                user: user.clone(),
                room: room.clone(),
                muted: *muted,
            },
            Write::Append(_) | Write::Change(_) => return,
        };
        self.publish(news);
    }

    /// Asks for `room` as stored, unless that read is in flight.
    pub(in crate::hub) fn load_room(&mut self, room: &str) {
        let local_writes = self
            .rooms
            .get(room)
            .map_or(0, |r| r.sync.local_writes.get());
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        if cluster.loading.contains_key(room) {
            return;
        }
        cluster.loading.insert(room.to_owned(), local_writes);
        if self
            .dispatch(Job::Look(Look::Room(room.to_owned())))
            .is_err()
            && let Some(cluster) = &mut self.cluster
        {
            // The next look at the heads asks again.
            cluster.loading.remove(room);
        }
    }

    /// Compares every room's head with what this node holds.
    pub(in crate::hub) fn heads_read(&mut self, heads: Vec<(String, RoomHead)>) {
        let now = Instant::now();
        if let Some(cluster) = &mut self.cluster {
            cluster.heads_at = Some(now);
            // Refusals from long ago are of connections that went or gave up.
            cluster
                .ahead_refusals
                .retain(|_, at| now.saturating_duration_since(*at) < Duration::from_secs(60));
        }
        let grace = self.cluster_grace();
        let mut listed = BTreeSet::new();
        let mut reload = Vec::new();
        for (name, head) in heads {
            match self.rooms.get_mut(&name) {
                None => reload.push(name.clone()),
                Some(r) => {
                    if r.sync.head.id != head.id || r.sync.head.version != head.version {
                        reload.push(name.clone());
                    }
                    if head.last_seq > r.last_seq && r.sync.head.id == head.id {
                        r.sync.known = r.sync.known.max(head.last_seq);
                        r.sync.gap_since.get_or_insert(at_once(now, grace));
                        if let Some(cluster) = &mut self.cluster {
                            cluster.gapped.insert(name.clone());
                        }
                    }
                }
            }
            listed.insert(name);
        }
        // Gone from the store: deleted elsewhere (a room made here and not yet stored
        // has id 0, and stays).
        reload.extend(
            self.rooms
                .iter()
                .filter(|(name, r)| r.sync.in_store() && !listed.contains(*name))
                .map(|(name, _)| name.clone()),
        );
        for room in reload {
            self.load_room(&room);
        }
    }

    /// Makes what the hub holds of `name` what the store says, telling those concerned
    /// as if the change had been made here.
    pub(in crate::hub) fn room_loaded(&mut self, name: &str, stored: Option<StoredRoom>) {
        let known_id = self.rooms.get(name).map(|r| r.sync.head.id);
        match (known_id, stored) {
            (None, None) => {}
            (Some(_), None) => {
                if self.rooms.get(name).is_some_and(|r| r.sync.in_store()) {
                    self.room_deleted(name);
                }
            }
            (None, Some(stored)) => self.room_arrived(stored),
            (Some(id), Some(stored)) if id != 0 && id != stored.head.id => {
                // Deleted and made again under the same name meanwhile.
                self.room_deleted(name);
                self.room_arrived(stored);
            }
            (Some(_), Some(stored)) => self.room_reconciled(stored),
        }
    }

    /// A room made on another node.
    fn room_arrived(&mut self, stored: StoredRoom) {
        let name = stored.name.clone();
        let members: Vec<String> = stored.members.clone();
        let mut room = Room::new(stored.kind, stored.title, real_owner(stored.owner));
        room.members = members.iter().cloned().collect();
        room.last_seq = stored.last_seq;
        room.sync.head = stored.head;
        room.sync.known = stored.last_seq;
        let kind = room.kind;
        self.rooms.insert(name.clone(), room);
        if kind == RoomKind::Public {
            self.room_changed(&name);
        } else {
            self.room_changed_for(&name, members);
        }
    }

    /// A room changed on another node: its title, owner, members.
    fn room_reconciled(&mut self, stored: StoredRoom) {
        let name = stored.name.clone();
        let now = Instant::now();
        let grace = self.cluster_grace();
        let Some(r) = self.rooms.get_mut(&name) else {
            return;
        };
        r.sync.head = stored.head;
        if stored.last_seq > r.last_seq {
            r.sync.known = r.sync.known.max(stored.last_seq);
            r.sync.gap_since.get_or_insert(at_once(now, grace));
            if let Some(cluster) = &mut self.cluster {
                cluster.gapped.insert(name.clone());
            }
        }
        let mut changed = false;
        if r.title != stored.title {
            r.title = stored.title;
            changed = true;
        }
        let owner = real_owner(stored.owner);
        if r.owner != owner {
            r.owner = owner;
            changed = true;
        }
        let stored_members: BTreeSet<String> = stored.members.into_iter().collect();
        let added: Vec<String> = stored_members.difference(&r.members).cloned().collect();
        // A public room's members are whoever joined it; one who is here now stays,
        // whatever a read taken before their join said.
        let removed: Vec<String> = r
            .members
            .difference(&stored_members)
            .filter(|m| r.kind != RoomKind::Public || !r.present.contains_key(*m))
            .filter(|m| !m.starts_with(GUEST_PREFIX))
            .cloned()
            .collect();
        for member in &added {
            r.members.insert(member.clone());
        }
        let private = r.kind != RoomKind::Public;
        if changed {
            self.room_changed(&name);
        }
        if !added.is_empty() {
            self.room_changed_for(&name, added.iter().cloned());
        }
        for member in &removed {
            self.membership_ended(&name, member);
        }
        if private && (!added.is_empty() || !removed.is_empty()) {
            self.send_members(&name);
        }
    }
}

/// Guests own nothing (see `Hub::new`).
fn real_owner(owner: Option<String>) -> Option<String> {
    owner.filter(|o| !o.starts_with(GUEST_PREFIX))
}
