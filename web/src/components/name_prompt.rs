use confab_shared::{DisplayName, limits::MAX_NAME_CHARS};
use web_sys::HtmlInputElement;
use yew::prelude::*;

/// First screen: choose a display name.
#[function_component]
pub fn NamePrompt() -> Html {
    let ctx = super::use_ctx();
    let input = use_node_ref();
    let local_error = use_state(|| None::<String>);
    let onsubmit = {
        let input = input.clone();
        let chat = ctx.chat.clone();
        let local_error = local_error.clone();
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let Some(field) = input.cast::<HtmlInputElement>() else {
                return;
            };
            // The same rule the server applies, checked here first for instant feedback.
            match DisplayName::parse(&field.value()) {
                Ok(name) => {
                    local_error.set(None);
                    chat.hello(name.as_str());
                }
                Err(e) => local_error.set(Some(e.to_string())),
            }
        })
    };
    {
        let input = input.clone();
        use_effect_with((), move |()| {
            if let Some(field) = input.cast::<HtmlInputElement>() {
                let _ = field.focus();
            }
        });
    }
    let error = (*local_error)
        .clone()
        .or_else(|| ctx.state.name_error.clone());
    html! {
        <main class="welcome">
            <form class="name-form" aria-label="Choose a display name" {onsubmit}>
                <h2>{ "Welcome to Confab" }</h2>
                <label for="name">{ "Display name" }</label>
                <input id="name" ref={input} type="text" autocomplete="nickname"
                       maxlength={(MAX_NAME_CHARS * 2).to_string()} required=true
                       aria-invalid={error.is_some().to_string()}
                       aria-describedby={error.as_ref().map(|_| "name-error")} />
                <button type="submit">{ "Join chat" }</button>
                if let Some(error) = error {
                    <p id="name-error" class="error" role="alert">{ error }</p>
                }
            </form>
        </main>
    }
}
