use gloo_timers::callback::Interval;
use yew::prelude::*;

use super::{
    Ctx, composer::Composer, messages::MessageList, name_prompt::NamePrompt, sidebar::Sidebar,
    status::ConnectionStatus,
};
use crate::{
    socket::Chat,
    state::{Action, State},
};

/// Root: owns the reducer and the connection, and picks the screen.
#[function_component]
pub fn App() -> Html {
    let state = use_reducer(State::default);
    let chat = {
        let dispatcher = state.dispatcher();
        use_memo((), move |()| {
            Chat::start(Callback::from(move |a| dispatcher.dispatch(a)))
        })
    };
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
    let ctx = Ctx {
        state: state.clone(),
        chat: (*chat).clone(),
    };
    let screen = if state.me.is_some() {
        html! {
            <div class="chat">
                <Sidebar />
                <main class="room" aria-label={format!("Room #{}", state.current)}>
                    <MessageList key={state.current.clone()} />
                    <Composer key={state.current.clone()} />
                </main>
            </div>
        }
    } else {
        html! { <NamePrompt /> }
    };
    html! {
        <ContextProvider<Ctx> context={ctx}>
            <header class="topbar">
                <h1>{ "Confab" }</h1>
                <ConnectionStatus />
            </header>
            <Notice />
            { screen }
        </ContextProvider<Ctx>>
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
