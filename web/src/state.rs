//! The client's whole view state and the one reducer that changes it.
//!
//! Everything the UI shows is derived from [`State`]; every change arrives as an
//! [`Action`], from the services (socket, account) or from the user. The reducer is
//! plain Rust with no browser calls (time comes in with the actions), so it is
//! unit-tested natively.

use std::{
    collections::{BTreeMap, BTreeSet},
    rc::Rc,
};

use confab_shared::{
    Change, ChangeKind, ChatMessage, DEFAULT_ROOM, ErrorCode, GUEST_PREFIX, Person, RoomInfo,
    RoomKind, ServerMsg,
    api::{ApiError, Me, SignUpPolicy},
};
use serde::{Deserialize, Serialize};
use yew::Reducible;

/// State of the connection to the server, as shown to the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conn {
    /// No session, so no socket is wanted (the sign-in screen).
    Idle,
    /// First attempt, nothing received yet.
    Connecting,
    /// Socket open.
    Open,
    /// Lost; the service retries after `retry_in_ms`.
    Reconnecting { retry_in_ms: u32 },
    /// The browser says there is no network; the service reconnects when it is back.
    NoNetwork,
}

/// A message the user wrote, or a change they made to one, that the server has not
/// acknowledged yet. One outbox holds both, so a change survives a reload or a
/// disconnect like a message does and is sent again under the same client id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub client_id: String,
    pub room: String,
    /// The message's text; empty for a change.
    pub body: String,
    /// Why the server refused it; `None` while it is on its way.
    pub failed: Option<String>,
    /// The `seq` of the message this one answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<u64>,
    /// Not a message but a change to one. Outboxes saved before changes existed have
    /// none, and still load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<PendingChange>,
    /// The files the message shares: uploaded first, then named in its `send`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<PendingFile>,
}

/// What a pending change does to message `seq` of its room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PendingChange {
    Edit { seq: u64, body: String },
    Delete { seq: u64 },
    React { seq: u64, emoji: String },
    Unreact { seq: u64, emoji: String },
}

impl PendingChange {
    /// The message it changes.
    pub fn target(&self) -> u64 {
        match self {
            PendingChange::Edit { seq, .. }
            | PendingChange::Delete { seq }
            | PendingChange::React { seq, .. }
            | PendingChange::Unreact { seq, .. } => *seq,
        }
    }

    /// The change as the server will record it, for showing it before it does.
    pub fn kind(&self) -> ChangeKind {
        match self {
            PendingChange::Edit { body, .. } => ChangeKind::Edited { body: body.clone() },
            PendingChange::Delete { .. } => ChangeKind::Deleted,
            PendingChange::React { emoji, .. } => ChangeKind::Reacted {
                emoji: emoji.clone(),
            },
            PendingChange::Unreact { emoji, .. } => ChangeKind::Unreacted {
                emoji: emoji.clone(),
            },
        }
    }

    /// What the person was doing, for telling them it failed ("Could not edit …").
    pub fn verb(&self) -> &'static str {
        match self {
            PendingChange::Edit { .. } => "edit the message",
            PendingChange::Delete { .. } => "delete the message",
            PendingChange::React { .. } => "add the reaction",
            PendingChange::Unreact { .. } => "remove the reaction",
        }
    }
}

/// Whether a change the server refused with `code` stays in the outbox to be sent
/// again: the refusal is about now (too many edits this minute, storage busy), not
/// about the change.
pub fn retried_change(code: ErrorCode) -> bool {
    matches!(code, ErrorCode::RateLimited | ErrorCode::Unavailable)
}

/// The forms of the sign-in screen, so an error shows next to the one it is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthForm {
    SignIn,
    SignUp,
    Guest,
}

/// Why the last sign-in, sign-up or guest join failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthError {
    pub form: AuthForm,
    pub message: String,
    /// The field at fault (`username`, `password`, `display_name`), when one is.
    pub field: Option<String>,
}

impl AuthError {
    pub fn new(form: AuthForm, error: ApiError) -> Self {
        let message = match error.retry_after_secs {
            Some(secs) => format!("{} (try again in {secs} s)", error.error),
            None => error.error,
        };
        Self {
            form,
            message,
            field: error.field,
        }
    }
}

