//! [`AccountStore`] on PostgreSQL: every node of a cluster reads and writes the same
//! accounts, sessions and invites, so a session opened on one node signs in on all.
//!
//! Each call takes a connection from the node's pool for its duration. What SQLite
//! gets from its single file lock, several nodes at once get here from row locks and
//! conditional statements (never a read then a write):
//! - a username is taken by the unique (case-insensitive, `CITEXT`) key: of two
//!   sign-ups with one name on two nodes the second waits for the first's commit and
//!   is refused;
//! - an invite's use is taken by `UPDATE ... WHERE uses_left > 0`, whose row lock lasts
//!   until the account is committed or rolled back; a racer waits on that lock, then
//!   re-checks the condition against the committed row;
//! - the per-creator cap on invites is counted under a transaction-level advisory lock
//!   per creator, so two made at once are counted one after the other.

use postgres::{GenericClient, Row, error::SqlState};

use confab_shared::api::{AdminRoom, AdminStats, AdminUser, AuditEntry};

use super::PgPool;
use crate::store::{
    StoreError,
    accounts::{AccountStore, CreateUserError, NewUser, StoredUser},
    admin::{AdminStore, NewAuditEntry, count as admin_count},
    invites::{InviteRefusal, NewInvite, Scope, StoredInvite},
};

/// First key of the advisory locks taken to count a creator's invites (the second is
/// the creator): any constant no other user of the database takes ("inv" in ASCII).
const INVITE_CAP_LOCK: i32 = 0x0069_6e76;

pub struct PgAccounts {
    pool: PgPool,
}

impl PgAccounts {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

const USER_COLUMNS: &str = "id, username, display_name, password_hash, is_admin, disabled";

const INVITE_COLUMNS: &str =
    "i.id, u.username, i.created_at, i.expires_at, i.max_uses, i.uses_left";

fn row_to_user(row: &Row) -> Result<StoredUser, StoreError> {
    Ok(StoredUser {
        id: row.try_get(0)?,
        username: row.try_get(1)?,
        display_name: row.try_get(2)?,
        password_hash: row.try_get(3)?,
        is_admin: row.try_get(4)?,
        disabled: row.try_get(5)?,
    })
}

/// Counts are stored as BIGINT from a `u32` and never go below 0 (a CHECK).
fn count(n: i64) -> u32 {
    u32::try_from(n.max(0)).unwrap_or(u32::MAX)
}

fn row_to_invite(row: &Row) -> Result<StoredInvite, StoreError> {
    Ok(StoredInvite {
        id: row.try_get(0)?,
        created_by: row.try_get(1)?,
        created_at: row.try_get(2)?,
        expires_at: row.try_get(3)?,
        max_uses: count(row.try_get(4)?),
        uses_left: count(row.try_get(5)?),
    })
}

fn create_user(
    client: &mut impl GenericClient,
    user: NewUser<'_>,
) -> Result<StoredUser, CreateUserError> {
    let inserted = client.query_one(
        "INSERT INTO users (username, display_name, password_hash, is_admin, created_at)
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
        &[
            &user.username,
            &user.display_name,
            &user.password_hash,
            &user.is_admin,
            &user.now_ms,
        ],
    );
    match inserted {
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
            Err(CreateUserError::UsernameTaken)
        }
        Err(e) => Err(StoreError::from(e).into()),
        Ok(row) => Ok(StoredUser {
            id: row.try_get(0).map_err(StoreError::from)?,
            username: user.username.to_owned(),
            display_name: user.display_name.to_owned(),
            password_hash: user.password_hash.to_owned(),
            is_admin: user.is_admin,
            disabled: false,
        }),
    }
}

fn invite_refusal(
    client: &mut impl GenericClient,
    token_hash: &[u8],
    now_ms: i64,
) -> Result<Option<InviteRefusal>, StoreError> {
    let found = client.query_opt(
        "SELECT expires_at, uses_left FROM invites WHERE token_hash = $1",
        &[&token_hash],
    )?;
    Ok(match found {
        None => Some(InviteRefusal::Unknown),
        Some(row) => {
            let (expires_at, uses_left): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
            if expires_at <= now_ms {
                Some(InviteRefusal::Expired)
            } else if uses_left <= 0 {
                Some(InviteRefusal::UsedUp)
            } else {
                None
            }
        }
    })
}

