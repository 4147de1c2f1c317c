//! Accounts and sign-in sessions as stored: the SQL half of [`crate::accounts`], which
//! owns the policy (hashing, tokens, expiry). Its own connection to the same database,
//! used from blocking tasks: sign-ins are rare next to messages and must not queue
//! behind the message writer's group commits.

use std::path::Path;

use rusqlite::{Connection, ErrorCode, OptionalExtension, params};

use super::{Durability, StoreError, sqlite::open_migrated};

/// An account as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredUser {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub password_hash: String,
    pub is_admin: bool,
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
    InviteRefused(super::invites::InviteRefusal),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct AccountStore {
    /// Also used by [`super::invites`], whose sign-up consumes an invite and creates the
    /// account in one transaction.
    pub(super) conn: Connection,
}

const USER_COLUMNS: &str = "id, username, display_name, password_hash, is_admin";

fn row_to_user(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredUser> {
    Ok(StoredUser {
        id: row.get(0)?,
        username: row.get(1)?,
        display_name: row.get(2)?,
        password_hash: row.get(3)?,
        is_admin: row.get(4)?,
    })
}

impl AccountStore {
    pub fn open(data_dir: &Path, durability: Durability) -> Result<Self, StoreError> {
        Ok(Self {
            conn: open_migrated(data_dir, durability)?,
        })
    }

    pub fn create_user(&self, user: NewUser<'_>) -> Result<StoredUser, CreateUserError> {
        let inserted = self.conn.execute(
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
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == ErrorCode::ConstraintViolation =>
            {
                Err(CreateUserError::UsernameTaken)
            }
            Err(e) => Err(StoreError::from(e).into()),
            Ok(_) => Ok(StoredUser {
                id: self.conn.last_insert_rowid(),
                username: user.username.to_owned(),
                display_name: user.display_name.to_owned(),
                password_hash: user.password_hash.to_owned(),
                is_admin: user.is_admin,
            }),
        }
    }

    pub fn user_by_username(&self, username: &str) -> Result<Option<StoredUser>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(&format!(
                "SELECT {USER_COLUMNS} FROM users WHERE username = ?1"
            ))?
            .query_row([username], row_to_user)
            .optional()?)
    }

    pub fn user_count(&self) -> Result<u64, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT count(*) FROM users", [], |row| row.get(0))?)
    }

    pub fn create_session(
        &self,
        token_hash: &[u8],
        user_id: i64,
        now_ms: i64,
        expires_at_ms: i64,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO sessions (token_hash, user_id, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![token_hash, user_id, now_ms, expires_at_ms])?;
        Ok(())
    }

    /// The user of an unexpired session.
    pub fn session_user(
        &self,
        token_hash: &[u8],
        now_ms: i64,
    ) -> Result<Option<StoredUser>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT u.id, u.username, u.display_name, u.password_hash, u.is_admin
                 FROM sessions s JOIN users u ON u.id = s.user_id
                 WHERE s.token_hash = ?1 AND s.expires_at > ?2",
            )?
            .query_row(params![token_hash, now_ms], row_to_user)
            .optional()?)
    }

    pub fn delete_session(&self, token_hash: &[u8]) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("DELETE FROM sessions WHERE token_hash = ?1")?
            .execute([token_hash])?;
        Ok(())
    }

    pub fn delete_sessions_of(&self, user_id: i64) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("DELETE FROM sessions WHERE user_id = ?1")?
            .execute([user_id])?;
        Ok(())
    }

    /// Every session of a user but the one with `keep_hash` ends.
    pub fn delete_sessions_of_except(
        &self,
        user_id: i64,
        keep_hash: &[u8],
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("DELETE FROM sessions WHERE user_id = ?1 AND token_hash <> ?2")?
            .execute(params![user_id, keep_hash])?;
        Ok(())
    }

    /// Sets a user's password hash and ends every session but `keep_hash`, together: a
    /// password change that took effect always ends the sessions the old password opened.
    pub fn change_password(
        &self,
        user_id: i64,
        password_hash: &str,
        keep_hash: &[u8],
    ) -> Result<(), StoreError> {
        let tx = self.conn.unchecked_transaction()?;
        tx.prepare_cached("UPDATE users SET password_hash = ?2 WHERE id = ?1")?
            .execute(params![user_id, password_hash])?;
        tx.prepare_cached("DELETE FROM sessions WHERE user_id = ?1 AND token_hash <> ?2")?
            .execute(params![user_id, keep_hash])?;
        tx.commit()?;
        Ok(())
    }

    /// Forgets expired sessions; returns each one's username and token hash, so their
    /// open sockets can be closed.
    pub fn delete_expired_sessions(
        &self,
        now_ms: i64,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let expired = self
            .conn
            .prepare_cached(
                "DELETE FROM sessions WHERE expires_at <= ?1
                 RETURNING (SELECT username FROM users WHERE id = user_id), token_hash",
            )?
            .query_map([now_ms], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<Result<_, _>>()?;
        Ok(expired)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (AccountStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = AccountStore::open(dir.path(), Durability::Process).expect("open");
        (store, dir)
    }

    fn ada(now_ms: i64) -> NewUser<'static> {
        NewUser {
            username: "ada",
            display_name: "Ada Lovelace",
            password_hash: "$argon2id$stub-for-the-store-test",
            is_admin: false,
            now_ms,
        }
    }

    #[test]
    fn usernames_are_unique_whatever_their_case() {
        let (s, _dir) = store();
        let user = s.create_user(ada(1)).expect("created");
        assert_eq!(s.user_by_username("ada").expect("read"), Some(user));
        let shouting = NewUser {
            username: "ADA",
            ..ada(2)
        };
        assert!(matches!(
            s.create_user(shouting),
            Err(CreateUserError::UsernameTaken)
        ));
        assert_eq!(s.user_count().expect("count"), 1);
    }

    #[test]
    fn sessions_expire_and_can_be_revoked() {
        let (s, _dir) = store();
        let user = s.create_user(ada(1)).expect("created");
        s.create_session(b"one", user.id, 10, 100).expect("session");
        s.create_session(b"two", user.id, 10, 100).expect("session");
        assert_eq!(
            s.session_user(b"one", 50).expect("read"),
            Some(user.clone())
        );
        assert_eq!(s.session_user(b"one", 100).expect("read"), None, "expired");
        assert_eq!(s.session_user(b"nope", 50).expect("read"), None);
        s.delete_session(b"one").expect("sign out");
        assert_eq!(s.session_user(b"one", 50).expect("read"), None);
        assert!(s.session_user(b"two", 50).expect("read").is_some());
        s.delete_sessions_of(user.id).expect("sign out everywhere");
        assert_eq!(s.session_user(b"two", 50).expect("read"), None);
        s.create_session(b"three", user.id, 10, 20)
            .expect("session");
        assert_eq!(
            s.delete_expired_sessions(30).expect("sweep"),
            [("ada".to_owned(), b"three".to_vec())]
        );
        assert!(s.delete_expired_sessions(30).expect("sweep").is_empty());
    }

    #[test]
    fn accounts_survive_a_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let id = {
            let s = AccountStore::open(dir.path(), Durability::Process).expect("open");
            s.create_user(ada(1)).expect("created").id
        };
        let s = AccountStore::open(dir.path(), Durability::Process).expect("reopen");
        assert_eq!(
            s.user_by_username("ada").expect("read").map(|u| u.id),
            Some(id)
        );
    }
}