/// The owner's and members' requests about a room, which the server answers only
/// when it refuses them: remembered so that refusal shows next to the form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomTool {
    Create,
    Invite,
    Rename,
    Delete,
    Remove,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomRequest {
    /// The room it is about; for a creation, the name asked for.
    pub room: String,
    pub tool: RoomTool,
    /// Whom or what it was about: the user invited or removed, the new title.
    pub subject: String,
    /// The server's refusal, once it came.
    pub error: Option<String>,
    /// The server's word that it was done (a new member list, a new title).
    pub done: bool,
}

/// A room's messages in `seq` order, unique by `seq` (and by id). Shared, not copied: each state the
/// reducer makes holds the same list until a message is added, and then copies only the
/// pointers; the message list component compares it by address to skip re-rendering.
pub type Messages = Rc<Vec<Rc<ChatMessage>>>;

/// One room the user has joined. Held in an `Rc` by the state: an action that does not
/// touch the room shares it with the previous state instead of copying it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoomView {
    pub messages: Messages,
    /// The people the server named: in a public room those online (and anyone seen
    /// arriving since), in a private room every member; sorted by display name.
    pub members: Vec<Person>,
    /// How many people belong to the room, as last told.
    pub member_count: usize,
    /// Handles of the members connected to the room now.
    pub online: BTreeSet<String>,
    /// Who is typing, with when their indicator expires (ms since epoch).
    pub typing: Vec<(Person, u64)>,
    /// Older messages exist on the server than the oldest one here.
    pub has_older: bool,
    /// A request for older messages is on its way.
    pub loading_older: bool,
    /// The person's read marker: the last `seq` they read (see `state/reading.rs`).
    pub read: u64,
    /// What the server counted at the last `joined` of unread messages older than those
    /// held; `None` until the room is joined.
    pub older: Option<Older>,
    /// While the room is on screen: the marker when it was opened, if anything was
    /// unread then. The "New messages" divider goes after it.
    pub divider: Option<u64>,
    /// Changes to messages older than those loaded, newest last and at most
    /// [`MAX_ORPHANS`]: applied if a page of history brings their message in a state
    /// before them (the page was read before the change was made).
    pub orphans: Vec<Change>,
    /// The message the composer answers (its `seq`), while the person writes a reply.
    pub replying: Option<u64>,
}

/// How many changes to messages not loaded a room keeps for when they are.
pub const MAX_ORPHANS: usize = 200;

impl RoomView {
    /// The members online now, sorted by display name. A username the member list does
    /// not have (yet) still shows, under the name it implies.
    pub fn online_people(&self) -> Vec<Person> {
        let mut people: Vec<Person> = self
            .members
            .iter()
            .filter(|p| self.online.contains(&p.user))
            .cloned()
            .collect();
        for user in &self.online {
            if !self.members.iter().any(|p| p.user == *user) {
                let guest = user.starts_with(GUEST_PREFIX);
                people.push(Person {
                    name: user.trim_start_matches(GUEST_PREFIX).to_owned(),
                    user: user.clone(),
                    guest,
                });
            }
        }
        sort_people(&mut people);
        people
    }

