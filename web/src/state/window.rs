//! Reading far back: a room opened at a message that is not loaded (a search result, a
//! link or a quote of an old message) without paging back to it from the newest.
//!
//! A room's `messages` are its log from some point up to the live end, with no gap: the
//! unread counts, the read marker and the divider (`state/reading.rs`) and every resume
//! (`resume.rs`, the `joined` and `replay` frames) rely on that. A `fetch_around` brings
//! the messages around one `seq`. When they overlap the messages held they simply join
//! them. When they do not, they become a [`Window`] of their own, shown *instead of* the
//! newest messages: the view is detached (`has_newer`). The log underneath stays as it
//! was and keeps taking live messages, changes and resumes, so counting, marking and
//! resuming go on exactly as before, and live messages never land in the window, where
//! they would leave a hole. Scrolling the window down asks for what follows its last
//! message; once that reaches the log the window joins it and the view is attached again.
//! "Jump to latest" drops the window.

use std::rc::Rc;

use confab_shared::{ChatMessage, ErrorCode};

use super::{Messages, RoomView, State};

/// See the module documentation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Far {
    /// The messages shown instead of the newest ones, while detached.
    pub window: Option<Window>,
    /// The `seq` a `fetch_around` is on its way for.
    pub around: Option<u64>,
    /// How many times the view went back to the newest messages on request: the list
    /// scrolls to its end each time (and not when a window joins the log by scrolling
    /// down, where the reader keeps their place).
    pub returns: u32,
}

/// Older messages shown instead of the newest: in `seq` order with no gap, and none of
/// them in the room's `messages`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Window {
    pub messages: Messages,
    /// The room has messages older than the window's first.
    pub has_older: bool,
    /// A page before the window's first message is on its way.
    pub loading_older: bool,
    /// The `seq` of the newest message held when the view was detached: those after it
    /// arrived meanwhile.
    pub since: u64,
}

impl Window {
    fn span(&self) -> Option<(u64, u64)> {
        span(&self.messages)
    }

    /// Whether `seq` lies within the window (held or not: seqs also number changes).
    pub(super) fn covers(&self, seq: u64) -> bool {
        self.span()
            .is_some_and(|(first, last)| first <= seq && seq <= last)
    }
}

/// What a jump to a message calls for, given what is loaded (see
/// [`RoomView::jump_step`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JumpStep {
    /// It is on screen: scroll to it.
    Show,
    /// It is among the newest messages while the view shows a window: go back to them.
    Latest,
    /// Ask for the messages around it.
    Fetch,
    /// A `fetch_around` is on its way.
    Wait,
    /// The room has no such message.
    Missing,
}

/// What the window actions do (see `Action::Window`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WindowAction {
    /// A `fetch_around` for `seq` was sent: a jump far back, or the messages after the
    /// window's last.
    Fetching { room: String, seq: u64 },
    /// Back to the newest messages ("Jump to latest").
    Latest { room: String },
}

/// The first and last `seq` of a list of messages, if it holds any.
fn span(messages: &[Rc<ChatMessage>]) -> Option<(u64, u64)> {
    Some((messages.first()?.seq, messages.last()?.seq))
}

/// Whether two stretches of a log, first and last `seq`, overlap or follow each other
/// with no `seq` between them: together they are one stretch with no gap. (Further
/// apart, the `seq`s between may all be changes, but nothing here can tell.)
fn touch(a: (u64, u64), b: (u64, u64)) -> bool {
    a.0 <= b.1.saturating_add(1) && b.0 <= a.1.saturating_add(1)
}

fn span_of(messages: &[ChatMessage]) -> Option<(u64, u64)> {
    Some((messages.first()?.seq, messages.last()?.seq))
}

/// Where `seq` is, or would go, in a list of messages.
pub(super) fn position_in(messages: &[Rc<ChatMessage>], seq: u64) -> Result<usize, usize> {
    messages.binary_search_by_key(&seq, |m| m.seq)
}

