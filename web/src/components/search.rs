//! The search box of the top bar and its results (the state is in `state/search.rs`).
//!
//! A search landmark with a labelled field: `/` or Ctrl+K (⌘K) focuses it from
//! anywhere, Enter searches, Escape closes the results. Each result is a button naming
//! the room, the author and the time, with the message's text and the words that
//! matched in `<mark>` elements: text nodes cut from the body at the ranges the server
//! gave (see [`crate::marks`]), never markup. The arrow keys move between the field and
//! the results; Enter on a result opens its room at the message, however far back.

use confab_shared::{GUEST_PREFIX, SearchHit, limits};
use gloo_events::{EventListener, EventListenerOptions};
use wasm_bindgen::JsCast;
use web_sys::{Element, HtmlElement, HtmlInputElement, KeyboardEvent};
use yew::prelude::*;

use super::{
    Ctx,
    days::{self, LocalTime},
};
use crate::{
    marks::{self, Piece},
    state::{Action, SearchAction},
};

const INPUT_ID: &str = "search-input";
const PANEL_ID: &str = "search-results";
const ERROR_ID: &str = "search-error";

#[function_component]
pub fn SearchBox() -> Html {
    let ctx = super::use_ctx();
    let input = use_node_ref();
    let panel = use_node_ref();
    let wrapper = use_node_ref();
    use_shortcut(&input);
    use_close_outside(&wrapper, &ctx.state.dispatcher());
    let search = &ctx.state.search;

    let onsubmit = {
        let (input, chat, state) = (input.clone(), ctx.chat.clone(), ctx.state.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let typed = input
                .cast::<HtmlInputElement>()
                .map(|i| i.value())
                .unwrap_or_default();
            let query = typed.trim();
            if query.is_empty() {
                // Nothing to look for: the tips say how.
                state.dispatch(Action::Search(SearchAction::Open));
            } else {
                chat.search(query, None);
            }
        })
    };
    let onkeydown = {
        let (input, panel, state) = (input.clone(), panel.clone(), ctx.state.clone());
        Callback::from(move |e: KeyboardEvent| match e.key().as_str() {
            "Escape" if state.search.open => {
                // Also keeps the field's text, which Escape would clear in a search field.
                e.prevent_default();
                state.dispatch(Action::Search(SearchAction::Close));
                focus(&input);
            }
            "ArrowDown" | "ArrowUp" if move_focus(&input, &panel, e.key() == "ArrowDown") => {
                e.prevent_default();
            }
            _ => {}
        })
    };
    let onfocus = {
        let state = ctx.state.clone();
        Callback::from(move |_: FocusEvent| {
            if !state.search.hits.is_empty() && !state.search.open {
                state.dispatch(Action::Search(SearchAction::Open));
            }
        })
    };
    // Tabbing out of the box and its results closes them; so does a click elsewhere.
    let onfocusout = {
        let (wrapper, state) = (wrapper.clone(), ctx.state.clone());
        Callback::from(move |e: FocusEvent| {
            let to = e
                .related_target()
                .and_then(|t| t.dyn_into::<web_sys::Node>().ok());
            let inside = wrapper.cast::<Element>();
            if let (Some(to), Some(inside)) = (to, inside)
                && !inside.contains(Some(&to))
            {
                state.dispatch(Action::Search(SearchAction::Close));
            }
        })
    };
    let error = search.error.clone();
    html! {
        <div class="search" ref={wrapper} {onkeydown} {onfocusout}>
            <form role="search" aria-label="Search messages" {onsubmit}>
                <label for={INPUT_ID} class="visually-hidden">{ "Search messages" }</label>
                <input id={INPUT_ID} ref={input.clone()} type="search" placeholder="Search messages  /"
                       autocomplete="off" spellcheck="false" maxlength={limits::MAX_QUERY_CHARS.to_string()}
                       aria-invalid={if error.is_some() { "true" } else { "false" }}
                       aria-describedby={error.as_ref().map(|_| ERROR_ID)}
                       aria-controls={search.open.then_some(PANEL_ID)} {onfocus} />
                <button type="submit" class="search-go">{ "Search" }</button>
            </form>
            if let Some(error) = error {
                <p id={ERROR_ID} class="error search-error" role="alert">{ error }</p>
            }
            if search.open {
                { results_panel(&ctx, &panel, &input) }
            }
        </div>
    }
}

