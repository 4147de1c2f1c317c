use confab_shared::{DEFAULT_ROOM, RoomName};
use web_sys::HtmlInputElement;
use yew::prelude::*;

use crate::state::Action;

/// Rooms (switch, create, leave) and who is online in the current room.
#[function_component]
pub fn Sidebar() -> Html {
    let ctx = super::use_ctx();
    let state = &ctx.state;

    // Every room on the server, plus joined ones the last listing did not have yet.
    let mut names: Vec<String> = state.rooms.iter().map(|r| r.name.clone()).collect();
    for room in state.joined.keys() {
        if !names.contains(room) {
            names.push(room.clone());
        }
    }
    names.sort();

    let rooms = names.into_iter().map(|room| {
        let joined = state.joined.get(&room);
        let unread = joined.is_some_and(|r| r.unread);
        let current = room == state.current;
        let onclick = {
            let (chat, state, room) = (ctx.chat.clone(), ctx.state.clone(), room.clone());
            Callback::from(move |_| {
                if !state.joined.contains_key(&room) {
                    chat.join(&room);
                }
                state.dispatch(Action::Switch(room.clone()));
            })
        };
        html! {
            <li key={room.clone()}>
                <button type="button" class={classes!("room-button", current.then_some("current"), joined.is_none().then_some("not-joined"))}
                        aria-current={current.then_some("page")}
                        data-unread={unread.then_some("true")} {onclick}>
                    { format!("#{room}") }
                    if unread {
                        <span class="unread-dot"><span class="visually-hidden">{ " (unread messages)" }</span></span>
                    }
                </button>
            </li>
        }
    });

    let members = state
        .current_room()
        .map(|r| r.members.clone())
        .unwrap_or_default();
    let me = state.me.clone().unwrap_or_default();
    let leave = (state.current != DEFAULT_ROOM && state.joined.contains_key(&state.current)).then(|| {
        let (chat, room) = (ctx.chat.clone(), state.current.clone());
        let onclick = Callback::from(move |_| chat.leave(&room));
        html! { <button type="button" class="leave" {onclick}>{ format!("Leave #{}", state.current) }</button> }
    });

    html! {
        <aside class="sidebar">
            <nav aria-label="Rooms">
                <h2>{ "Rooms" }</h2>
                <ul class="rooms">{ for rooms }</ul>
                <CreateRoom />
                { for leave }
            </nav>
            <section class="online" aria-labelledby="online-heading">
                <h2 id="online-heading">{ format!("Online in #{}", state.current) }</h2>
                <ul aria-label="Online users">
                    { for members.iter().map(|name| html! {
                        <li key={name.clone()}>
                            { name.clone() }
                            if *name == me { <span class="you">{ " (you)" }</span> }
                        </li>
                    }) }
                </ul>
            </section>
        </aside>
    }
}

/// Creates a room, joins it and shows it.
#[function_component]
fn CreateRoom() -> Html {
    let ctx = super::use_ctx();
    let input = use_node_ref();
    let error = use_state(|| None::<String>);
    let onsubmit = {
        let (input, error) = (input.clone(), error.clone());
        let (chat, state) = (ctx.chat.clone(), ctx.state.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let Some(field) = input.cast::<HtmlInputElement>() else {
                return;
            };
            // Room names are lower-case; accept what people type and normalise it.
            let typed = field.value().trim().to_lowercase().replace(' ', "-");
            match RoomName::parse(&typed) {
                Ok(room) => {
                    error.set(None);
                    field.set_value("");
                    chat.create_room(room.as_str());
                    state.dispatch(Action::Switch(room.into_string()));
                }
                Err(e) => error.set(Some(e.to_string())),
            }
        })
    };
    html! {
        <form class="create-room" aria-label="Create a room" {onsubmit}>
            <label for="new-room">{ "New room" }</label>
            <div class="row">
                <input id="new-room" ref={input} type="text" placeholder="e.g. rust-help"
                       aria-describedby={error.as_ref().map(|_| "new-room-error")} />
                <button type="submit">{ "Create" }</button>
            </div>
            if let Some(e) = (*error).clone() {
                <p id="new-room-error" class="error" role="alert">{ e }</p>
            }
        </form>
    }
}