/// Inserts a snapshot by `seq`, or replaces the copy held if the snapshot shows at
/// least as much of the log. The list is copied only when something changes.
pub(super) fn upsert_into(messages: &mut Messages, msg: ChatMessage) {
    upsert_shared(messages, Rc::new(msg));
}

/// [`upsert_into`] for a copy shared with other lists (a window joining the log).
fn upsert_shared(messages: &mut Messages, msg: Rc<ChatMessage>) {
    let at = match messages.last() {
        None => 0,
        Some(last) if last.seq < msg.seq => messages.len(),
        Some(_) => match position_in(messages, msg.seq) {
            Ok(i) => {
                let held = &messages[i];
                if msg.revision() >= held.revision() && *held != msg {
                    Rc::make_mut(messages)[i] = msg;
                }
                return;
            }
            Err(i) => i,
        },
    };
    Rc::make_mut(messages).insert(at, msg);
}

impl RoomView {
    /// Detached: a window of older messages shows instead of the newest, and newer
    /// ones exist after it.
    pub fn has_newer(&self) -> bool {
        self.far.window.is_some()
    }

    /// The messages on screen: the window's while detached, else the room's.
    pub fn shown(&self) -> &Messages {
        self.far
            .window
            .as_ref()
            .map_or(&self.messages, |w| &w.messages)
    }

    /// Whether older messages than those on screen exist.
    pub fn shown_has_older(&self) -> bool {
        self.far
            .window
            .as_ref()
            .map_or(self.has_older, |w| w.has_older)
    }

    /// Whether a page before those on screen is on its way.
    pub fn shown_loading_older(&self) -> bool {
        self.far
            .window
            .as_ref()
            .map_or(self.loading_older, |w| w.loading_older)
    }

    /// Whether the messages after the window can be asked for now.
    pub fn can_load_newer(&self) -> bool {
        self.has_newer() && self.far.around.is_none()
    }

    /// Messages from others (`me` a username) that arrived while detached, for the
    /// "Jump to latest" button.
    pub fn new_since_detached(&self, me: &str) -> usize {
        let Some(window) = &self.far.window else {
            return 0;
        };
        let start = self.messages.partition_point(|m| m.seq <= window.since);
        self.messages[start..]
            .iter()
            .filter(|m| m.from != me && !m.deleted)
            .count()
    }

    /// What bringing message `seq` on screen takes now.
    pub fn jump_step(&self, seq: u64) -> JumpStep {
        let window = self.far.window.as_ref();
        if window.is_some_and(|w| position_in(&w.messages, seq).is_ok()) {
            return JumpStep::Show;
        }
        if position_in(&self.messages, seq).is_ok() {
            return match window {
                Some(_) => JumpStep::Latest,
                None => JumpStep::Show,
            };
        }
        if self.far.around.is_some() {
            return JumpStep::Wait;
        }
        let Some((first, _)) = span(&self.messages) else {
            // Joined, and nothing was ever said here.
            return JumpStep::Missing;
        };
        // Within what is loaded, the log has no gap: a `seq` not held there is a change
        // or nothing. After the newest, nothing yet.
        let in_window = window.is_some_and(|w| w.covers(seq));
        let before_all =
            match window.and_then(|w| w.span().map(|(w_first, _)| (w_first, w.has_older))) {
                Some((w_first, has_older)) => seq < w_first && !has_older,
                None => seq < first && !self.has_older,
            };
        if in_window || seq >= first || before_all {
            return JumpStep::Missing;
        }
        JumpStep::Fetch
    }

