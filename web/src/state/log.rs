//! A room's messages as the client holds them: one copy per `seq`, each in the newest
//! state the client has seen. Since protocol 6 a room's `seq` numbers changes (edits,
//! deletions, reactions) as well as messages, and copies arrive two ways: snapshots
//! (`joined`, `replay`, `history`: a message as it is, with the `rev` of the last change
//! it shows) and deltas (`changed`). The rules that keep those consistent live here, so
//! the reducer only says which kind of frame it got.

use std::rc::Rc;

use confab_shared::{Change, ChatMessage};

use super::{MAX_ORPHANS, RoomView};

impl RoomView {
    /// The message with this `seq`, if loaded.
    pub fn message(&self, seq: u64) -> Option<&ChatMessage> {
        self.position(seq).ok().map(|i| &*self.messages[i])
    }

    fn position(&self, seq: u64) -> Result<usize, usize> {
        self.messages.binary_search_by_key(&seq, |m| m.seq)
    }

    /// A live message, or the server's copy of one we sent (already shown from its ack).
    pub(super) fn add_live(&mut self, msg: ChatMessage) {
        self.upsert(msg);
        self.adopt_orphans();
    }

    /// What a resume brings (`replay` pages and the `joined` that ends them): messages
    /// created or changed since the client's cursor, in their current state. One older
    /// than every message held is dropped: showing it would leave a hole before the
    /// messages held, which scrolling back fills anyway. With nothing held (a fresh
    /// join) everything is taken.
    pub(super) fn add_resumed(&mut self, messages: Vec<ChatMessage>) {
        let oldest = self.messages.first().map(|m| m.seq);
        for msg in messages {
            if oldest.is_none_or(|oldest| msg.seq >= oldest) {
                self.upsert(msg);
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
        match self.position(change.target) {
            Ok(i) => {
                if change.seq > self.messages[i].revision() {
                    let messages = Rc::make_mut(&mut self.messages);
                    Rc::make_mut(&mut messages[i]).apply(&change);
                }
            }
            Err(_) => self.keep_orphan(change),
        }
    }

    /// Our own change, acknowledged as `change.seq`, shown before its broadcast
    /// arrives. It is applied without moving the copy's `rev`: changes of others with a
    /// lower `seq` may still be on their way (a history read holds back the room's
    /// broadcasts to this connection, not its acks), and must apply. Every kind of
    /// change is idempotent, so the broadcast applying it again changes nothing.
    pub(super) fn add_own_change(&mut self, change: Change) {
        match self.position(change.target) {
            Ok(i) => {
                let m = &self.messages[i];
                if change.seq <= m.revision() {
                    return;
                }
                let mut copy = (**m).clone();
                let rev = copy.rev;
                copy.apply(&change);
                copy.rev = rev;
                if copy != **m {
                    Rc::make_mut(&mut self.messages)[i] = Rc::new(copy);
                }
            }
            Err(_) => self.keep_orphan(change),
        }
    }

    /// Inserts a snapshot by `seq`, or replaces the copy held if the snapshot shows at
    /// least as much of the log. The list is copied only when something changes.
    fn upsert(&mut self, msg: ChatMessage) {
        let at = match self.messages.last() {
            None => 0,
            Some(last) if last.seq < msg.seq => self.messages.len(),
            Some(_) => match self.position(msg.seq) {
                Ok(i) => {
                    let held = &self.messages[i];
                    if msg.revision() >= held.revision() && **held != msg {
                        Rc::make_mut(&mut self.messages)[i] = Rc::new(msg);
                    }
                    return;
                }
                Err(i) => i,
            },
        };
        Rc::make_mut(&mut self.messages).insert(at, Rc::new(msg));
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
    fn adopt_orphans(&mut self) {
        if self.orphans.is_empty() {
            return;
        }
        let orphans = std::mem::take(&mut self.orphans);
        for change in orphans {
            if self.position(change.target).is_ok() {
                // In `seq` order, as the log made them.
                self.add_change(change);
            } else {
                self.orphans.push(change);
            }
        }
    }
}
