use confab_shared::{DEFAULT_ROOM, RoomKind, RoomName, Username};
use web_sys::{HtmlElement, HtmlInputElement};
use yew::prelude::*;

use super::{Ctx, FieldError};
use crate::state::RoomTool;

/// The header's hooks. One component with plain functions for its parts: every Yew
/// component costs download size.
struct Local {
    settings_open: UseStateHandle<bool>,
    invite: NodeRef,
    invite_error: UseStateHandle<Option<String>>,
    title: NodeRef,
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
        title: use_node_ref(),
        title_error: use_state(|| None),
        confirming: use_state(|| false),
        cancel: use_node_ref(),
    };
    {
        // Asked to confirm a deletion, land on the safe choice.
        let cancel = local.cancel.clone();
        use_effect_with(*local.confirming, move |confirming| {
            if *confirming && let Some(button) = cancel.cast::<HtmlElement>() {
                let _ = button.focus();
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
    html! {
        <header class="room-header">
            <div class="room-title-row">
                <h2 class="room-title">
                    { state.label(&room) }
                    if kind == RoomKind::Private {
                        { super::lock_icon() }
                        <span class="visually-hidden">{ " (private)" }</span>
                    }
                </h2>
                if managed {
                    <button type="button" class="small" aria-expanded={local.settings_open.to_string()}
                            aria-controls="room-settings" onclick={toggle}>
                        { "Room settings" }
                    </button>
                }
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
        let (chat, room) = (ctx.chat.clone(), state.current.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let Some(field) = input.cast::<HtmlInputElement>() else {
                return;
            };
            match Username::parse(&field.value()) {
                Ok(user) => {
                    local_error.set(None);
                    field.set_value("");
                    chat.invite(&room, user.as_str());
                }
                Err(e) => local_error.set(Some(e.to_string())),
            }
        })
    };
    let request = state.room_request(RoomTool::Invite);
    let local_error = (*local.invite_error).clone();
    let sent = request
        .filter(|r| r.done && local_error.is_none())
        .map(|r| format!("Invited {}.", r.subject));
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
        let (chat, room) = (ctx.chat.clone(), state.current.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let Some(field) = input.cast::<HtmlInputElement>() else {
                return;
            };
            // Titles follow the room-name rules; accept what people type and normalise.
            let typed = field.value().trim().to_lowercase().replace(' ', "-");
            match RoomName::parse(&typed) {
                Ok(title) => {
                    local_error.set(None);
                    field.set_value("");
                    chat.rename_room(&room, title.as_str());
                }
                Err(e) => local_error.set(Some(e.to_string())),
            }
        })
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
                       aria-invalid={error.invalid()} aria-describedby={error.describedby()} />
                <button type="submit">{ "Rename" }</button>
            </div>
            { error.render() }
        </form>
    }
}

/// Deletes the current room and its messages, after a confirmation in the page: a
/// browser `confirm()` would stop the page (and its socket handling) while it is open.
fn delete_room(ctx: &Ctx, local: &Local) -> Html {
    let state = &ctx.state;
    let confirming = local.confirming.clone();
    let ask = {
        let confirming = confirming.clone();
        Callback::from(move |_: MouseEvent| confirming.set(true))
    };
    let cancel = {
        let confirming = confirming.clone();
        Callback::from(move |_: MouseEvent| confirming.set(false))
    };
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
                <button type="button" class="danger" onclick={ask}>{ "Delete room" }</button>
            }
            { error.render() }
        </div>
    }
}
