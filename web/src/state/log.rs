//! A room's messages as the client holds them: one copy per `seq`, each in the newest
//! state the client has seen. Since protocol 6 a room's `seq` numbers changes (edits,
//! deletions, reactions) as well as messages, and copies arrive two ways: snapshots
//! (`joined`, `replay`, `history`: a message as it is, with the `rev` of the last change
//! it shows) and deltas (`changed`). The rules that keep those consistent live here, so
//! the reducer only says which kind of frame it got.

use std::rc::Rc;

use confab_shared::{Change, ChatMessage};

use super::{
    MAX_ORPHANS, Messages, RoomView,
    window::{position_in, upsert_into},
};

impl RoomView {
    /// The message with this `seq`, if loaded (among the newest or in the window of
    /// older ones: see `state/window.rs`).
    pub fn message(&self, seq: u64) -> Option<&ChatMessage> {
        match position_in(&self.messages, seq) {
            Ok(i) => Some(&*self.messages[i]),
            Err(_) => {
                let window = &self.far.window.as_ref()?.messages;
                position_in(window, seq).ok().map(|i| &*window[i])
            }
        }
    }

    /// The list holding message `seq` (the log or the window) and its place there.
    fn locate(&mut self, seq: u64) -> Option<(&mut Messages, usize)> {
        if let Ok(i) = position_in(&self.messages, seq) {
            return Some((&mut self.messages, i));
        }
        let window = self.far.window.as_mut()?;
        let i = position_in(&window.messages, seq).ok()?;
        Some((&mut window.messages, i))
    }

    /// A live message, or the server's copy of one we sent (already shown from its ack).
    pub(super) fn add_live(&mut self, msg: ChatMessage) {
        self.upsert(msg);
        self.adopt_orphans();
    }

    /// What a resume brings (`replay` pages and the `joined` that ends them): messages
    /// created or changed since the client's cursor, in their current state. One older
    /// than every message held is dropped: showing it would leave a hole before the
    /// messages held, which scrolling back fills anyway; unless it is in the window of
    /// older messages on screen, whose copy it updates. With nothing held (a fresh
    /// join) everything is taken.
    pub(super) fn add_resumed(&mut self, messages: Vec<ChatMessage>) {
        let oldest = self.messages.first().map(|m| m.seq);
        for msg in messages {
            if oldest.is_none_or(|oldest| msg.seq >= oldest) {
                self.upsert(msg);
            } else if let Some(window) = &mut self.far.window
                && window.covers(msg.seq)
            {
                upsert_into(&mut window.messages, msg);
            }
        }
        self.adopt_orphans();
    }

    /// A page of older messages (scrolling back).
    pub(super) fn add_older(&mut self, messages: Vec<ChatMessage>) {
        for msg in messages {
            self.upsert(msg);
        }
        self.adopt_orphans();
    }

    /// A change from the log. One to a message not loaded is kept for when it is: a
    /// page of history read before the change may bring it later.
    pub(super) fn add_change(&mut self, change: Change) {
        match self.locate(change.target) {
            Some((messages, i)) => {
                if change.seq > messages[i].revision() {
                    let messages = Rc::make_mut(messages);
                    Rc::make_mut(&mut messages[i]).apply(&change);
                }
            }
            None => self.keep_orphan(change),
        }
    }

    /// Our own change, acknowledged as `change.seq`, shown before its broadcast
    /// arrives. It is applied without moving the copy's `rev`: changes of others with a
    /// lower `seq` may still be on their way (a history read holds back the room's
    /// broadcasts to this connection, not its acks), and must apply. Every kind of
    /// change is idempotent, so the broadcast applying it again changes nothing.
    pub(super) fn add_own_change(&mut self, change: Change) {
        match self.locate(change.target) {
            Some((messages, i)) => {
                let m = &messages[i];
                if change.seq <= m.revision() {
                    return;
                }
                let mut copy = (**m).clone();
                let rev = copy.rev;
                copy.apply(&change);
                copy.rev = rev;
                if copy != **m {
                    Rc::make_mut(messages)[i] = Rc::new(copy);
                }
            }
            None => self.keep_orphan(change),
        }
    }

    /// Inserts a snapshot into the log (see [`upsert_into`]).
    fn upsert(&mut self, msg: ChatMessage) {
        upsert_into(&mut self.messages, msg);
    }

    /// Keeps a change in `seq` order (our own, known from their acks, can come before
    /// others' lower ones), once, dropping the oldest past [`MAX_ORPHANS`].
    fn keep_orphan(&mut self, change: Change) {
        let Err(at) = self.orphans.binary_search_by_key(&change.seq, |o| o.seq) else {
            return;
        };
        self.orphans.insert(at, change);
        if self.orphans.len() > MAX_ORPHANS {
            self.orphans.remove(0);
        }
    }

    /// Applies the kept changes whose message is loaded now, and forgets them.
    pub(super) fn adopt_orphans(&mut self) {
        if self.orphans.is_empty() {
            return;
        }
        let orphans = std::mem::take(&mut self.orphans);
        for change in orphans {
            if self.message(change.target).is_some() {
                // In `seq` order, as the log made them.
                self.add_change(change);
            } else {
                self.orphans.push(change);
            }
        }
    }
}