/// The second key of the advisory lock on a creator's invites: the account id folded
/// into 32 bits (two creators sharing a lock only wait for each other), 0 for the
/// command line.
fn creator_lock(created_by: Option<i64>) -> i32 {
    created_by.map_or(0, |id| (id ^ (id >> 32)) as i32)
}

impl AccountStore for PgAccounts {
    fn create_user(&self, user: NewUser<'_>) -> Result<StoredUser, CreateUserError> {
        let mut client = self.pool.get()?;
        create_user(&mut *client, user)
    }

    fn user_by_username(&self, username: &str) -> Result<Option<StoredUser>, StoreError> {
        self.pool
            .get()?
            .query_opt(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE username = $1"),
                &[&username],
            )?
            .as_ref()
            .map(row_to_user)
            .transpose()
    }

    fn user_count(&self) -> Result<u64, StoreError> {
        let n: i64 = self
            .pool
            .get()?
            .query_one("SELECT count(*) FROM users", &[])?
            .try_get(0)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    fn create_session(
        &self,
        token_hash: &[u8],
        user_id: i64,
        now_ms: i64,
        expires_at_ms: i64,
    ) -> Result<(), StoreError> {
        let mut client = self.pool.get()?;
        let mut tx = client.transaction()?;
        tx.execute(
            "INSERT INTO sessions (token_hash, user_id, created_at, expires_at)
             VALUES ($1, $2, $3, $4)",
            &[&token_hash, &user_id, &now_ms, &expires_at_ms],
        )?;
        tx.execute(
            "UPDATE users SET last_seen = $2 WHERE id = $1",
            &[&user_id, &now_ms],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn session_user(
        &self,
        token_hash: &[u8],
        now_ms: i64,
    ) -> Result<Option<StoredUser>, StoreError> {
        self.pool
            .get()?
            .query_opt(
                "SELECT u.id, u.username, u.display_name, u.password_hash, u.is_admin, u.disabled
                 FROM sessions s JOIN users u ON u.id = s.user_id
                 WHERE s.token_hash = $1 AND s.expires_at > $2 AND NOT u.disabled",
                &[&token_hash, &now_ms],
            )?
            .as_ref()
            .map(row_to_user)
            .transpose()
    }

    fn delete_session(&self, token_hash: &[u8]) -> Result<(), StoreError> {
        self.pool
            .get()?
            .execute("DELETE FROM sessions WHERE token_hash = $1", &[&token_hash])?;
        Ok(())
    }

    fn delete_sessions_of(&self, user_id: i64) -> Result<(), StoreError> {
        self.pool
            .get()?
            .execute("DELETE FROM sessions WHERE user_id = $1", &[&user_id])?;
        Ok(())
    }

    fn delete_sessions_of_except(&self, user_id: i64, keep_hash: &[u8]) -> Result<(), StoreError> {
        self.pool.get()?.execute(
            "DELETE FROM sessions WHERE user_id = $1 AND token_hash <> $2",
            &[&user_id, &keep_hash],
        )?;
        Ok(())
    }

    fn change_password(
        &self,
        user_id: i64,
        password_hash: &str,
        keep_hash: &[u8],
    ) -> Result<(), StoreError> {
        let mut client = self.pool.get()?;
        let mut tx = client.transaction()?;
        tx.execute(
            "UPDATE users SET password_hash = $2 WHERE id = $1",
            &[&user_id, &password_hash],
        )?;
        tx.execute(
            "DELETE FROM sessions WHERE user_id = $1 AND token_hash <> $2",
            &[&user_id, &keep_hash],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn delete_expired_sessions(&self, now_ms: i64) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.pool
            .get()?
            .query(
                "DELETE FROM sessions s USING users u
                 WHERE u.id = s.user_id AND s.expires_at <= $1
                 RETURNING u.username, s.token_hash",
                &[&now_ms],
            )?
            .iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect()
    }

    fn create_invite(&self, invite: NewInvite<'_>) -> Result<Option<StoredInvite>, StoreError> {
        let mut client = self.pool.get()?;
        let mut tx = client.transaction()?;
        // Another node's invite by the same creator, counted before this one commits,
        // would otherwise let both pass the cap.
        tx.execute(
            "SELECT pg_advisory_xact_lock($1, $2)",
            &[&INVITE_CAP_LOCK, &creator_lock(invite.created_by)],
        )?;
        let inserted = tx.query_opt(
            "INSERT INTO invites (token_hash, created_by, created_at, expires_at, max_uses, uses_left)
             SELECT $1, $2, $3, $4, $5, $5
             WHERE (SELECT count(*) FROM invites
                    WHERE created_by IS NOT DISTINCT FROM $2 AND expires_at > $3) < $6
             RETURNING id",
            &[
                &invite.token_hash,
                &invite.created_by,
                &invite.now_ms,
                &invite.expires_at_ms,
                &i64::from(invite.uses),
                &i64::from(invite.per_creator),
            ],
        )?;
        let Some(row) = inserted else {
            return Ok(None);
        };
        let id: i64 = row.try_get(0)?;
        let made = tx
            .query_opt(
                &format!(
                    "SELECT {INVITE_COLUMNS} FROM invites i LEFT JOIN users u ON u.id = i.created_by
                     WHERE i.id = $1"
                ),
                &[&id],
            )?
            .as_ref()
            .map(row_to_invite)
            .transpose()?;
        tx.commit()?;
        Ok(made)
    }

    fn invites(
        &self,
        scope: Scope,
        now_ms: i64,
        limit: u32,
    ) -> Result<Vec<StoredInvite>, StoreError> {
        let creator = match scope {
            Scope::All => None,
            Scope::CreatedBy(id) => Some(id),
        };
        self.pool
            .get()?
            .query(
                &format!(
                    "SELECT {INVITE_COLUMNS} FROM invites i LEFT JOIN users u ON u.id = i.created_by
                     WHERE i.expires_at > $1 AND ($2::BIGINT IS NULL OR i.created_by = $2)
                     ORDER BY i.id DESC LIMIT $3"
                ),
                &[&now_ms, &creator, &i64::from(limit)],
            )?
            .iter()
            .map(row_to_invite)
            .collect()
    }

    fn delete_invite(&self, id: i64, scope: Scope) -> Result<bool, StoreError> {
        let mut client = self.pool.get()?;
        let deleted = match scope {
            Scope::All => client.execute("DELETE FROM invites WHERE id = $1", &[&id])?,
            Scope::CreatedBy(creator) => client.execute(
                "DELETE FROM invites WHERE id = $1 AND created_by = $2",
                &[&id, &creator],
            )?,
        };
        Ok(deleted > 0)
    }

    fn invite_refusal(
        &self,
        token_hash: &[u8],
        now_ms: i64,
    ) -> Result<Option<InviteRefusal>, StoreError> {
        invite_refusal(&mut *self.pool.get()?, token_hash, now_ms)
    }

    fn create_user_invited(
        &self,
        user: NewUser<'_>,
        token_hash: &[u8],
    ) -> Result<StoredUser, CreateUserError> {
        let mut client = self.pool.get()?;
        let mut tx = client.transaction().map_err(StoreError::from)?;
        // The row lock this takes is held until the commit or the rollback: a racer for
        // the same invite waits here, then sees the committed count.
        let used = tx
            .execute(
                "UPDATE invites SET uses_left = uses_left - 1
                 WHERE token_hash = $1 AND uses_left > 0 AND expires_at > $2",
                &[&token_hash, &user.now_ms],
            )
            .map_err(StoreError::from)?;
        if used == 0 {
            let why = invite_refusal(&mut tx, token_hash, user.now_ms)?
                // Usable again by the time we looked: no one gives a use back once it
                // is committed (a rollback we would have waited for). Read it as used up.
                .unwrap_or(InviteRefusal::UsedUp);
            return Err(CreateUserError::InviteRefused(why));
        }
        // Dropping `tx` on an error (a taken username) rolls the use back.
        let created = create_user(&mut tx, user)?;
        tx.commit().map_err(StoreError::from)?;
        Ok(created)
    }

    fn delete_expired_invites(&self, now_ms: i64) -> Result<usize, StoreError> {
        let deleted = self
            .pool
            .get()?
            .execute("DELETE FROM invites WHERE expires_at <= $1", &[&now_ms])?;
        Ok(usize::try_from(deleted).unwrap_or(usize::MAX))
    }
}

/// The cluster's device cookie key (see http/device.rs): `fresh` if this node is the
/// first to ask, else the one the first put in. Two statements, not one: the second
/// runs on a snapshot taken after a racing node's insert committed (the insert waits for
/// it), where one statement's snapshot could see neither.
pub fn device_cookie_key(pool: &PgPool, fresh: &[u8; 32]) -> Result<Vec<u8>, StoreError> {
    let mut client = pool.get()?;
    client.execute(
        "INSERT INTO device_cookie_key (key) VALUES ($1) ON CONFLICT DO NOTHING",
        &[&&fresh[..]],
    )?;
    Ok(client
        .query_one("SELECT key FROM device_cookie_key", &[])?
        .try_get(0)?)
}

fn row_to_audit(row: &Row) -> Result<AuditEntry, StoreError> {
    Ok(AuditEntry {
        id: row.try_get(0)?,
        at: row.try_get(1)?,
        actor: row.try_get(2)?,
        action: row.try_get(3)?,
        target: row.try_get(4)?,
        detail: row.try_get(5)?,
    })
}

impl AdminStore for PgAccounts {
    fn users(&self, query: &str, limit: u32) -> Result<Vec<AdminUser>, StoreError> {
        self.pool
            .get()?
            .query(
                "SELECT username::text, display_name, is_admin, disabled, created_at, last_seen
                 FROM users
                 WHERE strpos(lower(username::text), lower($1)) > 0
                    OR strpos(lower(display_name), lower($1)) > 0
                 ORDER BY username LIMIT $2",
                &[&query, &i64::from(limit)],
            )?
            .iter()
            .map(|row| {
                Ok(AdminUser {
                    username: row.try_get(0)?,
                    display_name: row.try_get(1)?,
                    admin: row.try_get(2)?,
                    disabled: row.try_get(3)?,
                    created_at: row.try_get(4)?,
                    last_seen: row.try_get(5)?,
                })
            })
            .collect()
    }

    fn set_disabled(&self, username: &str, disabled: bool) -> Result<Option<i64>, StoreError> {
        let mut client = self.pool.get()?;
        let mut tx = client.transaction()?;
        let id: Option<i64> = tx
            .query_opt(
                "UPDATE users SET disabled = $2 WHERE username = $1 RETURNING id",
                &[&username, &disabled],
            )?
            .map(|row| row.try_get(0))
            .transpose()?;
        if let (Some(id), true) = (id, disabled) {
            tx.execute("DELETE FROM sessions WHERE user_id = $1", &[&id])?;
        }
        tx.commit()?;
        Ok(id)
    }

    fn set_admin(&self, username: &str, admin: bool) -> Result<bool, StoreError> {
        Ok(self.pool.get()?.execute(
            "UPDATE users SET is_admin = $2 WHERE username = $1",
            &[&username, &admin],
        )? > 0)
    }

    fn create_reset(
        &self,
        user_id: i64,
        token_hash: &[u8],
        now_ms: i64,
        expires_at_ms: i64,
    ) -> Result<(), StoreError> {
        let mut client = self.pool.get()?;
        let mut tx = client.transaction()?;
        tx.execute(
            "DELETE FROM password_resets WHERE user_id = $1",
            &[&user_id],
        )?;
        tx.execute(
            "INSERT INTO password_resets (token_hash, user_id, created_at, expires_at)
             VALUES ($1, $2, $3, $4)",
            &[&token_hash, &user_id, &now_ms, &expires_at_ms],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn reset_user(&self, token_hash: &[u8], now_ms: i64) -> Result<Option<String>, StoreError> {
        self.pool
            .get()?
            .query_opt(
                "SELECT u.username::text FROM password_resets r JOIN users u ON u.id = r.user_id
                 WHERE r.token_hash = $1 AND r.expires_at > $2",
                &[&token_hash, &now_ms],
            )?
            .map(|row| row.try_get(0))
            .transpose()
            .map_err(StoreError::from)
    }

    /// The link's row is deleted first: of two uses at once, the second waits on its row
    /// lock and then finds it gone.
    fn use_reset(
        &self,
        token_hash: &[u8],
        password_hash: &str,
        now_ms: i64,
    ) -> Result<Option<String>, StoreError> {
        let mut client = self.pool.get()?;
        let mut tx = client.transaction()?;
        let Some(row) = tx.query_opt(
            "DELETE FROM password_resets WHERE token_hash = $1 AND expires_at > $2
             RETURNING user_id",
            &[&token_hash, &now_ms],
        )?
        else {
            return Ok(None);
        };
        let user_id: i64 = row.try_get(0)?;
        let username: String = tx
            .query_one(
                "UPDATE users SET password_hash = $2 WHERE id = $1 RETURNING username::text",
                &[&user_id, &password_hash],
            )?
            .try_get(0)?;
        tx.execute("DELETE FROM sessions WHERE user_id = $1", &[&user_id])?;
        tx.commit()?;
        Ok(Some(username))
    }

    fn rooms(&self) -> Result<Vec<AdminRoom>, StoreError> {
        self.pool
            .get()?
            .query(
                "SELECT r.name, r.kind, r.title,
                        (SELECT count(*) FROM room_members m WHERE m.room = r.name),
                        (SELECT count(*) FROM messages g WHERE g.room = r.name AND NOT g.deleted),
                        (SELECT max(ts) FROM messages g WHERE g.room = r.name)
                 FROM rooms r ORDER BY r.name",
                &[],
            )?
            .iter()
            .map(|row| {
                Ok(AdminRoom {
                    name: row.try_get(0)?,
                    kind: row.try_get(1)?,
                    title: row.try_get(2)?,
                    members: admin_count(row.try_get(3)?),
                    messages: admin_count(row.try_get(4)?),
                    last_activity: row.try_get(5)?,
                })
            })
            .collect()
    }

    fn stats(&self) -> Result<AdminStats, StoreError> {
        let row = self.pool.get()?.query_one(
            "SELECT (SELECT count(*) FROM users),
                    (SELECT count(*) FROM users WHERE disabled),
                    (SELECT count(*) FROM rooms),
                    (SELECT count(*) FROM messages WHERE NOT deleted),
                    (SELECT count(*) FROM file_uploads),
                    (SELECT COALESCE(sum(size), 0)::bigint FROM file_blobs),
                    pg_database_size(current_database())",
            &[],
        )?;
        Ok(AdminStats {
            users: admin_count(row.try_get(0)?),
            disabled_users: admin_count(row.try_get(1)?),
            rooms: admin_count(row.try_get(2)?),
            messages: admin_count(row.try_get(3)?),
            files: admin_count(row.try_get(4)?),
            file_bytes: admin_count(row.try_get(5)?),
            database_bytes: admin_count(row.try_get(6)?),
        })
    }

    fn record(&self, entry: NewAuditEntry<'_>) -> Result<(), StoreError> {
        self.pool.get()?.execute(
            "INSERT INTO audit_log (at, actor, action, target, detail)
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &entry.at,
                &entry.actor,
                &entry.action,
                &entry.target,
                &entry.detail,
            ],
        )?;
        Ok(())
    }

    fn audit(&self, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        self.pool
            .get()?
            .query(
                "SELECT id, at, actor, action, target, detail FROM audit_log
                 ORDER BY id DESC LIMIT $1",
                &[&i64::from(limit)],
            )?
            .iter()
            .map(row_to_audit)
            .collect()
    }
}
