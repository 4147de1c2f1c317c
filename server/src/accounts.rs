//! Accounts: sign-up, sign-in, sessions. The policy half; SQL lives in
//! [`crate::store::accounts`].
//!
//! - Passwords are hashed with Argon2id at the `argon2` crate's defaults (19 MiB, 2
//!   passes, 1 lane: the OWASP recommendation), each with its own random salt, in the
//!   PHC string format so parameters can be raised later without breaking old hashes.
//! - A session is a random 256-bit token. The client holds it (in a cookie); the store
//!   holds only its SHA-256, so a copy of the database does not let anyone in. A fast
//!   hash is enough here: the token has 256 bits of entropy, nothing to guess.
//! - Sign-in gives one answer for "no such user" and "wrong password", and spends the
//!   same Argon2 time on both, so neither the message nor the timing tells which
//!   usernames exist.
//!
//! Every method blocks (Argon2 is deliberately slow, the stores are synchronous): call
//! them from `spawn_blocking`, never on a Tokio worker.

use std::time::Duration;

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier, password_hash::SaltString};
use confab_shared::{DisplayName, Password, Username};
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};

pub mod common_passwords;

use crate::hub::now_ms;
use crate::store::{
    Database, StoreError,
    accounts::{self as store, AccountStore, CreateUserError, NewUser, StoredUser},
    invites::InviteRefusal,
};

/// How long a session lasts after sign-in.
pub const SESSION_TTL: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// A signed-in person, as the rest of the server sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub is_admin: bool,
}

impl From<StoredUser> for User {
    fn from(u: StoredUser) -> Self {
        User {
            id: u.id,
            username: u.username,
            display_name: u.display_name,
            is_admin: u.is_admin,
        }
    }
}

/// The secret a client presents: 32 random bytes, base64url without padding (43
/// characters, safe in a cookie).
#[derive(Clone, PartialEq, Eq)]
pub struct SessionToken(String);

