use confab_shared::{ChatMessage, GUEST_PREFIX};
use wasm_bindgen::JsValue;
use web_sys::HtmlElement;
use yew::prelude::*;

use crate::{
    format,
    socket::Chat,
    state::{Action, Messages, Pending},
};

/// Consecutive messages from one sender within this gap share one header.
const GROUP_GAP_MS: i64 = 5 * 60 * 1000;
/// How close to the bottom (px) still counts as "reading the latest".
const STICK_SLACK_PX: i32 = 48;

/// Start loading older messages when the reader scrolls this close to the top (px).
const LOAD_OLDER_AT_PX: i32 = 64;

/// The current room's messages, then the user's unsent ones. Follows new messages
/// while the reader is at the bottom and leaves the scroll position alone once they
/// scrolled up to read; scrolling to the top loads older messages without moving what
/// is on screen.
#[function_component]
pub fn MessageList() -> Html {
    let ctx = super::use_ctx();
    let state = &ctx.state;
    let list = use_node_ref();
    let stick = use_mut_ref(|| true);
    // Distance from the bottom to keep while older messages are prepended.
    let anchor = use_mut_ref(|| None::<i32>);
    let room = state.current_room();
    let count = room.map_or(0, |r| r.messages.len());
    let last_id = room.and_then(|r| r.messages.last()).map(|m| m.id);
    let pending_count = state.pending_here().count();

    let load_older = {
        let (list, anchor, chat, state) = (
            list.clone(),
            anchor.clone(),
            ctx.chat.clone(),
            ctx.state.clone(),
        );
        Callback::from(move |()| {
            let Some(view) = state.current_room() else {
                return;
            };
            let Some(first) = view.messages.first() else {
                return;
            };
            if !view.has_older || view.loading_older {
                return;
            }
            if let Some(el) = list.cast::<HtmlElement>() {
                *anchor.borrow_mut() = Some(el.scroll_height() - el.scroll_top());
            }
            state.dispatch(Action::LoadingOlder(state.current.clone()));
            chat.fetch_older(&state.current, first.seq);
        })
    };
    let onscroll = {
        let (list, stick, load_older) = (list.clone(), stick.clone(), load_older.clone());
        Callback::from(move |_: Event| {
            if let Some(el) = list.cast::<HtmlElement>() {
                *stick.borrow_mut() =
                    el.scroll_top() + el.client_height() >= el.scroll_height() - STICK_SLACK_PX;
                if el.scroll_top() < LOAD_OLDER_AT_PX {
                    load_older.emit(());
                }
            }
        })
    };
    {
        let (list, stick, anchor) = (list.clone(), stick.clone(), anchor.clone());
        use_effect_with((count, last_id, pending_count), move |_| {
            if let Some(el) = list.cast::<HtmlElement>() {
                if let Some(from_bottom) = anchor.borrow_mut().take() {
                    el.set_scroll_top(el.scroll_height() - from_bottom);
                } else if *stick.borrow() {
                    el.set_scroll_top(el.scroll_height());
                }
            }
        });
    }

    let me: AttrValue = state
        .me
        .as_ref()
        .map(|p| AttrValue::from(p.user.clone()))
        .unwrap_or_default();
    let label = state.label(&state.current);
    let pending: Vec<Pending> = state.pending_here().cloned().collect();
    let body = match room {
        None => html! { <p class="empty">{ format!("Joining {label}…") }</p> },
        Some(r) if r.messages.is_empty() && pending.is_empty() => {
            html! { <p class="empty">{ format!("No messages in {label} yet. Say hi!") }</p> }
        }
        Some(r) => {
            let older = r.has_older.then(|| {
                let onclick = load_older.reform(|_: MouseEvent| ());
                html! {
                    <button type="button" class="load-older" {onclick} disabled={r.loading_older}>
                        { if r.loading_older { "Loading older messages…" } else { "Load older messages" } }
                    </button>
                }
            });
            html! {
                <>
                    { for older }
                    <Items messages={r.messages.clone()} {pending} {me} chat={ctx.chat.clone()}
                           new_from={state.divider_before()} />
                </>
            }
        }
    };
    let typing = typing_text(&state.typing_names());
    html! {
        <>
            <div class="messages" role="log" aria-label="Messages" aria-live="polite"
                 tabindex="0" ref={list} {onscroll}>
                { body }
            </div>
            <p class="typing" data-testid="typing" aria-live="polite">{ typing }</p>
        </>
    }
}

