//! Confab's browser client. State lives in one reducer ([`state`]), the connection in
//! one service ([`socket`]); components only render and forward user intent.

mod components;
mod persist;
mod socket;
mod state;

fn main() {
    yew::Renderer::<components::App>::new().render();
}
