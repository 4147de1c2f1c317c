//! Where the person left off: read markers, unread and mention counts, the "New
//! messages" divider, and which arriving messages deserve a browser notification.
//!
//! The server keeps one read marker per person and room (the last `seq` read) and
//! counts, at `joined`, the unread messages and mentions after it. The client holds only
//! the newest messages, so a room's counts are the server's number for what is older
//! than the loaded messages plus what the client counts itself among the loaded ones.
//! The counts are never stored: [`count`] derives them from the messages, the marker and
//! the server's remainder whenever they are shown, so they stay right whatever changes
//! (a message arrives, one is deleted, the marker moves on another device, a reconnect
//! joins the room again).
//!
//! Every action goes through [`State::apply`](super::State), which takes a [`Before`]
//! first and calls [`State::after`] last: that is how `joined`, `read` and `message`
//! frames and room switches reach this file without its logic spreading over the
//! reducer's arms.

use std::rc::Rc;

use confab_shared::{ChatMessage, GUEST_PREFIX, RoomKind, ServerMsg, limits, mention};

use super::{Action, State};

/// Unread messages of a room (from others, not deleted, after the marker) and how many
/// of them mention the person.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unread {
    pub messages: u32,
    pub mentions: u32,
}

/// What the server counted, at the last `joined`, of the messages after the marker that
/// the client does not hold: those with a `seq` below `below` (the oldest message held
/// then). Messages loaded later from further back are not counted again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Older {
    pub below: u64,
    pub counts: Unread,
}

/// A browser notification to show, if the tab is hidden when it is seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub room: String,
    /// Who wrote, and where.
    pub title: String,
    /// The first line of the message.
    pub body: String,
}

/// Notifications waiting to be shown are few: beyond this many, the oldest go.
const MAX_ALERTS: usize = 10;
/// A notification shows the first line of a message, cut to this many characters.
const ALERT_BODY_CHARS: usize = 200;

/// The reading actions (see [`Action::Reading`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadingAction {
    /// This client read `room` up to `seq` (and told the server, for an account).
    Marked { room: String, seq: u64 },
    /// The first `n` alerts were handled (shown, or not worth showing any more).
    AlertsHandled(usize),
    /// The person muted or unmuted a room; the server's room list will say so too.
    Muted { room: String, muted: bool },
}

/// The counts of `messages` (one room's, in `seq` order) after the marker `read`, plus
/// what the server counted of older ones (`older`), for the person `me` (a username).
pub fn count(messages: &[Rc<ChatMessage>], read: u64, older: Option<Older>, me: &str) -> Unread {
    let older = older.unwrap_or_default();
    let mut counts = if read.saturating_add(1) < older.below {
        older.counts
    } else {
        Unread::default()
    };
    let from = read.max(older.below.saturating_sub(1));
    let start = messages.partition_point(|m| m.seq <= from);
    for m in &messages[start..] {
        if m.from != me && !m.deleted {
            counts.messages = counts.messages.saturating_add(1);
            if mention::mentions_user(&m.body, me) {
                counts.mentions = counts.mentions.saturating_add(1);
            }
        }
    }
    Unread {
        messages: counts.messages.min(limits::MAX_UNREAD_COUNT),
        mentions: counts.mentions.min(limits::MAX_UNREAD_COUNT),
    }
}

/// The server's remainder after a `joined`: its counts (`unread`, `mentions`, taken at
/// `through`) less what the messages now held (all at or below `through`) count.
pub fn older_from_joined(
    messages: &[Rc<ChatMessage>],
    read: u64,
    through: u64,
    server: Unread,
    me: &str,
) -> Older {
    let below = messages
        .first()
        .map_or(through.saturating_add(1), |m| m.seq);
    let held = count(messages, read, None, me);
    Older {
        below,
        counts: Unread {
            messages: server.messages.saturating_sub(held.messages),
            mentions: server.mentions.saturating_sub(held.mentions),
        },
    }
}

/// The id of the message the "New messages" divider goes above: the first one from
/// someone else after `marker`.
pub fn first_unread(messages: &[Rc<ChatMessage>], marker: u64, me: &str) -> Option<u64> {
    let start = messages.partition_point(|m| m.seq <= marker);
    messages[start..]
        .iter()
        .find(|m| m.from != me && !m.deleted)
        .map(|m| m.id)
}

