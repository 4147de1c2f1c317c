use confab_shared::{DEFAULT_ROOM, RoomKind, Username};
use web_sys::{HtmlElement, HtmlInputElement};
use yew::prelude::*;

use super::{Ctx, FieldError, drawer_toggle_id, focus_by_id, normalise_room_name};
use crate::state::{Action, Drawer, RoomTool};

/// The header's hooks. One component with plain functions for its parts: every Yew
/// component costs download size.
struct Local {
    settings_open: UseStateHandle<bool>,
    invite: NodeRef,
    invite_error: UseStateHandle<Option<String>>,
    /// "Already a member: nothing changed", said here rather than asked of the server.
    invite_note: UseStateHandle<Option<String>>,
    title: NodeRef,
    /// What is typed in the rename field, to show the title it will become.
    title_typed: UseStateHandle<String>,
    title_error: UseStateHandle<Option<String>>,
    confirming: UseStateHandle<bool>,
    cancel: NodeRef,
}

/// The current room's name and what its members and owner can do with it: invite
/// (private rooms), rename and delete (owner or administrator).
#[function_component]
pub fn RoomHeader() -> Html {
    let ctx = super::use_ctx();
    let local = Local {
        settings_open: use_state(|| false),
        invite: use_node_ref(),
        invite_error: use_state(|| None),
        invite_note: use_state(|| None),
        title: use_node_ref(),
        title_typed: use_state(String::new),
        title_error: use_state(|| None),
        confirming: use_state(|| false),
        cancel: use_node_ref(),
    };
    {
        // Asked to confirm a deletion, land on the safe choice; cancelled, back on the
        // button that asked.
        let cancel = local.cancel.clone();
        let was = use_mut_ref(|| false);
        use_effect_with(*local.confirming, move |confirming| {
            let before = was.replace(*confirming);
            if *confirming && let Some(button) = cancel.cast::<HtmlElement>() {
                let _ = button.focus();
            } else if before && !*confirming {
                focus_by_id("delete-room-button");
            }
        });
    }
    let state = &ctx.state;
    let room = state.current.clone();
    let kind = state.room_info(&room).map_or(RoomKind::Public, |r| r.kind);
    let joined = state.joined.contains_key(&room);
    let managed = joined && state.manages(&room);
    let toggle = {
        let open = local.settings_open.clone();
        Callback::from(move |_: MouseEvent| open.set(!*open))
    };
    // Escape closes the innermost open thing: the delete confirmation, then settings.
    let onkeydown = {
        let (open, confirming) = (local.settings_open.clone(), local.confirming.clone());
        Callback::from(move |e: KeyboardEvent| {
            if e.key() != "Escape" {
                return;
            }
            if *confirming {
                confirming.set(false);
            } else if *open {
                open.set(false);
                // Back to the button that opened it, not the page's start.
                focus_by_id("room-settings-toggle");
            }
        })
    };
    let online = state.current_room().map_or(0, |r| r.online.len());
    html! {
        <header class="room-header" {onkeydown}>
            <div class="room-title-row">
                { drawer_button(&ctx, Drawer::Rooms, "Rooms".to_owned()) }
                <h2 class="room-title">
                    { state.label(&room) }
                    if kind == RoomKind::Private {
                        { super::lock_icon() }
                        <span class="visually-hidden">{ " (private)" }</span>
                    }
                </h2>
                if joined {
                    { super::reading::mute_button(&ctx) }
                }
                if managed {
                    <button type="button" id="room-settings-toggle" class="small" aria-expanded={local.settings_open.to_string()}
                            aria-controls="room-settings" onclick={toggle}>
                        { "Room settings" }
                    </button>
                }
                { drawer_button(&ctx, Drawer::People, format!("People ({online} online)")) }
            </div>
            if joined && kind == RoomKind::Private {
                { invite_form(&ctx, &local) }
            }
            if managed && *local.settings_open {
                <div id="room-settings" class="room-settings">
                    { rename_form(&ctx, &local) }
                    // The server keeps its default room whatever happens.
                    if room != DEFAULT_ROOM {
                        { delete_room(&ctx, &local) }
                    }
                </div>
            }
        </header>
    }
}

/// Adds someone (by username) to the current private room.
fn invite_form(ctx: &Ctx, local: &Local) -> Html {
    let state = &ctx.state;
    let onsubmit = {
        let (input, local_error) = (local.invite.clone(), local.invite_error.clone());
        let local_note = local.invite_note.clone();
        let (chat, room, state) = (ctx.chat.clone(), state.current.clone(), ctx.state.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let Some(field) = input.cast::<HtmlInputElement>() else {
                return;
            };
            match Username::parse(&field.value()) {
                Ok(user) => {
                    field.set_value("");
                    // Already in: nothing would change, so nothing is asked.
                    let me = state.me.as_ref().is_some_and(|p| p.user == user.as_str());
                    let member = state
                        .current_room()
                        .is_some_and(|r| r.members.iter().any(|p| p.user == user.as_str()));
                    if me || member {
                        let who = if me { "You are" } else { "They are" };
                        local_note.set(Some(format!(
                            "{who} already a member of {}: nothing changed.",
                            state.label(&room)
                        )));
                        local_error.set(None);
                        return;
                    }
                    local_note.set(None);
                    local_error.set(None);
                    chat.invite(&room, user.as_str());
                }
                Err(e) => local_error.set(Some(e.to_string())),
            }
        })
    };
    let request = state.room_request(RoomTool::Invite);
    let local_error = (*local.invite_error).clone();
    let sent = (*local.invite_note).clone().or_else(|| {
        request
            .filter(|r| r.done && local_error.is_none())
            .map(|r| format!("Invited {}.", r.subject))
    });
    let error = FieldError {
        id: "invite-error",
        message: local_error.or_else(|| request.and_then(|r| r.error.clone())),
    };
    html! {
        <form class="inline-form" aria-label={format!("Invite to {}", state.label(&state.current))} {onsubmit}>
            <label for="invite-user">{ "Username to invite" }</label>
            <div class="row">
                <input id="invite-user" ref={local.invite.clone()} type="text" autocomplete="off"
                       autocapitalize="none" spellcheck="false" required=true
                       aria-invalid={error.invalid()} aria-describedby={error.describedby()} />
                <button type="submit">{ "Invite" }</button>
            </div>
            { error.render() }
            <p class="status-text" role="status">{ sent.unwrap_or_default() }</p>
        </form>
    }
}

