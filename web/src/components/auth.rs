use confab_shared::{
    api::SignUpPolicy,
    limits::{MAX_NAME_CHARS, MAX_USERNAME_CHARS},
};
use web_sys::HtmlInputElement;
use yew::prelude::*;

use super::{Ctx, FieldError};
use crate::state::{AuthError, AuthForm};

/// Which of the two account forms is on screen.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    SignIn,
    SignUp,
}

/// The first screen without a session: sign in, create an account, or (when the
/// server allows it) continue as a guest.
#[function_component]
pub fn AuthScreen() -> Html {
    let ctx = super::use_ctx();
    let state = &ctx.state;
    // Someone who came by an invite link is here to sign up: that form comes first.
    let invited = use_memo((), |()| crate::invites::invite_in_address().is_some());
    let may_sign_up = match state.sign_up {
        SignUpPolicy::Open => true,
        SignUpPolicy::Invite => *invited,
        SignUpPolicy::Closed => false,
    };
    // Someone who came by a password reset link sets a new password first.
    let resetting = use_state(crate::admin::reset_in_address);
    let reset_done = use_state(|| false);
    let mode = use_state(|| {
        if *invited && may_sign_up {
            Mode::SignUp
        } else {
            Mode::SignIn
        }
    });
    // One component with plain functions for its forms: every Yew component costs
    // download size, and these forms share the screen's lifetime anyway.
    let refs = Refs {
        first_field: use_node_ref(),
        password: use_node_ref(),
        display_name: use_node_ref(),
        guest_name: use_node_ref(),
    };
    let first_field = refs.first_field.clone();
    {
        // Whoever arrives (or switches forms) starts typing in the first field.
        let first_field = first_field.clone();
        use_effect_with(*mode, move |_| {
            if let Some(field) = first_field.cast::<HtmlInputElement>() {
                let _ = field.focus();
            }
        });
    }
    let switch_to = |to: Mode| {
        let mode = mode.clone();
        Callback::from(move |_: MouseEvent| mode.set(to))
    };
    // Sign-up is offered only where the server takes it; otherwise the screen says why.
    let no_sign_up = match state.sign_up {
        SignUpPolicy::Open => "",
        SignUpPolicy::Invite => {
            "New accounts here need an invite link from someone on this server."
        }
        SignUpPolicy::Closed => "This server is not taking new accounts.",
    };
    let account_form = match *mode {
        Mode::SignUp if may_sign_up => html! {
            <>
                { sign_up_form(&ctx, &refs, *invited) }
                <p class="switch">
                    { "Already have an account? " }
                    <button type="button" class="link" onclick={switch_to(Mode::SignIn)}>{ "Sign in" }</button>
                </p>
            </>
        },
        _ if may_sign_up => html! {
            <>
                { sign_in_form(&ctx, &refs) }
                <p class="switch">
                    { "No account yet? " }
                    <button type="button" class="link" onclick={switch_to(Mode::SignUp)}>{ "Sign up" }</button>
                </p>
            </>
        },
        _ => html! {
            <>
                { sign_in_form(&ctx, &refs) }
                <p class="switch" id="no-sign-up">{ no_sign_up }</p>
            </>
        },
    };
    if let Some(token) = (*resetting).clone() {
        let on_done = {
            let (resetting, reset_done) = (resetting.clone(), reset_done.clone());
            Callback::from(move |()| {
                crate::admin::forget_reset_in_address();
                resetting.set(None);
                reset_done.set(true);
            })
        };
        return html! {
            <main class="welcome">
                <div class="auth">
                    <h2>{ "Welcome to Confab" }</h2>
                    <ResetForm {token} {on_done} />
                </div>
            </main>
        };
    }
    html! {
        <main class="welcome">
            <div class="auth">
                <h2>{ "Welcome to Confab" }</h2>
                if *reset_done {
                    <p class="success" role="status">{ "Your new password is set. Sign in with it." }</p>
                }
                { account_form }
                if state.guests_allowed {
                    { guest_form(&ctx, &refs) }
                }
            </div>
        </main>
    }
}

/// The fields read on submit. `first_field` is the username of whichever account
/// form is on screen (and gets the focus).
struct Refs {
    first_field: NodeRef,
    password: NodeRef,
    display_name: NodeRef,
    guest_name: NodeRef,
}

