use std::collections::BTreeSet;

use confab_shared::{DEFAULT_ROOM, Person, RESERVED_ROOM_PREFIX, RoomKind};
use web_sys::{HtmlElement, HtmlInputElement};
use yew::prelude::*;

use super::{Ctx, FieldError, drawer_toggle_id, focus_by_id, normalise_room_name};
use crate::state::{Action, Drawer, RoomTool, RoomView, State};

/// One entry of the room lists.
struct Entry {
    id: String,
    kind: RoomKind,
    /// `#title`, or `@name` for a direct conversation.
    label: String,
}

/// The rooms the user can see, and those the last listing did not have (yet), sorted
/// by what they are called.
fn entries(state: &State) -> Vec<Entry> {
    let mut entries: Vec<Entry> = state
        .rooms
        .iter()
        .map(|r| Entry {
            id: r.name.clone(),
            kind: r.kind,
            label: state.label(&r.name),
        })
        .collect();
    // A closed conversation stays out of the list until someone writes there (or it is
    // on screen).
    entries.retain(|e| !state.is_closed(&e.id) || e.id == state.current);
    // Joined rooms the last listing did not have yet, and rooms holding unsent messages
    // (after a reload with the server out of reach there is no listing at all).
    let unsent = state.pending.iter().map(|p| &p.room);
    let extra: BTreeSet<&String> = state.joined.keys().chain(unsent).collect();
    for room in extra {
        if state.room_info(room).is_none() {
            entries.push(Entry {
                id: room.clone(),
                kind: RoomKind::Public,
                label: state.label(room),
            });
        }
    }
    entries.sort_by_key(|e| (e.label.to_lowercase(), e.id.clone()));
    entries
}

fn room_button(ctx: &Ctx, entry: &Entry) -> Html {
    let state = &ctx.state;
    let joined = state.joined.get(&entry.id);
    let unread = state.unread(&entry.id).messages > 0;
    let unsent = state.unsent_in(&entry.id);
    let current = entry.id == state.current;
    let onclick = {
        let (chat, state, room) = (ctx.chat.clone(), ctx.state.clone(), entry.id.clone());
        Callback::from(move |_| {
            if !state.joined.contains_key(&room) {
                chat.join(&room);
            }
            state.dispatch(Action::Switch(room.clone()));
        })
    };
    let private = entry.kind == RoomKind::Private;
    html! {
        <li key={entry.id.clone()}>
            <button type="button" class={classes!("room-button", current.then_some("current"), joined.is_none().then_some("not-joined"))}
                    aria-current={current.then_some("page")}
                    data-unread={unread.then_some("true")} data-muted={state.muted(&entry.id).then_some("true")}
                    data-room={entry.id.clone()} {onclick}>
                <span class="room-label">
                    { entry.label.clone() }
                    if private {
                        { super::lock_icon() }
                        <span class="visually-hidden">{ " (private)" }</span>
                    }
                </span>
                if unsent > 0 {
                    <span class="unsent" title="Messages waiting to be sent">{ format!(" {unsent} unsent") }</span>
                }
                { super::reading::unread_badge(state, &entry.id) }
            </button>
        </li>
    }
}