/// Gives the current room a new title.
fn rename_form(ctx: &Ctx, local: &Local) -> Html {
    let state = &ctx.state;
    let onsubmit = {
        let (input, local_error) = (local.title.clone(), local.title_error.clone());
        let typed = local.title_typed.clone();
        let (chat, room) = (ctx.chat.clone(), state.current.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let Some(field) = input.cast::<HtmlInputElement>() else {
                return;
            };
            // Titles follow the room-name rules; accept what people type and normalise.
            match normalise_room_name(&field.value()) {
                Ok(title) => {
                    local_error.set(None);
                    field.set_value("");
                    typed.set(String::new());
                    chat.rename_room(&room, &title);
                }
                Err(e) => local_error.set(Some(e)),
            }
        })
    };
    let oninput = {
        let typed = local.title_typed.clone();
        Callback::from(move |e: InputEvent| {
            if let Some(field) = e.target_dyn_into::<HtmlInputElement>() {
                typed.set(field.value());
            }
        })
    };
    let preview = match normalise_room_name(&local.title_typed) {
        Ok(title) if local.title_typed.trim() != title => Some(format!("Will be renamed {title}")),
        _ => None,
    };
    let error = FieldError {
        id: "rename-error",
        message: (*local.title_error)
            .clone()
            .or_else(|| state.room_error(RoomTool::Rename).map(str::to_owned)),
    };
    html! {
        <form class="inline-form" aria-label={format!("Rename {}", state.label(&state.current))} {onsubmit}>
            <label for="rename-title">{ "New title" }</label>
            <div class="row">
                <input id="rename-title" ref={local.title.clone()} type="text" required=true
                       aria-invalid={error.invalid()}
                       aria-describedby={error.describedby().or(preview.as_ref().map(|_| "rename-preview"))}
                       {oninput} />
                <button type="submit">{ "Rename" }</button>
            </div>
            if let Some(preview) = preview {
                <p id="rename-preview" class="hint-text" aria-live="polite">{ preview }</p>
            }
            { error.render() }
        </form>
    }
}

/// Deletes the current room and its messages, after a confirmation in the page: a
/// browser `confirm()` would stop the page (and its socket handling) while it is open.
fn delete_room(ctx: &Ctx, local: &Local) -> Html {
    let state = &ctx.state;
    let confirming = local.confirming.clone();
    let ask = super::set_on_click(&confirming, true);
    let cancel = super::set_on_click(&confirming, false);
    let delete = {
        let (chat, room, confirming) =
            (ctx.chat.clone(), state.current.clone(), confirming.clone());
        Callback::from(move |_: MouseEvent| {
            confirming.set(false);
            chat.delete_room(&room);
        })
    };
    let label = state.label(&state.current);
    let error = FieldError {
        id: "delete-error",
        message: state.room_error(RoomTool::Delete).map(str::to_owned),
    };
    html! {
        <div class="delete-room">
            if *confirming {
                <div class="confirm" role="group" aria-labelledby="delete-question">
                    <p id="delete-question">{ format!("Delete {label} and all its messages, for everyone?") }</p>
                    <button type="button" class="danger" onclick={delete}>{ "Yes, delete" }</button>
                    <button type="button" ref={local.cancel.clone()} onclick={cancel}>{ "Cancel" }</button>
                </div>
            } else {
                <button type="button" id="delete-room-button" class="danger" onclick={ask}>{ "Delete room" }</button>
            }
            { error.render() }
        </div>
    }
}

/// At phone width, the button that opens the room list or the people drawer (hidden on
/// wider screens, where both are always in the sidebar).
fn drawer_button(ctx: &Ctx, drawer: Drawer, text: String) -> Html {
    let open = ctx.state.drawer == Some(drawer);
    let onclick = {
        let state = ctx.state.clone();
        Callback::from(move |_: MouseEvent| {
            state.dispatch(Action::Drawer((!open).then_some(drawer)));
        })
    };
    html! {
        <button type="button" id={drawer_toggle_id(drawer)} class={classes!("small", "phone-only", "drawer-toggle")}
                aria-expanded={open.to_string()} aria-controls="sidebar" {onclick}>
            { text }
        </button>
    }
}
