//! Invite links: who may make them, how long and how often they work, and their
//! secrets. The policy half; SQL lives in [`crate::store::invites`], the endpoints in
//! `http::invites`.
//!
//! - A link is `/?invite=SECRET`, the secret 32 random bytes (base64url, 43
//!   characters). The store keeps its SHA-256 only, like a session token: 256 bits
//!   leave nothing to guess, so a fast hash is enough.
//! - An invite has a number of uses (1 by default) and an expiry (7 days by default);
//!   both are capped by the server's flags, and so is the number of unexpired invites
//!   one person may hold.
//! - Under the `invite` sign-up policy an account needs a good invite; using it and
//!   creating the account are one transaction.
//!
//! Every method blocks (the store, and sign-up's Argon2): call them from blocking tasks.

use std::time::Duration;

use confab_shared::{
    DisplayName, Password, Username,
    api::{INVITE_PARAM, Invite},
};
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};

use crate::{
    accounts::{AccountError, Accounts, User},
    hub::now_ms,
    store::{
        StoreError,
        invites::{InviteRefusal, NewInvite, Scope, StoredInvite},
    },
};

/// How long an invite stays good when its creator does not say.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(7 * 24 * 60 * 60);
/// The shortest lifetime one can ask for: less is surely a mistake (seconds for minutes).
pub const MIN_LIFETIME: Duration = Duration::from_secs(60);
/// Most invites one listing returns (an administrator's sees everyone's).
pub const LIST_LIMIT: u32 = 500;

/// The server's caps on invites (flags `--invite-max-days`, `--invite-max-uses`,
/// `--invites-per-person`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InviteLimits {
    pub max_lifetime: Duration,
    pub max_uses: u32,
    /// Unexpired invites (used up or not) one person may hold at once.
    pub per_person: u32,
}

/// The secret of a new invite, as it goes in the link.
#[derive(Clone, PartialEq, Eq)]
pub struct InviteToken(String);

impl InviteToken {
    fn generate() -> Self {
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        InviteToken(data_encoding::BASE64URL_NOPAD.encode(&bytes))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The link's path and query: what goes after the server's address.
    pub fn path(&self) -> String {
        format!("/?{INVITE_PARAM}={}", self.0)
    }
}

impl std::fmt::Debug for InviteToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InviteToken(…)")
    }
}

/// What the store keeps of an invite's secret.
pub fn invite_key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Who may create invites: administrators, and members when `members_invite`.
pub fn may_invite(user: &User, members_invite: bool) -> bool {
    user.is_admin || members_invite
}

/// Why an invite was not made.
#[derive(Debug, thiserror::Error)]
pub enum InviteError {
    #[error("{0}")]
    Invalid(String),
    #[error("you have {0} invites that have not expired; revoke one first")]
    TooMany(u32),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks a request's uses and lifetime against `limits`, filling in the defaults.
pub fn check_request(
    uses: Option<u32>,
    lifetime: Option<Duration>,
    limits: InviteLimits,
) -> Result<(u32, Duration), InviteError> {
    let uses = uses.unwrap_or(1);
    if uses == 0 || uses > limits.max_uses {
        return Err(InviteError::Invalid(format!(
            "an invite has from 1 to {} uses",
            limits.max_uses
        )));
    }
    let lifetime = lifetime.unwrap_or(DEFAULT_LIFETIME.min(limits.max_lifetime));
    if lifetime < MIN_LIFETIME || lifetime > limits.max_lifetime {
        return Err(InviteError::Invalid(format!(
            "an invite lasts from 1 minute to {}",
            describe(limits.max_lifetime)
        )));
    }
    Ok((uses, lifetime))
}

/// `30m`, `12h`, `7d` (or plain seconds): an invite's lifetime on the command line.
pub fn parse_lifetime(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let unit_secs: u64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 60 * 60,
        "d" => 24 * 60 * 60,
        _ => return Err(format!("{text:?}: use a number with s, m, h or d, like 7d")),
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit_secs))
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{text:?}: use a number with s, m, h or d, like 7d"))
}

