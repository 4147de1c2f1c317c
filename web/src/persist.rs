//! What the client keeps in the browser's local storage: the display name a guest last
//! used and the messages not yet acknowledged. An account needs nothing here: its
//! session is the HttpOnly cookie, which the page cannot read. Storage can be full or
//! disabled (private modes); then the client simply forgets on reload.

use gloo_storage::{LocalStorage, Storage};
use serde::{Deserialize, Serialize};

use crate::state::Pending;

const GUEST_NAME_KEY: &str = "confab.name";
const OUTBOX_KEY: &str = "confab.outbox.v2";
/// Protocol 2's outbox, which did not say whose messages it held.
const OLD_OUTBOX_KEY: &str = "confab.outbox.v1";

/// Unsent messages and whose they are, so that another person signing in on the same
/// browser never sends them as their own.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outbox {
    /// Handle of the writer; `None` until a server welcomed the session.
    pub user: Option<String>,
    pub pending: Vec<Pending>,
}

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