    fn add_member(&mut self, who: Person) {
        match self.members.iter_mut().find(|p| p.user == who.user) {
            // Display names can change between visits; the newest word wins.
            Some(known) => *known = who,
            None => self.members.push(who),
        }
        sort_people(&mut self.members);
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    pub conn: Conn,
    /// Asking the server who we are (page load, or a remembered guest rejoining):
    /// neither the sign-in screen nor the chat yet.
    pub checking: bool,
    /// Who this session is: from `/api/me` or sign-in for an account, from `welcome`
    /// for a guest. `Some` shows the chat.
    pub me: Option<Person>,
    /// An administrator manages every room, like its owner.
    pub admin: bool,
    /// Whether the server lets people in without an account.
    pub guests_allowed: bool,
    /// Who may create an account on the server: the sign-in screen offers sign-up
    /// (or says why not) by it.
    pub sign_up: SignUpPolicy,
    /// Whether this person may make invite links.
    pub can_invite: bool,
    /// The display name a guest asked for, until the server welcomes or refuses it.
    pub joining_as: Option<String>,
    /// A sign-in screen form whose request is on its way.
    pub auth_busy: Option<AuthForm>,
    pub auth_error: Option<AuthError>,
    /// Messages written but not acknowledged yet, oldest first.
    pub pending: Vec<Pending>,
    /// The rooms this user can see, as last listed.
    pub rooms: Vec<RoomInfo>,
    /// Rooms this user is in.
    pub joined: BTreeMap<String, Rc<RoomView>>,
    /// The room on screen (its id).
    pub current: String,
    /// Rooms this user asked to leave: their `left` is expected, not news.
    pub leaving: BTreeSet<String>,
    /// The person whose direct conversation was asked for: shown once joined.
    pub opening_direct: Option<String>,
    /// The last room request sent from a form, for showing its refusal there.
    pub room_request: Option<RoomRequest>,
    /// The last problem worth telling the user about (an error from the server).
    pub notice: Option<String>,
    /// Direct conversations closed on this browser, with the last `seq` seen then: they
    /// stay out of the list until a newer message arrives.
    pub closed: BTreeMap<String, u64>,
    /// At phone width, the panel opened over the conversation.
    pub drawer: Option<Drawer>,
    /// Browser notifications for messages just arrived, oldest first; shown if the tab
    /// is hidden (see `state/reading.rs`).
    pub alerts: Vec<Alert>,
    /// The store the messages come from (see [`ServerMsg::Welcome`]): another one means
    /// every `seq` held numbers another history.
    pub epoch: Option<String>,
    /// A message to bring on screen (a reply's quote or a permalink was followed): the
    /// message list scrolls to it, loading older pages until it is there.
    pub jump: Option<Jump>,
    /// Files attached and being uploaded (see `state/uploads.rs`).
    pub uploads: Uploads,
}

/// See [`State::jump`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jump {
    pub room: String,
    pub seq: u64,
}

/// The panels that, at phone width, open over the conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drawer {
    Rooms,
    People,
}

impl Default for State {
    fn default() -> Self {
        Self {
            conn: Conn::Connecting,
            checking: true,
            me: None,
            admin: false,
            guests_allowed: false,
            sign_up: SignUpPolicy::Open,
            can_invite: false,
            joining_as: None,
            auth_busy: None,
            auth_error: None,
            pending: Vec::new(),
            rooms: Vec::new(),
            joined: BTreeMap::new(),
            current: DEFAULT_ROOM.to_owned(),
            leaving: BTreeSet::new(),
            opening_direct: None,
            room_request: None,
            notice: None,
            closed: BTreeMap::new(),
            drawer: None,
            alerts: Vec::new(),
            epoch: None,
            jump: None,
            uploads: Uploads::default(),
        }
    }
}

