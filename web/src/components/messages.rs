//! The message list: the current room's messages with their replies, reactions and
//! actions, day dividers between days, and the person's unsent messages after them.

use std::{borrow::Cow, cell::OnceCell, collections::BTreeMap, rc::Rc};

use confab_shared::{ChatMessage, GUEST_PREFIX, Quote, limits};
use web_sys::{Element, HtmlElement};
use yew::prelude::*;

use super::{
    attachments::{self, PendingFiles},
    days::{self, LocalTime},
    edit_box::EditBox,
    focus_selector, jump,
    reactions::{self, EmojiPicker},
};
use crate::{
    format, permalink,
    socket::Chat,
    state::{Action, Messages, Pending, PendingChange, State, quote_of},
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

    jump::use_jump(&ctx, &list, &stick);

    let me: AttrValue = state
        .me
        .as_ref()
        .map(|p| AttrValue::from(p.user.clone()))
        .unwrap_or_default();
    let label = state.label(&state.current);
    let pending: Vec<Pending> = state.pending_here().cloned().collect();
    let changes: Vec<Pending> = state.changes_here().cloned().collect();
    // Anyone's message may be deleted by the room's owner or an administrator.
    let moderates = state.admin || state.owns(&state.current);
    // Made again only when the member list changes, not at every render (typing, ticks).
    let people = use_memo(room.map(|r| r.members.clone()), |members| {
        members
            .iter()
            .flatten()
            .map(|p| (p.user.clone(), p.name.clone()))
            .collect::<People>()
    });
    let body = match room {
        None if pending.is_empty() => {
            html! { <p class="empty">{ format!("Joining {label}…") }</p> }
        }
        // Written before the room's history arrived (the network went first): what was
        // written still shows, waiting, under the notice.
        None => html! {
            <>
                <p class="empty">{ format!("Joining {label}…") }</p>
                <ul class="message-items">
                    { for pending.iter().map(|p| pending_item(p, &ctx.chat)) }
                </ul>
            </>
        },
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
                    <Items messages={r.messages.clone()} {pending} {changes} {me} {moderates} {people}
                           room={AttrValue::from(state.current.clone())} chat={ctx.chat.clone()}
                           dispatcher={state.dispatcher()} new_from={state.divider_before()} />
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
    /// The room's changes still waiting for the server, shown on their messages.
    changes: Vec<Pending>,
    /// The reader's username, to mark their own messages.
    me: AttrValue,
    room: AttrValue,
    /// The reader may delete anyone's message in this room.
    moderates: bool,
    /// Display names of the room's people, for saying who reacted.
    people: Rc<People>,
    chat: Chat,
    dispatcher: UseReducerDispatcher<State>,
    /// The id of the first unread message, which the "New messages" divider precedes.
    new_from: Option<u64>,
}

/// Display names by username.
type People = BTreeMap<String, String>;

/// What is open on one message: at most one thing in the whole list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Nothing,
    Edit(u64),
    Picker(u64),
    ConfirmDelete(u64),
    /// "Link copied" (or where it is) shows by this message's actions.
    Copied(u64, bool),
}

