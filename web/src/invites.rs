//! Invite links on the client: the `/api/invites` endpoints, and the `?invite=` of the
//! page's address that a sign-up sends along. A leaf next to [`crate::api`]: the
//! sign-up flow ([`crate::account`]) and the invites panel use it.

use confab_shared::api::{CreatedInvite, INVITE_PARAM, Invites, NewInvite};
use gloo_net::http::Request;

use crate::api::{Failure, endpoint, json, send};

/// The lifetimes the panel offers, in seconds, with their words; the server caps them
/// (30 days unless its operator says otherwise).
pub const LIFETIMES: [(u64, &str); 4] = [
    (60 * 60, "1 hour"),
    (24 * 60 * 60, "1 day"),
    (7 * 24 * 60 * 60, "7 days"),
    (30 * 24 * 60 * 60, "30 days"),
];
/// The lifetime picked until the person picks another.
pub const DEFAULT_LIFETIME_SECS: u64 = 7 * 24 * 60 * 60;

pub async fn create(body: &NewInvite) -> Result<CreatedInvite, Failure> {
    json(send(Request::post(&endpoint("invites")).json(body)).await?).await
}

pub async fn list() -> Result<Invites, Failure> {
    json(send(Request::get(&endpoint("invites")).build()).await?).await
}

pub async fn revoke(id: i64) -> Result<(), Failure> {
    send(Request::delete(&endpoint(&format!("invites/{id}"))).build())
        .await
        .map(drop)
}

/// The invite secret in the page's address (`?invite=…`), if there is one.
pub fn invite_in_address() -> Option<String> {
    let search = web_sys::window()?.location().search().ok()?;
    invite_in_query(&search)
}

/// The invite secret in a query string such as `?invite=abc&x=1`.
pub fn invite_in_query(search: &str) -> Option<String> {
    search
        .trim_start_matches('?')
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| *name == INVITE_PARAM)
        .map(|(_, value)| value.trim().to_owned())
        .filter(|value| !value.is_empty())
}

/// Takes the used invite out of the address, so a reload or a shared screenshot does
/// not carry it (it is used up anyway).
pub fn forget_invite_in_address() {
    let Some(window) = web_sys::window() else {
        return;
    };
    let path = window.location().pathname().unwrap_or_else(|_| "/".into());
    if let Ok(history) = window.history() {
        let _ = history.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&path));
    }
}

/// The whole link for a created invite: this page's origin and the invite's path.
pub fn link(path: &str) -> String {
    let origin = web_sys::window()
        .and_then(|w| w.location().origin().ok())
        .unwrap_or_default();
    format!("{origin}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_invite_is_read_from_the_query() {
        assert_eq!(invite_in_query("?invite=abc_-1"), Some("abc_-1".into()));
        assert_eq!(invite_in_query("?x=1&invite=abc"), Some("abc".into()));
        assert_eq!(invite_in_query("?invite="), None);
        assert_eq!(invite_in_query("?invites=abc"), None);
        assert_eq!(invite_in_query(""), None);
    }
}