/// Everything that can change the state.
// Most actions are server frames, and each is moved once into the reducer: boxing them
// would add an allocation per frame to save copying a few hundred bytes.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Conn(Conn),
    /// A message from the server, received at `now` (ms since epoch).
    Server {
        msg: ServerMsg,
        now: f64,
    },
    /// Show another room (joined, or being joined).
    Switch(String),
    /// Drop typing indicators that expired before `now`.
    Tick {
        now: f64,
    },
    DismissNotice,
    /// Something went wrong that belongs to no form.
    Notice(String),
    /// The outbox changed (see [`crate::socket::Chat::send`]).
    Outbox(Vec<Pending>),
    /// After a welcome, the rooms the service follows: the person's, the default one
    /// and those holding unsent messages. Others this tab showed are gone (left or
    /// removed from another device while this one was away).
    Following(BTreeSet<String>),
    /// Older messages of a room were asked for.
    LoadingOlder(String),
    /// Asking `/api/me` who we are.
    Checking,
    /// An account session exists (or was just made by signing in or up).
    SignedIn(Me),
    /// No session: show the sign-in screen with a clean slate. `guests_allowed`
    /// updates what the server allows when the answer said so.
    SignedOut {
        guests_allowed: Option<bool>,
    },
    /// What the server said of sign-up while nobody is signed in.
    SignUpPolicy(SignUpPolicy),
    /// A form of the sign-in screen was sent.
    AuthBusy(AuthForm),
    AuthFailed(AuthError),
    /// Saying hello as a guest; `resumed` when the name was remembered from an earlier
    /// visit (nothing to show but "connecting" meanwhile).
    JoiningAsGuest {
        name: String,
        resumed: bool,
    },
    /// The user asked to leave a room.
    Leaving(String),
    /// The user asked for the direct conversation with this person (username).
    OpeningDirect(String),
    /// A room form was sent (create, invite, rename, delete, remove).
    RoomRequest {
        room: String,
        tool: RoomTool,
        subject: String,
    },
    /// The person moved on from a room form: its last answer is old news.
    ForgetRoomRequest(RoomTool),
    /// Hide a direct conversation until someone writes there again.
    CloseDirect(String),
    /// The direct conversations closed on this browser, as remembered.
    Closed(BTreeMap<String, u64>),
    /// Open or close a phone-width panel.
    Drawer(Option<Drawer>),
    /// Start (`Some(seq)`) or stop answering a message of a room in the composer.
    ReplyTo {
        room: String,
        seq: Option<u64>,
    },
    /// Show message `seq` of `room` (switching to it).
    JumpTo {
        room: String,
        seq: u64,
    },
    /// The jump is over: the message is on screen, or does not exist.
    JumpDone,
    /// Read markers, mute and notifications.
    Reading(ReadingAction),
    /// Files attached, uploading, refused.
    Uploads(UploadAction),
}

impl State {
    pub fn current_room(&self) -> Option<&RoomView> {
        self.joined.get(&self.current).map(|view| &**view)
    }

    pub fn room_info(&self, room: &str) -> Option<&RoomInfo> {
        self.rooms.iter().find(|r| r.name == room)
    }

    /// How a room is called on screen: `#title`, or `@name` for a direct conversation.
    pub fn label(&self, room: &str) -> String {
        match self.room_info(room) {
            Some(RoomInfo {
                kind: RoomKind::Direct,
                peer: Some(peer),
                ..
            }) => format!("@{}", peer.name),
            Some(RoomInfo {
                kind: RoomKind::Direct,
                title,
                ..
            }) => format!("@{title}"),
            Some(info) => format!("#{}", info.title),
            None => format!("#{room}"),
        }
    }

    /// Whether this user owns the room.
    pub fn owns(&self, room: &str) -> bool {
        let owner = self.room_info(room).and_then(|r| r.owner.as_deref());
        owner.is_some() && owner == self.me.as_ref().map(|p| p.user.as_str())
    }

    /// Whether this user may rename and delete the room and remove its members: its
    /// owner or an administrator. Direct conversations have no one in charge.
    pub fn manages(&self, room: &str) -> bool {
        let direct = self
            .room_info(room)
            .is_none_or(|r| r.kind == RoomKind::Direct);
        !direct && (self.admin || self.owns(room))
    }

    /// The direct conversation with this person (a username), if there is one.
    pub fn direct_with(&self, user: &str) -> Option<&RoomInfo> {
        self.rooms
            .iter()
            .find(|r| r.kind == RoomKind::Direct && r.peer.as_ref().is_some_and(|p| p.user == user))
    }

    fn apply(&mut self, action: Action) {
        let before = reading::Before::of(self, &action);
        self.apply_action(action);
        self.after(before);
    }