    /// The messages around `seq` (a `fetch_around`'s answer, oldest first); `older` and
    /// `newer` say whether the room has messages before and after them. An answer no
    /// longer awaited (the reader went back to the newest messages, or asked for another
    /// place meanwhile) still updates what it overlaps, but opens no window.
    pub(super) fn add_around(
        &mut self,
        seq: u64,
        messages: Vec<ChatMessage>,
        older: bool,
        newer: bool,
    ) {
        let awaited = self.far.around == Some(seq);
        if awaited {
            self.far.around = None;
        }
        let Some((first, last)) = span_of(&messages) else {
            return;
        };
        let overlaps = |held: Option<(u64, u64)>| {
            held.is_some_and(|(held_first, held_last)| {
                touch((first, last), (held_first, held_last))
            })
        };
        // Reaching the live end, they continue the log whatever it holds.
        let touches_log = !newer || overlaps(span(&self.messages));
        match &mut self.far.window {
            Some(window) if overlaps(window.span()) => {
                if window.span().is_some_and(|(w_first, _)| first < w_first) {
                    window.has_older = older;
                }
                for msg in messages {
                    upsert_into(&mut window.messages, msg);
                }
                if touches_log {
                    self.attach();
                }
            }
            // Part of the log; a window held meanwhile stays (this may answer an older
            // request).
            _ if touches_log => self.add_to_log(messages, first, older),
            window if awaited => {
                let since = match window {
                    Some(replaced) => replaced.since,
                    None => self.messages.last().map_or(0, |m| m.seq),
                };
                let mut fresh = Window {
                    has_older: older,
                    since,
                    ..Window::default()
                };
                for msg in messages {
                    upsert_into(&mut fresh.messages, msg);
                }
                *window = Some(fresh);
            }
            _ => {}
        }
        self.adopt_orphans();
        self.attach_if_touching();
    }

    /// Messages that belong to the log (overlapping it, or reaching the live end).
    fn add_to_log(&mut self, messages: Vec<ChatMessage>, first: u64, older: bool) {
        if self.messages.first().is_none_or(|held| first < held.seq) {
            self.has_older = older;
        }
        for msg in messages {
            upsert_into(&mut self.messages, msg);
        }
    }

    /// The window joins the log when the two overlap: the view is attached again, in
    /// place.
    fn attach_if_touching(&mut self) {
        let touching = match (
            self.far.window.as_ref().and_then(Window::span),
            span(&self.messages),
        ) {
            (Some(window), Some(log)) => touch(window, log),
            _ => false,
        };
        if touching {
            self.attach();
        }
    }

    /// Moves the window's messages into the log (they overlap it or reach its end).
    fn attach(&mut self) {
        let Some(window) = self.far.window.take() else {
            return;
        };
        let Some((first, _)) = window.span() else {
            return;
        };
        if self.messages.first().is_none_or(|held| first < held.seq) {
            self.has_older = window.has_older;
            self.loading_older = window.loading_older;
        }
        for msg in window.messages.iter() {
            upsert_shared(&mut self.messages, Rc::clone(msg));
        }
    }

    /// Drops the window: the newest messages show again.
    pub(super) fn back_to_latest(&mut self) {
        if self.far.window.take().is_some() {
            self.far.around = None;
            self.far.returns = self.far.returns.wrapping_add(1);
        }
    }

    /// A page of older messages (`fetch_history`'s answer): the window's, if it is older
    /// than the window's first message (the log's pages end just before the log, which
    /// is newer than the window), else the log's.
    pub(super) fn add_history(&mut self, messages: Vec<ChatMessage>, more: bool) {
        let for_window = match (&self.far.window, messages.last()) {
            (Some(window), Some(newest)) => {
                window.span().is_some_and(|(first, _)| newest.seq < first)
            }
            // No older message at all: the answer of whichever asked.
            (Some(window), None) => window.loading_older && !self.loading_older,
            (None, _) => false,
        };
        match self.far.window.as_mut().filter(|_| for_window) {
            Some(window) => {
                for msg in messages {
                    upsert_into(&mut window.messages, msg);
                }
                window.has_older = more;
                window.loading_older = false;
                self.adopt_orphans();
            }
            None => {
                self.add_older(messages);
                self.has_older = more;
                self.loading_older = false;
                self.attach_if_touching();
            }
        }
    }

