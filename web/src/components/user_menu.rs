//! The account menu at the right end of the top bar: a button showing who is signed in
//! opens the few things that concern only them (the Account panel, enabling
//! notifications, signing out here or everywhere). One button instead of four keeps the
//! top bar on one line at desktop widths next to "Administration" and "Invite people",
//! which open panels of their own. It is a disclosure (a button with `aria-expanded`
//! and, under it, a list of real buttons reached with Tab), not an ARIA `menu`, whose
//! arrow-key contract four buttons do not need. Escape, a press outside or the focus
//! leaving it closes it; Escape gives the focus back to its button.

use gloo_events::EventListener;
use wasm_bindgen::JsCast;
use web_sys::{Element, Node};
use yew::prelude::*;

use super::{account_panel::AccountPanel, focus_by_id, reading::NotifyButton, use_ctx};

const TOGGLE_ID: &str = "user-menu-toggle";
const LIST_ID: &str = "user-menu";

/// The person's name as a button, its list of actions while open, and the Account
/// panel (which outlives the list that opened it).
#[function_component]
pub fn UserMenu() -> Html {
    let ctx = use_ctx();
    let open = use_state_eq(|| false);
    let account = use_state_eq(|| false);
    let wrapper = use_node_ref();
    use_close_outside(&wrapper, &open);
    let Some(me) = ctx.state.me.clone() else {
        return html! {};
    };
    let toggle = {
        let open = open.clone();
        Callback::from(move |_: MouseEvent| open.set(!*open))
    };
    let onkeydown = {
        let open = open.clone();
        Callback::from(move |e: KeyboardEvent| {
            // The Account panel handles its own Escape.
            if *open && e.key() == "Escape" && !e.default_prevented() {
                e.prevent_default();
                open.set(false);
                focus_by_id(TOGGLE_ID);
            }
        })
    };
    let onfocusout = {
        let (open, wrapper) = (open.clone(), wrapper.clone());
        Callback::from(move |e: FocusEvent| {
            // No related target: the focus went nowhere in particular (a press on the
            // page, which `use_close_outside` judges, or another window).
            let Some(to) = e.related_target().and_then(|t| t.dyn_into::<Node>().ok()) else {
                return;
            };
            let inside = wrapper
                .cast::<Element>()
                .is_some_and(|w| w.contains(Some(&to)));
            if !inside {
                open.set(false);
            }
        })
    };
    let open_account = {
        let (open, account) = (open.clone(), account.clone());
        Callback::from(move |_: MouseEvent| {
            open.set(false);
            account.set(true);
        })
    };
    let close_account = {
        let account = account.clone();
        Callback::from(move |()| {
            account.set(false);
            focus_by_id(TOGGLE_ID);
        })
    };
    let sign_out = {
        let account = ctx.account.clone();
        Callback::from(move |_: MouseEvent| account.sign_out(false))
    };
    let everywhere = {
        let account = ctx.account.clone();
        Callback::from(move |_: MouseEvent| account.sign_out(true))
    };
    html! {
        <div class="user-menu" ref={wrapper} {onkeydown} {onfocusout}>
            <button type="button" id={TOGGLE_ID} class="user-menu-toggle"
                    aria-expanded={open.to_string()} aria-controls={LIST_ID} onclick={toggle}>
                <span class="who">{ me.name.clone() }</span>
                if me.guest { <span class="guest-mark">{ " (guest)" }</span> }
                <span class="visually-hidden">{ ", account menu" }</span>
                { chevron() }
            </button>
            if *open {
                <ul id={LIST_ID} class="user-menu-list">
                    if !me.guest {
                        <li><button type="button" onclick={open_account}>{ "Account" }</button></li>
                    }
                    // Empty once the person has decided; hidden then (CSS `:empty`).
                    <li class="notify-item"><NotifyButton /></li>
                    <li><button type="button" onclick={sign_out}>{ "Sign out" }</button></li>
                    if !me.guest {
                        <li><button type="button" onclick={everywhere}>{ "Sign out everywhere" }</button></li>
                    }
                </ul>
            }
            if *account { <AccountPanel on_close={close_account} /> }
        </div>
    }
}

/// A press of the pointer outside the menu closes its list (it covers part of the page).
/// Listens only while the list is open.
#[hook]
fn use_close_outside(wrapper: &NodeRef, open: &UseStateHandle<bool>) {
    let (wrapper, handle) = (wrapper.clone(), open.clone());
    use_effect_with(**open, move |&is_open| {
        let document = web_sys::window()
            .and_then(|w| w.document())
            .filter(|_| is_open);
        let listener = document.map(|document| {
            EventListener::new(&document, "pointerdown", move |e| {
                let target = e.target().and_then(|t| t.dyn_into::<Node>().ok());
                let inside = wrapper
                    .cast::<Element>()
                    .is_some_and(|w| w.contains(target.as_ref()));
                if !inside {
                    handle.set(false);
                }
            })
        });
        move || drop(listener)
    });
}

/// The menu button's arrow; decorative (the button says "account menu" and whether it
/// is expanded).
fn chevron() -> Html {
    html! {
        <svg class="chevron" aria-hidden="true" focusable="false" width="10" height="10" viewBox="0 0 16 16">
            <path fill="currentColor" d="M2 5h12l-6 7z" />
        </svg>
    }
}
