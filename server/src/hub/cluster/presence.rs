//! Who is online on the other nodes: the news of arrivals and departures, reconciled
//! with the presence sets Redis holds (so a lost event or a dead node corrects itself),
//! and what this node tells the others.

use std::{
    collections::{BTreeMap, HashMap},
    time::{Duration, Instant},
};

use confab_shared::{Person, PresenceEvent};

use crate::{
    cluster::{NodeId, Published},
    hub::{Hub, Room},
};

/// How recent a presence event must be to outweigh a reading of the presence sets that
/// does not list it yet.
const PRESENCE_SETTLE: Duration = Duration::from_secs(3);

impl Hub {
    /// Tells the other nodes that `who` came online in `room` here, or went offline.
    pub(in crate::hub) fn publish_presence(&self, room: &str, who: &Person, online: bool) {
        if let Some(cluster) = &self.cluster {
            cluster.bus.publish(Published::Presence {
                room: room.to_owned(),
                who: who.clone(),
                node: cluster.bus.node(),
                online,
            });
        }
    }

    /// Whether `user` is online in `room` on another node.
    pub(in crate::hub) fn online_elsewhere(&self, room: &str, user: &str) -> bool {
        self.rooms
            .get(room)
            .is_some_and(|r| r.sync.remote.contains_key(user))
    }

    /// Those online in `room` on other nodes only, as shown.
    pub(in crate::hub) fn online_only_elsewhere<'a>(
        &'a self,
        r: &'a Room,
    ) -> impl Iterator<Item = &'a Person> {
        r.sync
            .remote
            .iter()
            .filter(|(user, _)| !r.present.contains_key(*user))
            .map(|(_, (who, _))| who)
    }

    /// `who` came online in `room` on `node`, or went offline there.
    pub(in crate::hub) fn remote_presence(
        &mut self,
        room: &str,
        who: Person,
        node: NodeId,
        online: bool,
    ) {
        let now = Instant::now();
        let Some(r) = self.rooms.get_mut(room) else {
            return;
        };
        let here = r.present.contains_key(&who.user);
        if online {
            let (_, nodes) = r
                .sync
                .remote
                .entry(who.user.clone())
                .or_insert_with(|| (who.clone(), BTreeMap::new()));
            let arrived = nodes.is_empty();
            nodes.insert(node, now);
            if arrived && !here {
                self.announce(room, who, PresenceEvent::Joined);
            }
        } else if let Some((_, nodes)) = r.sync.remote.get_mut(&who.user) {
            nodes.remove(&node);
            if nodes.is_empty() {
                r.sync.remote.remove(&who.user);
                if !here {
                    self.announce(room, who, PresenceEvent::Left);
                }
            }
        }
    }

    /// Reconciles who is online elsewhere with what Redis holds: arrivals whose news
    /// was lost, and the people of a node that stopped renewing them (an entry heard of
    /// recently stays: the reading may predate it).
    pub(in crate::hub) fn presence_read(&mut self, others: Vec<(String, NodeId, Person)>) {
        let now = Instant::now();
        let mut held: HashMap<String, Vec<(NodeId, Person)>> = HashMap::new();
        for (room, node, who) in others {
            held.entry(room).or_default().push((node, who));
        }
        let rooms: Vec<String> = self.rooms.keys().cloned().collect();
        for room in rooms {
            let listed = held.remove(&room).unwrap_or_default();
            for (node, who) in &listed {
                let known = self
                    .rooms
                    .get(&room)
                    .and_then(|r| r.sync.remote.get(&who.user))
                    .is_some_and(|(_, nodes)| nodes.contains_key(node));
                if !known {
                    self.remote_presence(&room, who.clone(), *node, true);
                }
            }
            let Some(r) = self.rooms.get(&room) else {
                continue;
            };
            let gone: Vec<(Person, NodeId)> = r
                .sync
                .remote
                .values()
                .flat_map(|(who, nodes)| {
                    nodes
                        .iter()
                        .filter(|(node, seen)| {
                            now.saturating_duration_since(**seen) > PRESENCE_SETTLE
                                && !listed.iter().any(|(n, w)| n == *node && w.user == who.user)
                        })
                        .map(move |(node, _)| (who.clone(), *node))
                })
                .collect();
            for (who, node) in gone {
                self.remote_presence(&room, who, node, false);
            }
        }
    }
}
