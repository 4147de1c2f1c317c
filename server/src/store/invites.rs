//! Invite links as stored: the types of the invite half of
//! [`super::accounts::AccountStore`] (invites live with the accounts because signing
//! up with an invite must use it up and create the account in one transaction).
//!
//! Only a hash of each secret is kept, like sessions: a copy of the database lets no one
//! sign up. On both backends using an invite is one conditional `UPDATE` (`uses_left >
//! 0` and not expired) inside the transaction that inserts the account, never a read
//! then a write: SQLite takes the file's write lock for it, PostgreSQL the invite's row
//! lock, and a racer that waited re-checks the condition against the committed row. So
//! two sign-ups racing for the last use cannot both have it, even from two processes on
//! one SQLite file or two nodes on one PostgreSQL; and a sign-up that fails after it (a
//! taken username) gives the use back by rolling back.

/// Why an invite cannot be used. What a sign-up is told: the secret is unguessable, so
/// saying which of these it is gives nothing away to someone without it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InviteRefusal {
    /// No invite has this secret: never made, mistyped, revoked, or expired long ago
    /// and forgotten.
    Unknown,
    Expired,
    UsedUp,
}

impl std::fmt::Display for InviteRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            InviteRefusal::Unknown => "unknown or revoked",
            InviteRefusal::Expired => "expired",
            InviteRefusal::UsedUp => "used up",
        })
    }
}

/// An invite as stored, without its secret's hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredInvite {
    pub id: i64,
    /// The creator's username; `None` for the command line.
    pub created_by: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub max_uses: u32,
    pub uses_left: u32,
}

/// A new invite.
#[derive(Debug, Clone, Copy)]
pub struct NewInvite<'a> {
    pub token_hash: &'a [u8],
    /// The creator's account id; `None` for the command line.
    pub created_by: Option<i64>,
    pub now_ms: i64,
    pub expires_at_ms: i64,
    pub uses: u32,
    /// Most unexpired invites one creator may have (used-up ones count until they
    /// expire, so the list a creator sees stays bounded too).
    pub per_creator: u32,
}

/// Whose invites a listing or a revocation covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// An administrator's: everyone's.
    All,
    /// A member's: their own (by account id).
    CreatedBy(i64),
}
