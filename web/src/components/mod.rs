//! UI components. Each renders from the [`State`](crate::state::State) context and
//! turns user input into [`Chat`](crate::socket::Chat) requests or reducer actions.

mod app;
mod composer;
mod messages;
mod name_prompt;
mod sidebar;
mod status;

pub use app::App;

use yew::prelude::*;

use crate::{socket::Chat, state::State};

/// What every component reads: the state and the way to act on it.
#[derive(Clone, PartialEq)]
pub struct Ctx {
    pub state: UseReducerHandle<State>,
    pub chat: Chat,
}

/// The shared context; present everywhere below [`App`].
#[hook]
pub fn use_ctx() -> Ctx {
    use_context::<Ctx>().unwrap_or_else(|| unreachable!("components render inside App"))
}