    fn apply_action(&mut self, action: Action) {
        match action {
            Action::Conn(conn) => {
                self.conn = conn;
                if conn != Conn::Open {
                    // Presence and typing are stale once disconnected; the re-join brings
                    // fresh ones.
                    for view in self.joined.values_mut() {
                        if !view.online.is_empty() || !view.typing.is_empty() {
                            let view = Rc::make_mut(view);
                            view.online.clear();
                            view.typing.clear();
                        }
                    }
                }
            }
            Action::Server { msg, now } => self.on_server(msg, now),
            Action::Switch(room) => self.switch(room),
            Action::Tick { now } => {
                // Most ticks expire nothing: then no room is touched, the state stays the
                // same and nothing renders.
                let now = now as u64;
                for view in self.joined.values_mut() {
                    if view.typing.iter().any(|(_, until)| *until <= now) {
                        Rc::make_mut(view).typing.retain(|(_, until)| *until > now);
                    }
                }
            }
            Action::DismissNotice => self.notice = None,
            Action::Notice(text) => self.notice = Some(text),
            Action::Outbox(pending) => self.pending = pending,
            Action::Following(rooms) => {
                let gone: Vec<String> = self
                    .joined
                    .keys()
                    .filter(|r| !rooms.contains(*r))
                    .cloned()
                    .collect();
                for room in gone {
                    self.drop_room(&room);
                }
            }
            Action::LoadingOlder(room) => {
                if let Some(view) = self.view_mut(&room) {
                    view.loading_older = true;
                }
            }
            Action::Checking => self.checking = true,
            Action::SignedIn(me) => {
                self.me = Some(me.you);
                self.admin = me.admin;
                self.guests_allowed = me.guests_allowed;
                self.sign_up = me.sign_up;
                self.can_invite = me.can_invite;
                self.checking = false;
                self.joining_as = None;
                self.auth_busy = None;
                self.auth_error = None;
                self.conn = Conn::Connecting;
            }
            Action::SignedOut { guests_allowed } => {
                // Nothing of the previous session may linger for the next person.
                *self = State {
                    conn: Conn::Idle,
                    checking: false,
                    guests_allowed: guests_allowed.unwrap_or(self.guests_allowed),
                    sign_up: self.sign_up,
                    ..State::default()
                };
            }
            Action::SignUpPolicy(policy) => self.sign_up = policy,
            Action::AuthBusy(form) => {
                self.auth_busy = Some(form);
                self.auth_error = None;
            }
            Action::AuthFailed(error) => {
                self.auth_busy = None;
                self.checking = false;
                self.auth_error = Some(error);
            }
            Action::JoiningAsGuest { name, resumed } => {
                self.joining_as = Some(name);
                self.auth_busy = Some(AuthForm::Guest);
                self.auth_error = None;
                self.checking = resumed;
                self.conn = Conn::Connecting;
            }
            Action::Leaving(room) => {
                self.leaving.insert(room);
            }
            Action::OpeningDirect(user) => {
                if let Some(room) = self.direct_with(&user).map(|r| r.name.clone()) {
                    self.closed.remove(&room);
                }
                self.opening_direct = Some(user);
            }
            Action::ForgetRoomRequest(tool) => {
                if self.room_request.as_ref().is_some_and(|r| r.tool == tool) {
                    self.room_request = None;
                }
            }
            Action::CloseDirect(room) => {
                let last = self
                    .joined
                    .get(&room)
                    .and_then(|v| v.messages.last())
                    .map_or(0, |m| m.seq);
                self.closed.insert(room.clone(), last);
                if self.current == room {
                    self.switch(DEFAULT_ROOM.to_owned());
                }
            }
            Action::Closed(closed) => self.closed = closed,
            Action::Drawer(drawer) => self.drawer = drawer,
            Action::ReplyTo { room, seq } => {
                if let Some(view) = self.view_mut(&room) {
                    view.replying = seq;
                }
            }
            Action::JumpTo { room, seq } => {
                if room != self.current {
                    self.switch(room.clone());
                }
                self.jump = Some(Jump { room, seq });
            }
            Action::JumpDone => self.jump = None,
            Action::Reading(action) => self.on_reading(action),
            Action::Uploads(action) => self.on_upload(action),
            Action::RoomRequest {
                room,
                tool,
                subject,
            } => {
                self.room_request = Some(RoomRequest {
                    room,
                    tool,
                    subject,
                    error: None,
                    done: false,
                });
            }
        }
    }

