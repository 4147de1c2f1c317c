use confab_shared::{Body, limits};
use web_sys::{HtmlElement, HtmlTextAreaElement};
use yew::prelude::*;

use super::{
    attachments::{self, AttachButton, ComposerFiles},
    mention::{self, Key},
};
use crate::{persist, state::Action};

/// Show the remaining-characters counter once this close to the limit.
const COUNTER_FROM: usize = limits::MAX_BODY_CHARS - 500;

/// Writes and sends a message: Enter sends, Shift+Enter starts a new line. Each room
/// keeps its own draft, also across reloads; the composer takes the focus when a room
/// opens (except on touch screens, where that would pull up the keyboard). While the
/// person answers a message, "Replying to NAME" shows above it (Escape or its button
/// cancels), and the message goes as a reply. Files attached (its button, dropped on the
/// room, pasted) go with the message, which may then have no text.
#[function_component]
pub fn Composer() -> Html {
    let ctx = super::use_ctx();
    let room = ctx.state.current.clone();
    let label = ctx.state.label(&room);
    let user = ctx
        .state
        .me
        .as_ref()
        .map(|p| p.user.clone())
        .unwrap_or_default();
    let text = {
        let (user, room) = (user.clone(), room.clone());
        use_state(move || persist::load_draft(&user, &room))
    };
    let last_typing = use_mut_ref(|| 0.0_f64);
    let area = use_node_ref();
    let picker = mention::use_picker(ctx.state.joined.get(&room).cloned(), &user);
    // Where the caret goes once an inserted mention is rendered.
    let caret_after = use_mut_ref(|| None::<u32>);
    {
        let (area, caret_after) = (area.clone(), caret_after.clone());
        use_effect(move || {
            if let Some(caret) = caret_after.borrow_mut().take()
                && let Some(area) = area.cast::<HtmlTextAreaElement>()
            {
                let _ = area.set_selection_range(caret, caret);
            }
        });
    }
    let inserted = {
        let (text, caret_after, user, room) = (
            text.clone(),
            caret_after.clone(),
            user.clone(),
            room.clone(),
        );
        move |key: Key| match key {
            Key::Insert(value, caret) => {
                persist::save_draft(&user, &room, &value);
                *caret_after.borrow_mut() = Some(caret);
                text.set(value);
                true
            }
            Key::Done => true,
            Key::Pass => false,
        }
    };
    {
        let area = area.clone();
        use_effect_with((), move |()| {
            if !touch_screen()
                && let Some(area) = area.cast::<HtmlElement>()
            {
                let _ = area.focus();
            }
        });
    }

    let replying = ctx.state.current_room().and_then(|r| r.replying);
    let files = ctx.state.uploads.attached_in(&room).to_vec();
    let has_files = !files.is_empty();
    let cancel_reply = {
        let (state, room, area) = (ctx.state.clone(), room.clone(), area.clone());
        Callback::from(move |()| {
            state.dispatch(Action::ReplyTo {
                room: room.clone(),
                seq: None,
            });
            if let Some(area) = area.cast::<HtmlElement>() {
                let _ = area.focus();
            }
        })
    };
    let submit = {
        let (chat, room, text, area) = (ctx.chat.clone(), room.clone(), text.clone(), area.clone());
        let (last_typing, user) = (last_typing.clone(), user.clone());
        let state = ctx.state.clone();
        Callback::from(move |()| {
            // Queued even while offline: it shows as "sending…" and goes out on
            // reconnect (its files upload then).
            if files.is_empty() {
                let Ok(body) = Body::parse(&text) else {
                    return;
                };
                chat.send(&room, body.as_str(), replying);
            } else {
                // With files the text may be empty, not too long.
                let body = text.trim();
                if body.chars().count() > limits::MAX_BODY_CHARS {
                    return;
                }
                chat.send_with_files(&room, body, replying, &files);
            }
            if replying.is_some() {
                state.dispatch(Action::ReplyTo {
                    room: room.clone(),
                    seq: None,
                });
            }
            text.set(String::new());
            persist::save_draft(&user, &room, "");
            *last_typing.borrow_mut() = 0.0;
            // Sent with the button, the focus is on it: the person goes on writing.
            if let Some(area) = area.cast::<HtmlElement>() {
                let _ = area.focus();
            }
        })
    };
    let oninput = {
        let (chat, room, text, picker) =
            (ctx.chat.clone(), room.clone(), text.clone(), picker.clone());
        Callback::from(move |e: InputEvent| {
            let Some(area) = e.target_dyn_into::<HtmlTextAreaElement>() else {
                return;
            };
            picker.update(&area);
            let value = area.value();
            persist::save_draft(&user, &room, &value);
            let now = js_sys::Date::now();
            if !value.trim().is_empty()
                && now - *last_typing.borrow() >= limits::TYPING_THROTTLE_MS as f64
            {
                *last_typing.borrow_mut() = now;
                chat.typing(&room);
            }
            text.set(value);
        })
    };
    let onkeydown = {
        let (submit, picker, inserted) = (submit.clone(), picker.clone(), inserted.clone());
        let cancel_reply = cancel_reply.clone();
        Callback::from(move |e: KeyboardEvent| {
            if let Some(area) = e.target_dyn_into::<HtmlTextAreaElement>()
                && inserted(picker.key(&e, &area))
            {
                return;
            }
            if e.key() == "Enter" && !e.shift_key() && !e.is_composing() {
                e.prevent_default();
                submit.emit(());
            } else if e.key() == "Escape" && replying.is_some() {
                e.prevent_default();
                cancel_reply.emit(());
            }
        })
    };
    let onsubmit = Callback::from(move |e: SubmitEvent| {
        e.prevent_default();
        submit.emit(());
    });

    let chars = text.trim().chars().count();
    let over = chars > limits::MAX_BODY_CHARS;
    let counter = (chars >= COUNTER_FROM).then(|| {
        let text = if over {
            format!("{} characters over the limit", chars - limits::MAX_BODY_CHARS)
        } else {
            format!("{} characters left", limits::MAX_BODY_CHARS - chars)
        };
        html! { <span id="composer-counter" class={classes!("counter", over.then_some("over"))} aria-live="polite">{ text }</span> }
    });
    let reply_bar = replying.map(|seq| {
        let name = ctx
            .state
            .current_room()
            .and_then(|r| r.message(seq))
            .map_or_else(|| "a message".to_owned(), |m| m.name.clone());
        let onclick = cancel_reply.reform(|_: MouseEvent| ());
        html! {
            <div class="replying" id="composer-replying">
                <span>{ "Replying to " }<bdi>{ name }</bdi></span>
                <button type="button" {onclick}>{ "Cancel reply" }</button>
            </div>
        }
    });
    let describedby = [
        reply_bar.as_ref().map(|_| "composer-replying"),
        counter.as_ref().map(|_| "composer-counter"),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" ");
    // Moving the caret (arrows, a click) may enter or leave a mention being typed.
    let onkeyup = {
        let picker = picker.clone();
        Callback::from(move |e: KeyboardEvent| {
            if matches!(
                e.key().as_str(),
                "ArrowLeft" | "ArrowRight" | "Home" | "End"
            ) && let Some(area) = e.target_dyn_into::<HtmlTextAreaElement>()
            {
                picker.update(&area);
            }
        })
    };
    let onclick = {
        let picker = picker.clone();
        Callback::from(move |e: MouseEvent| {
            if let Some(area) = e.target_dyn_into::<HtmlTextAreaElement>() {
                picker.update(&area);
            }
        })
    };
    let onblur = {
        let picker = picker.clone();
        Callback::from(move |_: FocusEvent| picker.close())
    };
    let on_pick = {
        let (picker, area) = (picker.clone(), area.clone());
        Callback::from(move |i: usize| {
            if let Some(area) = area.cast::<HtmlTextAreaElement>() {
                inserted(picker.pick(i, &area));
            }
        })
    };
    let onpaste = attachments::on_paste(&ctx);
    html! {
        <form class="composer" aria-label="Send a message" {onsubmit}>
            { for reply_bar }
            <label for="composer" class="visually-hidden">{ format!("Message {label}") }</label>
            { picker.render(&on_pick) }
            <ComposerFiles />
            <textarea id="composer" ref={area} rows="2" dir="auto" value={(*text).clone()}
                      placeholder={format!("Message {label}  (Enter to send, Shift+Enter for a new line)")}
                      aria-describedby={(!describedby.is_empty()).then_some(describedby)}
                      role="combobox" aria-autocomplete="list" aria-haspopup="listbox"
                      aria-expanded={picker.expanded()} aria-controls={picker.controls()}
                      aria-activedescendant={picker.active_descendant()}
                      {oninput} {onkeydown} {onkeyup} {onclick} {onblur} {onpaste} />
            <div class="composer-side">
                { for counter }
                <AttachButton />
                <button type="submit" disabled={over || (chars == 0 && !has_files)}>{ "Send" }</button>
            </div>
        </form>
    }
}

/// Whether the main pointer is a finger: then focusing a field opens the keyboard over
/// half the screen, which the person did not ask for.
fn touch_screen() -> bool {
    web_sys::window()
        .and_then(|w| w.match_media("(pointer: coarse)").ok().flatten())
        .is_some_and(|m| m.matches())
}
