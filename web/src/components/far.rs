//! The message list's controls for reading far back (the rules are in
//! `state/window.rs`): while a window of older messages shows instead of the newest,
//! scrolling to its end (or its "Load newer messages" button) asks for what follows, and
//! "Jump to latest" goes back to the newest messages, saying how many arrived meanwhile.

use std::{cell::RefCell, rc::Rc};

use web_sys::HtmlElement;
use yew::prelude::*;

use super::Ctx;
use crate::state::{Action, RoomView, WindowAction};

/// Asks for the messages after the window's last one, unless a request is on its way.
pub fn load_newer(ctx: &Ctx) -> Callback<()> {
    let (chat, state) = (ctx.chat.clone(), ctx.state.clone());
    Callback::from(move |()| {
        let Some(view) = state.current_room() else {
            return;
        };
        // A jump on its way moves the list itself.
        if !view.can_load_newer() || state.jump.is_some() {
            return;
        }
        if let Some(last) = view.shown().last() {
            chat.fetch_around(&state.current, last.seq);
        }
    })
}

/// The button at the end of a window, for those who do not scroll to load.
pub fn load_newer_button(view: &RoomView, load_newer: &Callback<()>) -> Html {
    let loading = !view.can_load_newer();
    let onclick = load_newer.reform(|_: MouseEvent| ());
    html! {
        <button type="button" class="load-newer" {onclick} disabled={loading}>
            { if loading { "Loading newer messages…" } else { "Load newer messages" } }
        </button>
    }
}

/// "Jump to latest", while a window shows.
pub fn latest_bar(ctx: &Ctx, stick: &Rc<RefCell<bool>>) -> Html {
    let state = &ctx.state;
    let Some(view) = state.current_room().filter(|v| v.has_newer()) else {
        return html! {};
    };
    let me = state.me.as_ref().map_or("", |p| p.user.as_str());
    let label = match view.new_since_detached(me) {
        0 => "Jump to latest".to_owned(),
        1 => "Jump to latest (1 new message)".to_owned(),
        n => format!("Jump to latest ({n} new messages)"),
    };
    let onclick = {
        let (state, stick) = (state.clone(), Rc::clone(stick));
        Callback::from(move |_: MouseEvent| {
            *stick.borrow_mut() = true;
            state.dispatch(Action::Window(WindowAction::Latest {
                room: state.current.clone(),
            }));
            super::focus_by_id("composer");
        })
    };
    html! {
        <div class="far-bar">
            <span>{ "You are reading older messages." }</span>
            <button type="button" class="jump-latest" {onclick}>{ label }</button>
        </div>
    }
}

/// Each time the room goes back to its newest messages on request (`returns` counts
/// them), the list follows its end again and scrolls there.
#[hook]
pub fn use_back_to_latest(returns: u32, list: &NodeRef, stick: &Rc<RefCell<bool>>) {
    let seen = use_mut_ref(|| returns);
    let (list, stick) = (list.clone(), Rc::clone(stick));
    use_effect_with(returns, move |returns| {
        if *seen.borrow() == *returns {
            return;
        }
        *seen.borrow_mut() = *returns;
        *stick.borrow_mut() = true;
        if let Some(el) = list.cast::<HtmlElement>() {
            el.set_scroll_top(el.scroll_height());
        }
    });
}
