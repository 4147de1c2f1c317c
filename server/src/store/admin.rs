//! What administrators read and change, as stored: the SQL half of [`crate::admin`],
//! which owns the policy (who may, what is written to the audit log, reset links'
//! secrets and lifetimes). Both backends implement it on the same handle as
//! [`super::accounts::AccountStore`] (a connection of its own to SQLite's file, or the
//! node's PostgreSQL pool): administrators' reads are rare and small.

use confab_shared::api::{AdminRoom, AdminStats, AdminUser, AuditEntry};

use super::StoreError;

/// An entry for the audit log, before it is stored.
#[derive(Debug, Clone, Copy)]
pub struct NewAuditEntry<'a> {
    pub at: i64,
    /// A username, or `cli`.
    pub actor: &'a str,
    pub action: &'a str,
    pub target: &'a str,
    pub detail: &'a str,
}

pub trait AdminStore {
    /// Accounts whose username or display name contains `query` (any case; all of them
    /// for an empty query), by username, at most `limit`.
    fn users(&self, query: &str, limit: u32) -> Result<Vec<AdminUser>, StoreError>;

    /// Disables or enables an account; disabling ends every session of it, in the same
    /// transaction. The account's id, or `None` when there is no such username.
    fn set_disabled(&self, username: &str, disabled: bool) -> Result<Option<i64>, StoreError>;

    /// Makes an account an administrator or not; whether there is such an account.
    fn set_admin(&self, username: &str, admin: bool) -> Result<bool, StoreError>;

    /// Stores a password reset link's hash for an account, replacing the account's
    /// earlier ones (only the newest link works).
    fn create_reset(
        &self,
        user_id: i64,
        token_hash: &[u8],
        now_ms: i64,
        expires_at_ms: i64,
    ) -> Result<(), StoreError>;

    /// The username an unexpired reset link is for.
    fn reset_user(&self, token_hash: &[u8], now_ms: i64) -> Result<Option<String>, StoreError>;

    /// Uses up an unexpired reset link: sets the account's password hash and ends every
    /// session of it, together. The username, or `None` if the link was not good (used,
    /// expired, unknown); then nothing changes.
    fn use_reset(
        &self,
        token_hash: &[u8],
        password_hash: &str,
        now_ms: i64,
    ) -> Result<Option<String>, StoreError>;

    /// Every room with its size, by name.
    fn rooms(&self) -> Result<Vec<AdminRoom>, StoreError>;

    fn stats(&self) -> Result<AdminStats, StoreError>;

    fn record(&self, entry: NewAuditEntry<'_>) -> Result<(), StoreError>;

    /// The newest `limit` entries of the audit log, newest first.
    fn audit(&self, limit: u32) -> Result<Vec<AuditEntry>, StoreError>;
}

/// Counts are stored signed and never negative.
pub(super) fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}
