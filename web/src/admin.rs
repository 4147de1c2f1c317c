//! The admin page's endpoints (`/api/admin/…`, see [`confab_shared::api`]) and the
//! password reset link's `?reset=` (which needs no session). A leaf next to
//! [`crate::api`]: the admin panel and the sign-in screen use it.

use confab_shared::api::{
    AdminDone, AdminRooms, AdminStats, AdminUsers, AuditLog, RESET_PARAM, RemoveMessage,
    ResetPassword,
};
use gloo_net::http::Request;

use crate::api::{Failure, endpoint, json, send};

pub async fn users(query: &str) -> Result<AdminUsers, Failure> {
    let query: String = js_sys::encode_uri_component(query).into();
    json(send(Request::get(&endpoint(&format!("admin/users?q={query}"))).build()).await?).await
}

/// `action` is `disable`, `enable`, `grant`, `revoke` or `reset-password`.
pub async fn user_action(username: &str, action: &str) -> Result<AdminDone, Failure> {
    let name: String = js_sys::encode_uri_component(username).into();
    let path = endpoint(&format!("admin/users/{name}/{action}"));
    json(send(Request::post(&path).json(&serde_json::json!({}))).await?).await
}

pub async fn rooms() -> Result<AdminRooms, Failure> {
    json(send(Request::get(&endpoint("admin/rooms")).build()).await?).await
}

pub async fn delete_room(room: &str) -> Result<AdminDone, Failure> {
    let room: String = js_sys::encode_uri_component(room).into();
    let path = endpoint(&format!("admin/rooms/{room}/delete"));
    json(send(Request::post(&path).json(&serde_json::json!({}))).await?).await
}

pub async fn remove_message(body: &RemoveMessage) -> Result<AdminDone, Failure> {
    json(send(Request::post(&endpoint("admin/messages/remove")).json(body)).await?).await
}

pub async fn stats() -> Result<AdminStats, Failure> {
    json(send(Request::get(&endpoint("admin/stats")).build()).await?).await
}

pub async fn audit() -> Result<AuditLog, Failure> {
    json(send(Request::get(&endpoint("admin/audit")).build()).await?).await
}

/// Sets a new password with a reset link's secret.
pub async fn reset_password(body: &ResetPassword) -> Result<(), Failure> {
    send(Request::post(&endpoint("password-reset")).json(body))
        .await
        .map(drop)
}

/// The reset secret in the page's address (`?reset=…`), if there is one.
pub fn reset_in_address() -> Option<String> {
    let search = web_sys::window()?.location().search().ok()?;
    reset_in_query(&search)
}

/// The reset secret in a query string such as `?reset=abc`.
pub fn reset_in_query(search: &str) -> Option<String> {
    search
        .trim_start_matches('?')
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| *name == RESET_PARAM)
        .map(|(_, value)| value.trim().to_owned())
        .filter(|value| !value.is_empty())
}

/// Takes the used link out of the address (see `invites::forget_invite_in_address`).
pub fn forget_reset_in_address() {
    crate::invites::forget_invite_in_address();
}

/// A time for the admin page: the browser's local date and time, to the minute.
pub fn when(ms: i64) -> String {
    let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(ms as f64));
    let text: String = date
        .to_locale_string("en-GB", &wasm_bindgen::JsValue::UNDEFINED)
        .into();
    text.rsplit_once(':')
        .map_or(text.clone(), |(head, _)| head.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reset_secret_is_read_from_the_query() {
        assert_eq!(reset_in_query("?reset=abc_-1"), Some("abc_-1".into()));
        assert_eq!(reset_in_query("?invite=x&reset=abc"), Some("abc".into()));
        assert_eq!(reset_in_query("?reset="), None);
        assert_eq!(reset_in_query("?invite=abc"), None);
    }
}
