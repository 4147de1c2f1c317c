//! What the client keeps in the browser's local storage: the display name a guest last
//! used, the messages not yet acknowledged, and per person their unsent drafts and the
//! direct conversations they closed. The session itself is the HttpOnly cookie, which
//! the page cannot read. Storage can be full or disabled (private modes); then the
//! client simply forgets on reload.

use std::collections::BTreeMap;

use gloo_storage::{LocalStorage, Storage};
use serde::Serialize;

use crate::resume::Outbox;

const GUEST_NAME_KEY: &str = "confab.name";
const OUTBOX_KEY: &str = "confab.outbox.v2";
/// Protocol 2's outbox, which did not say whose messages it held.
const OLD_OUTBOX_KEY: &str = "confab.outbox.v1";
/// Followed by the user's username: one person's drafts never show for another.
const DRAFTS_KEY: &str = "confab.drafts.v1.";
const CLOSED_KEY: &str = "confab.closed.v1.";

pub fn load_guest_name() -> Option<String> {
    LocalStorage::get(GUEST_NAME_KEY).ok()
}

pub fn save_guest_name(name: &str) {
    let _ = LocalStorage::set(GUEST_NAME_KEY, name);
}

pub fn forget_guest_name() {
    LocalStorage::delete(GUEST_NAME_KEY);
}

pub fn load_outbox() -> Outbox {
    LocalStorage::delete(OLD_OUTBOX_KEY);
    LocalStorage::get(OUTBOX_KEY).unwrap_or_default()
}

pub fn save_outbox(outbox: &Outbox) {
    if outbox.pending.is_empty() {
        LocalStorage::delete(OUTBOX_KEY);
    } else if let Err(e) = LocalStorage::set(OUTBOX_KEY, outbox) {
        web_sys::console::warn_1(&format!("cannot save unsent messages: {e}").into());
    }
}

/// The half-written message of `room`, if any.
pub fn load_draft(user: &str, room: &str) -> String {
    drafts(user).remove(room).unwrap_or_default()
}

/// Keeps `text` as the draft of `room` (an empty one is forgotten).
pub fn save_draft(user: &str, room: &str, text: &str) {
    let mut drafts = drafts(user);
    if text.trim().is_empty() {
        if drafts.remove(room).is_none() {
            return;
        }
    } else {
        drafts.insert(room.to_owned(), text.to_owned());
    }
    save_map(&format!("{DRAFTS_KEY}{user}"), &drafts);
}

fn drafts(user: &str) -> BTreeMap<String, String> {
    LocalStorage::get(format!("{DRAFTS_KEY}{user}")).unwrap_or_default()
}

/// Direct conversations `user` closed, with the last `seq` they had then.
pub fn load_closed(user: &str) -> BTreeMap<String, u64> {
    LocalStorage::get(format!("{CLOSED_KEY}{user}")).unwrap_or_default()
}

pub fn save_closed(user: &str, closed: &BTreeMap<String, u64>) {
    save_map(&format!("{CLOSED_KEY}{user}"), closed);
}

/// Forgets everything kept for `user` (signing out: the next person on this browser
/// sees none of it).
pub fn forget_user(user: &str) {
    LocalStorage::delete(format!("{DRAFTS_KEY}{user}"));
    LocalStorage::delete(format!("{CLOSED_KEY}{user}"));
}

fn save_map<V: Serialize>(key: &str, map: &BTreeMap<String, V>) {
    if map.is_empty() {
        LocalStorage::delete(key);
    } else if let Err(e) = LocalStorage::set(key, map) {
        web_sys::console::warn_1(&format!("cannot save {key}: {e}").into());
    }
}