    /// Older messages than those on screen were asked for.
    pub(super) fn set_loading_older(&mut self) {
        match &mut self.far.window {
            Some(window) => window.loading_older = true,
            None => self.loading_older = true,
        }
    }

    /// The connection dropped: answers asked for on it will not come.
    fn forget_requests(&mut self) {
        self.far.around = None;
        self.loading_older = false;
        if let Some(window) = &mut self.far.window {
            window.loading_older = false;
        }
    }
}

impl State {
    pub(super) fn on_window(&mut self, action: WindowAction) {
        match action {
            WindowAction::Fetching { room, seq } => {
                if let Some(view) = self.view_mut(&room) {
                    view.far.around = Some(seq);
                }
            }
            WindowAction::Latest { room } => {
                if let Some(view) = self.view_mut(&room) {
                    view.back_to_latest();
                }
            }
        }
    }

    /// A `fetch_around`'s answer.
    pub(super) fn on_around(
        &mut self,
        room: &str,
        seq: u64,
        messages: Vec<ChatMessage>,
        older: bool,
        newer: bool,
    ) {
        if let Some(view) = self.view_mut(room) {
            view.add_around(seq, messages, older, newer);
        }
    }

    /// The connection dropped: a jump waiting for messages around it is over (asked
    /// again on the next connection before the room is joined there, it would be
    /// refused), and so is every request's wait.
    pub(super) fn connection_lost(&mut self) {
        if let Some(jump) = &self.jump
            && self
                .joined
                .get(&jump.room)
                .is_some_and(|v| v.far.around.is_some())
        {
            self.jump = None;
        }
        for view in self.joined.values_mut() {
            let window_waits = view.far.window.as_ref().is_some_and(|w| w.loading_older);
            if view.far.around.is_some() || view.loading_older || window_waits {
                Rc::make_mut(view).forget_requests();
            }
        }
    }

    /// A refusal of a `fetch_around` (the room is not joined on this connection, the
    /// store is busy, too many reads in flight): the wait is over, and a jump waiting for
    /// it ends with why. Returns whether the error was that.
    pub(super) fn fetch_refused(
        &mut self,
        code: ErrorCode,
        room: Option<&str>,
        message: &str,
    ) -> bool {
        let Some(room) = room else {
            return false;
        };
        let about_fetch = matches!(
            code,
            ErrorCode::NotInRoom
                | ErrorCode::UnknownMessage
                | ErrorCode::Unavailable
                | ErrorCode::RateLimited
        ) && self
            .joined
            .get(room)
            .is_some_and(|v| v.far.around.is_some());
        if !about_fetch {
            return false;
        }
        if let Some(view) = self.view_mut(room) {
            view.far.around = None;
        }
        if self.jump.as_ref().is_some_and(|j| j.room == room) {
            self.jump = None;
            self.notice = Some(message.to_owned());
        }
        true
    }

    /// The person wrote a message to a room showing a window: back to the newest
    /// messages, where it will show.
    pub(super) fn latest_if_writing(&mut self, pending: &[super::Pending]) {
        let written: Vec<String> = pending
            .iter()
            .filter(|p| {
                p.change.is_none() && !self.pending.iter().any(|q| q.client_id == p.client_id)
            })
            .map(|p| p.room.clone())
            .collect();
        for room in written {
            if self.joined.get(&room).is_some_and(|v| v.has_newer())
                && let Some(view) = self.view_mut(&room)
            {
                view.back_to_latest();
            }
        }
    }

    /// Leaving a room's screen drops its window: it opens at its newest messages next
    /// time.
    pub(super) fn leave_window(&mut self, room: &str) {
        if self.joined.get(room).is_some_and(|v| v.has_newer())
            && let Some(view) = self.view_mut(room)
        {
            view.far.window = None;
            view.far.around = None;
        }
    }
}