/// Rooms and direct conversations (switch, create, leave), and who is in the current
/// room. At phone width each half is a drawer over the conversation
/// ([`Drawer`]), opened from the room header.
#[function_component]
pub fn Sidebar() -> Html {
    let ctx = super::use_ctx();
    let state = &ctx.state;

    let (directs, rooms): (Vec<Entry>, Vec<Entry>) = entries(state)
        .into_iter()
        .partition(|e| e.kind == RoomKind::Direct);
    let drawer = match state.drawer {
        Some(Drawer::Rooms) => Some("rooms"),
        Some(Drawer::People) => Some("people"),
        None => None,
    };
    {
        // Opened: the focus goes into the drawer. Closed: back to the button that opened
        // it, rather than to the start of the page.
        let was = use_mut_ref(|| None::<Drawer>);
        use_effect_with(state.drawer, move |drawer| {
            let before = was.replace(*drawer);
            match (before, drawer) {
                (_, Some(_)) => focus_by_id("drawer-close"),
                (Some(d), None) => focus_by_id(drawer_toggle_id(d)),
                (None, None) => {}
            }
        });
    }
    let close = {
        let state = ctx.state.clone();
        Callback::from(move |_: MouseEvent| state.dispatch(Action::Drawer(None)))
    };
    let onkeydown = {
        let state = ctx.state.clone();
        Callback::from(move |e: KeyboardEvent| {
            if e.key() == "Escape" && state.drawer.is_some() {
                state.dispatch(Action::Drawer(None));
            }
        })
    };
    html! {
        <aside id="sidebar" class={classes!("sidebar", drawer.map(|_| "open"))} data-drawer={drawer} {onkeydown}>
            if drawer.is_some() {
                <button type="button" id="drawer-close" class="drawer-close phone-only" onclick={close}>{ "Close" }</button>
            }
            <nav aria-label="Rooms" class="rooms-panel">
                <h2>{ "Rooms" }</h2>
                <ul class="rooms">{ for rooms.iter().map(|e| room_button(&ctx, e)) }</ul>
                if !directs.is_empty() {
                    <h2 id="directs-heading">{ "Direct messages" }</h2>
                    <ul class="rooms directs" aria-label="Direct messages">
                        { for directs.iter().map(|e| room_button(&ctx, e)) }
                    </ul>
                }
                <CreateRoom />
                <LeaveRoom key={state.current.clone()} />
            </nav>
            <div class="people-panel">
                { online(&ctx) }
                if state.room_info(&state.current).is_some_and(|r| r.kind == RoomKind::Private) {
                    { members(&ctx) }
                }
            </div>
        </aside>
    }
}

/// Leaving the current room. A direct conversation cannot be left, only closed on this
/// browser until someone writes there again. Leaving a private room asks first (only
/// an invitation brings the person back) and says who takes over a room they own.
#[function_component]
fn LeaveRoom() -> Html {
    let ctx = super::use_ctx();
    let confirming = use_state(|| false);
    let cancel_ref = use_node_ref();
    {
        let cancel_ref = cancel_ref.clone();
        use_effect_with(*confirming, move |confirming| {
            if *confirming && let Some(button) = cancel_ref.cast::<HtmlElement>() {
                let _ = button.focus();
            }
        });
    }
    let state = &ctx.state;
    let room = state.current.clone();
    let Some(view) = state.joined.get(&room) else {
        return html! {};
    };
    if room == DEFAULT_ROOM {
        return html! {};
    }
    let label = state.label(&room);
    let kind = state.room_info(&room).map_or(RoomKind::Public, |r| r.kind);
    if kind == RoomKind::Direct {
        let onclick = {
            let (state, room) = (ctx.state.clone(), room.clone());
            Callback::from(move |_: MouseEvent| state.dispatch(Action::CloseDirect(room.clone())))
        };
        return html! {
            <div class="leave">
                <button type="button" aria-describedby="close-hint" {onclick}>
                    { format!("Close {label}") }
                </button>
                <p id="close-hint" class="hint-text">
                    { "Hides the conversation here until a new message arrives there." }
                </p>
            </div>
        };
    }
    let leave = {
        let (chat, room, confirming) = (ctx.chat.clone(), room.clone(), confirming.clone());
        Callback::from(move |_: MouseEvent| {
            confirming.set(false);
            chat.leave(&room);
        })
    };
    if kind != RoomKind::Private {
        return html! {
            <button type="button" class="leave" onclick={leave}>{ format!("Leave {label}") }</button>
        };
    }
    let me = state
        .me
        .as_ref()
        .map(|p| p.user.clone())
        .unwrap_or_default();
    let successor = state.owns(&room).then(|| successor(view, &me)).flatten();
    let question = match &successor {
        Some(next) => format!(
            "Leave {label}? You own it: {} will manage it after you. Only an invitation brings you back.",
            next.name
        ),
        None => format!("Leave {label}? Only an invitation brings you back."),
    };
    let ask = super::set_on_click(&confirming, true);
    let cancel = super::set_on_click(&confirming, false);
    let onkeydown = {
        let confirming = confirming.clone();
        Callback::from(move |e: KeyboardEvent| {
            if e.key() == "Escape" {
                e.stop_propagation();
                confirming.set(false);
            }
        })
    };
    html! {
        <div class="leave">
            if *confirming {
                <div class="confirm" role="group" aria-labelledby="leave-question" {onkeydown}>
                    <p id="leave-question">{ question }</p>
                    <button type="button" class="danger" onclick={leave}>{ "Yes, leave" }</button>
                    <button type="button" ref={cancel_ref} onclick={cancel}>{ "Cancel" }</button>
                </div>
            } else {
                <button type="button" onclick={ask}>{ format!("Leave {label}") }</button>
            }
        </div>
    }
}

