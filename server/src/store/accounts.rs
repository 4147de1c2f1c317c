//! Accounts, sign-in sessions and invites as stored: the SQL half of
//! [`crate::accounts`] and [`crate::invites`], which own the policy (hashing, tokens,
//! expiry, caps). One interface, [`AccountStore`], over the database the server runs on
//! ([`Database`]): SQLite (`sqlite::accounts`, a connection of its own to `confab.db`)
//! or PostgreSQL (`postgres::accounts`, connections from the node's pool, so every
//! node of a cluster sees the same accounts and sessions).
//!
//! Used from blocking tasks: sign-ins are rare next to messages and must not queue
//! behind the message writer's group commits; and the PostgreSQL client is synchronous,
//! so it must never run on a Tokio worker.

pub use super::admin::AdminStore;
use super::{
    Database, StoreError,
    invites::{InviteRefusal, NewInvite, Scope, StoredInvite},
    postgres::accounts::PgAccounts,
    sqlite::accounts::SqliteAccounts,
};

/// An account as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredUser {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub password_hash: String,
    pub is_admin: bool,
    /// Disabled by an administrator: no sign-in, no session (see [`crate::admin`]).
    pub disabled: bool,
}

/// A new account.
#[derive(Debug, Clone, Copy)]
pub struct NewUser<'a> {
    pub username: &'a str,
    pub display_name: &'a str,
    pub password_hash: &'a str,
    pub is_admin: bool,
    pub now_ms: i64,
}

/// Why an account was not created.
#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    #[error("the username is taken")]
    UsernameTaken,
    #[error("the invite cannot be used: {0}")]
    InviteRefused(InviteRefusal),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What both backends keep the same way. Usernames are unique whatever their case, and
/// looked up whatever their case. What administrators read and change is in
/// [`AdminStore`].
pub trait AccountStore: AdminStore + Send + Sync {
    /// Refused with [`CreateUserError::UsernameTaken`] when the name is taken, in any
    /// case.
    fn create_user(&self, user: NewUser<'_>) -> Result<StoredUser, CreateUserError>;

    fn user_by_username(&self, username: &str) -> Result<Option<StoredUser>, StoreError>;

    fn user_count(&self) -> Result<u64, StoreError>;

    /// Also notes the sign-in as the account's `last_seen`.
    fn create_session(
        &self,
        token_hash: &[u8],
        user_id: i64,
        now_ms: i64,
        expires_at_ms: i64,
    ) -> Result<(), StoreError>;

    /// The user of an unexpired session of an account that is not disabled.
    fn session_user(
        &self,
        token_hash: &[u8],
        now_ms: i64,
    ) -> Result<Option<StoredUser>, StoreError>;

    fn delete_session(&self, token_hash: &[u8]) -> Result<(), StoreError>;

    fn delete_sessions_of(&self, user_id: i64) -> Result<(), StoreError>;

    /// Every session of a user but the one with `keep_hash` ends.
    fn delete_sessions_of_except(&self, user_id: i64, keep_hash: &[u8]) -> Result<(), StoreError>;

    /// Sets a user's password hash and ends every session but `keep_hash`, together: a
    /// password change that took effect always ends the sessions the old password opened.
    fn change_password(
        &self,
        user_id: i64,
        password_hash: &str,
        keep_hash: &[u8],
    ) -> Result<(), StoreError>;

    /// Forgets expired sessions; returns each one's username and token hash, so their
    /// open sockets can be closed.
    fn delete_expired_sessions(&self, now_ms: i64) -> Result<Vec<(String, Vec<u8>)>, StoreError>;

    /// Stores a new invite, unless its creator already has `per_creator` unexpired
    /// ones (`Ok(None)`). Two made at once by one creator cannot both pass the cap.
    fn create_invite(&self, invite: NewInvite<'_>) -> Result<Option<StoredInvite>, StoreError>;

    /// The unexpired invites of `scope`, newest first, at most `limit` of them.
    fn invites(
        &self,
        scope: Scope,
        now_ms: i64,
        limit: u32,
    ) -> Result<Vec<StoredInvite>, StoreError>;

    /// Deletes an invite of `scope`; whether there was one.
    fn delete_invite(&self, id: i64, scope: Scope) -> Result<bool, StoreError>;

    /// Why the invite with this hash cannot be used now, or `None` if it can.
    fn invite_refusal(
        &self,
        token_hash: &[u8],
        now_ms: i64,
    ) -> Result<Option<InviteRefusal>, StoreError>;

    /// Uses up one use of the invite with this hash and creates the account, both or
    /// neither (see [`super::invites`] for why no two sign-ups get the same last use).
    fn create_user_invited(
        &self,
        user: NewUser<'_>,
        token_hash: &[u8],
    ) -> Result<StoredUser, CreateUserError>;

    /// Forgets invites past their expiry; how many.
    fn delete_expired_invites(&self, now_ms: i64) -> Result<usize, StoreError>;
}

/// The account store of `database`. Blocking (SQLite opens and migrates its file here;
/// PostgreSQL was migrated when its pool was made, and connects per call).
pub fn open(database: &Database) -> Result<Box<dyn AccountStore>, StoreError> {
    Ok(match database {
        Database::Sqlite {
            data_dir,
            durability,
        } => Box::new(SqliteAccounts::open(data_dir, *durability)?),
        Database::Postgres(pool) => Box::new(PgAccounts::new(pool.clone())),
    })
}