/// The error of `form` on `field`, or (`field` `None`) the one about no field of
/// `fields`, which shows under the whole form.
fn error_on(
    error: Option<&AuthError>,
    id: &'static str,
    field: Option<&str>,
    fields: &[&str],
) -> FieldError {
    let message = error
        .filter(|e| match field {
            Some(f) => e.field.as_deref() == Some(f),
            None => e.field.as_deref().is_none_or(|f| !fields.contains(&f)),
        })
        .map(|e| e.message.clone());
    FieldError { id, message }
}

fn value(field: &NodeRef) -> String {
    field
        .cast::<HtmlInputElement>()
        .map(|f| f.value())
        .unwrap_or_default()
}

fn sign_in_form(ctx: &Ctx, refs: &Refs) -> Html {
    let password = refs.password.clone();
    let busy = ctx.state.auth_busy == Some(AuthForm::SignIn);
    let onsubmit = {
        let (account, username, password) = (
            ctx.account.clone(),
            refs.first_field.clone(),
            password.clone(),
        );
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            if !busy {
                account.sign_in(&value(&username), &value(&password));
            }
        })
    };
    let error = ctx.state.auth_error_for(AuthForm::SignIn);
    // The server's answer to a failed sign-in names no field on purpose (it does not
    // tell which of the two was wrong), so it shows under the form.
    let fields = ["username", "password"];
    let user_error = error_on(error, "signin-username-error", Some("username"), &fields);
    let pass_error = error_on(error, "signin-password-error", Some("password"), &fields);
    let form_error = error_on(error, "signin-error", None, &fields);
    html! {
        <form key="signin" class="auth-form" aria-labelledby="signin-heading" aria-busy={busy.to_string()} {onsubmit}>
            <h3 id="signin-heading">{ "Sign in" }</h3>
            <label for="signin-username">{ "Username" }</label>
            <input id="signin-username" ref={refs.first_field.clone()} type="text"
                   autocomplete="username" autocapitalize="none" spellcheck="false" required=true
                   aria-invalid={user_error.invalid()} aria-describedby={user_error.describedby()} />
            { user_error.render() }
            <label for="signin-password">{ "Password" }</label>
            <input id="signin-password" ref={password} type="password"
                   autocomplete="current-password" required=true
                   aria-invalid={pass_error.invalid()} aria-describedby={pass_error.describedby()} />
            { pass_error.render() }
            <button type="submit">{ "Sign in" }</button>
            { form_error.render() }
        </form>
    }
}

fn sign_up_form(ctx: &Ctx, refs: &Refs, invited: bool) -> Html {
    let (display_name, password) = (refs.display_name.clone(), refs.password.clone());
    let busy = ctx.state.auth_busy == Some(AuthForm::SignUp);
    let onsubmit = {
        let account = ctx.account.clone();
        let (username, display_name, password) = (
            refs.first_field.clone(),
            display_name.clone(),
            password.clone(),
        );
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            if !busy {
                account.sign_up(&value(&username), &value(&display_name), &value(&password));
            }
        })
    };
    let error = ctx.state.auth_error_for(AuthForm::SignUp);
    let fields = ["username", "display_name", "password"];
    let user_error = error_on(error, "signup-username-error", Some("username"), &fields);
    let name_error = error_on(error, "signup-name-error", Some("display_name"), &fields);
    let pass_error = error_on(error, "signup-password-error", Some("password"), &fields);
    let form_error = error_on(error, "signup-error", None, &fields);
    let described = |error: &FieldError, hint: &str| match error.describedby() {
        Some(id) => format!("{hint} {id}"),
        None => hint.to_owned(),
    };
    html! {
        <form key="signup" class="auth-form" aria-labelledby="signup-heading" aria-busy={busy.to_string()} {onsubmit}>
            <h3 id="signup-heading">{ "Sign up" }</h3>
            if invited {
                <p class="hint-text">{ "You are signing up with an invite link." }</p>
            }
            <label for="signup-username">{ "Username" }</label>
            <input id="signup-username" ref={refs.first_field.clone()} type="text"
                   autocomplete="username" autocapitalize="none" spellcheck="false" required=true
                   maxlength={(MAX_USERNAME_CHARS * 2).to_string()}
                   aria-invalid={user_error.invalid()}
                   aria-describedby={described(&user_error, "signup-username-hint")} />
            <p id="signup-username-hint" class="hint-text">{ "Letters a–z, digits, '.', '_' and '-'. How people find you." }</p>
            { user_error.render() }
            <label for="signup-display-name">{ "Display name " }<span class="optional">{ "(optional)" }</span></label>
            <input id="signup-display-name" ref={display_name} type="text" autocomplete="nickname"
                   maxlength={(MAX_NAME_CHARS * 2).to_string()}
                   aria-invalid={name_error.invalid()}
                   aria-describedby={described(&name_error, "signup-name-hint")} />
            <p id="signup-name-hint" class="hint-text">{ "What others see; your username if left empty." }</p>
            { name_error.render() }
            <label for="signup-password">{ "Password" }</label>
            <input id="signup-password" ref={password} type="password"
                   autocomplete="new-password" required=true
                   aria-invalid={pass_error.invalid()}
                   aria-describedby={described(&pass_error, "signup-password-hint")} />
            <p id="signup-password-hint" class="hint-text">{ "At least 8 characters, and not one of the most common passwords." }</p>
            { pass_error.render() }
            <button type="submit">{ "Create account" }</button>
            { form_error.render() }
        </form>
    }
}

