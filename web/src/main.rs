//! Confab's browser client. State lives in one reducer ([`state`]), browser I/O in
//! services (the chat socket in [`socket`], the account endpoints in [`account`]);
//! components only render and forward user intent.

mod account;
mod admin;
mod api;
mod backoff;
mod components;
mod crash;
mod format;
mod invites;
mod marks;
mod permalink;
mod persist;
mod resume;
mod socket;
mod state;
mod upload;

fn main() {
    crash::install();
    yew::Renderer::<components::App>::new().render();
    crash::panic_if_asked();
}