#[derive(Properties, PartialEq)]
struct ItemsProps {
    messages: Messages,
    /// The room's messages still waiting for the server.
    pending: Vec<Pending>,
    /// The reader's username, to mark their own messages.
    me: AttrValue,
    chat: Chat,
    /// The id of the first unread message, which the "New messages" divider precedes.
    new_from: Option<u64>,
}

/// The list itself. A component of its own so that what changes around it many times a
/// second (typing indicators, presence, the clock's tick) does not rebuild thousands of
/// items: its props are the shared message list, compared by address.
#[function_component]
fn Items(props: &ItemsProps) -> Html {
    let messages = &props.messages;
    let items = messages.iter().enumerate().flat_map(|(i, m)| {
        let starts_group = i == 0 || {
            let prev = &messages[i - 1];
            prev.from != m.from || m.ts - prev.ts > GROUP_GAP_MS
        };
        let divider = (props.new_from == Some(m.id)).then(super::reading::new_messages_divider);
        divider.into_iter().chain([message(
            m,
            starts_group,
            m.from == props.me.as_str(),
            &props.me,
        )])
    });
    let pending = props.pending.iter().map(|p| pending_item(p, &props.chat));
    html! {
        <ul class="message-items">{ for items }{ for pending }</ul>
    }
}

/// A message on its way ("sending…") or refused (with why, retry and discard).
fn pending_item(p: &Pending, chat: &Chat) -> Html {
    let status = match &p.failed {
        None => html! { <span class="pending-status">{ "sending…" }</span> },
        Some(reason) => {
            let retry = {
                let (chat, id) = (chat.clone(), p.client_id.clone());
                Callback::from(move |_: MouseEvent| chat.retry(&id))
            };
            let discard = {
                let (chat, id) = (chat.clone(), p.client_id.clone());
                Callback::from(move |_: MouseEvent| chat.discard(&id))
            };
            html! {
                <span class="pending-status failed" role="alert">
                    { format!("Not sent: {reason}") }
                    <button type="button" onclick={retry}>{ "Retry" }</button>
                    <button type="button" onclick={discard}>{ "Discard" }</button>
                </span>
            }
        }
    };
    html! {
        <li key={format!("p{}", p.client_id)} data-testid="pending"
            class={classes!("message", "mine", "pending", p.failed.is_some().then_some("failed"))}>
            <div class="body" dir="auto">{ p.body.clone() }</div>
            { status }
        </li>
    }
}

fn message(m: &ChatMessage, starts_group: bool, mine: bool, me: &str) -> Html {
    let (time, full) = format_time(m.ts);
    // Anyone can call themselves anything as a guest: say so wherever the name shows.
    let guest = m.from.starts_with(GUEST_PREFIX);
    // The name is a text node and the body elements and text nodes built by `format`:
    // user text is never parsed as HTML. `data-from` is the username: unique, unlike
    // display names.
    html! {
        <li key={format!("m{}", m.id)} data-testid="message" data-from={m.from.clone()}
            class={classes!("message", mine.then_some("mine"), starts_group.then_some("first"))}>
            if starts_group {
                <div class="meta">
                    <span class="from"><bdi>{ m.name.clone() }</bdi>
                        if guest { <span class="guest-mark">{ " (guest)" }</span> }
                        if mine { <span class="you">{ " (you)" }</span> }
                    </span>
                    <time datetime={full.clone()} title={full.clone()}>{ time.clone() }</time>
                </div>
            } else {
                <span class="visually-hidden">{ format!("{}{} at {time}: ", m.name, if guest { " (guest)" } else { "" }) }</span>
            }
            <div class="body" dir="auto">{ format::message_body(&m.body, me) }</div>
        </li>
    }
}

/// `HH:MM` in the reader's local time zone, and the full date-time for the tooltip.
fn format_time(ts: i64) -> (String, String) {
    let date = js_sys::Date::new(&JsValue::from_f64(ts as f64));
    let short = format!("{:02}:{:02}", date.get_hours(), date.get_minutes());
    let full = String::from(date.to_string());
    (short, full)
}

fn typing_text(names: &[String]) -> String {
    match names {
        [] => String::new(),
        [one] => format!("{one} is typing…"),
        [a, b] => format!("{a} and {b} are typing…"),
        _ => "Several people are typing…".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::typing_text;

    fn names(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn typing_text_reads_naturally() {
        assert_eq!(typing_text(&[]), "");
        assert_eq!(typing_text(&names(&["ada"])), "ada is typing…");
        assert_eq!(
            typing_text(&names(&["ada", "bob"])),
            "ada and bob are typing…"
        );
        assert_eq!(
            typing_text(&names(&["a", "b", "c"])),
            "Several people are typing…"
        );
    }
}
