//! Device cookies: how the sign-in throttle knows a browser where a person signed in
//! before (the "device cookie" defence against lockout, as OWASP describes it).
//!
//! After a successful sign-in or sign-up the browser gets a long-lived cookie naming the
//! username and a random device id, signed with HMAC-SHA256 under a key only the server
//! has, made on first start: with SQLite `device-cookie.key` in the data directory; with
//! PostgreSQL a row of the shared database, so every node of a cluster signs and checks
//! with the same key (a cookie from node A passes on node B). Only someone who
//! knew the password at some point can hold one, so attempts that present a valid one for
//! the username they try are counted apart from everyone else's and never slowed (see
//! [`super::throttle`]). It proves nothing else: it signs no one in, and sign-out leaves
//! it (the browser stays a known device). Deleting the key (file or row) forgets every
//! device.
//!
//! The value is `username.id.mac`: the id is 16 random bytes and the MAC 32, both
//! base64url without padding; a username may hold dots, so it is read from the right.

use std::{
    io::{self, Read, Write},
    path::Path,
};

use axum::http::{HeaderMap, header};
use confab_shared::api::{DEVICE_COOKIE, SECURE_DEVICE_COOKIE};
use cookie::{Cookie, SameSite};
use data_encoding::BASE64URL_NOPAD;
use hmac::{Hmac, Mac};
use rand_core::{OsRng, RngCore};
use sha2::Sha256;

use crate::store::{Database, StoreError};

/// A browser's random id, from its device cookie.
pub type DeviceId = [u8; 16];

/// How long a browser stays known without signing in again: a year.
const DEVICE_COOKIE_DAYS: i64 = 365;

/// The file in the data directory that holds the signing key.
pub const KEY_FILE: &str = "device-cookie.key";

/// Issues and checks device cookies.
pub struct Devices {
    key: [u8; 32],
}

/// Why the key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum DeviceKeyError {
    #[error(transparent)]
    File(#[from] io::Error),
    #[error(transparent)]
    Database(#[from] StoreError),
    #[error("the device cookie key in the database is {0} bytes, not 32")]
    BadLength(usize),
}

impl Devices {
    /// The key of `database`'s server or cluster, made if there is none yet. Blocking
    /// (PostgreSQL: call it off the Tokio workers).
    pub fn open(database: &Database) -> Result<Self, DeviceKeyError> {
        match database {
            Database::Sqlite { data_dir, .. } => Ok(Self::open_file(data_dir)?),
            Database::Postgres(pool) => {
                let mut fresh = [0u8; 32];
                OsRng.fill_bytes(&mut fresh);
                let stored = crate::store::postgres::device_cookie_key(pool, &fresh)?;
                let key = <[u8; 32]>::try_from(stored.as_slice())
                    .map_err(|_| DeviceKeyError::BadLength(stored.len()))?;
                Ok(Self { key })
            }
        }
    }

    /// Reads the key from `data_dir`, or makes one (readable by the server's user only).
    fn open_file(data_dir: &Path) -> io::Result<Self> {
        let path = data_dir.join(KEY_FILE);
        let mut key = [0u8; 32];
        match std::fs::File::open(&path) {
            Ok(mut f) => {
                f.read_exact(&mut key)
                    .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                OsRng.fill_bytes(&mut key);
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut f = options.open(&path)?;
                f.write_all(&key)?;
                f.sync_all()?;
            }
            Err(e) => return Err(e),
        }
        Ok(Self { key })
    }

    /// A keyed MAC (a fresh HMAC over the key never fails: any key length is valid).
    fn mac(&self, username: &str, id: &DeviceId) -> Option<Hmac<Sha256>> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).ok()?;
        mac.update(b"confab device v1\0");
        mac.update(username.as_bytes());
        mac.update(b"\0");
        mac.update(id);
        Some(mac)
    }

    /// The cookie value for `username` on the device `id`.
    fn value(&self, username: &str, id: &DeviceId) -> Option<String> {
        let tag = self.mac(username, id)?.finalize().into_bytes();
        Some(format!(
            "{username}.{}.{}",
            BASE64URL_NOPAD.encode(id),
            BASE64URL_NOPAD.encode(&tag)
        ))
    }

    /// The device id in `value` if it is a cookie this server issued for `username`.
    fn verify(&self, value: &str, username: &str) -> Option<DeviceId> {
        let mut parts = value.rsplitn(3, '.');
        let (tag, id, named) = (parts.next()?, parts.next()?, parts.next()?);
        if named != username {
            return None;
        }
        let id: DeviceId = BASE64URL_NOPAD
            .decode(id.as_bytes())
            .ok()?
            .try_into()
            .ok()?;
        let tag = BASE64URL_NOPAD.decode(tag.as_bytes()).ok()?;
        // verify_slice compares in constant time.
        self.mac(username, &id)?.verify_slice(&tag).ok()?;
        Some(id)
    }

    /// The device id of the request's device cookie, if it holds a valid one for
    /// `username`.
    pub fn of_request(
        &self,
        headers: &HeaderMap,
        secure: bool,
        username: &str,
    ) -> Option<DeviceId> {
        let name = cookie_name(secure);
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(Cookie::split_parse)
            .filter_map(Result::ok)
            .filter(|c| c.name() == name)
            .find_map(|c| self.verify(c.value(), username))
    }

    /// The `Set-Cookie` value that marks this browser as a known device of `username`:
    /// the device it already was, or a new one.
    pub fn set_cookie(
        &self,
        username: &str,
        known: Option<DeviceId>,
        secure: bool,
    ) -> Option<String> {
        let id = known.unwrap_or_else(|| {
            let mut id = [0u8; 16];
            OsRng.fill_bytes(&mut id);
            id
        });
        let value = self.value(username, &id)?;
        Some(
            Cookie::build((cookie_name(secure), value))
                .http_only(true)
                .same_site(SameSite::Strict)
                .secure(secure)
                .path("/")
                .max_age(cookie::time::Duration::days(DEVICE_COOKIE_DAYS))
                .build()
                .to_string(),
        )
    }
}

