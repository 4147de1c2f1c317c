//! The browser's side of reading (the rules are in `state/reading.rs`): marking a room
//! read when the person can see its newest message, the unread badges of the room list,
//! the document title, browser notifications and the control that enables them, and
//! muting a room.

use std::{cell::RefCell, collections::BTreeMap, rc::Rc};

use gloo_events::EventListener;
use gloo_timers::callback::Timeout;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    Document, Element, Notification, NotificationOptions, NotificationPermission, VisibilityState,
};
use yew::prelude::*;

use super::Ctx;
use crate::{
    socket::Chat,
    state::{Action, Conn, ReadingAction, State, reading},
};

/// The room is marked read once the person has looked at its newest message this long
/// (scrolling, switching tabs and new messages start the wait again).
const MARK_AFTER_MS: u32 = 500;

fn document() -> Option<Document> {
    web_sys::window().and_then(|w| w.document())
}

/// Whether the person can see the page: its tab visible and its window focused.
fn page_seen() -> bool {
    document().is_some_and(|d| {
        d.visibility_state() == VisibilityState::Visible && d.has_focus().unwrap_or(false)
    })
}

/// The message list of the room on screen.
fn message_list() -> Option<Element> {
    document()?.query_selector("main.room .messages").ok()?
}

/// Whether the newest message of `list` shows at least in part.
fn newest_in_view(list: &Element) -> bool {
    let Ok(items) = list.query_selector_all("[data-testid=\"message\"]") else {
        return false;
    };
    let Some(newest) = items
        .item(items.length().saturating_sub(1))
        .and_then(|n| n.dyn_into::<Element>().ok())
    else {
        return false;
    };
    let (area, item) = (
        list.get_bounding_client_rect(),
        newest.get_bounding_client_rect(),
    );
    item.top() < area.bottom() && item.bottom() > area.top()
}

/// What the marker's timer needs when it fires: the newest state, and what was sent.
struct Marker {
    chat: Chat,
    room: String,
    state: RefCell<UseReducerHandle<State>>,
    /// The last marker sent for this room from here.
    sent: RefCell<u64>,
    timer: RefCell<Option<Timeout>>,
}

impl Marker {
    /// (Re)starts the wait: the room is marked read if, when it ends, the person can see
    /// the room's newest message.
    fn schedule(self: &Rc<Self>) {
        let marker = Rc::clone(self);
        let timer = Timeout::new(MARK_AFTER_MS, move || marker.mark_if_seen());
        // Replacing the pending timer cancels it.
        *self.timer.borrow_mut() = Some(timer);
    }

    fn mark_if_seen(&self) {
        self.timer.borrow_mut().take();
        let state = self.state.borrow().clone();
        if state.current != self.room || !page_seen() {
            return;
        }
        if !message_list().is_some_and(|list| newest_in_view(&list)) {
            return;
        }
        let sent = *self.sent.borrow();
        if let Some(seq) = state.mark_target(sent) {
            *self.sent.borrow_mut() = seq;
            self.chat.mark_read(&self.room, seq);
        }
    }
}

/// Marks the room on screen read while the person is looking at its newest message.
/// Renders nothing; one per room pane, so it starts afresh with each room.
#[function_component]
pub fn ReadTracker() -> Html {
    let ctx = super::use_ctx();
    let marker = {
        let (chat, state) = (ctx.chat.clone(), ctx.state.clone());
        use_memo((), move |()| Marker {
            chat,
            room: state.current.clone(),
            state: RefCell::new(state),
            sent: RefCell::new(0),
            timer: RefCell::new(None),
        })
    };
    *marker.state.borrow_mut() = ctx.state.clone();
    {
        // Coming back to the tab or the window, or scrolling the list, may bring the
        // newest message into sight.
        let marker = Rc::clone(&marker);
        use_effect_with((), move |()| {
            let mut listeners = Vec::new();
            let mut listen = |target: &web_sys::EventTarget, event: &'static str| {
                let marker = Rc::clone(&marker);
                listeners.push(EventListener::new(target, event, move |_| {
                    marker.schedule();
                }));
            };
            if let Some(window) = web_sys::window() {
                listen(&window, "focus");
            }
            if let Some(document) = document() {
                listen(&document, "visibilitychange");
            }
            if let Some(list) = message_list() {
                listen(&list, "scroll");
            }
            marker.schedule();
            move || {
                drop(listeners);
                marker.timer.borrow_mut().take();
            }
        });
    }
    {
        // A new message, or a marker moved elsewhere.
        let newest = ctx
            .state
            .current_room()
            .and_then(|r| r.messages.last())
            .map(|m| m.seq);
        let read = ctx.state.current_room().map(|r| r.read);
        let marker = Rc::clone(&marker);
        use_effect_with((newest, read), move |_| marker.schedule());
    }
    html! {}
}

/// The line above the first message the person has not read, where they left off.
pub fn new_messages_divider() -> Html {
    html! {
        <li key="new-messages" class="new-messages" data-testid="new-messages">
            <div role="separator" aria-label="New messages">
                <span aria-hidden="true">{ "New messages" }</span>
            </div>
        </li>
    }
}