impl SessionToken {
    fn generate() -> Self {
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        SessionToken(data_encoding::BASE64URL_NOPAD.encode(&bytes))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionToken(…)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("that username is taken")]
    UsernameTaken,
    /// Unknown username or wrong password: deliberately one error.
    #[error("wrong username or password")]
    InvalidCredentials,
    /// Signing up with an invite that cannot be used (see [`crate::invites`]).
    #[error("the invite link is {0}")]
    InviteRefused(InviteRefusal),
    /// The right password for an account an administrator disabled. Told only to
    /// someone who knows the password, so it reveals nothing to a guesser.
    #[error("this account is disabled; ask an administrator")]
    Disabled,
    #[error("cannot hash the password: {0}")]
    Hash(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct Accounts {
    /// SQLite or PostgreSQL: from here on they behave alike.
    store: Box<dyn AccountStore>,
    argon2: Argon2<'static>,
    /// Verified against when the username does not exist, so that costs as much as a
    /// wrong password.
    dummy_hash: String,
}

impl Accounts {
    /// The accounts kept in `database`. Blocking.
    pub fn open(database: &Database) -> Result<Self, AccountError> {
        let argon2 = Argon2::default();
        let dummy_hash = hash(&argon2, "not anyone's password")?;
        Ok(Self {
            store: store::open(database)?,
            argon2,
            dummy_hash,
        })
    }

    pub(crate) fn store(&self) -> &dyn AccountStore {
        &*self.store
    }

    /// Creates an account. Hashing happens before the store is asked.
    pub fn sign_up(
        &self,
        username: &Username,
        display_name: &DisplayName,
        password: &Password,
        is_admin: bool,
    ) -> Result<User, AccountError> {
        self.create_account(username, display_name, password, is_admin, None)
    }

    /// Creates an account, using up one use of the invite whose secret hashes to
    /// `invite` when there is one (both or neither).
    pub(crate) fn create_account(
        &self,
        username: &Username,
        display_name: &DisplayName,
        password: &Password,
        is_admin: bool,
        invite: Option<&[u8; 32]>,
    ) -> Result<User, AccountError> {
        let password_hash = hash(&self.argon2, password.as_str())?;
        let user = NewUser {
            username: username.as_str(),
            display_name: display_name.as_str(),
            password_hash: &password_hash,
            is_admin,
            now_ms: now_ms(),
        };
        let created = match invite {
            Some(key) => self.store().create_user_invited(user, key),
            None => self.store().create_user(user),
        };
        match created {
            Ok(user) => Ok(user.into()),
            Err(CreateUserError::UsernameTaken) => Err(AccountError::UsernameTaken),
            Err(CreateUserError::InviteRefused(why)) => Err(AccountError::InviteRefused(why)),
            Err(CreateUserError::Store(e)) => Err(e.into()),
        }
    }

    /// Checks the password and opens a session.
    pub fn sign_in(
        &self,
        username: &Username,
        password: &Password,
    ) -> Result<(User, SessionToken), AccountError> {
        let stored = self.store().user_by_username(username.as_str())?;
        let phc = stored
            .as_ref()
            .map_or(self.dummy_hash.as_str(), |u| u.password_hash.as_str());
        let matches = PasswordHash::new(phc).is_ok_and(|parsed| {
            self.argon2
                .verify_password(password.as_str().as_bytes(), &parsed)
                .is_ok()
        });
        let Some(user) = stored.filter(|_| matches) else {
            return Err(AccountError::InvalidCredentials);
        };
        if user.disabled {
            return Err(AccountError::Disabled);
        }
        let token = self.start_session(user.id)?;
        Ok((user.into(), token))
    }

    /// Opens a session for a user whose password was just checked (or set, at sign-up).
    pub fn start_session(&self, user_id: i64) -> Result<SessionToken, AccountError> {
        let token = SessionToken::generate();
        let now = now_ms();
        let ttl = i64::try_from(SESSION_TTL.as_millis()).unwrap_or(i64::MAX);
        self.store().create_session(
            &session_key(token.as_str()),
            user_id,
            now,
            now.saturating_add(ttl),
        )?;
        Ok(token)
    }

    /// Deletes sessions past their expiry (they no longer authenticate anyway) and
    /// returns each one's username and session key, so sockets still open with them
    /// can be closed.
    pub fn purge_expired(&self) -> Result<Vec<(String, [u8; 32])>, AccountError> {
        Ok(self
            .store()
            .delete_expired_sessions(now_ms())?
            .into_iter()
            .filter_map(|(username, hash)| Some((username, <[u8; 32]>::try_from(hash).ok()?)))
            .collect())
    }

    /// The user a token belongs to, if it is a live session. Anything else — unknown,
    /// expired, revoked, malformed — is `None`.
    pub fn authenticate(&self, token: &str) -> Result<Option<User>, AccountError> {
        Ok(self
            .store()
            .session_user(&session_key(token), now_ms())?
            .map(User::from))
    }

    /// Ends one session (signing out on this device).
    pub fn sign_out(&self, token: &str) -> Result<(), AccountError> {
        Ok(self.store().delete_session(&session_key(token))?)
    }

    /// Changes the password of `user` after checking `current`, and ends every other
    /// session of theirs (whoever knew the old password is signed out), keeping the one
    /// with `keep_token`: the device that made the change. A wrong `current` is
    /// [`AccountError::InvalidCredentials`] and changes nothing.
    pub fn change_password(
        &self,
        user: &User,
        current: &Password,
        new: &Password,
        keep_token: &str,
    ) -> Result<(), AccountError> {
        let stored = self
            .store()
            .user_by_username(&user.username)?
            .filter(|u| u.id == user.id)
            .ok_or(AccountError::InvalidCredentials)?;
        let matches = PasswordHash::new(&stored.password_hash).is_ok_and(|parsed| {
            self.argon2
                .verify_password(current.as_str().as_bytes(), &parsed)
                .is_ok()
        });
        if !matches {
            return Err(AccountError::InvalidCredentials);
        }
        let password_hash = hash(&self.argon2, new.as_str())?;
        Ok(self
            .store()
            .change_password(user.id, &password_hash, &session_key(keep_token))?)
    }

    /// Ends every session of a user but the one with `keep_token` (signing out the
    /// other devices).
    pub fn sign_out_others(&self, user_id: i64, keep_token: &str) -> Result<(), AccountError> {
        Ok(self
            .store()
            .delete_sessions_of_except(user_id, &session_key(keep_token))?)
    }

    /// A new password's Argon2id hash, for the store.
    pub(crate) fn hash_password(&self, password: &Password) -> Result<String, AccountError> {
        hash(&self.argon2, password.as_str())
    }

    /// Ends every session of a user (signing out everywhere).
    pub fn sign_out_everywhere(&self, user_id: i64) -> Result<(), AccountError> {
        Ok(self.store().delete_sessions_of(user_id)?)
    }
}

fn hash(argon2: &Argon2<'_>, password: &str) -> Result<String, AccountError> {
    let salt = SaltString::generate(&mut OsRng);
    argon2
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AccountError::Hash(e.to_string()))
}

/// What the store keeps of a session token, and how the hub tells sign-ins apart.
pub fn session_key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Durability;

