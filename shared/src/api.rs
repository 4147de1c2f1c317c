//! The account endpoints: plain JSON over HTTP next to the socket, because a session
//! cookie can only be set by an HTTP response.
//!
//! | request | body | success |
//! |---|---|---|
//! | `POST /api/signup` | [`SignUp`] | 201, [`Me`], session cookie set |
//! | `POST /api/signin` | [`SignIn`] | 200, [`Me`], session cookie set |
//! | `POST /api/signout` | [`SignOut`] | 204, cookie cleared |
//! | `GET /api/me` | — | 200 [`Me`], or 401 [`ApiError`] |
//! | `POST /api/password` | [`ChangePassword`] | 204; every other session ended |
//! | `POST /api/signout-others` | — | 204; every other session ended |
//! | `POST /api/invites` | [`NewInvite`] | 201, [`CreatedInvite`] |
//! | `GET /api/invites` | — | 200, [`Invites`] |
//! | `DELETE /api/invites/{id}` | — | 204 |
//! | `POST /api/files?room={room}&name={name}` | the file's bytes | 201, [`crate::Attachment`] |
//! | `GET /api/files/{id}` | — | 200 or 206 (`Range`), the file |
//! | `GET /api/files/{id}/thumb` | — | 200, an image's preview |
//! | `POST /api/password-reset` | [`ResetPassword`] | 204; the link is used up, every session ended |
//! | `GET /api/admin/users?q={query}` | — | 200, [`AdminUsers`] |
//! | `POST /api/admin/users/{name}/{action}` | — | 200, [`AdminDone`] (`disable`, `enable`, `grant`, `revoke`, `reset-password`) |
//! | `GET /api/admin/rooms` | — | 200, [`AdminRooms`] |
//! | `POST /api/admin/rooms/{name}/delete` | — | 200, [`AdminDone`] |
//! | `POST /api/admin/messages/remove` | [`RemoveMessage`] | 200, [`AdminDone`] |
//! | `GET /api/admin/stats` | — | 200, [`AdminStats`] |
//! | `GET /api/admin/audit` | — | 200, [`AuditLog`] |
//!
//! Every `/api/admin/` endpoint answers 401 without a session and 403 to anyone who is
//! not an administrator, whatever the request.
//!
//! An upload is for a room the person may post in, by an account (not a guest). Its
//! body is the file itself, streamed to disk and never held whole in memory; what it
//! answers is shared by naming its `id` in a `send`. Refusals: 413 over the size of one
//! file, 429 (with `Retry-After`) over the person's daily budget, 507 when the server's
//! file store is full, 404 for a room the person may not post in, 401 without a session. A download answers
//! exactly as for a file that does not exist (404) to anyone who may not see its room.
//!
//! Every failure is a status code with an [`ApiError`] body. `POST`s from a page on
//! another origin are refused with 403, like the socket.

use serde::{Deserialize, Serialize};

use crate::Person;

/// Path prefix of the account endpoints.
pub const PREFIX: &str = "/api";
/// Name of the session cookie. `HttpOnly`: page scripts never see it.
pub const SESSION_COOKIE: &str = "confab_session";
/// Its name when the page came over TLS. With the `__Host-` prefix the browser accepts the
/// cookie only `Secure`, for `Path=/` and from this very host, so a cookie planted by a
/// sibling subdomain or for a narrower path cannot stand in for the session.
pub const SECURE_SESSION_COOKIE: &str = "__Host-confab_session";
/// Name of the device cookie: set at sign-in, it marks a browser where the person signed
/// in before, which sign-in throttling then treats apart from everyone else. `HttpOnly`.
pub const DEVICE_COOKIE: &str = "confab_device";
/// Its name when the page came over TLS (see [`SECURE_SESSION_COOKIE`]).
pub const SECURE_DEVICE_COOKIE: &str = "__Host-confab_device";

/// Create an account and sign in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignUp {
    pub username: String,
    pub password: String,
    /// Shown to others; the username when absent or blank.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The secret of an invite link (its `?invite=` parameter): needed when the server's
    /// [`SignUpPolicy`] is `invite`, ignored (and not used up) when it is `open`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invite: Option<String>,
}

/// Sign in to an existing account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignIn {
    pub username: String,
    pub password: String,
}

/// End this session, or every session of the account.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignOut {
    #[serde(default)]
    pub everywhere: bool,
}

/// Change the signed-in person's password. Every other session of theirs ends; the one
/// that asked stays signed in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangePassword {
    pub current_password: String,
    pub new_password: String,
}

/// Who the session cookie belongs to, and what the server allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Me {
    pub you: Person,
    #[serde(default)]
    pub admin: bool,
    /// Whether the server lets people in without an account.
    pub guests_allowed: bool,
    /// Who may create an account on this server.
    #[serde(default)]
    pub sign_up: SignUpPolicy,
    /// Whether this person may create invite links (an administrator, or any member
    /// when the server allows members to invite).
    #[serde(default)]
    pub can_invite: bool,
}

