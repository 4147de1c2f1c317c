use confab_shared::{DEFAULT_ROOM, Person, RESERVED_ROOM_PREFIX, RoomKind, RoomName};
use web_sys::HtmlInputElement;
use yew::prelude::*;

use super::{Ctx, FieldError};
use crate::state::{Action, RoomTool, State};

/// One entry of the room lists.
struct Entry {
    id: String,
    kind: RoomKind,
    /// `#title`, or `@name` for a direct conversation.
    label: String,
}

/// The rooms the user can see, and joined ones the last listing did not have yet,
/// sorted by what they are called.
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
    for room in state.joined.keys() {
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
    let unread = joined.is_some_and(|r| r.unread);
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
                    data-unread={unread.then_some("true")} data-room={entry.id.clone()} {onclick}>
                <span class="room-label">
                    { entry.label.clone() }
                    if private {
                        { super::lock_icon() }
                        <span class="visually-hidden">{ " (private)" }</span>
                    }
                </span>
                if unread {
                    <span class="unread-dot"><span class="visually-hidden">{ " (unread messages)" }</span></span>
                }
            </button>
        </li>
    }
}

/// Rooms and direct conversations (switch, create, leave), and who is in the current
/// room.
#[function_component]
pub fn Sidebar() -> Html {
    let ctx = super::use_ctx();
    let state = &ctx.state;

    let (directs, rooms): (Vec<Entry>, Vec<Entry>) = entries(state)
        .into_iter()
        .partition(|e| e.kind == RoomKind::Direct);
    let leave =
        (state.current != DEFAULT_ROOM && state.joined.contains_key(&state.current)).then(|| {
            let (chat, room) = (ctx.chat.clone(), state.current.clone());
            let onclick = Callback::from(move |_| chat.leave(&room));
            html! {
                <button type="button" class="leave" {onclick}>
                    { format!("Leave {}", state.label(&state.current)) }
                </button>
            }
        });

    html! {
        <aside class="sidebar">
            <nav aria-label="Rooms">
                <h2>{ "Rooms" }</h2>
                <ul class="rooms">{ for rooms.iter().map(|e| room_button(&ctx, e)) }</ul>
                if !directs.is_empty() {
                    <h2 id="directs-heading">{ "Direct messages" }</h2>
                    <ul class="rooms directs" aria-label="Direct messages">
                        { for directs.iter().map(|e| room_button(&ctx, e)) }
                    </ul>
                }
                <CreateRoom />
                { for leave }
            </nav>
            { online(&ctx) }
            if state.room_info(&state.current).is_some_and(|r| r.kind == RoomKind::Private) {
                { members(&ctx) }
            }
        </aside>
    }
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
        </section>
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

/// Creates a room; the server's answer joins it and shows it.
#[function_component]
fn CreateRoom() -> Html {
    let ctx = super::use_ctx();
    let input = use_node_ref();
    let private = use_node_ref();
    let error = use_state(|| None::<String>);
    let onsubmit = {
        let (input, private, error) = (input.clone(), private.clone(), error.clone());
        let chat = ctx.chat.clone();
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let Some(field) = input.cast::<HtmlInputElement>() else {
                return;
            };
            let private = private
                .cast::<HtmlInputElement>()
                .is_some_and(|c| c.checked());
            // Room names are lower-case; accept what people type and normalise it.
            let typed = field.value().trim().to_lowercase().replace(' ', "-");
            let room = match RoomName::parse(&typed) {
                // The server names private rooms (and direct ones) with this prefix.
                Ok(_) if !private && typed.starts_with(RESERVED_ROOM_PREFIX) => Err(format!(
                    "room names starting with '{RESERVED_ROOM_PREFIX}' are reserved"
                )),
                parsed => parsed.map(RoomName::into_string).map_err(|e| e.to_string()),
            };
            match room {
                Ok(room) => {
                    error.set(None);
                    field.set_value("");
                    chat.create_room(&room, private);
                }
                Err(e) => error.set(Some(e)),
            }
        })
    };
    let guest = ctx.state.me.as_ref().is_none_or(|m| m.guest);
    let error = FieldError {
        id: "new-room-error",
        message: (*error).clone(),
    };
    html! {
        <form class="create-room" aria-label="Create a room" {onsubmit}>
            <label for="new-room">{ "New room" }</label>
            <div class="row">
                <input id="new-room" ref={input} type="text" placeholder="e.g. rust-help"
                       aria-invalid={error.invalid()} aria-describedby={error.describedby()} />
                <button type="submit">{ "Create" }</button>
            </div>
            // Private rooms are for accounts; the server refuses them to guests.
            if !guest {
                <label class="check">
                    <input type="checkbox" ref={private} />
                    { " Private" }
                </label>
            }
            { error.render() }
        </form>
    }
}
