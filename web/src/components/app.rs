//! The root component: owns the reducer and the services, and lays the page out as a
//! column (the top bar, the last error, and the stage under them where the chat or the
//! sign-in screen shows and the admin page opens).

use gloo_timers::callback::Interval;
use yew::prelude::*;

use super::{
    Ctx,
    admin::{self, AdminButton, AdminPanel},
    attachments::use_drop_zone,
    auth::AuthScreen,
    composer::Composer,
    invites::InviteMenu,
    messages::MessageList,
    reading::{Attention, ReadTracker},
    room_header::RoomHeader,
    search::SearchBox,
    sidebar::Sidebar,
    status::ConnectionStatus,
    user_menu::UserMenu,
};
use crate::{
    account::Account,
    persist,
    socket::Chat,
    state::{Action, State},
};

/// Root: owns the reducer and the services, and picks the screen.
#[function_component]
pub fn App() -> Html {
    let state = use_reducer(State::default);
    let services = {
        let dispatcher = state.dispatcher();
        use_memo((), move |()| {
            let dispatch = Callback::from(move |a| dispatcher.dispatch(a));
            let chat = Chat::new(dispatch.clone());
            let account = Account::new(chat.clone(), dispatch);
            (chat, account)
        })
    };
    {
        let account = services.1.clone();
        use_effect_with((), move |()| account.check());
    }
    {
        // Typing indicators expire on their own; one tick a second is precise enough.
        let dispatcher = state.dispatcher();
        use_effect_with((), move |()| {
            let tick = Interval::new(1_000, move || {
                dispatcher.dispatch(Action::Tick {
                    now: js_sys::Date::now(),
                });
            });
            move || drop(tick)
        });
    }
    {
        // Closed conversations are remembered per person, across reloads.
        let user = state.me.as_ref().map(|p| p.user.clone());
        use_effect_with((user, state.closed.clone()), |(user, closed)| {
            if let Some(user) = user {
                persist::save_closed(user, closed);
            }
        });
    }
    // The admin page is laid out by this component, under the top bar, so its
    // button and the page share this flag rather than the button owning it.
    let admin_open = use_state_eq(|| false);
    {
        // Losing the role (or signing out) closes the page for good.
        let admin_open = admin_open.clone();
        use_effect_with(state.admin && state.me.is_some(), move |&admin| {
            if !admin {
                admin_open.set(false);
            }
        });
    }
    super::jump::use_permalinks(&state, &services.0);
    let ctx = Ctx {
        state: state.clone(),
        chat: services.0.clone(),
        account: services.1.clone(),
    };
    let drop_zone = use_drop_zone(&ctx);
    let screen = if state.checking {
        let text = match &state.joining_as {
            Some(name) => format!("Joining as {name}…"),
            None => "Connecting to Confab…".to_owned(),
        };
        html! { <main class="welcome"><p class="loading">{ text }</p></main> }
    } else if state.me.is_some() {
        let label = state.label(&state.current);
        html! {
            <div class="chat">
                <Attention />
                <Sidebar />
                <main class="room" aria-label={format!("Room {label}")}
                      ondragenter={drop_zone.ondragenter.clone()} ondragover={drop_zone.ondragover.clone()}
                      ondragleave={drop_zone.ondragleave.clone()} ondrop={drop_zone.ondrop.clone()}>
                    { drop_zone.overlay() }
                    // One keyed child, so switching rooms starts its parts afresh
                    // (scroll position, open forms). Keys must be unique among
                    // siblings: Yew's debug build panics on a repeat.
                    <RoomPane key={state.current.clone()} />
                </main>
            </div>
        }
    } else {
        html! { <AuthScreen /> }
    };
    let toggle_admin = {
        let admin_open = admin_open.clone();
        Callback::from(move |()| admin_open.set(!*admin_open))
    };
    let close_admin = {
        let admin_open = admin_open.clone();
        Callback::from(move |()| {
            admin_open.set(false);
            admin::focus_button();
        })
    };
    html! {
        <ContextProvider<Ctx> context={ctx}>
            <header class="topbar">
                <h1>{ "Confab" }</h1>
                if state.me.is_some() && !state.checking {
                    <SearchBox />
                }
                <div class="topbar-side">
                    <ConnectionStatus />
                    if state.me.is_some() {
                        <AdminButton open={*admin_open} on_toggle={toggle_admin} />
                        <InviteMenu />
                        <UserMenu />
                    }
                </div>
            </header>
            <Notice />
            // Everything under the bar and the notice, however tall they are: the admin
            // page covers this area and no more.
            <div class="stage">
                if *admin_open && state.admin && state.me.is_some() {
                    <AdminPanel on_close={close_admin} />
                }
                { screen }
            </div>
        </ContextProvider<Ctx>>
    }
}

/// The room on screen: its header, messages and composer.
#[function_component]
fn RoomPane() -> Html {
    html! {
        <>
            <RoomHeader />
            <MessageList />
            <ReadTracker />
            <Composer />
        </>
    }
}

/// The last error from the server, dismissible.
#[function_component]
fn Notice() -> Html {
    let ctx = super::use_ctx();
    let Some(notice) = ctx.state.notice.clone() else {
        return html! {};
    };
    let dismiss = {
        let state = ctx.state.clone();
        Callback::from(move |_| state.dispatch(Action::DismissNotice))
    };
    html! {
        <div class="notice" role="alert">
            <span>{ notice }</span>
            <button type="button" onclick={dismiss} aria-label="Dismiss notice">{ "×" }</button>
        </div>
    }
}
