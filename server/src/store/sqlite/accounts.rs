//! [`AccountStore`] on SQLite: a connection of its own to `confab.db`, so sign-ins do
//! not queue behind the message writer's group commits. One connection serves one call
//! at a time (the mutex); other processes on the same file (the `admin` commands) are
//! kept apart by SQLite's file lock.

use std::{
    path::Path,
    sync::{Mutex, MutexGuard, PoisonError},
};

use rusqlite::{Connection, ErrorCode, OptionalExtension, TransactionBehavior, params};

use super::open_migrated;
use confab_shared::api::{AdminRoom, AdminStats, AdminUser, AuditEntry};

use crate::store::{
    Durability, StoreError,
    accounts::{AccountStore, CreateUserError, NewUser, StoredUser},
    admin::{AdminStore, NewAuditEntry, count},
    invites::{InviteRefusal, NewInvite, Scope, StoredInvite},
};

pub struct SqliteAccounts {
    conn: Mutex<Connection>,
}

const USER_COLUMNS: &str = "id, username, display_name, password_hash, is_admin, disabled";

const INVITE_COLUMNS: &str =
    "i.id, u.username, i.created_at, i.expires_at, i.max_uses, i.uses_left";

fn row_to_user(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredUser> {
    Ok(StoredUser {
        id: row.get(0)?,
        username: row.get(1)?,
        display_name: row.get(2)?,
        password_hash: row.get(3)?,
        is_admin: row.get(4)?,
        disabled: row.get(5)?,
    })
}

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

impl SqliteAccounts {
    pub fn open(data_dir: &Path, durability: Durability) -> Result<Self, StoreError> {
        Ok(Self {
            conn: Mutex::new(open_migrated(data_dir, durability)?),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn create_user(conn: &Connection, user: NewUser<'_>) -> Result<StoredUser, CreateUserError> {
    let inserted = conn.execute(
        "INSERT INTO users (username, display_name, password_hash, is_admin, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            user.username,
            user.display_name,
            user.password_hash,
            user.is_admin,
            user.now_ms
        ],
    );
    match inserted {
        Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == ErrorCode::ConstraintViolation => {
            Err(CreateUserError::UsernameTaken)
        }
        Err(e) => Err(StoreError::from(e).into()),
        Ok(_) => Ok(StoredUser {
            id: conn.last_insert_rowid(),
            username: user.username.to_owned(),
            display_name: user.display_name.to_owned(),
            password_hash: user.password_hash.to_owned(),
            is_admin: user.is_admin,
            disabled: false,
        }),
    }
}

fn invite_refusal(
    conn: &Connection,
    token_hash: &[u8],
    now_ms: i64,
) -> Result<Option<InviteRefusal>, StoreError> {
    let found: Option<(i64, u32)> = conn
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

impl AccountStore for SqliteAccounts {
    fn create_user(&self, user: NewUser<'_>) -> Result<StoredUser, CreateUserError> {
        create_user(&self.conn(), user)
    }

    fn user_by_username(&self, username: &str) -> Result<Option<StoredUser>, StoreError> {
        Ok(self
            .conn()
            .prepare_cached(&format!(
                "SELECT {USER_COLUMNS} FROM users WHERE username = ?1"
            ))?
            .query_row([username], row_to_user)
            .optional()?)
    }

    fn user_count(&self) -> Result<u64, StoreError> {
        Ok(self
            .conn()
            .query_row("SELECT count(*) FROM users", [], |row| row.get(0))?)
    }

    fn create_session(
        &self,
        token_hash: &[u8],
        user_id: i64,
        now_ms: i64,
        expires_at_ms: i64,
    ) -> Result<(), StoreError> {
        let conn = self.conn();
        let tx = conn.unchecked_transaction()?;
        tx.prepare_cached(
            "INSERT INTO sessions (token_hash, user_id, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![token_hash, user_id, now_ms, expires_at_ms])?;
        tx.prepare_cached("UPDATE users SET last_seen = ?2 WHERE id = ?1")?
            .execute(params![user_id, now_ms])?;
        tx.commit()?;
        Ok(())
    }

    fn session_user(
        &self,
        token_hash: &[u8],
        now_ms: i64,
    ) -> Result<Option<StoredUser>, StoreError> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT u.id, u.username, u.display_name, u.password_hash, u.is_admin, u.disabled
                 FROM sessions s JOIN users u ON u.id = s.user_id
                 WHERE s.token_hash = ?1 AND s.expires_at > ?2 AND u.disabled = 0",
            )?
            .query_row(params![token_hash, now_ms], row_to_user)
            .optional()?)
    }

    fn delete_session(&self, token_hash: &[u8]) -> Result<(), StoreError> {
        self.conn()
            .prepare_cached("DELETE FROM sessions WHERE token_hash = ?1")?
            .execute([token_hash])?;
        Ok(())
    }

    fn delete_sessions_of(&self, user_id: i64) -> Result<(), StoreError> {
        self.conn()
            .prepare_cached("DELETE FROM sessions WHERE user_id = ?1")?
            .execute([user_id])?;
        Ok(())
    }

    fn delete_sessions_of_except(&self, user_id: i64, keep_hash: &[u8]) -> Result<(), StoreError> {
        self.conn()
            .prepare_cached("DELETE FROM sessions WHERE user_id = ?1 AND token_hash <> ?2")?
            .execute(params![user_id, keep_hash])?;
        Ok(())
    }

    fn change_password(
        &self,
        user_id: i64,
        password_hash: &str,
        keep_hash: &[u8],
    ) -> Result<(), StoreError> {
        let conn = self.conn();
        let tx = conn.unchecked_transaction()?;
        tx.prepare_cached("UPDATE users SET password_hash = ?2 WHERE id = ?1")?
            .execute(params![user_id, password_hash])?;
        tx.prepare_cached("DELETE FROM sessions WHERE user_id = ?1 AND token_hash <> ?2")?
            .execute(params![user_id, keep_hash])?;
        tx.commit()?;
        Ok(())
    }

    fn delete_expired_sessions(&self, now_ms: i64) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let expired = self
            .conn()
            .prepare_cached(
                "DELETE FROM sessions WHERE expires_at <= ?1
                 RETURNING (SELECT username FROM users WHERE id = user_id), token_hash",
            )?
            .query_map([now_ms], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<Result<_, _>>()?;
        Ok(expired)
    }

    /// The count and the insert are one statement, under the file's write lock.
    fn create_invite(&self, invite: NewInvite<'_>) -> Result<Option<StoredInvite>, StoreError> {
        let conn = self.conn();
        let inserted = conn
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
        let id = conn.last_insert_rowid();
        Ok(conn
            .prepare_cached(&format!(
                "SELECT {INVITE_COLUMNS} FROM invites i LEFT JOIN users u ON u.id = i.created_by
                 WHERE i.id = ?1"
            ))?
            .query_row([id], row_to_invite)
            .optional()?)
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
        let invites = self
            .conn()
            .prepare_cached(&format!(
                "SELECT {INVITE_COLUMNS} FROM invites i LEFT JOIN users u ON u.id = i.created_by
                 WHERE i.expires_at > ?1 AND (?2 IS NULL OR i.created_by = ?2)
                 ORDER BY i.id DESC LIMIT ?3"
            ))?
            .query_map(params![now_ms, creator, limit], row_to_invite)?
            .collect::<Result<_, _>>()?;
        Ok(invites)
    }

    fn delete_invite(&self, id: i64, scope: Scope) -> Result<bool, StoreError> {
        let conn = self.conn();
        let deleted = match scope {
            Scope::All => conn
                .prepare_cached("DELETE FROM invites WHERE id = ?1")?
                .execute([id])?,
            Scope::CreatedBy(creator) => conn
                .prepare_cached("DELETE FROM invites WHERE id = ?1 AND created_by = ?2")?
                .execute([id, creator])?,
        };
        Ok(deleted > 0)
    }

    fn invite_refusal(
        &self,
        token_hash: &[u8],
        now_ms: i64,
    ) -> Result<Option<InviteRefusal>, StoreError> {
        invite_refusal(&self.conn(), token_hash, now_ms)
    }

    fn create_user_invited(
        &self,
        user: NewUser<'_>,
        token_hash: &[u8],
    ) -> Result<StoredUser, CreateUserError> {
        let conn = self.conn();
        // IMMEDIATE: the write lock is taken at once, so another connection's sign-up
        // waits (busy timeout) rather than failing at commit.
        let tx = rusqlite::Transaction::new_unchecked(&conn, TransactionBehavior::Immediate)
            .map_err(StoreError::from)?;
        let used = tx
            .prepare_cached(
                "UPDATE invites SET uses_left = uses_left - 1
                 WHERE token_hash = ?1 AND uses_left > 0 AND expires_at > ?2",
            )
            .and_then(|mut update| update.execute(params![token_hash, user.now_ms]))
            .map_err(StoreError::from)?;
        if used == 0 {
            let why = invite_refusal(&tx, token_hash, user.now_ms)?
                // Usable again by the time we looked: only if it was changed in
                // between, which the write lock rules out. Read it as used up.
                .unwrap_or(InviteRefusal::UsedUp);
            return Err(CreateUserError::InviteRefused(why));
        }
        // Dropping `tx` on an error rolls the use back.
        let created = create_user(&tx, user)?;
        tx.commit().map_err(StoreError::from)?;
        Ok(created)
    }

    fn delete_expired_invites(&self, now_ms: i64) -> Result<usize, StoreError> {
        Ok(self
            .conn()
            .prepare_cached("DELETE FROM invites WHERE expires_at <= ?1")?
            .execute([now_ms])?)
    }
}

fn row_to_admin_user(row: &rusqlite::Row<'_>) -> rusqlite::Result<AdminUser> {
    Ok(AdminUser {
        username: row.get(0)?,
        display_name: row.get(1)?,
        admin: row.get(2)?,
        disabled: row.get(3)?,
        created_at: row.get(4)?,
        last_seen: row.get(5)?,
    })
}

impl AdminStore for SqliteAccounts {
    fn users(&self, query: &str, limit: u32) -> Result<Vec<AdminUser>, StoreError> {
        let users = self
            .conn()
            .prepare_cached(
                "SELECT username, display_name, is_admin, disabled, created_at, last_seen
                 FROM users
                 WHERE instr(lower(username), lower(?1)) > 0
                    OR instr(lower(display_name), lower(?1)) > 0
                 ORDER BY username LIMIT ?2",
            )?
            .query_map(params![query, limit], row_to_admin_user)?
            .collect::<Result<_, _>>()?;
        Ok(users)
    }

    fn set_disabled(&self, username: &str, disabled: bool) -> Result<Option<i64>, StoreError> {
        let conn = self.conn();
        let tx = rusqlite::Transaction::new_unchecked(&conn, TransactionBehavior::Immediate)?;
        let id: Option<i64> = tx
            .prepare_cached("UPDATE users SET disabled = ?2 WHERE username = ?1 RETURNING id")?
            .query_row(params![username, disabled], |row| row.get(0))
            .optional()?;
        if let (Some(id), true) = (id, disabled) {
            tx.prepare_cached("DELETE FROM sessions WHERE user_id = ?1")?
                .execute([id])?;
        }
        tx.commit()?;
        Ok(id)
    }

    fn set_admin(&self, username: &str, admin: bool) -> Result<bool, StoreError> {
        Ok(self
            .conn()
            .prepare_cached("UPDATE users SET is_admin = ?2 WHERE username = ?1")?
            .execute(params![username, admin])?
            > 0)
    }

    fn create_reset(
        &self,
        user_id: i64,
        token_hash: &[u8],
        now_ms: i64,
        expires_at_ms: i64,
    ) -> Result<(), StoreError> {
        let conn = self.conn();
        let tx = conn.unchecked_transaction()?;
        tx.prepare_cached("DELETE FROM password_resets WHERE user_id = ?1")?
            .execute([user_id])?;
        tx.prepare_cached(
            "INSERT INTO password_resets (token_hash, user_id, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![token_hash, user_id, now_ms, expires_at_ms])?;
        tx.commit()?;
        Ok(())
    }

    fn reset_user(&self, token_hash: &[u8], now_ms: i64) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT u.username FROM password_resets r JOIN users u ON u.id = r.user_id
                 WHERE r.token_hash = ?1 AND r.expires_at > ?2",
            )?
            .query_row(params![token_hash, now_ms], |row| row.get(0))
            .optional()?)
    }

    fn use_reset(
        &self,
        token_hash: &[u8],
        password_hash: &str,
        now_ms: i64,
    ) -> Result<Option<String>, StoreError> {
        let conn = self.conn();
        // IMMEDIATE: two uses of one link at once cannot both find it.
        let tx = rusqlite::Transaction::new_unchecked(&conn, TransactionBehavior::Immediate)?;
        let user_id: Option<i64> = tx
            .prepare_cached(
                "DELETE FROM password_resets WHERE token_hash = ?1 AND expires_at > ?2
                 RETURNING user_id",
            )?
            .query_row(params![token_hash, now_ms], |row| row.get(0))
            .optional()?;
        let Some(user_id) = user_id else {
            return Ok(None);
        };
        let username: String = tx
            .prepare_cached("UPDATE users SET password_hash = ?2 WHERE id = ?1 RETURNING username")?
            .query_row(params![user_id, password_hash], |row| row.get(0))?;
        tx.prepare_cached("DELETE FROM sessions WHERE user_id = ?1")?
            .execute([user_id])?;
        tx.commit()?;
        Ok(Some(username))
    }

    fn rooms(&self) -> Result<Vec<AdminRoom>, StoreError> {
        let rooms = self
            .conn()
            .prepare_cached(
                "SELECT r.name, r.kind, r.title,
                        (SELECT count(*) FROM room_members m WHERE m.room = r.name),
                        (SELECT count(*) FROM messages g WHERE g.room = r.name AND g.deleted = 0),
                        (SELECT max(ts) FROM messages g WHERE g.room = r.name)
                 FROM rooms r ORDER BY r.name",
            )?
            .query_map([], |row| {
                Ok(AdminRoom {
                    name: row.get(0)?,
                    kind: row.get(1)?,
                    title: row.get(2)?,
                    members: count(row.get(3)?),
                    messages: count(row.get(4)?),
                    last_activity: row.get(5)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rooms)
    }

    fn stats(&self) -> Result<AdminStats, StoreError> {
        let conn = self.conn();
        let one = |sql: &str| -> Result<i64, StoreError> {
            Ok(conn.query_row(sql, [], |row| row.get(0))?)
        };
        Ok(AdminStats {
            users: count(one("SELECT count(*) FROM users")?),
            disabled_users: count(one("SELECT count(*) FROM users WHERE disabled <> 0")?),
            rooms: count(one("SELECT count(*) FROM rooms")?),
            messages: count(one("SELECT count(*) FROM messages WHERE deleted = 0")?),
            files: count(one("SELECT count(*) FROM file_uploads")?),
            file_bytes: count(one("SELECT COALESCE(sum(size), 0) FROM file_blobs")?),
            database_bytes: count(one(
                "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
            )?),
        })
    }

    fn record(&self, entry: NewAuditEntry<'_>) -> Result<(), StoreError> {
        self.conn()
            .prepare_cached(
                "INSERT INTO audit_log (at, actor, action, target, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                entry.at,
                entry.actor,
                entry.action,
                entry.target,
                entry.detail
            ])?;
        Ok(())
    }

    fn audit(&self, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        let entries = self
            .conn()
            .prepare_cached(
                "SELECT id, at, actor, action, target, detail FROM audit_log
                 ORDER BY id DESC LIMIT ?1",
            )?
            .query_map([limit], |row| {
                Ok(AuditEntry {
                    id: row.get(0)?,
                    at: row.get(1)?,
                    actor: row.get(2)?,
                    action: row.get(3)?,
                    target: row.get(4)?,
                    detail: row.get(5)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(entries)
    }
}
