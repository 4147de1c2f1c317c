//! The account panel, opened from the "Account" button of the account menu
//! (`components::user_menu`): change the password, sign out the other sessions. What it
//! shows is its own (the forms, their errors, the last success) and goes when it closes;
//! the server ends the other sessions, and their browsers learn it from their sockets
//! closing with `SIGNED_OUT`, like any sign-out. Escape or "Close" closes it; the menu
//! gives the focus back to its button.

use confab_shared::{
    Password,
    api::{ApiError, ChangePassword},
};
use web_sys::HtmlInputElement;
use yew::prelude::*;

use super::{FieldError, panel::closers};
use crate::api;

#[derive(Properties, PartialEq)]
pub struct PanelProps {
    pub on_close: Callback<()>,
}

fn value(field: &NodeRef) -> String {
    field
        .cast::<HtmlInputElement>()
        .map(|f| f.value())
        .unwrap_or_default()
}

fn clear(field: &NodeRef) {
    if let Some(f) = field.cast::<HtmlInputElement>() {
        f.set_value("");
    }
}

/// A refusal as a person reads it: the server's sentence, and when to try again.
fn sentence(error: &ApiError) -> String {
    match error.retry_after_secs {
        Some(secs) => format!("{} (in {secs} s)", error.error),
        None => error.error.clone(),
    }
}

/// The password change's checks that need no server: both fields, the length rule.
fn check(current: &str, new: &str) -> Result<ChangePassword, ApiError> {
    if current.is_empty() {
        return Err(ApiError::on(
            "current_password",
            "Enter your current password.",
        ));
    }
    let new = Password::parse(new).map_err(|e| ApiError::on("new_password", e.to_string()))?;
    Ok(ChangePassword {
        current_password: current.to_owned(),
        new_password: new.as_str().to_owned(),
    })
}

/// The panel itself; it focuses its first field when it opens.
#[function_component]
pub fn AccountPanel(props: &PanelProps) -> Html {
    let current = use_node_ref();
    let new = use_node_ref();
    let busy = use_state(|| false);
    let form_error = use_state(|| None::<ApiError>);
    let sessions_error = use_state(|| None::<String>);
    let done = use_state(String::new);
    {
        let current = current.clone();
        use_effect_with((), move |()| {
            if let Some(f) = current.cast::<HtmlInputElement>() {
                let _ = f.focus();
            }
        });
    }
    let onsubmit = {
        let (current, new, busy) = (current.clone(), new.clone(), busy.clone());
        let (form_error, sessions_error, done) =
            (form_error.clone(), sessions_error.clone(), done.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            if *busy {
                return;
            }
            done.set(String::new());
            sessions_error.set(None);
            let body = match check(&value(&current), &value(&new)) {
                Ok(body) => body,
                Err(error) => return form_error.set(Some(error)),
            };
            form_error.set(None);
            busy.set(true);
            let (current, new, busy) = (current.clone(), new.clone(), busy.clone());
            let (form_error, done) = (form_error.clone(), done.clone());
            wasm_bindgen_futures::spawn_local(async move {
                match api::change_password(&body).await {
                    Ok(()) => {
                        clear(&current);
                        clear(&new);
                        done.set(
                            "Password changed. Your other sessions are signed out.".to_owned(),
                        );
                    }
                    Err(failure) => form_error.set(Some(failure.into_api_error())),
                }
                busy.set(false);
            });
        })
    };
    let sign_out_others = {
        let (busy, sessions_error, done) = (busy.clone(), sessions_error.clone(), done.clone());
        Callback::from(move |_: MouseEvent| {
            if *busy {
                return;
            }
            done.set(String::new());
            busy.set(true);
            let (busy, sessions_error, done) = (busy.clone(), sessions_error.clone(), done.clone());
            wasm_bindgen_futures::spawn_local(async move {
                match api::sign_out_others().await {
                    Ok(()) => {
                        sessions_error.set(None);
                        done.set("Your other sessions are signed out.".to_owned());
                    }
                    Err(failure) => {
                        sessions_error.set(Some(sentence(&failure.into_api_error())));
                    }
                }
                busy.set(false);
            });
        })
    };
    let (onkeydown, close) = closers(&props.on_close);
    let error = (*form_error).as_ref();
    let on_field = |id: &'static str, field: &str| FieldError {
        id,
        message: error
            .filter(|e| e.field.as_deref() == Some(field))
            .map(sentence),
    };
    let current_error = on_field("current-password-error", "current_password");
    let new_error = on_field("new-password-error", "new_password");
    let whole_form = FieldError {
        id: "password-form-error",
        message: error
            .filter(|e| {
                !matches!(
                    e.field.as_deref(),
                    Some("current_password" | "new_password")
                )
            })
            .map(sentence),
    };
    let new_described = match new_error.describedby() {
        Some(id) => format!("new-password-hint {id}"),
        None => "new-password-hint".to_owned(),
    };
    let sessions_error = FieldError {
        id: "sessions-error",
        message: (*sessions_error).clone(),
    };
    html! {
        <section id="account-panel" class="account-panel" role="dialog"
                 aria-labelledby="account-heading" {onkeydown}>
            <h2 id="account-heading">{ "Your account" }</h2>
            <form class="auth-form" aria-labelledby="password-heading"
                  aria-busy={busy.to_string()} {onsubmit}>
                <h3 id="password-heading">{ "Change password" }</h3>
                <label for="current-password">{ "Current password" }</label>
                <input id="current-password" ref={current} type="password"
                       autocomplete="current-password" required=true
                       aria-invalid={current_error.invalid()}
                       aria-describedby={current_error.describedby()} />
                { current_error.render() }
                <label for="new-password">{ "New password" }</label>
                <input id="new-password" ref={new} type="password"
                       autocomplete="new-password" required=true
                       aria-invalid={new_error.invalid()} aria-describedby={new_described} />
                <p id="new-password-hint" class="hint-text">
                    { "At least 8 characters, and not one of the most common passwords. Your other sessions will be signed out." }
                </p>
                { new_error.render() }
                <button type="submit">{ "Change password" }</button>
                { whole_form.render() }
            </form>
            <div class="sessions">
                <h3>{ "Other sessions" }</h3>
                <p class="hint-text">{ "Signed in somewhere you no longer use? This keeps only this browser signed in." }</p>
                <button type="button" onclick={sign_out_others}
                        aria-describedby={sessions_error.describedby()}>{ "Sign out other sessions" }</button>
                { sessions_error.render() }
            </div>
            <p class="success" role="status">{ (*done).clone() }</p>
            <button type="button" class="close" onclick={close}>{ "Close" }</button>
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_is_checked_before_it_is_sent() {
        let field = |c: &str, n: &str| check(c, n).map_err(|e| e.field);
        assert_eq!(
            field("", "long enough"),
            Err(Some("current_password".into()))
        );
        assert_eq!(field("old one", "short"), Err(Some("new_password".into())));
        let ok = check("old one", " new and long ").expect("valid");
        assert_eq!(ok.new_password, " new and long ", "sent as typed");
    }

    #[test]
    fn a_throttled_refusal_says_when_to_try_again() {
        let error = ApiError {
            retry_after_secs: Some(12),
            ..ApiError::new("too many attempts; wait a little and try again")
        };
        assert!(sentence(&error).ends_with("(in 12 s)"));
    }
}
