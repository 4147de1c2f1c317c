//! What the panels that open from the top bar (Administration, Invite people, Account)
//! share: data fetched over HTTP for the panel alone, shown as it loads or fails, and the
//! two ways to close a panel (its close button, Escape anywhere in it).

use yew::prelude::*;

/// What a panel shows of one listing fetched over HTTP.
#[derive(Clone, PartialEq)]
pub enum Loaded<T> {
    Loading,
    Ready(T),
    Failed(String),
}

impl<T> Loaded<T> {
    /// "Loading…", the failure as an alert, or `ready`'s view of the data.
    pub fn view(&self, ready: impl FnOnce(&T) -> Html) -> Html {
        match self {
            Loaded::Loading => html! { <p class="hint-text">{ "Loading…" }</p> },
            Loaded::Failed(why) => html! { <p class="error" role="alert">{ why.clone() }</p> },
            Loaded::Ready(value) => ready(value),
        }
    }
}

/// Loads `fetch`'s answer into `into` whenever `deps` change (for `use_effect_with`).
pub fn load<T, D, F>(
    into: UseStateHandle<Loaded<T>>,
    fetch: impl Fn(D) -> F + 'static,
) -> impl FnOnce(&D)
where
    T: 'static,
    D: Clone + 'static,
    F: std::future::Future<Output = Result<T, crate::api::Failure>> + 'static,
{
    move |deps: &D| {
        let request = fetch(deps.clone());
        wasm_bindgen_futures::spawn_local(async move {
            into.set(match request.await {
                Ok(value) => Loaded::Ready(value),
                Err(failure) => Loaded::Failed(failure.into_api_error().error),
            });
        });
    }
}

/// The panel's `onkeydown` (Escape closes it) and its close button's `onclick`.
pub fn closers(on_close: &Callback<()>) -> (Callback<KeyboardEvent>, Callback<MouseEvent>) {
    let escape = {
        let on_close = on_close.clone();
        Callback::from(move |e: KeyboardEvent| {
            if e.key() == "Escape" {
                e.prevent_default();
                on_close.emit(());
            }
        })
    };
    (escape, on_close.reform(|_: MouseEvent| ()))
}