/// Who the server will make owner when `me` leaves: someone online if anyone is, else
/// the first by username (the rule of the server's `hand_over`).
fn successor(view: &RoomView, me: &str) -> Option<Person> {
    let others = || view.members.iter().filter(|p| p.user != me);
    let mut by_username: Vec<&Person> = others().collect();
    by_username.sort_by(|a, b| a.user.cmp(&b.user));
    by_username
        .iter()
        .find(|p| view.online.contains(&p.user))
        .or_else(|| by_username.first())
        .map(|p| (*p).clone())
}

/// `name`, marked as a guest and as the user where it applies.
fn person_name(person: &Person, me: Option<&Person>) -> Html {
    let is_me = me.is_some_and(|m| m.user == person.user);
    html! {
        <span class="person">
            { person.name.clone() }
            if person.guest { <span class="guest-mark">{ " (guest)" }</span> }
            if is_me { <span class="you">{ " (you)" }</span> }
        </span>
    }
}

/// Who is online in the current room; a signed-in user can message any other
/// signed-in person from here.
fn online(ctx: &Ctx) -> Html {
    let state = &ctx.state;
    let me = state.me.as_ref();
    let can_message = me.is_some_and(|m| !m.guest)
        && state
            .room_info(&state.current)
            .is_none_or(|r| r.kind != RoomKind::Direct);
    let people: Vec<Person> = state
        .current_room()
        .map(|r| r.online_people())
        .unwrap_or_default();
    let items = people.iter().map(|person| {
        let is_me = me.is_some_and(|m| m.user == person.user);
        let message = (can_message && !is_me && !person.guest).then(|| {
            let (chat, state, user) = (ctx.chat.clone(), ctx.state.clone(), person.user.clone());
            let onclick = Callback::from(move |_: MouseEvent| {
                match state.direct_with(&user) {
                    Some(room) if state.joined.contains_key(&room.name) => {
                        state.dispatch(Action::Switch(room.name.clone()));
                    }
                    _ => chat.open_direct(&user),
                }
            });
            html! {
                <button type="button" class="small" aria-label={format!("Message {} (@{})", person.name, person.user)} {onclick}>
                    { "Message" }
                </button>
            }
        });
        html! {
            <li key={person.user.clone()}>
                { person_name(person, me) }
                { for message }
            </li>
        }
    });
    html! {
        <section class="online" aria-labelledby="online-heading">
            <h2 id="online-heading">{ format!("Online in {}", state.label(&state.current)) }</h2>
            <ul aria-label="Online users">{ for items }</ul>
            <p class="member-count">{ member_count(state.current_room().map_or(0, |r| r.member_count)) }</p>
        </section>
    }
}

/// "N members": a big public room's members are counted, not listed.
fn member_count(n: usize) -> String {
    if n == 1 {
        "1 member".to_owned()
    } else {
        format!("{n} members")
    }
}

/// Everyone who belongs to the current private room; its owner can remove them.
fn members(ctx: &Ctx) -> Html {
    let state = &ctx.state;
    let me = state.me.as_ref();
    let owner = state.manages(&state.current);
    let Some(view) = state.current_room() else {
        return html! {};
    };
    let items = view.members.iter().map(|person| {
        let is_me = me.is_some_and(|m| m.user == person.user);
        let online = view.online.contains(&person.user);
        let remove = (owner && !is_me).then(|| {
            let (chat, room, user) = (ctx.chat.clone(), state.current.clone(), person.user.clone());
            let onclick = Callback::from(move |_: MouseEvent| chat.remove(&room, &user));
            html! {
                <button type="button" class="small" aria-label={format!("Remove {} (@{})", person.name, person.user)} {onclick}>
                    { "Remove" }
                </button>
            }
        });
        html! {
            <li key={person.user.clone()} class={classes!(online.then_some("is-online"))}>
                { person_name(person, me) }
                if online { <span class="visually-hidden">{ " (online)" }</span> }
                { for remove }
            </li>
        }
    });
    let error = FieldError {
        id: "members-error",
        message: state.room_error(RoomTool::Remove).map(str::to_owned),
    };
    html! {
        <section class="members" aria-labelledby="members-heading">
            <h2 id="members-heading">{ format!("Members of {}", state.label(&state.current)) }</h2>
            <ul aria-label="Members">{ for items }</ul>
            { error.render() }
        </section>
    }
}