/// The marker to send for a room read to its newest message, if it moves the marker:
/// never one at or below what was sent or received before.
pub fn mark_target(messages: &[Rc<ChatMessage>], read: u64, sent: u64) -> Option<u64> {
    let newest = messages.last()?.seq;
    (newest > read.max(sent)).then_some(newest)
}

/// A count as a badge shows it: past the server's cap, "9999+".
pub fn badge(n: u32) -> String {
    if n >= limits::MAX_UNREAD_COUNT {
        format!("{}+", limits::MAX_UNREAD_COUNT)
    } else {
        n.to_string()
    }
}

/// The counts in words, for screen readers: "3 unread, 1 mention".
pub fn describe(counts: Unread) -> String {
    let mut text = format!("{} unread", badge(counts.messages));
    match counts.mentions {
        0 => {}
        1 => text.push_str(", 1 mention"),
        n => text.push_str(&format!(", {} mentions", badge(n))),
    }
    text
}

/// The document title: the unread total of the unmuted rooms, then the name.
pub fn title(total: u32) -> String {
    match total {
        0 => "Confab".to_owned(),
        n => format!("({}) Confab", badge(n)),
    }
}

/// The first line of a message, cut for a notification.
fn first_line(body: &str) -> String {
    let line = body.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let mut cut: String = line.trim().chars().take(ALERT_BODY_CHARS).collect();
    if line.trim().chars().count() > ALERT_BODY_CHARS {
        cut.push('…');
    }
    cut
}

/// What an action is, noted before it is applied: [`State::after`] finishes the job
/// once the reducer's arms have done theirs (a `joined`'s history is in the view then).
pub(super) struct Before {
    current: String,
    seen: Seen,
}

enum Seen {
    Other,
    Joined {
        room: String,
        first: bool,
        through: u64,
        read: u64,
        server: Unread,
    },
    Read {
        room: String,
        seq: u64,
    },
    Alert(Alert),
}

impl Before {
    pub(super) fn of(state: &State, action: &Action) -> Self {
        let seen = match action {
            Action::Server { msg, .. } => match msg {
                ServerMsg::Joined {
                    room,
                    through,
                    read,
                    unread,
                    mentions,
                    ..
                } => Seen::Joined {
                    room: room.clone(),
                    first: state.joined.get(room).is_none_or(|v| v.older.is_none()),
                    through: *through,
                    read: *read,
                    server: Unread {
                        messages: *unread,
                        mentions: *mentions,
                    },
                },
                ServerMsg::Read { room, seq } => Seen::Read {
                    room: room.clone(),
                    seq: *seq,
                },
                ServerMsg::Message(m) => state.alert_for(m).map_or(Seen::Other, Seen::Alert),
                _ => Seen::Other,
            },
            _ => Seen::Other,
        };
        Self {
            current: state.current.clone(),
            seen,
        }
    }
}

impl State {
    /// The person's username, lower-case as mentions are matched ("" before a welcome).
    fn username(&self) -> &str {
        self.me.as_ref().map_or("", |p| p.user.as_str())
    }

    fn is_guest(&self) -> bool {
        self.me.as_ref().is_some_and(|p| p.guest)
    }

    /// Whether the person muted `room`.
    pub fn muted(&self, room: &str) -> bool {
        self.room_info(room).is_some_and(|r| r.muted)
    }

    /// The unread counts of a joined room (nothing for one not joined).
    pub fn unread(&self, room: &str) -> Unread {
        self.joined
            .get(room)
            .map(|v| count(&v.messages, v.read, v.older, self.username()))
            .unwrap_or_default()
    }

    /// Unread messages of every joined room that is not muted, for the title.
    pub fn unread_total(&self) -> u32 {
        let total = self
            .joined
            .keys()
            .filter(|room| !self.muted(room))
            .fold(0_u32, |n, room| {
                n.saturating_add(self.unread(room).messages)
            });
        total.min(limits::MAX_UNREAD_COUNT)
    }

    /// The id of the message the current room's "New messages" divider goes above.
    pub fn divider_before(&self) -> Option<u64> {
        let view = self.current_room()?;
        first_unread(&view.messages, view.divider?, self.username())
    }

