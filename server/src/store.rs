//! Message history behind one boundary.
//!
//! The hub appends every accepted message and asks for a room's recent messages when
//! someone joins. Nothing else touches history, so a durable implementation replaces
//! [`MemoryHistory`] without the hub changing.

use std::collections::{HashMap, VecDeque};

use confab_shared::ChatMessage;

/// Where the hub keeps messages.
pub trait History: Send + 'static {
    /// Records an accepted message.
    fn append(&mut self, msg: &ChatMessage);
    /// Up to `limit` most recent messages of `room`, oldest first.
    fn recent(&self, room: &str, limit: usize) -> Vec<ChatMessage>;
}

/// Keeps the last `per_room` messages of each room in memory; lost on restart.
#[derive(Debug)]
pub struct MemoryHistory {
    per_room: usize,
    rooms: HashMap<String, VecDeque<ChatMessage>>,
}

impl MemoryHistory {
    pub fn new(per_room: usize) -> Self {
        Self {
            per_room: per_room.max(1),
            rooms: HashMap::new(),
        }
    }
}

impl History for MemoryHistory {
    fn append(&mut self, msg: &ChatMessage) {
        let log = self.rooms.entry(msg.room.clone()).or_default();
        if log.len() == self.per_room {
            log.pop_front();
        }
        log.push_back(msg.clone());
    }

    fn recent(&self, room: &str, limit: usize) -> Vec<ChatMessage> {
        let Some(log) = self.rooms.get(room) else {
            return Vec::new();
        };
        log.iter()
            .skip(log.len().saturating_sub(limit))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(id: u64, room: &str) -> ChatMessage {
        ChatMessage {
            id,
            room: room.into(),
            from: "ada".into(),
            body: format!("m{id}"),
            ts: 0,
        }
    }

    #[test]
    fn keeps_the_newest_per_room_oldest_first() {
        let mut h = MemoryHistory::new(3);
        for id in 1..=5 {
            h.append(&msg(id, "general"));
        }
        h.append(&msg(6, "other"));
        let ids = |v: Vec<ChatMessage>| v.into_iter().map(|m| m.id).collect::<Vec<_>>();
        assert_eq!(ids(h.recent("general", 10)), [3, 4, 5]);
        assert_eq!(ids(h.recent("general", 2)), [4, 5]);
        assert_eq!(ids(h.recent("other", 10)), [6]);
        assert!(h.recent("nowhere", 10).is_empty());
    }
}