/// The list itself. A component of its own so that what changes around it many times a
/// second (typing indicators, presence, the clock's tick) does not rebuild thousands of
/// items: its props are the shared message list, compared by address. The buttons of
/// every message are handled by one listener on the list, which finds the message by
/// its `data-seq`, rather than by a callback per button.
#[function_component]
fn Items(props: &ItemsProps) -> Html {
    let open = use_state(|| Open::Nothing);
    {
        // Asked to confirm a deletion, land on the safe choice.
        use_effect_with(*open, |open| {
            if let Open::ConfirmDelete(seq) = *open {
                focus_action(seq, "cancel-delete");
            }
        });
    }
    let onclick = on_action(props, &open);
    let onkeydown = {
        let open = open.clone();
        Callback::from(move |e: KeyboardEvent| {
            if e.key() == "Escape"
                && let Open::ConfirmDelete(seq) = *open
            {
                open.set(Open::Nothing);
                focus_action(seq, "delete");
            }
        })
    };
    let messages = &props.messages;
    let names = OnceCell::new();
    let name_of = |user: &str| {
        let authors = names.get_or_init(|| known_names(messages));
        display_name(&props.people, authors, user)
    };
    let waiting = waiting_changes(&props.changes);
    let today = days::today();
    // A guest's name is free again once they leave: their messages stay as they are.
    let guest = props.me.starts_with(GUEST_PREFIX);
    let mut items = Vec::with_capacity(messages.len() + 8);
    let mut previous: Option<(&ChatMessage, i64)> = None;
    for m in messages.iter() {
        let when = LocalTime::of(m.ts);
        let new_day = previous.is_none_or(|(_, day)| day != when.day);
        if new_day {
            items.push(day_divider(when.day, today, m.ts));
        }
        let starts_group = new_day
            || m.reply_to.is_some()
            || previous.is_some_and(|(p, _)| p.from != m.from || m.ts - p.ts > GROUP_GAP_MS);
        let (shown, saving) = match waiting.get(&m.seq) {
            Some(changes) => (Cow::Owned(with_changes(m, changes, &props.me)), true),
            None => (Cow::Borrowed(&**m), false),
        };
        if props.new_from == Some(m.id) {
            items.push(super::reading::new_messages_divider());
        }
        let mine = m.from == props.me.as_str();
        let item = Item {
            m: &shown,
            when: &when,
            starts_group,
            saving,
            mine,
            may_rewrite: mine && !guest,
            may_delete: props.moderates || (mine && !guest),
            open: *open,
        };
        items.push(message(&item, props, &open, &name_of));
        previous = Some((m, when.day));
    }
    let pending = props.pending.iter().map(|p| pending_item(p, &props.chat));
    html! {
        <ul class="message-items" {onclick} {onkeydown}>{ for items }{ for pending }</ul>
    }
}

/// What one message item shows besides the message.
struct Item<'a> {
    m: &'a ChatMessage,
    when: &'a LocalTime,
    starts_group: bool,
    /// Changes of the reader's are shown on it but not stored yet.
    saving: bool,
    mine: bool,
    /// The reader may edit it.
    may_rewrite: bool,
    may_delete: bool,
    open: Open,
}

/// The one click listener of the list: reads which action of which message was asked
/// for from the button's `data-action` and the item's `data-seq`.
fn on_action(props: &ItemsProps, open: &UseStateHandle<Open>) -> Callback<MouseEvent> {
    let (chat, room, dispatcher, open) = (
        props.chat.clone(),
        props.room.to_string(),
        props.dispatcher.clone(),
        open.clone(),
    );
    Callback::from(move |e: MouseEvent| {
        let Some(button) = e
            .target_dyn_into::<Element>()
            .and_then(|t| t.closest("[data-action]").ok().flatten())
        else {
            return;
        };
        let action = button.get_attribute("data-action").unwrap_or_default();
        let Some(seq) = button
            .closest("[data-seq]")
            .ok()
            .flatten()
            .and_then(|item| item.get_attribute("data-seq"))
            .and_then(|seq| seq.parse::<u64>().ok())
        else {
            return;
        };
        let toggle = |what: Open| open.set(if *open == what { Open::Nothing } else { what });
        match action.as_str() {
            "reply" => {
                dispatcher.dispatch(Action::ReplyTo {
                    room: room.clone(),
                    seq: Some(seq),
                });
                super::focus_by_id("composer");
            }
            "react" => toggle(Open::Picker(seq)),
            "edit" => toggle(Open::Edit(seq)),
            "delete" => toggle(Open::ConfirmDelete(seq)),
            "cancel-delete" => {
                open.set(Open::Nothing);
                focus_action(seq, "delete");
            }
            "confirm-delete" => {
                open.set(Open::Nothing);
                chat.change(&room, PendingChange::Delete { seq });
                focus_selector(&format!("li[data-seq=\"{seq}\"]"));
            }
            "toggle-reaction" => {
                let emoji = button.get_attribute("data-emoji").unwrap_or_default();
                let change = if button.get_attribute("aria-pressed").as_deref() == Some("true") {
                    PendingChange::Unreact { seq, emoji }
                } else {
                    PendingChange::React { seq, emoji }
                };
                chat.change(&room, change);
            }
            "jump" => {
                let target = button
                    .get_attribute("data-target")
                    .and_then(|t| t.parse::<u64>().ok());
                if let Some(target) = target {
                    dispatcher.dispatch(Action::JumpTo {
                        room: room.clone(),
                        seq: target,
                    });
                }
            }
            // The link's own navigation changes the address; this also covers following
            // the link the address already holds, which changes nothing.
            "permalink" => dispatcher.dispatch(Action::JumpTo {
                room: room.clone(),
                seq,
            }),
            "copy-link" => copy_link(&room, seq, open.clone()),
            _ => {}
        }
    })
}