/// `/` (outside a text field) and Ctrl+K or ⌘K (anywhere) focus the search field.
#[hook]
fn use_shortcut(input: &NodeRef) {
    let input = input.clone();
    use_effect_with((), move |()| {
        let document = web_sys::window().and_then(|w| w.document());
        let listener = document.map(|document| {
            let options = EventListenerOptions::enable_prevent_default();
            EventListener::new_with_options(&document, "keydown", options, move |e| {
                let Some(e) = e.dyn_ref::<KeyboardEvent>() else {
                    return;
                };
                let command = (e.ctrl_key() || e.meta_key()) && !e.alt_key();
                let wanted = match e.key().as_str() {
                    "k" | "K" => command,
                    "/" => !command && !e.alt_key() && !typing_in(e.target()),
                    _ => false,
                };
                if wanted {
                    e.prevent_default();
                    if let Some(field) = input.cast::<HtmlInputElement>() {
                        let _ = field.focus();
                        field.select();
                    }
                }
            })
        });
        move || drop(listener)
    });
}

/// A press of the pointer outside the box and its results closes them (they cover
/// part of the page).
#[hook]
fn use_close_outside(wrapper: &NodeRef, dispatcher: &UseReducerDispatcher<crate::state::State>) {
    let (wrapper, dispatcher) = (wrapper.clone(), dispatcher.clone());
    use_effect_with((), move |()| {
        let document = web_sys::window().and_then(|w| w.document());
        let listener = document.map(|document| {
            EventListener::new(&document, "pointerdown", move |e| {
                let target = e.target().and_then(|t| t.dyn_into::<web_sys::Node>().ok());
                let inside = wrapper
                    .cast::<Element>()
                    .is_some_and(|w| w.contains(target.as_ref()));
                if !inside {
                    // Changes nothing (and renders nothing) when they are closed.
                    dispatcher.dispatch(Action::Search(SearchAction::Close));
                }
            })
        });
        move || drop(listener)
    });
}

/// Whether a key went to something that takes text (where `/` is a character).
fn typing_in(target: Option<web_sys::EventTarget>) -> bool {
    let Some(element) = target.and_then(|t| t.dyn_into::<Element>().ok()) else {
        return false;
    };
    let tag = element.tag_name().to_ascii_uppercase();
    matches!(tag.as_str(), "INPUT" | "TEXTAREA" | "SELECT")
        || element
            .dyn_ref::<HtmlElement>()
            .is_some_and(HtmlElement::is_content_editable)
}

fn focus(node: &NodeRef) {
    if let Some(element) = node.cast::<HtmlElement>() {
        let _ = element.focus();
    }
}

/// Moves the focus along the field, the results and "More results"; returns whether
/// it moved.
fn move_focus(input: &NodeRef, panel: &NodeRef, down: bool) -> bool {
    let (Some(input), Some(panel)) = (input.cast::<HtmlElement>(), panel.cast::<Element>()) else {
        return false;
    };
    let mut stops: Vec<HtmlElement> = vec![input];
    if let Ok(found) = panel.query_selector_all(".hit, .more-results") {
        for i in 0..found.length() {
            if let Some(el) = found.item(i).and_then(|n| n.dyn_into::<HtmlElement>().ok()) {
                stops.push(el);
            }
        }
    }
    let active = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.active_element());
    let Some(at) = stops.iter().position(|el| {
        active
            .as_ref()
            .is_some_and(|a| a == el.unchecked_ref::<Element>())
    }) else {
        return false;
    };
    let next = match down {
        true => (at + 1).min(stops.len() - 1),
        false => at.saturating_sub(1),
    };
    if next == at {
        return false;
    }
    let _ = stops[next].focus();
    true
}

