//! UI components. Each renders from the [`State`](crate::state::State) context and
//! turns user input into [`Chat`](crate::socket::Chat) or
//! [`Account`](crate::account::Account) requests, or reducer actions.

mod account_panel;
mod admin;
mod app;
mod attachments;
mod auth;
mod composer;
mod days;
mod edit_box;
mod far;
mod invites;
mod jump;
mod mention;
mod messages;
mod panel;
mod reactions;
mod reading;
mod room_header;
mod search;
mod sidebar;
mod status;
mod user_menu;

pub use app::App;

use yew::prelude::*;

use confab_shared::RoomName;
use web_sys::HtmlElement;

use crate::{
    account::Account,
    socket::Chat,
    state::{Drawer, State},
};

/// What every component reads: the state and the ways to act on it.
#[derive(Clone, PartialEq)]
pub struct Ctx {
    pub state: UseReducerHandle<State>,
    pub chat: Chat,
    pub account: Account,
}

/// The shared context; present everywhere below [`App`].
#[hook]
pub fn use_ctx() -> Ctx {
    use_context::<Ctx>().unwrap_or_else(|| unreachable!("components render inside App"))
}

/// A click that sets a yes/no state: opening a confirmation, cancelling it.
pub fn set_on_click(flag: &UseStateHandle<bool>, value: bool) -> Callback<MouseEvent> {
    let flag = flag.clone();
    Callback::from(move |_: MouseEvent| flag.set(value))
}

/// The padlock that marks private rooms; drawn rather than an emoji, which not every
/// system has a font for. Decorative: the text next to it says "(private)".
pub fn lock_icon() -> Html {
    html! {
        <svg class="lock" aria-hidden="true" focusable="false" width="12" height="12" viewBox="0 0 16 16">
            <path fill="currentColor" d="M4 7V5a4 4 0 1 1 8 0v2h1a1 1 0 0 1 1 1v7a1 1 0 0 1-1 1H3a1 1 0 0 1-1-1V8a1 1 0 0 1 1-1h1zm2 0h4V5a2 2 0 1 0-4 0v2z" />
        </svg>
    }
}

/// The error paragraph of a form field, and the attributes that tie the field to it.
pub struct FieldError {
    pub id: &'static str,
    pub message: Option<String>,
}

impl FieldError {
    pub fn invalid(&self) -> &'static str {
        if self.message.is_some() {
            "true"
        } else {
            "false"
        }
    }

    pub fn describedby(&self) -> Option<&'static str> {
        self.message.as_ref().map(|_| self.id)
    }

    pub fn render(&self) -> Html {
        match &self.message {
            Some(message) => html! {
                <p id={self.id} class="error" role="alert">{ message.clone() }</p>
            },
            None => html! {},
        }
    }
}

/// What a typed room name becomes: room names are lower-case with dashes, and people
/// type "Q3 Plans". `Ok` is the name that will be used.
pub fn normalise_room_name(typed: &str) -> Result<String, String> {
    let name = typed.trim().to_lowercase().replace(' ', "-");
    RoomName::parse(&name)
        .map(RoomName::into_string)
        .map_err(|e| e.to_string())
}

/// The id of the button that opens `drawer` at phone width.
pub fn drawer_toggle_id(drawer: Drawer) -> &'static str {
    match drawer {
        Drawer::Rooms => "rooms-toggle",
        Drawer::People => "people-toggle",
    }
}

/// Focuses the first element that matches a CSS selector, if one is on the page.
pub fn focus_selector(selector: &str) {
    let element = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.query_selector(selector).ok().flatten());
    if let Some(element) =
        element.and_then(|e| wasm_bindgen::JsCast::dyn_into::<HtmlElement>(e).ok())
    {
        let _ = element.focus();
    }
}

/// Focuses the element with this id, if it is on the page.
pub fn focus_by_id(id: &str) {
    let element = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.get_element_by_id(id));
    if let Some(element) =
        element.and_then(|e| wasm_bindgen::JsCast::dyn_into::<HtmlElement>(e).ok())
    {
        let _ = element.focus();
    }
}