    fn accounts() -> (Accounts, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = Accounts::open(&Database::sqlite(dir.path(), Durability::Process)).expect("open");
        (a, dir)
    }

    fn name(s: &str) -> Username {
        Username::parse(s).expect("username")
    }

    fn pw(s: &str) -> Password {
        Password::parse(s).expect("password")
    }

    fn display(s: &str) -> DisplayName {
        DisplayName::parse(s).expect("display name")
    }

    #[test]
    fn passwords_are_stored_as_salted_argon2id() {
        let (a, dir) = accounts();
        a.sign_up(&name("ada"), &display("Ada"), &pw("correct horse"), false)
            .expect("sign up");
        a.sign_up(&name("bob"), &display("Bob"), &pw("correct horse"), false)
            .expect("sign up");
        let store = store::open(&Database::sqlite(dir.path(), Durability::Process)).expect("open");
        let ada = store.user_by_username("ada").expect("read").expect("ada");
        let bob = store.user_by_username("bob").expect("read").expect("bob");
        assert!(
            ada.password_hash
                .starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{}",
            ada.password_hash
        );
        assert!(!ada.password_hash.contains("correct horse"));
        assert_ne!(
            ada.password_hash, bob.password_hash,
            "each hash has its own salt"
        );
    }

    #[test]
    fn sign_in_opens_a_session_that_sign_out_ends() {
        let (a, _dir) = accounts();
        let ada = a
            .sign_up(
                &name("Ada"),
                &display("Ada L."),
                &pw("correct horse"),
                false,
            )
            .expect("sign up");
        assert_eq!(ada.username, "ada");
        let (user, token) = a
            .sign_in(&name("ADA"), &pw("correct horse"))
            .expect("sign in");
        assert_eq!(user, ada);
        assert_eq!(token.as_str().len(), 43);
        assert_eq!(
            a.authenticate(token.as_str()).expect("auth"),
            Some(ada.clone())
        );
        let (_, other_device) = a
            .sign_in(&name("ada"), &pw("correct horse"))
            .expect("again");
        assert_ne!(token, other_device);
        a.sign_out(token.as_str()).expect("sign out");
        assert_eq!(a.authenticate(token.as_str()).expect("auth"), None);
        assert!(
            a.authenticate(other_device.as_str())
                .expect("auth")
                .is_some()
        );
        a.sign_out_everywhere(ada.id).expect("everywhere");
        assert_eq!(a.authenticate(other_device.as_str()).expect("auth"), None);
    }

    #[test]
    fn wrong_password_and_unknown_user_fail_alike() {
        let (a, _dir) = accounts();
        a.sign_up(&name("ada"), &display("Ada"), &pw("correct horse"), false)
            .expect("sign up");
        let wrong = a.sign_in(&name("ada"), &pw("wrong horse!")).map(|_| ());
        let unknown = a.sign_in(&name("nobody"), &pw("correct horse")).map(|_| ());
        assert!(matches!(wrong, Err(AccountError::InvalidCredentials)));
        assert!(matches!(unknown, Err(AccountError::InvalidCredentials)));
        assert_eq!(
            a.sign_up(&name("ADA"), &display("Other"), &pw("whatever1"), false)
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Err("that username is taken".to_owned())
        );
    }

    #[test]
    fn forged_tokens_authenticate_nobody() {
        let (a, _dir) = accounts();
        a.sign_up(&name("ada"), &display("Ada"), &pw("correct horse"), false)
            .expect("sign up");
        let (_, token) = a
            .sign_in(&name("ada"), &pw("correct horse"))
            .expect("sign in");
        let mut forged = token.as_str().to_owned();
        forged.replace_range(0..1, if forged.starts_with('A') { "B" } else { "A" });
        for t in [forged.as_str(), "", "not a token", &"A".repeat(4096)] {
            assert_eq!(a.authenticate(t).expect("auth"), None, "{t:?}");
        }
    }
}