/// Creates a room; the server's answer joins it and shows it. Shows the name that will
/// be used while typing, and the server's refusal (it exists, too many rooms) here.
#[function_component]
fn CreateRoom() -> Html {
    let ctx = super::use_ctx();
    let input = use_node_ref();
    let private = use_node_ref();
    let typed = use_state(String::new);
    let error = use_state(|| None::<String>);
    let is_private = use_state(|| false);
    let normalised = normalise_room_name(&typed);
    let onsubmit = {
        let (input, private, error, typed, is_private) = (
            input.clone(),
            private.clone(),
            error.clone(),
            typed.clone(),
            is_private.clone(),
        );
        let chat = ctx.chat.clone();
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let Some(field) = input.cast::<HtmlInputElement>() else {
                return;
            };
            let private_room = *is_private;
            let room = match normalise_room_name(&field.value()) {
                // The server names private rooms (and direct ones) with this prefix.
                Ok(name) if !private_room && name.starts_with(RESERVED_ROOM_PREFIX) => Err(
                    format!("room names starting with '{RESERVED_ROOM_PREFIX}' are reserved"),
                ),
                other => other,
            };
            match room {
                Ok(room) => {
                    error.set(None);
                    // A fresh form for the next room: public unless asked again.
                    field.set_value("");
                    typed.set(String::new());
                    if let Some(check) = private.cast::<HtmlInputElement>() {
                        check.set_checked(false);
                    }
                    is_private.set(false);
                    chat.create_room(&room, private_room);
                }
                Err(e) => error.set(Some(e)),
            }
        })
    };
    let oninput = {
        let (typed, error, state) = (typed.clone(), error.clone(), ctx.state.clone());
        Callback::from(move |e: InputEvent| {
            if let Some(field) = e.target_dyn_into::<HtmlInputElement>() {
                typed.set(field.value());
            }
            // Typing again: the last refusal is about another name.
            error.set(None);
            state.dispatch(Action::ForgetRoomRequest(RoomTool::Create));
        })
    };
    let onchange = {
        let is_private = is_private.clone();
        Callback::from(move |e: Event| {
            if let Some(check) = e.target_dyn_into::<HtmlInputElement>() {
                is_private.set(check.checked());
            }
        })
    };
    let guest = ctx.state.me.as_ref().is_none_or(|m| m.guest);
    let refused = ctx
        .state
        .room_request(RoomTool::Create)
        .and_then(|r| r.error.clone());
    let error = FieldError {
        id: "new-room-error",
        message: (*error).clone().or(refused),
    };
    // Shown only when it differs from what was typed: then the person sees the change
    // before it happens.
    let preview = match &normalised {
        Ok(name) if typed.trim() != name => Some(format!(
            "Will be created as {}{name}",
            if *is_private { "" } else { "#" }
        )),
        _ => None,
    };
    html! {
        <form class="create-room" aria-label="Create a room" {onsubmit}>
            <label for="new-room">{ "New room" }</label>
            <div class="row">
                <input id="new-room" ref={input} type="text" placeholder="e.g. rust-help"
                       aria-invalid={error.invalid()}
                       aria-describedby={error.describedby().or(preview.as_ref().map(|_| "new-room-preview"))}
                       {oninput} />
                <button type="submit">{ "Create" }</button>
            </div>
            // Private rooms are for accounts; the server refuses them to guests.
            if !guest {
                <label class="check">
                    <input type="checkbox" ref={private} {onchange} />
                    { " Private" }
                </label>
            }
            if let Some(preview) = preview {
                <p id="new-room-preview" class="hint-text" aria-live="polite">{ preview }</p>
            }
            { error.render() }
        </form>
    }
}
