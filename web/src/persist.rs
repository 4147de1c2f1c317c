//! What the client keeps in the browser's local storage: the display name it last used
//! and the messages not yet acknowledged. Storage can be full or disabled (private
//! modes); then the client simply forgets on reload.

use gloo_storage::{LocalStorage, Storage};

use crate::state::Pending;

const NAME_KEY: &str = "confab.name";
const OUTBOX_KEY: &str = "confab.outbox.v1";

pub fn load_name() -> Option<String> {
    LocalStorage::get(NAME_KEY).ok()
}

pub fn save_name(name: &str) {
    let _ = LocalStorage::set(NAME_KEY, name);
}

pub fn forget_name() {
    LocalStorage::delete(NAME_KEY);
}

pub fn load_outbox() -> Vec<Pending> {
    LocalStorage::get(OUTBOX_KEY).unwrap_or_default()
}

pub fn save_outbox(outbox: &[Pending]) {
    if outbox.is_empty() {
        LocalStorage::delete(OUTBOX_KEY);
    } else if let Err(e) = LocalStorage::set(OUTBOX_KEY, outbox) {
        gloo_console_warn(&format!("cannot save unsent messages: {e}"));
    }
}

fn gloo_console_warn(text: &str) {
    web_sys::console::warn_1(&text.into());
}