/// Copies the address of message `seq` to the clipboard; where the browser will not,
/// puts the link in the address bar for the person to copy.
fn copy_link(room: &str, seq: u64, open: UseStateHandle<Open>) {
    let fragment = permalink::fragment(room, seq);
    let Some(location) = web_sys::window().map(|w| w.location()) else {
        return;
    };
    let link = format!(
        "{}{}{}{fragment}",
        location.origin().unwrap_or_default(),
        location.pathname().unwrap_or_default(),
        location.search().unwrap_or_default()
    );
    wasm_bindgen_futures::spawn_local(async move {
        let written = match web_sys::window().map(|w| w.navigator().clipboard()) {
            Some(clipboard) => wasm_bindgen_futures::JsFuture::from(clipboard.write_text(&link))
                .await
                .is_ok(),
            None => false,
        };
        if !written {
            let _ = location.set_hash(&fragment);
        }
        open.set(Open::Copied(seq, written));
    });
}

/// The reader's changes waiting for the server, by the message they change.
fn waiting_changes(changes: &[Pending]) -> BTreeMap<u64, Vec<&PendingChange>> {
    let mut by_message: BTreeMap<u64, Vec<&PendingChange>> = BTreeMap::new();
    for change in changes.iter().filter_map(|p| p.change.as_ref()) {
        by_message.entry(change.target()).or_default().push(change);
    }
    by_message
}

/// A message as it will be once the reader's waiting changes are stored.
fn with_changes(m: &ChatMessage, changes: &[&PendingChange], me: &str) -> ChatMessage {
    let mut shown = m.clone();
    for change in changes {
        let seq = shown.revision() + 1;
        shown.apply(&confab_shared::Change {
            room: shown.room.clone(),
            seq,
            target: shown.seq,
            by: me.to_owned(),
            ts: shown.edited.unwrap_or(shown.ts),
            change: change.kind(),
        });
    }
    shown
}

/// Display names by username, from the messages loaded, for those who reacted but are
/// not among the room's people. Made only when a message with reactions is rendered.
fn known_names(messages: &Messages) -> BTreeMap<&str, &str> {
    messages
        .iter()
        .map(|m| (m.from.as_str(), m.name.as_str()))
        .collect()
}

/// What to call `user`: by the room's member list, else by a message of theirs, else by
/// their username (a guest's without its mark, and said to be a guest).
fn display_name(people: &People, authors: &BTreeMap<&str, &str>, user: &str) -> String {
    let name = people
        .get(user)
        .map(String::as_str)
        .or_else(|| authors.get(user).copied());
    match (name, user.strip_prefix(GUEST_PREFIX)) {
        (Some(name), None) => (*name).to_owned(),
        (Some(name), Some(_)) => format!("{name} (guest)"),
        (None, Some(guest)) => format!("{guest} (guest)"),
        (None, None) => user.to_owned(),
    }
}

/// Focuses the button for `action` of message `seq`.
fn focus_action(seq: u64, action: &str) {
    focus_selector(&format!(
        "li[data-seq=\"{seq}\"] [data-action=\"{action}\"]"
    ));
}