/// Why a request failed. `field` names the form field at fault, when one is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Whether the server lets people in without an account (on 401 from `/api/me`, so
    /// the sign-in screen knows whether to offer it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guests_allowed: Option<bool>,
    /// Who may create an account (on 401 from `/api/me`, so the sign-in screen knows
    /// whether to offer sign-up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign_up: Option<SignUpPolicy>,
    /// With 429: seconds until another attempt is accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    pub fn new(error: impl Into<String>) -> Self {
        Self {
            error: error.into(),
            field: None,
            guests_allowed: None,
            sign_up: None,
            retry_after_secs: None,
        }
    }

    pub fn on(field: &str, error: impl Into<String>) -> Self {
        Self {
            field: Some(field.to_owned()),
            ..Self::new(error)
        }
    }
}

/// The query parameter of an invite link: `/?invite=SECRET`.
pub const INVITE_PARAM: &str = "invite";

/// Who may create an account (the server's `--sign-up`). Guests are not accounts: they
/// are let in or not by `--allow-guests` alone, whatever this says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignUpPolicy {
    /// Anyone who reaches the server.
    #[default]
    Open,
    /// Only with an invite link that is still good.
    Invite,
    /// Nobody: accounts are made with `confab-server admin create`.
    Closed,
}

impl SignUpPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            SignUpPolicy::Open => "open",
            SignUpPolicy::Invite => "invite",
            SignUpPolicy::Closed => "closed",
        }
    }
}

impl std::fmt::Display for SignUpPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for SignUpPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "open" => Ok(SignUpPolicy::Open),
            "invite" => Ok(SignUpPolicy::Invite),
            "closed" => Ok(SignUpPolicy::Closed),
            other => Err(format!(
                "{other:?} is not a sign-up policy: use open, invite or closed"
            )),
        }
    }
}

/// Create an invite link. Absent fields take the server's defaults (one use, 7 days).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewInvite {
    /// How many accounts it may create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uses: Option<u32>,
    /// How long it stays good, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_secs: Option<u64>,
}

/// An invite link as listed: everything but its secret, which only its creator saw once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invite {
    pub id: i64,
    /// The username of whoever made it; `None` for one made with `confab-server admin
    /// invite`.
    #[serde(default)]
    pub created_by: Option<String>,
    /// Milliseconds since the Unix epoch, like message timestamps.
    pub created_at: i64,
    pub expires_at: i64,
    pub max_uses: u32,
    pub uses_left: u32,
}

/// A new invite and its secret, shown this once (the server keeps only a hash of it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedInvite {
    pub invite: Invite,
    pub token: String,
    /// The link's path and query, `/?invite=SECRET`: it goes after the server's address.
    pub path: String,
}

/// The invites a person may see: every live one for an administrator, their own for a
/// member. Newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invites {
    pub invites: Vec<Invite>,
}

/// The query parameter of a password reset link: `/?reset=SECRET`.
pub const RESET_PARAM: &str = "reset";

/// Set a new password with the secret of a reset link an administrator made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResetPassword {
    pub token: String,
    pub new_password: String,
}

/// An account as an administrator sees it. Times are milliseconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminUser {
    pub username: String,
    pub display_name: String,
    pub admin: bool,
    pub disabled: bool,
    pub created_at: i64,
    /// The last sign-in, when there was one since the server recorded them.
    #[serde(default)]
    pub last_seen: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminUsers {
    pub users: Vec<AdminUser>,
}

/// A room and its size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminRoom {
    pub name: String,
    /// `public`, `private` or `direct`.
    pub kind: String,
    #[serde(default)]
    pub title: Option<String>,
    pub members: u64,
    pub messages: u64,
    /// The newest message's time, if it has any.
    #[serde(default)]
    pub last_activity: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminRooms {
    pub rooms: Vec<AdminRoom>,
}

/// What the server holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminStats {
    pub users: u64,
    pub disabled_users: u64,
    pub rooms: u64,
    pub messages: u64,
    pub files: u64,
    pub file_bytes: u64,
    /// The database's size on disk (SQLite's file and log, or PostgreSQL's database).
    pub database_bytes: u64,
}

/// Remove a message from any room, as an administrator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveMessage {
    pub room: String,
    pub seq: u64,
}

/// What an administrator's action did, in words; `link` is a password reset link's path
/// and query (`/?reset=SECRET`), shown this once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminDone {
    pub done: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

/// One administrator's action: who (`cli` for the command line), what, to what, when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    #[serde(default)]
    pub detail: String,
}

/// The audit log, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditLog {
    pub entries: Vec<AuditEntry>,
}