fn cookie_name(secure: bool) -> &'static str {
    if secure {
        SECURE_DEVICE_COOKIE
    } else {
        DEVICE_COOKIE
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn request_with(set_cookie: &str) -> HeaderMap {
        let pair = set_cookie.split(';').next().expect("name=value");
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_str(pair).expect("cookie"));
        h
    }

    #[test]
    fn a_device_cookie_is_valid_for_its_username_and_key_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let devices = Devices::open_file(dir.path()).expect("open");
        let set = devices.set_cookie("ada.l", None, false).expect("cookie");
        assert!(set.starts_with("confab_device=ada.l."), "{set}");
        for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=31536000"] {
            assert!(set.contains(attribute), "{attribute} in {set}");
        }
        let h = request_with(&set);
        let id = devices.of_request(&h, false, "ada.l").expect("valid");
        // The same device keeps its id when the cookie is renewed.
        let renewed = devices
            .set_cookie("ada.l", Some(id), false)
            .expect("cookie");
        assert_eq!(
            devices.of_request(&request_with(&renewed), false, "ada.l"),
            Some(id)
        );
        // Not for another username, nor under the other cookie name.
        assert_eq!(devices.of_request(&h, false, "bob"), None);
        assert_eq!(devices.of_request(&h, true, "ada.l"), None);
        // The key survives a restart; another server's key (or a forged MAC) does not pass.
        let reopened = Devices::open_file(dir.path()).expect("reopen");
        assert_eq!(reopened.of_request(&h, false, "ada.l"), Some(id));
        let other = tempfile::tempdir().expect("tempdir");
        assert_eq!(
            Devices::open_file(other.path())
                .expect("open")
                .of_request(&h, false, "ada.l"),
            None
        );
        let pair = set.split(';').next().expect("pair");
        let mut forged = pair.to_owned();
        let last = forged.pop().expect("a char");
        forged.push(if last == 'A' { 'B' } else { 'A' });
        assert_eq!(
            devices.of_request(&request_with(&forged), false, "ada.l"),
            None
        );
        for junk in [
            "confab_device=",
            "confab_device=ada.l",
            "confab_device=ada.l.x.y",
        ] {
            assert_eq!(
                devices.of_request(&request_with(junk), false, "ada.l"),
                None
            );
        }
    }
}
