//! Invite links as stored: the SQL half of [`crate::invites`], on the accounts'
//! connection ([`AccountStore`]) because signing up with an invite must use it up and
//! create the account in one transaction.
//!
//! Only a hash of each secret is kept, like sessions: a copy of the database lets no one
//! sign up. Using an invite is one conditional `UPDATE` (`uses_left > 0` and not
//! expired) inside the transaction that inserts the account, so two sign-ups racing for
//! the last use cannot both have it, even from two processes on the same file; and a
//! sign-up that fails after it (a taken username) gives the use back by rolling back.

use rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::{
    StoreError,
    accounts::{AccountStore, CreateUserError, NewUser, StoredUser},
};

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

const INVITE_COLUMNS: &str =
    "i.id, u.username, i.created_at, i.expires_at, i.max_uses, i.uses_left";

fn row_to_invite(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredInvite> {
    Ok(StoredInvite {
        id: row.get(0)?,
        created_by: row.get(1)?,
        created_at: row.get(2)?,
        expires_at: row.get(3)?,
        max_uses: row.get(4)?,
        uses_left: row.get(5)?,
    })
}

impl AccountStore {
    /// Stores a new invite, unless its creator already has `per_creator` unexpired
    /// ones (`Ok(None)`). The count and the insert are one statement.
    pub fn create_invite(&self, invite: NewInvite<'_>) -> Result<Option<StoredInvite>, StoreError> {
        let inserted = self
            .conn
            .prepare_cached(
                "INSERT INTO invites (token_hash, created_by, created_at, expires_at, max_uses, uses_left)
                 SELECT ?1, ?2, ?3, ?4, ?5, ?5
                 WHERE (SELECT count(*) FROM invites
                        WHERE created_by IS ?2 AND expires_at > ?3) < ?6",
            )?
            .execute(params![
                invite.token_hash,
                invite.created_by,
                invite.now_ms,
                invite.expires_at_ms,
                invite.uses,
                invite.per_creator
            ])?;
        if inserted == 0 {
            return Ok(None);
        }
        let id = self.conn.last_insert_rowid();
        Ok(self
            .conn
            .prepare_cached(&format!(
                "SELECT {INVITE_COLUMNS} FROM invites i LEFT JOIN users u ON u.id = i.created_by
                 WHERE i.id = ?1"
            ))?
            .query_row([id], row_to_invite)
            .optional()?)
    }

    /// The unexpired invites of `scope`, newest first, at most `limit` of them.
    pub fn invites(
        &self,
        scope: Scope,
        now_ms: i64,
        limit: u32,
    ) -> Result<Vec<StoredInvite>, StoreError> {
        let creator = match scope {
            Scope::All => None,
            Scope::CreatedBy(id) => Some(id),
        };
        let invites = self
            .conn
            .prepare_cached(&format!(
                "SELECT {INVITE_COLUMNS} FROM invites i LEFT JOIN users u ON u.id = i.created_by
                 WHERE i.expires_at > ?1 AND (?2 IS NULL OR i.created_by = ?2)
                 ORDER BY i.id DESC LIMIT ?3"
            ))?
            .query_map(params![now_ms, creator, limit], row_to_invite)?
            .collect::<Result<_, _>>()?;
        Ok(invites)
    }

    /// Deletes an invite of `scope`; whether there was one.
    pub fn delete_invite(&self, id: i64, scope: Scope) -> Result<bool, StoreError> {
        let deleted = match scope {
            Scope::All => self
                .conn
                .prepare_cached("DELETE FROM invites WHERE id = ?1")?
                .execute([id])?,
            Scope::CreatedBy(creator) => self
                .conn
                .prepare_cached("DELETE FROM invites WHERE id = ?1 AND created_by = ?2")?
                .execute([id, creator])?,
        };
        Ok(deleted > 0)
    }

    /// Why the invite with this hash cannot be used now, or `None` if it can.
    pub fn invite_refusal(
        &self,
        token_hash: &[u8],
        now_ms: i64,
    ) -> Result<Option<InviteRefusal>, StoreError> {
        let found: Option<(i64, u32)> = self
            .conn
            .prepare_cached("SELECT expires_at, uses_left FROM invites WHERE token_hash = ?1")?
            .query_row([token_hash], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()?;
        Ok(match found {
            None => Some(InviteRefusal::Unknown),
            Some((expires_at, _)) if expires_at <= now_ms => Some(InviteRefusal::Expired),
            Some((_, 0)) => Some(InviteRefusal::UsedUp),
            Some(_) => None,
        })
    }

    /// Uses up one use of the invite with this hash and creates the account, both or
    /// neither.
    pub fn create_user_invited(
        &self,
        user: NewUser<'_>,
        token_hash: &[u8],
    ) -> Result<StoredUser, CreateUserError> {
        // IMMEDIATE: the write lock is taken at once, so another connection's sign-up
        // waits (busy timeout) rather than failing at commit.
        let tx = rusqlite::Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)
            .map_err(StoreError::from)?;
        let used = tx
            .prepare_cached(
                "UPDATE invites SET uses_left = uses_left - 1
                 WHERE token_hash = ?1 AND uses_left > 0 AND expires_at > ?2",
            )
            .and_then(|mut update| update.execute(params![token_hash, user.now_ms]))
            .map_err(StoreError::from)?;
        if used == 0 {
            let why = self
                .invite_refusal(token_hash, user.now_ms)?
                // Usable again by the time we looked: only if it was changed in
                // between, which the write lock rules out. Read it as used up.
                .unwrap_or(InviteRefusal::UsedUp);
            return Err(CreateUserError::InviteRefused(why));
        }
        // Dropping `tx` on an error rolls the use back.
        let created = self.create_user(user)?;
        tx.commit().map_err(StoreError::from)?;
        Ok(created)
    }

    /// Forgets invites past their expiry; how many.
    pub fn delete_expired_invites(&self, now_ms: i64) -> Result<usize, StoreError> {
        Ok(self
            .conn
            .prepare_cached("DELETE FROM invites WHERE expires_at <= ?1")?
            .execute([now_ms])?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Durability;

    fn store() -> (AccountStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = AccountStore::open(dir.path(), Durability::Process).expect("open");
        (store, dir)
    }

    fn person(username: &str, now_ms: i64) -> NewUser<'_> {
        NewUser {
            username,
            display_name: username,
            password_hash: "$argon2id$stub-for-the-store-test",
            is_admin: false,
            now_ms,
        }
    }

    fn invite(token_hash: &[u8], created_by: Option<i64>, uses: u32) -> NewInvite<'_> {
        NewInvite {
            token_hash,
            created_by,
            now_ms: 10,
            expires_at_ms: 1_000,
            uses,
            per_creator: 3,
        }
    }

    #[test]
    fn an_invite_creates_as_many_accounts_as_it_has_uses() {
        let (s, _dir) = store();
        let made = s
            .create_invite(invite(b"secret", None, 2))
            .expect("store")
            .expect("created");
        assert_eq!(
            (made.max_uses, made.uses_left, made.created_by),
            (2, 2, None)
        );
        s.create_user_invited(person("ada", 20), b"secret")
            .expect("first use");
        s.create_user_invited(person("bob", 20), b"secret")
            .expect("second use");
        assert!(matches!(
            s.create_user_invited(person("cy", 20), b"secret"),
            Err(CreateUserError::InviteRefused(InviteRefusal::UsedUp))
        ));
        assert_eq!(
            s.user_count().expect("count"),
            2,
            "no account without a use"
        );
        assert_eq!(
            s.invite_refusal(b"secret", 20).expect("read"),
            Some(InviteRefusal::UsedUp)
        );
    }

    #[test]
    fn a_taken_username_gives_the_use_back() {
        let (s, _dir) = store();
        s.create_user(person("ada", 1)).expect("ada");
        s.create_invite(invite(b"secret", None, 1))
            .expect("store")
            .expect("created");
        assert!(matches!(
            s.create_user_invited(person("ADA", 20), b"secret"),
            Err(CreateUserError::UsernameTaken)
        ));
        assert_eq!(s.invite_refusal(b"secret", 20).expect("read"), None);
        s.create_user_invited(person("bob", 20), b"secret")
            .expect("the use is still there");
    }

    #[test]
    fn expired_unknown_and_revoked_invites_create_nothing() {
        let (s, _dir) = store();
        let made = s
            .create_invite(invite(b"secret", None, 5))
            .expect("store")
            .expect("created");
        assert!(matches!(
            s.create_user_invited(person("ada", 1_000), b"secret"),
            Err(CreateUserError::InviteRefused(InviteRefusal::Expired))
        ));
        assert!(matches!(
            s.create_user_invited(person("ada", 20), b"other"),
            Err(CreateUserError::InviteRefused(InviteRefusal::Unknown))
        ));
        assert!(s.delete_invite(made.id, Scope::All).expect("revoke"));
        assert!(!s.delete_invite(made.id, Scope::All).expect("again"));
        assert!(matches!(
            s.create_user_invited(person("ada", 20), b"secret"),
            Err(CreateUserError::InviteRefused(InviteRefusal::Unknown))
        ));
        assert_eq!(s.user_count().expect("count"), 0);
    }

    #[test]
    fn two_connections_racing_for_the_last_use_get_one_account() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = AccountStore::open(dir.path(), Durability::Process).expect("open");
        first
            .create_invite(invite(b"secret", None, 1))
            .expect("store")
            .expect("created");
        let racers: Vec<_> = (0..8)
            .map(|n| {
                let path = dir.path().to_owned();
                std::thread::spawn(move || {
                    let s = AccountStore::open(&path, Durability::Process).expect("open");
                    let name = format!("racer{n}");
                    s.create_user_invited(person(&name, 20), b"secret").is_ok()
                })
            })
            .collect();
        let won = racers
            .into_iter()
            .map(|r| r.join().expect("thread"))
            .filter(|ok| *ok)
            .count();
        assert_eq!(won, 1);
        assert_eq!(first.user_count().expect("count"), 1);
    }

    #[test]
    fn members_see_and_revoke_only_their_own_and_creators_are_capped() {
        let (s, _dir) = store();
        let ada = s.create_user(person("ada", 1)).expect("ada").id;
        let bob = s.create_user(person("bob", 1)).expect("bob").id;
        let theirs = s
            .create_invite(invite(b"a1", Some(ada), 1))
            .expect("store")
            .expect("created");
        assert_eq!(theirs.created_by.as_deref(), Some("ada"));
        s.create_invite(invite(b"a2", Some(ada), 1))
            .expect("store")
            .expect("created");
        s.create_invite(invite(b"a3", Some(ada), 1))
            .expect("store")
            .expect("created");
        assert_eq!(
            s.create_invite(invite(b"a4", Some(ada), 1)).expect("store"),
            None,
            "a fourth is over the cap of 3"
        );
        s.create_invite(invite(b"b1", Some(bob), 1))
            .expect("store")
            .expect("bob has his own cap");
        let ids = |scope| -> Vec<i64> {
            s.invites(scope, 20, 100)
                .expect("list")
                .iter()
                .map(|i| i.id)
                .collect()
        };
        assert_eq!(ids(Scope::CreatedBy(bob)).len(), 1);
        assert_eq!(ids(Scope::CreatedBy(ada)).len(), 3);
        assert_eq!(ids(Scope::All).len(), 4);
        assert!(
            !s.delete_invite(theirs.id, Scope::CreatedBy(bob))
                .expect("revoke")
        );
        assert!(
            s.delete_invite(theirs.id, Scope::CreatedBy(ada))
                .expect("revoke")
        );
        assert_eq!(ids(Scope::All).len(), 3);
        // Expired ones leave the list, free their place and are swept.
        assert!(ids_after(&s, 1_000).is_empty());
        assert_eq!(s.delete_expired_invites(1_000).expect("sweep"), 3);
    }

    fn ids_after(s: &AccountStore, now_ms: i64) -> Vec<i64> {
        s.invites(Scope::All, now_ms, 100)
            .expect("list")
            .iter()
            .map(|i| i.id)
            .collect()
    }
}