    fn switch(&mut self, room: String) {
        if room != self.current {
            // The person moved on: answers about the room they left are old news.
            self.room_request = None;
            self.notice = None;
        }
        self.closed.remove(&room);
        self.drawer = None;
        self.current = room;
    }

    /// A message `seq` arrived in `room`: a closed conversation opens again.
    fn reopen_if_newer(&mut self, room: &str, seq: u64) {
        if self.closed.get(room).is_some_and(|closed| seq > *closed) {
            self.closed.remove(room);
        }
    }

    /// A joined room, to change: copied first if an earlier state still shares it.
    fn view_mut(&mut self, room: &str) -> Option<&mut RoomView> {
        self.joined.get_mut(room).map(Rc::make_mut)
    }

    /// A room being joined, to change (created empty the first time).
    fn view_entry(&mut self, room: String) -> &mut RoomView {
        Rc::make_mut(self.joined.entry(room).or_default())
    }

    /// Forgets a joined room; the default one shows instead if it was on screen.
    fn drop_room(&mut self, room: &str) {
        self.joined.remove(room);
        if self.current == room {
            self.switch(DEFAULT_ROOM.to_owned());
        }
    }

    /// The current room's messages still waiting for the server (not the changes to
    /// messages: those show on the messages themselves).
    pub fn pending_here(&self) -> impl Iterator<Item = &Pending> {
        self.pending
            .iter()
            .filter(|p| p.room == self.current && p.change.is_none())
    }

    /// The current room's changes still waiting for the server, for showing them on
    /// their messages meanwhile.
    pub fn changes_here(&self) -> impl Iterator<Item = &Pending> {
        self.pending
            .iter()
            .filter(|p| p.room == self.current && p.change.is_some())
    }

    /// Display names of those typing in the current room, for the indicator (guests
    /// marked as such).
    pub fn typing_names(&self) -> Vec<String> {
        let shown = |p: &Person| match p.guest {
            true => format!("{} (guest)", p.name),
            false => p.name.clone(),
        };
        self.current_room()
            .map(|r| r.typing.iter().map(|(p, _)| shown(p)).collect())
            .unwrap_or_default()
    }

    /// The last request made with `tool` in the current room (any room, for a
    /// creation: its form is not about the room on screen).
    pub fn room_request(&self, tool: RoomTool) -> Option<&RoomRequest> {
        self.room_request
            .as_ref()
            .filter(|r| r.tool == tool && (tool == RoomTool::Create || r.room == self.current))
    }

    /// Whether a direct conversation is closed on this browser.
    pub fn is_closed(&self, room: &str) -> bool {
        self.closed.contains_key(room)
    }

    /// How many of this person's messages to `room` wait to be sent.
    pub fn unsent_in(&self, room: &str) -> usize {
        self.pending
            .iter()
            .filter(|p| p.room == room && p.change.is_none())
            .count()
    }

    /// The room-form refusal to show in the current room for `tool`.
    pub fn room_error(&self, tool: RoomTool) -> Option<&str> {
        self.room_request(tool).and_then(|r| r.error.as_deref())
    }

    /// The sign-in screen error for `form`.
    pub fn auth_error_for(&self, form: AuthForm) -> Option<&AuthError> {
        self.auth_error.as_ref().filter(|e| e.form == form)
    }
}

fn sort_people(people: &mut [Person]) {
    people.sort_by(|a, b| (a.name.to_lowercase(), &a.user).cmp(&(b.name.to_lowercase(), &b.user)));
}

impl Reducible for State {
    type Action = Action;

    /// An action that changes nothing returns the very same state, so Yew skips the
    /// render. Comparing is cheap: unchanged rooms are the same `Rc`, compared by address.
    fn reduce(self: Rc<Self>, action: Action) -> Rc<Self> {
        let mut next = (*self).clone();
        next.apply(action);
        if next == *self { self } else { Rc::new(next) }
    }
}

mod log;
pub mod reading;
mod server;
mod uploads;

pub use reading::ReadingAction;
use reading::{Alert, Older};
pub use server::quote_of;
pub use uploads::{LocalFile, PendingFile, UploadAction, Uploads, too_many_files};

#[cfg(test)]
mod tests;
