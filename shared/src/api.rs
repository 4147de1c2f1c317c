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