/// A room's unread count for the room list: a badge, "@n" for mentions, and the same in
/// words for screen readers. Quiet (not bold, greyed) for a muted room.
pub fn unread_badge(state: &State, room: &str) -> Html {
    let counts = state.unread(room);
    if counts.messages == 0 {
        return html! {};
    }
    let muted = state.muted(room);
    let words = match muted {
        true => format!(" ({}, muted)", reading::describe(counts)),
        false => format!(" ({})", reading::describe(counts)),
    };
    html! {
        <span class={classes!("unread", muted.then_some("muted"))} data-testid="unread">
            if counts.mentions > 0 {
                <span class="mentions" aria-hidden="true">{ format!("@{}", reading::badge(counts.mentions)) }</span>
            }
            <span class="count" aria-hidden="true">{ reading::badge(counts.messages) }</span>
            <span class="visually-hidden">{ words }</span>
        </span>
    }
}

/// The room header's toggle that mutes the room on screen for this person (every
/// device): no notifications, and its count shows quietly.
pub fn mute_button(ctx: &Ctx) -> Html {
    let room = ctx.state.current.clone();
    let Some(info) = ctx.state.room_info(&room) else {
        return html! {};
    };
    let muted = info.muted;
    let onclick = {
        let chat = ctx.chat.clone();
        Callback::from(move |_: MouseEvent| chat.mute(&room, !muted))
    };
    // Only sent while connected; the next `rooms` would undo a change made offline.
    let offline = ctx.state.conn != Conn::Open;
    html! {
        <button type="button" class={classes!("small", "mute")} aria-pressed={muted.to_string()}
                disabled={offline} {onclick}>
            { "Mute room" }
        </button>
    }
}

/// Whether this browser has notifications at all (some have no `Notification`).
fn notifications_supported() -> bool {
    web_sys::window().is_some_and(|w| {
        js_sys::Reflect::has(&w, &JsValue::from_str("Notification")).unwrap_or(false)
    })
}

fn permission() -> Option<NotificationPermission> {
    notifications_supported().then(Notification::permission)
}

/// Keeps the document title on the unread total ("(3) Confab"), and shows the
/// notifications the state asks for while the tab is hidden. Renders nothing; one for
/// the chat screen.
#[function_component]
pub fn Attention() -> Html {
    let ctx = super::use_ctx();
    let total = ctx.state.unread_total();
    use_effect_with(total, |total| {
        if let Some(document) = document() {
            document.set_title(&reading::title(*total));
        }
        // Signed out: no counts.
        || {
            if let Some(document) = document() {
                document.set_title(&reading::title(0));
            }
        }
    });
    // Shown notifications by room, with their click listeners: one per room (its tag
    // replaces the previous one), closed when the person comes back.
    let shown = use_mut_ref(BTreeMap::<String, (Notification, EventListener)>::new);
    {
        let shown = Rc::clone(&shown);
        use_effect_with((), move |()| {
            let listener = document().map(|document| {
                EventListener::new(&document, "visibilitychange", move |_| {
                    if page_visible() {
                        for (notification, _) in
                            std::mem::take(&mut *shown.borrow_mut()).into_values()
                        {
                            notification.close();
                        }
                    }
                })
            });
            move || drop(listener)
        });
    }
    {
        let state = ctx.state.clone();
        use_effect_with(ctx.state.alerts.clone(), move |alerts| {
            if alerts.is_empty() {
                return;
            }
            if !page_visible() && permission() == Some(NotificationPermission::Granted) {
                for alert in alerts {
                    if let Some(shown_now) = notify(alert, &state) {
                        shown.borrow_mut().insert(alert.room.clone(), shown_now);
                    }
                }
            }
            state.dispatch(Action::Reading(ReadingAction::AlertsHandled(alerts.len())));
        });
    }
    html! {}
}

fn page_visible() -> bool {
    document().is_some_and(|d| d.visibility_state() == VisibilityState::Visible)
}

/// Shows one notification; clicking it brings the window forward on its room.
fn notify(
    alert: &reading::Alert,
    state: &UseReducerHandle<State>,
) -> Option<(Notification, EventListener)> {
    let options = NotificationOptions::new();
    options.set_body(&alert.body);
    options.set_tag(&format!("confab-{}", alert.room));
    let notification = Notification::new_with_options(&alert.title, &options).ok()?;
    let (dispatcher, room, shown) = (state.dispatcher(), alert.room.clone(), notification.clone());
    let listener = EventListener::new(&notification, "click", move |_| {
        if let Some(window) = web_sys::window() {
            let _ = window.focus();
        }
        dispatcher.dispatch(Action::Switch(room.clone()));
        shown.close();
    });
    Some((notification, listener))
}

/// "Enable notifications": asks the browser for permission, only when clicked. Shows
/// nothing once the person decided, but says so when the browser refused what they
/// just asked for.
#[function_component]
pub fn NotifyButton() -> Html {
    let current = use_state(permission);
    let asked = use_state(|| false);
    let onclick = {
        let (current, asked) = (current.clone(), asked.clone());
        Callback::from(move |_: MouseEvent| {
            let Ok(promise) = Notification::request_permission() else {
                return;
            };
            let (current, asked) = (current.clone(), asked.clone());
            wasm_bindgen_futures::spawn_local(async move {
                let _ = JsFuture::from(promise).await;
                asked.set(true);
                current.set(permission());
            });
        })
    };
    match *current {
        Some(NotificationPermission::Default) => html! {
            <button type="button" class="notify" {onclick}>{ "Enable notifications" }</button>
        },
        Some(NotificationPermission::Denied) if *asked => html! {
            <span class="hint-text" role="status">{ "Notifications are blocked by the browser" }</span>
        },
        _ => html! {},
    }
}
