//! Bringing one message on screen: a reply's quote, a permalink (`#room/seq`) or a search
//! result was followed ([`State::jump`](crate::state::State::jump)). Once the message is
//! loaded the list scrolls it to the middle, focuses it and highlights it for a moment;
//! until then the messages around it are asked for (`fetch_around`), however far back it
//! is, and show as a window of their own if they do not reach those loaded (see
//! `state/window.rs`). The address's fragment is followed on sign-in (a link opened in a
//! new tab) and whenever it changes.

use std::{cell::RefCell, rc::Rc};

use gloo_events::EventListener;
use gloo_timers::callback::Timeout;
use web_sys::HtmlElement;
use yew::prelude::*;

use super::Ctx;
use crate::{
    permalink,
    socket::Chat,
    state::{Action, Conn, JumpStep, State, WindowAction},
};

/// How long a jumped-to message stays highlighted.
const HIGHLIGHT_MS: u32 = 2_500;

/// Carries out the jump asked for in the current room, as messages arrive. `stick` is
/// the list's "follow new messages" flag: a jump reads back, so it stops following.
#[hook]
pub fn use_jump(ctx: &Ctx, list: &NodeRef, stick: &Rc<RefCell<bool>>) {
    let state = &ctx.state;
    let jump = state.jump.clone().filter(|j| j.room == state.current);
    let view = state.current_room();
    let loaded = view.map(|v| {
        (
            v.shown().len(),
            v.shown().first().map(|m| m.seq),
            v.messages.len(),
            v.has_newer(),
            v.far.around,
        )
    });
    // Asked for before the room is joined on a new connection, the messages around
    // would be refused; the jump waits for the connection instead.
    let open = state.conn == Conn::Open;
    let (list, stick, chat, state) = (
        list.clone(),
        Rc::clone(stick),
        ctx.chat.clone(),
        state.clone(),
    );
    use_effect_with((jump, loaded, open), move |(jump, _, open)| {
        let Some(jump) = jump else {
            return;
        };
        // A room being joined: its messages are on their way.
        let Some(view) = state.current_room() else {
            return;
        };
        match view.jump_step(jump.seq) {
            JumpStep::Show => {
                *stick.borrow_mut() = false;
                show(&list, jump.seq);
                state.dispatch(Action::JumpDone);
            }
            JumpStep::Latest => state.dispatch(Action::Window(WindowAction::Latest {
                room: jump.room.clone(),
            })),
            JumpStep::Fetch if *open => {
                *stick.borrow_mut() = false;
                chat.fetch_around(&jump.room, jump.seq);
            }
            JumpStep::Fetch | JumpStep::Wait => {}
            JumpStep::Missing => {
                let label = state.label(&jump.room);
                state.dispatch(Action::JumpDone);
                state.dispatch(Action::Notice(format!(
                    "That message is not in {label}: the link may be wrong."
                )));
            }
        }
    });
}

/// Scrolls message `seq` to the middle of the list, focuses it (so a screen reader
/// reads it and the keyboard goes on from there) and highlights it.
fn show(list: &NodeRef, seq: u64) {
    let Some(list) = list.cast::<HtmlElement>() else {
        return;
    };
    let item = list
        .query_selector(&format!("li[data-seq=\"{seq}\"]"))
        .ok()
        .flatten()
        .and_then(|e| wasm_bindgen::JsCast::dyn_into::<HtmlElement>(e).ok());
    let Some(item) = item else {
        return;
    };
    list.set_scroll_top(item.offset_top() - (list.client_height() - item.offset_height()) / 2);
    let _ = item.focus();
    let classes = item.class_list();
    // Again from the start if it was still highlighted from a jump a moment ago.
    let _ = classes.remove_1("highlight");
    let _ = item.offset_width();
    let _ = classes.add_1("highlight");
    Timeout::new(HIGHLIGHT_MS, move || {
        let _ = item.class_list().remove_1("highlight");
    })
    .forget();
}

/// Follows the address's message link: once signed in (the page may have opened on
/// one), and at every change of the fragment. Joins the room first if the person can
/// see it but is not in it.
#[hook]
pub fn use_permalinks(state: &UseReducerHandle<State>, chat: &Chat) {
    let signed_in = state.me.as_ref().map(|p| p.user.clone());
    {
        let dispatcher = state.dispatcher();
        use_effect_with(signed_in, move |signed_in| {
            if signed_in.is_some()
                && let Some((room, seq)) = current_fragment()
            {
                dispatcher.dispatch(Action::JumpTo { room, seq });
            }
        });
    }
    {
        let dispatcher = state.dispatcher();
        use_effect_with((), move |()| {
            let listener = web_sys::window().map(|window| {
                EventListener::new(&window, "hashchange", move |_| {
                    if let Some((room, seq)) = current_fragment() {
                        dispatcher.dispatch(Action::JumpTo { room, seq });
                    }
                })
            });
            move || drop(listener)
        });
    }
    // The room of a link must be joined; one this person cannot see is no jump.
    let wanted = state.jump.as_ref().map(|j| j.room.clone());
    let listed = wanted
        .as_ref()
        .map(|room| (state.room_info(room).is_some(), !state.rooms.is_empty()));
    let joined = wanted
        .as_ref()
        .is_some_and(|room| state.joined.contains_key(room));
    let (state, chat) = (state.clone(), chat.clone());
    use_effect_with((wanted, listed, joined), move |(wanted, listed, joined)| {
        let Some(room) = wanted else {
            return;
        };
        match listed {
            _ if *joined => {}
            Some((true, _)) => chat.join(room),
            // Welcomed (every server lists at least its default room), and not there.
            Some((false, true)) => {
                state.dispatch(Action::JumpDone);
                state.dispatch(Action::Switch(confab_shared::DEFAULT_ROOM.to_owned()));
                state.dispatch(Action::Notice(format!(
                    "There is no room #{room} that you can see."
                )));
            }
            _ => {}
        }
    });
}

fn current_fragment() -> Option<(String, u64)> {
    let hash = web_sys::window()?.location().hash().ok()?;
    permalink::parse(&hash)
}