fn guest_form(ctx: &Ctx, refs: &Refs) -> Html {
    let name = refs.guest_name.clone();
    let busy = ctx.state.auth_busy == Some(AuthForm::Guest);
    let onsubmit = {
        let (account, name) = (ctx.account.clone(), name.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            if !busy {
                account.join_as_guest(&value(&name));
            }
        })
    };
    let error = ctx.state.auth_error_for(AuthForm::Guest);
    // Whatever refused the guest (a name taken, guests turned away) is about the name.
    let name_error = error_on(error, "guest-name-error", None, &[]);
    html! {
        <form class="auth-form guest" aria-labelledby="guest-heading" aria-busy={busy.to_string()} {onsubmit}>
            <h3 id="guest-heading">{ "Continue as guest" }</h3>
            <label for="guest-name">{ "Display name" }</label>
            <input id="guest-name" ref={name} type="text" autocomplete="nickname"
                   maxlength={(MAX_NAME_CHARS * 2).to_string()} required=true
                   aria-invalid={name_error.invalid()} aria-describedby={name_error.describedby()} />
            { name_error.render() }
            <button type="submit">{ "Join chat" }</button>
        </form>
    }
}

#[derive(Properties, PartialEq)]
struct ResetProps {
    token: String,
    on_done: Callback<()>,
}

/// A password reset link's form: a new password, set once with the link's secret.
#[function_component]
fn ResetForm(props: &ResetProps) -> Html {
    let password = use_node_ref();
    let busy = use_state(|| false);
    let error = use_state(|| None::<confab_shared::api::ApiError>);
    {
        let password = password.clone();
        use_effect_with((), move |()| {
            if let Some(field) = password.cast::<HtmlInputElement>() {
                let _ = field.focus();
            }
        });
    }
    let onsubmit = {
        let (password, busy, error) = (password.clone(), busy.clone(), error.clone());
        let (token, on_done) = (props.token.clone(), props.on_done.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            if *busy {
                return;
            }
            let body = confab_shared::api::ResetPassword {
                token: token.clone(),
                new_password: value(&password),
            };
            busy.set(true);
            let (busy, error, on_done) = (busy.clone(), error.clone(), on_done.clone());
            wasm_bindgen_futures::spawn_local(async move {
                match crate::admin::reset_password(&body).await {
                    Ok(()) => on_done.emit(()),
                    Err(failure) => error.set(Some(failure.into_api_error())),
                }
                busy.set(false);
            });
        })
    };
    let field_error = FieldError {
        id: "reset-password-error",
        message: error.as_ref().map(|e| e.error.clone()),
    };
    html! {
        <form class="auth-form" aria-labelledby="reset-heading" aria-busy={busy.to_string()} {onsubmit}>
            <h3 id="reset-heading">{ "Set a new password" }</h3>
            <p class="hint-text">{ "An administrator gave you this link. It works once; your other sessions end." }</p>
            <label for="reset-password">{ "New password" }</label>
            <input id="reset-password" ref={password} type="password" autocomplete="new-password"
                   required=true aria-invalid={field_error.invalid()}
                   aria-describedby={format!("reset-password-hint{}", field_error.describedby().map(|id| format!(" {id}")).unwrap_or_default())} />
            <p id="reset-password-hint" class="hint-text">{ "At least 8 characters, and not one of the most common passwords." }</p>
            { field_error.render() }
            <button type="submit">{ "Set password" }</button>
        </form>
    }
}