fn day_divider(day: i64, today: i64, ts: i64) -> Html {
    let label = days::day_label(day, today, ts);
    html! {
        <li key={format!("d{day}")} class="day-divider">
            <div role="separator" aria-label={label.clone()}>
                <span aria-hidden="true">{ label }</span>
            </div>
        </li>
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
            if !p.body.is_empty() {
                <div class="body" dir="auto">{ p.body.clone() }</div>
            }
            if !p.files.is_empty() {
                <PendingFiles files={p.files.clone()} />
            }
            { status }
        </li>
    }
}

fn message(
    item: &Item,
    props: &ItemsProps,
    open: &UseStateHandle<Open>,
    name_of: &dyn Fn(&str) -> String,
) -> Html {
    let Item {
        m,
        when,
        starts_group,
        mine,
        ..
    } = *item;
    let time = &when.short;
    // Anyone can call themselves anything as a guest: say so wherever the name shows.
    let guest = m.from.starts_with(GUEST_PREFIX);
    let seq = m.seq;
    // The name is a text node and the body elements and text nodes built by `format`:
    // user text is never parsed as HTML. `data-from` is the username: unique, unlike
    // display names. Focusable: Tab stops at each message, which shows its actions for the
    // next Tab to reach (hidden ones are not rendered: see style.css); a tap on a touch
    // screen does the same, and a jump to the message focuses it.
    html! {
        <li key={format!("m{}", m.id)} data-testid="message" data-from={m.from.clone()}
            data-seq={seq.to_string()} tabindex="0"
            class={classes!("message", mine.then_some("mine"), starts_group.then_some("first"),
                            m.deleted.then_some("deleted"))}>
            if starts_group {
                <div class="meta">
                    <span class="from"><bdi>{ m.name.clone() }</bdi>
                        if guest { <span class="guest-mark">{ " (guest)" }</span> }
                        if mine { <span class="you">{ " (you)" }</span> }
                    </span>
                    <a class="permalink" href={permalink::fragment(&props.room, seq)}
                       data-action="permalink">
                        <time datetime={when.full.clone()} title={when.full.clone()}>{ time.clone() }</time>
                    </a>
                </div>
            } else {
                <span class="visually-hidden">{ format!("{}{} at {time}: ", m.name, if guest { " (guest)" } else { "" }) }</span>
            }
            { for m.reply_to.as_ref().map(|q| quote(q, &props.messages)) }
            if m.deleted {
                <div class="tombstone">{ "message deleted" }</div>
            } else if item.open == Open::Edit(seq) {
                { edit_box(m, props, open) }
            } else if !m.body.is_empty() || m.files.is_empty() {
                <div class="body" dir="auto">{ format::message_body(&m.body, &props.me) }</div>
            }
            { attachments::shared_files(&m.files, m.deleted) }
            { marks(item) }
            { reactions::chips(m, &props.me, name_of) }
            if !m.deleted {
                { actions(item) }
            }
            { opened(item, props, open) }
        </li>
    }
}

/// "(edited)", with when in its tooltip, and "saving…" while a change waits.
fn marks(item: &Item) -> Html {
    let edited = item.m.edited.filter(|_| !item.m.deleted).map(|at| {
        let when = LocalTime::of(at);
        html! { <span class="edited" title={format!("Edited {}", when.full)}>{ "(edited)" }</span> }
    });
    html! {
        <>
            { for edited }
            if item.saving { <span class="saving">{ "saving…" }</span> }
        </>
    }
}

