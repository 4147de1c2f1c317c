//! An administrator's tools: list and search accounts, disable and enable them, make and
//! revoke administrators, password reset links, rooms with their sizes, statistics, and
//! the audit log every one of these actions is written to. One implementation for the
//! two ways in: `confab-server admin …` on the machine the data lives on (actor
//! [`CLI`]) and the admin page's `/api/admin/` endpoints (actor: the administrator's
//! username, see `http::admin`).
//!
//! What changes accounts is done in the store by whoever asks, server or command line.
//! What the running server must also act on — closing a disabled person's sockets,
//! deleting a room the hub holds in memory — goes through the hub: from the admin page
//! directly, from the command line through the server's [`control`] socket.
//!
//! Every function blocks (the stores are synchronous): call them from `spawn_blocking`.

use std::time::Duration;

use confab_shared::{
    Password, Username,
    api::{AdminRoom, AdminStats, AdminUser, AuditEntry, RESET_PARAM},
};
use rand_core::{OsRng, RngCore};

use crate::{
    accounts::{AccountError, Accounts, session_key},
    hub::now_ms,
    store::{StoreError, admin::NewAuditEntry},
};

pub mod control;

/// The audit log's actor for the command line. Administrators are logged as
/// `@username`, so an account named `cli` cannot pass for it.
pub const CLI: &str = "cli";
/// How many accounts a listing shows at most (narrow it with a query).
pub const USERS_SHOWN: u32 = 500;
/// How many audit entries a listing shows, newest first.
pub const AUDIT_SHOWN: u32 = 200;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("no account is called {0:?}")]
    NoSuchUser(String),
    #[error("no room is called {0:?}")]
    NoSuchRoom(String),
    /// Not done, for the reason given (to the administrator, in words).
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Account(#[from] AccountError),
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        Self::Account(e.into())
    }
}

/// How the audit log names an actor (see [`CLI`]).
fn actor_label(actor: &Actor<'_>) -> String {
    match actor {
        Actor::Cli => CLI.to_owned(),
        Actor::Admin(name) => format!("@{name}"),
    }
}

/// Who does an administrator's action.
#[derive(Debug, Clone, Copy)]
pub enum Actor<'a> {
    /// `confab-server admin` on the server's machine.
    Cli,
    /// An administrator signed in to the web client, by username.
    Admin(&'a str),
}

/// Writes one action to the audit log.
pub fn record(
    accounts: &Accounts,
    actor: Actor<'_>,
    action: &str,
    target: &str,
    detail: &str,
) -> Result<(), AdminError> {
    let actor = actor_label(&actor);
    accounts.store().record(NewAuditEntry {
        at: now_ms(),
        actor: &actor,
        action,
        target,
        detail,
    })?;
    tracing::info!(%actor, action, target = %crate::logsafe::text(target), "administrator's action");
    Ok(())
}

/// A username as typed, in the form the store keeps (lower case); a name no account can
/// have is no account.
fn username(name: &str) -> Result<String, AdminError> {
    Username::parse(name)
        .map(|u| u.as_str().to_owned())
        .map_err(|_| AdminError::NoSuchUser(name.to_owned()))
}

pub fn users(accounts: &Accounts, query: &str) -> Result<Vec<AdminUser>, AdminError> {
    Ok(accounts.store().users(query.trim(), USERS_SHOWN)?)
}

/// Disables an account (ending its sessions) or enables it again; the caller then has
/// the running server close the disabled person's sockets. The username as stored.
pub fn set_disabled(
    accounts: &Accounts,
    actor: Actor<'_>,
    name: &str,
    disabled: bool,
) -> Result<String, AdminError> {
    let name = username(name)?;
    if disabled && matches!(actor, Actor::Admin(me) if me == name) {
        return Err(AdminError::Refused(
            "you cannot disable your own account".to_owned(),
        ));
    }
    accounts
        .store()
        .set_disabled(&name, disabled)?
        .ok_or_else(|| AdminError::NoSuchUser(name.clone()))?;
    record(
        accounts,
        actor,
        if disabled { "disable" } else { "enable" },
        &name,
        "",
    )?;
    Ok(name)
}

/// Makes an account an administrator, or no longer one.
pub fn set_admin(
    accounts: &Accounts,
    actor: Actor<'_>,
    name: &str,
    admin: bool,
) -> Result<String, AdminError> {
    let name = username(name)?;
    if !admin && matches!(actor, Actor::Admin(me) if me == name) {
        return Err(AdminError::Refused(
            "you cannot revoke your own administrator rights".to_owned(),
        ));
    }
    if !accounts.store().set_admin(&name, admin)? {
        return Err(AdminError::NoSuchUser(name));
    }
    record(
        accounts,
        actor,
        if admin { "grant" } else { "revoke" },
        &name,
        "",
    )?;
    Ok(name)
}

/// A new password reset link, shown once: the store keeps only its hash.
#[derive(Debug)]
pub struct ResetLink {
    pub username: String,
    /// `/?reset=SECRET`: it goes after the server's address.
    pub path: String,
    pub expires_at: i64,
}

/// Makes a one-time link with which the account's owner sets a new password in the web
/// client, good for `lifetime`; it replaces the account's earlier link.
pub fn reset_link(
    accounts: &Accounts,
    actor: Actor<'_>,
    name: &str,
    lifetime: Duration,
) -> Result<ResetLink, AdminError> {
    let name = username(name)?;
    let user = accounts
        .store()
        .user_by_username(&name)?
        .ok_or_else(|| AdminError::NoSuchUser(name.clone()))?;
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    let token = data_encoding::BASE64URL_NOPAD.encode(&bytes);
    let now = now_ms();
    let expires_at = now.saturating_add(i64::try_from(lifetime.as_millis()).unwrap_or(i64::MAX));
    accounts
        .store()
        .create_reset(user.id, &session_key(&token), now, expires_at)?;
    record(
        accounts,
        actor,
        "reset-password",
        &name,
        &format!("link good for {}", crate::invites::describe(lifetime)),
    )?;
    Ok(ResetLink {
        username: name,
        path: format!("/?{RESET_PARAM}={token}"),
        expires_at,
    })
}

/// The account a reset link is for, while it is good.
pub fn reset_user(accounts: &Accounts, token: &str) -> Result<Option<String>, AdminError> {
    Ok(accounts.store().reset_user(&session_key(token), now_ms())?)
}

/// Sets a new password with a reset link, using it up and ending every session of the
/// account. The username, or `None` for a link that is not good (any more).
pub fn use_reset(
    accounts: &Accounts,
    token: &str,
    new: &Password,
) -> Result<Option<String>, AdminError> {
    let hash = accounts.hash_password(new)?;
    Ok(accounts
        .store()
        .use_reset(&session_key(token), &hash, now_ms())?)
}

pub fn rooms(accounts: &Accounts) -> Result<Vec<AdminRoom>, AdminError> {
    Ok(accounts.store().rooms()?)
}

pub fn stats(accounts: &Accounts) -> Result<AdminStats, AdminError> {
    Ok(accounts.store().stats()?)
}

pub fn audit(accounts: &Accounts) -> Result<Vec<AuditEntry>, AdminError> {
    Ok(accounts.store().audit(AUDIT_SHOWN)?)
}

/// A time as the command line prints it: `2026-12-01 16:58 UTC` (ms since the epoch).
pub fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    use super::utc;

    #[test]
    fn times_print_in_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00 UTC");
        assert_eq!(utc(1_764_608_280_000), "2025-12-01 16:58 UTC");
    }
}