    /// The current room's marker, and its newest message's `seq`, if that is later.
    /// Nothing while a window of older messages shows (`state/window.rs`): its end is
    /// not the room's.
    pub fn mark_target(&self, sent: u64) -> Option<u64> {
        let view = self.current_room().filter(|v| !v.has_newer())?;
        mark_target(&view.messages, view.read, sent)
    }

    /// A notification for a live message, if it calls for one: someone else's, in a
    /// room that is not muted, and either a direct conversation or mentioning the
    /// person. A message already held (sent twice) calls for nothing.
    fn alert_for(&self, m: &ChatMessage) -> Option<Alert> {
        let me = self.me.as_ref()?;
        let view = self.joined.get(&m.room)?;
        if m.from == me.user || m.deleted || self.muted(&m.room) {
            return None;
        }
        if view.messages.binary_search_by_key(&m.id, |h| h.id).is_ok() {
            return None;
        }
        let direct = self
            .room_info(&m.room)
            .is_some_and(|r| r.kind == RoomKind::Direct);
        if !direct && !mention::mentions_user(&m.body, &me.user) {
            return None;
        }
        let name = match m.from.starts_with(GUEST_PREFIX) {
            true => format!("{} (guest)", m.name),
            false => m.name.clone(),
        };
        let title = match direct {
            true => name,
            false => format!("{name} in {}", self.label(&m.room)),
        };
        Some(Alert {
            room: m.room.clone(),
            title,
            body: first_line(&m.body),
        })
    }

    pub(super) fn on_reading(&mut self, action: ReadingAction) {
        match action {
            ReadingAction::Marked { room, seq } => self.read_up_to(&room, seq),
            ReadingAction::AlertsHandled(n) => {
                self.alerts.drain(..n.min(self.alerts.len()));
            }
            ReadingAction::Muted { room, muted } => {
                if let Some(info) = self.rooms.iter_mut().find(|r| r.name == room) {
                    info.muted = muted;
                }
            }
        }
    }

    fn read_up_to(&mut self, room: &str, seq: u64) {
        if self.joined.get(room).is_some_and(|v| v.read < seq)
            && let Some(view) = self.view_mut(room)
        {
            view.read = seq;
        }
    }

    /// Finishes what [`Before::of`] noted, once the action is applied.
    pub(super) fn after(&mut self, before: Before) {
        match before.seen {
            Seen::Other => {}
            Seen::Joined {
                room,
                first,
                through,
                read,
                server,
            } => self.joined_with(&room, first, through, read, server),
            Seen::Read { room, seq } => self.read_up_to(&room, seq),
            Seen::Alert(alert) => {
                if self.alerts.len() >= MAX_ALERTS {
                    self.alerts.remove(0);
                }
                self.alerts.push(alert);
            }
        }
        if before.current != self.current {
            if let Some(view) = self.joined.get(&before.current)
                && view.divider.is_some()
                && let Some(view) = self.view_mut(&before.current)
            {
                view.divider = None;
            }
            self.place_divider();
        }
    }

    /// The room on screen was just opened: the divider goes where the person left off,
    /// if anything is unread, and stays there while they read.
    fn place_divider(&mut self) {
        let room = self.current.clone();
        let unread = self.unread(&room).messages > 0;
        if let Some(view) = self.view_mut(&room) {
            view.divider = unread.then_some(view.read);
        }
    }

    /// A `joined`: the account's marker and the server's counts are the truth as of
    /// `through`. A guest has no marker on the server: this client keeps one, starting
    /// at the newest message of the first join (what came before the guest is not news
    /// to them).
    fn joined_with(&mut self, room: &str, first: bool, through: u64, read: u64, server: Unread) {
        let guest = self.is_guest();
        let me = self.username().to_owned();
        let Some(view) = self.view_mut(room) else {
            return;
        };
        if guest {
            if first {
                let newest = view.messages.last().map_or(0, |m| m.seq);
                view.read = view.read.max(through).max(newest);
            }
            view.older = Some(Older::default());
        } else {
            view.read = read;
            view.older = Some(older_from_joined(
                &view.messages,
                read,
                through,
                server,
                &me,
            ));
        }
        if first && room == self.current {
            self.place_divider();
        }
    }
}

#[cfg(test)]
mod tests;