/// A lifetime in words, to the largest whole unit: "30 days", "12 hours", "90 minutes".
pub fn describe(lifetime: Duration) -> String {
    let secs = lifetime.as_secs();
    let (n, unit) = if secs >= 86_400 && secs.is_multiple_of(86_400) {
        (secs / 86_400, "day")
    } else if secs >= 3_600 && secs.is_multiple_of(3_600) {
        (secs / 3_600, "hour")
    } else if secs >= 60 && secs.is_multiple_of(60) {
        (secs / 60, "minute")
    } else {
        (secs, "second")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

impl From<StoredInvite> for Invite {
    fn from(i: StoredInvite) -> Self {
        Invite {
            id: i.id,
            created_by: i.created_by,
            created_at: i.created_at,
            expires_at: i.expires_at,
            max_uses: i.max_uses,
            uses_left: i.uses_left,
        }
    }
}

/// Whose invites `user` sees and may revoke.
fn scope(user: &User) -> Scope {
    if user.is_admin {
        Scope::All
    } else {
        Scope::CreatedBy(user.id)
    }
}

impl Accounts {
    /// Makes an invite (`creator` `None`: from the command line) after
    /// [`check_request`]; returns it with its secret, which is not kept.
    pub fn create_invite(
        &self,
        creator: Option<&User>,
        uses: u32,
        lifetime: Duration,
        limits: InviteLimits,
    ) -> Result<(Invite, InviteToken), InviteError> {
        let token = InviteToken::generate();
        let now = now_ms();
        let lifetime_ms = i64::try_from(lifetime.as_millis()).unwrap_or(i64::MAX);
        let made = self.store().create_invite(NewInvite {
            token_hash: &invite_key(token.as_str()),
            created_by: creator.map(|u| u.id),
            now_ms: now,
            expires_at_ms: now.saturating_add(lifetime_ms),
            uses,
            per_creator: limits.per_person,
        })?;
        match made {
            Some(invite) => Ok((invite.into(), token)),
            None => Err(InviteError::TooMany(limits.per_person)),
        }
    }

    /// The unexpired invites `user` may see, newest first.
    pub fn invites_for(&self, user: &User) -> Result<Vec<Invite>, AccountError> {
        Ok(self
            .store()
            .invites(scope(user), now_ms(), LIST_LIMIT)?
            .into_iter()
            .map(Invite::from)
            .collect())
    }

    /// Revokes an invite `user` may see; whether there was one.
    pub fn revoke_invite(&self, user: &User, id: i64) -> Result<bool, AccountError> {
        Ok(self.store().delete_invite(id, scope(user))?)
    }

    /// Why this secret cannot sign anyone up now, or `None` if it can: checked before
    /// the Argon2 hash, so a bad link costs no hashing and gets its answer at once. The
    /// use itself is taken in [`Accounts::sign_up_invited`].
    pub fn invite_refusal(&self, token: &str) -> Result<Option<InviteRefusal>, AccountError> {
        Ok(self.store().invite_refusal(&invite_key(token), now_ms())?)
    }

    /// Creates an account with one use of the invite whose secret is `token`.
    pub fn sign_up_invited(
        &self,
        username: &Username,
        display_name: &DisplayName,
        password: &Password,
        token: &str,
    ) -> Result<User, AccountError> {
        let key = invite_key(token);
        self.create_account(username, display_name, password, false, Some(&key))
    }

    /// Forgets expired invites; how many.
    pub fn purge_expired_invites(&self) -> Result<usize, AccountError> {
        Ok(self.store().delete_expired_invites(now_ms())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Durability;

    const LIMITS: InviteLimits = InviteLimits {
        max_lifetime: Duration::from_secs(30 * 86_400),
        max_uses: 100,
        per_person: 20,
    };

    #[test]
    fn lifetimes_parse_with_units() {
        assert_eq!(parse_lifetime("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_lifetime("12h"), Ok(Duration::from_secs(12 * 3_600)));
        assert_eq!(parse_lifetime("30m"), Ok(Duration::from_secs(1_800)));
        assert_eq!(parse_lifetime("90"), Ok(Duration::from_secs(90)));
        for bad in ["", "d", "7w", "-1d", "1.5d", "99999999999999999999d"] {
            assert!(parse_lifetime(bad).is_err(), "{bad:?}");
        }
        assert_eq!(describe(Duration::from_secs(30 * 86_400)), "30 days");
        assert_eq!(describe(Duration::from_secs(3_600)), "1 hour");
    }

    #[test]
    fn requests_are_held_to_the_limits() {
        assert_eq!(
            check_request(None, None, LIMITS).expect("defaults"),
            (1, DEFAULT_LIFETIME)
        );
        let short = InviteLimits {
            max_lifetime: Duration::from_secs(86_400),
            ..LIMITS
        };
        assert_eq!(
            check_request(None, None, short).expect("default capped").1,
            Duration::from_secs(86_400)
        );
        assert!(check_request(Some(0), None, LIMITS).is_err());
        assert!(check_request(Some(101), None, LIMITS).is_err());
        assert!(check_request(None, Some(Duration::from_secs(59)), LIMITS).is_err());
        assert!(check_request(None, Some(Duration::from_secs(31 * 86_400)), LIMITS).is_err());
        assert!(check_request(Some(100), Some(LIMITS.max_lifetime), LIMITS).is_ok());
    }

    #[test]
    fn only_a_hash_of_the_secret_is_stored_and_the_secret_signs_up() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = Accounts::open(&crate::store::Database::sqlite(
            dir.path(),
            Durability::Process,
        ))
        .expect("open");
        let (invite, token) = a
            .create_invite(None, 1, DEFAULT_LIFETIME, LIMITS)
            .expect("invite");
        assert_eq!(token.as_str().len(), 43);
        assert_eq!(token.path(), format!("/?invite={}", token.as_str()));
        let db = rusqlite::Connection::open(dir.path().join(crate::store::sqlite::DB_FILE))
            .expect("open db");
        let stored: Vec<u8> = db
            .query_row(
                "SELECT token_hash FROM invites WHERE id = ?1",
                [invite.id],
                |r| r.get(0),
            )
            .expect("row");
        assert_eq!(stored, invite_key(token.as_str()));
        assert_ne!(stored, token.as_str().as_bytes());
        let pw = Password::parse("correct horse").expect("password");
        let ada = Username::parse("ada").expect("username");
        let name = DisplayName::parse("Ada").expect("name");
        assert_eq!(a.invite_refusal(token.as_str()).expect("check"), None);
        a.sign_up_invited(&ada, &name, &pw, token.as_str())
            .expect("signed up");
        let bob = Username::parse("bob").expect("username");
        assert!(matches!(
            a.sign_up_invited(&bob, &name, &pw, token.as_str()),
            Err(AccountError::InviteRefused(InviteRefusal::UsedUp))
        ));
    }
}