fn results_panel(ctx: &Ctx, panel: &NodeRef, input: &NodeRef) -> Html {
    let search = &ctx.state.search;
    let query = &search.query;
    let n = search.hits.len();
    let status = if query.is_empty() {
        "Type words to search every message you can see.".to_owned()
    } else if n == 0 && search.busy {
        "Searching…".to_owned()
    } else if n == 0 && search.answered {
        format!("No messages match \u{201c}{query}\u{201d}.")
    } else if n == 0 {
        String::new()
    } else {
        let more = if search.more { ", more below" } else { "" };
        let s = if n == 1 { "" } else { "s" };
        format!("{n} result{s} for \u{201c}{query}\u{201d}{more}")
    };
    let close = {
        let (state, input) = (ctx.state.clone(), input.clone());
        Callback::from(move |_: MouseEvent| {
            state.dispatch(Action::Search(SearchAction::Close));
            focus(&input);
        })
    };
    let more = search.next_page().map(|before| {
        let (chat, query) = (ctx.chat.clone(), query.clone());
        let onclick = Callback::from(move |_: MouseEvent| chat.search(&query, Some(before)));
        html! {
            <button type="button" class="more-results" {onclick} disabled={search.busy}>
                { if search.busy { "Loading more results…" } else { "More results" } }
            </button>
        }
    });
    let today = days::today();
    html! {
        <section id={PANEL_ID} class="search-panel" aria-label="Search results" ref={panel.clone()}>
            <div class="search-head">
                <p class="search-status" role="status">{ status }</p>
                <button type="button" class="small" onclick={close}>{ "Close" }</button>
            </div>
            if n > 0 {
                <ol class="hits">
                    { for search.hits.iter().map(|hit| hit_item(ctx, hit, today)) }
                </ol>
            }
            { for more }
            <details class="search-tips" open={query.is_empty()}>
                <summary>{ "Search tips" }</summary>
                { tips() }
            </details>
        </section>
    }
}

/// One result: a button that opens the room at the message.
fn hit_item(ctx: &Ctx, hit: &SearchHit, today: i64) -> Html {
    let m = &hit.message;
    let when = LocalTime::of(m.ts);
    let day = days::day_label(when.day, today, m.ts);
    let onclick = {
        let (state, room, seq) = (ctx.state.clone(), m.room.clone(), m.seq);
        Callback::from(move |_: MouseEvent| {
            state.dispatch(Action::Search(SearchAction::Close));
            state.dispatch(Action::JumpTo {
                room: room.clone(),
                seq,
            });
        })
    };
    let guest = m.from.starts_with(GUEST_PREFIX);
    html! {
        <li key={m.id.to_string()}>
            <button type="button" class="hit" data-room={m.room.clone()} data-seq={m.seq.to_string()} {onclick}>
                <span class="hit-meta">
                    <span class="hit-room">{ ctx.state.label(&m.room) }</span>
                    <span class="hit-from"><bdi>{ m.name.clone() }</bdi>
                        if guest { <span class="guest-mark">{ " (guest)" }</span> }
                    </span>
                    <time datetime={when.full.clone()}>{ format!("{day} {}", when.short) }</time>
                </span>
                <span class="hit-body" dir="auto">{ body(hit) }</span>
            </button>
        </li>
    }
}

/// The message's text with its matches marked; for a message of files only, their
/// names.
fn body(hit: &SearchHit) -> Html {
    let m = &hit.message;
    if m.body.is_empty() {
        let names: Vec<&str> = m.files.iter().map(|f| f.name.as_str()).collect();
        return html! { <span class="hit-files">{ names.join(", ") }</span> };
    }
    let excerpt = marks::excerpt(&m.body, &hit.marks, marks::EXCERPT_CHARS);
    let pieces = excerpt.pieces.iter().map(|Piece { text, marked }| {
        let text = (*text).to_owned();
        if *marked {
            html! { <mark>{ text }</mark> }
        } else {
            html! { { text } }
        }
    });
    html! {
        <>
            if excerpt.cut_before { { "…" } }
            { for pieces }
            if excerpt.cut_after { { "…" } }
        </>
    }
}

fn tips() -> Html {
    let tip = |example: &'static str, meaning: &'static str| {
        html! { <li><code>{ example }</code>{ " " }{ meaning }</li> }
    };
    html! {
        <ul>
            { tip("rust borrow", "messages with every word (any case)") }
            { tip("borrow*", "words starting with “borrow”") }
            { tip("\"borrow checker\"", "the words together, in this order") }
            { tip("in:general", "only in that room") }
            { tip("from:ada", "only messages by that username") }
            { tip("before:2026-01-31", "sent before that day; also after: and on: (UTC)") }
        </ul>
    }
}