/// The buttons of a message, shown while it is hovered or holds the focus.
fn actions(item: &Item) -> Html {
    let picker_open = item.open == Open::Picker(item.m.seq);
    let copied = match item.open {
        Open::Copied(seq, true) if seq == item.m.seq => Some("Link copied"),
        Open::Copied(seq, false) if seq == item.m.seq => Some("The link is in the address bar"),
        _ => None,
    };
    html! {
        <div class="actions" role="group" aria-label="Message actions">
            <button type="button" data-action="reply">{ "Reply" }</button>
            <button type="button" data-action="react"
                    aria-expanded={if picker_open { "true" } else { "false" }}>{ "Add reaction" }</button>
            <button type="button" data-action="copy-link">{ "Copy link" }</button>
            if item.may_rewrite {
                <button type="button" data-action="edit">{ "Edit" }</button>
            }
            if item.may_delete {
                <button type="button" data-action="delete">{ "Delete" }</button>
            }
            if let Some(text) = copied {
                <span class="copied" role="status">{ text }</span>
            }
        </div>
    }
}

/// The picker or the delete confirmation, when open on this message.
fn opened(item: &Item, props: &ItemsProps, open: &UseStateHandle<Open>) -> Html {
    let seq = item.m.seq;
    match item.open {
        Open::Picker(at) if at == seq && !item.m.deleted => {
            let (chat, room) = (props.chat.clone(), props.room.to_string());
            let on_pick = closing(open, seq, "react", move |emoji: String| {
                chat.change(&room, PendingChange::React { seq, emoji });
            });
            let on_close = closing(open, seq, "react", |()| {});
            html! { <EmojiPicker {seq} {on_pick} {on_close} /> }
        }
        Open::ConfirmDelete(at) if at == seq && !item.m.deleted => {
            let question = format!("delete-question-{seq}");
            html! {
                <div class="confirm" role="group" aria-labelledby={question.clone()}>
                    <p id={question}>{ "Delete this message for everyone?" }</p>
                    <button type="button" class="danger" data-action="confirm-delete">{ "Yes, delete" }</button>
                    <button type="button" data-action="cancel-delete">{ "Cancel" }</button>
                </div>
            }
        }
        _ => html! {},
    }
}

/// A callback that first closes what is open on the list, then does `then` and puts
/// the focus back on the button `action` of message `seq`, which opened it.
fn closing<T: 'static>(
    open: &UseStateHandle<Open>,
    seq: u64,
    action: &'static str,
    then: impl Fn(T) + 'static,
) -> Callback<T> {
    let open = open.clone();
    Callback::from(move |value: T| {
        open.set(Open::Nothing);
        then(value);
        focus_action(seq, action);
    })
}

fn edit_box(m: &ChatMessage, props: &ItemsProps, open: &UseStateHandle<Open>) -> Html {
    let seq = m.seq;
    let (chat, room) = (props.chat.clone(), props.room.to_string());
    let on_save = closing(open, seq, "edit", move |body: String| {
        chat.change(&room, PendingChange::Edit { seq, body });
    });
    let on_cancel = closing(open, seq, "edit", |()| {});
    html! { <EditBox {seq} body={m.body.clone()} {on_save} {on_cancel} /> }
}

/// The quote of the message a reply answers: from the reader's copy when it is loaded
/// (it shows edits and deletions at once), else as the server quoted it. A button that
/// brings the original on screen.
fn quote(q: &Quote, messages: &Messages) -> Html {
    let own = messages
        .binary_search_by_key(&q.seq, |m| m.seq)
        .ok()
        .map(|i| quote_of(&messages[i]));
    let q = own.as_ref().unwrap_or(q);
    let excerpt = if q.deleted {
        "message deleted".to_owned()
    } else {
        // Formatted as the message shows it, as text: a quote is a button.
        crate::format::plain_text(
            &q.excerpt
                .chars()
                .take(limits::QUOTE_CHARS)
                .collect::<String>(),
        )
    };
    // Named by its content, "In reply to NAME: EXCERPT", which holds all it shows.
    html! {
        <button type="button" class={classes!("quote", q.deleted.then_some("deleted"))}
                data-action="jump" data-target={q.seq.to_string()}
                title="Show the original message">
            <span class="visually-hidden">{ "In reply to " }</span>
            <bdi class="quote-from">{ q.name.clone() }</bdi>{ ": " }
            <span class="quote-text" dir="auto">{ excerpt }</span>
        </button>
    }
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
