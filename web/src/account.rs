//! Accounts: the HTTP endpoints of [`confab_shared::api`], and the session flow built
//! on them. On load the client asks `/api/me` who it is; signing in, up or out, or
//! joining as a guest, ends in the chat socket being opened or closed to match (see
//! [`Chat::connect`]). The session itself is an HttpOnly cookie the browser sends by
//! itself: nothing here ever sees it.

use confab_shared::{
    DisplayName, Password, Username,
    api::{ApiError, Me, SignIn, SignUp},
};
use gloo_timers::future::TimeoutFuture;
use yew::Callback;

use crate::{
    api::{self, Failure},
    backoff::backoff_ms,
    invites, persist,
    socket::Chat,
    state::{Action, AuthError, AuthForm, Conn},
};

/// The rules the server applies to a new account, checked first for instant feedback.
/// A blank display name means "use the username".
pub fn check_sign_up(
    username: &str,
    display_name: &str,
    password: &str,
) -> Result<SignUp, ApiError> {
    let username =
        Username::parse(username).map_err(|e| ApiError::on("username", e.to_string()))?;
    let display_name = if display_name.trim().is_empty() {
        None
    } else {
        let name = DisplayName::parse(display_name)
            .map_err(|e| ApiError::on("display_name", e.to_string()))?;
        Some(name.into_string())
    };
    let password =
        Password::parse(password).map_err(|e| ApiError::on("password", e.to_string()))?;
    Ok(SignUp {
        username: username.as_str().to_owned(),
        password: password.as_str().to_owned(),
        display_name,
        invite: None,
    })
}

/// The session flow, shared through the components' context.
#[derive(Clone)]
pub struct Account {
    chat: Chat,
    dispatch: Callback<Action>,
}

impl PartialEq for Account {
    fn eq(&self, other: &Self) -> bool {
        self.chat == other.chat
    }
}

impl Account {
    pub fn new(chat: Chat, dispatch: Callback<Action>) -> Self {
        Self { chat, dispatch }
    }

    /// On load: who are we? Signed in opens the chat; otherwise a guest remembered
    /// from an earlier visit rejoins, or the sign-in screen shows. While the server
    /// cannot be reached it asks again with backoff, like the socket.
    pub fn check(&self) {
        let this = self.clone();
        self.dispatch.emit(Action::Checking);
        wasm_bindgen_futures::spawn_local(async move {
            let mut failures = 0_u32;
            loop {
                match api::me().await {
                    Ok(me) => return this.signed_in(me),
                    Err(Failure::Refused { status: 401, error }) => {
                        if let Some(policy) = error.sign_up {
                            this.dispatch.emit(Action::SignUpPolicy(policy));
                        }
                        return this.not_signed_in(error.guests_allowed.unwrap_or(false));
                    }
                    Err(_) => {
                        failures = failures.saturating_add(1);
                        let delay = backoff_ms(failures, js_sys::Math::random());
                        this.dispatch
                            .emit(Action::Conn(Conn::Reconnecting { retry_in_ms: delay }));
                        TimeoutFuture::new(delay).await;
                    }
                }
            }
        });
    }

    fn signed_in(&self, me: Me) {
        persist::forget_guest_name();
        self.chat.claim_outbox(&me.you.user);
        // Before `SignedIn`: the chat screen saves this list as soon as it has a
        // person, and must not save the empty one over what is remembered.
        self.dispatch
            .emit(Action::Closed(persist::load_closed(&me.you.user)));
        self.dispatch.emit(Action::SignedIn(me));
        self.chat.connect(None);
    }

    fn not_signed_in(&self, guests_allowed: bool) {
        self.dispatch.emit(Action::SignedOut {
            guests_allowed: Some(guests_allowed),
        });
        if guests_allowed && let Some(name) = persist::load_guest_name() {
            self.dispatch.emit(Action::JoiningAsGuest {
                name: name.clone(),
                resumed: true,
            });
            self.chat.connect(Some(name));
        }
    }

    /// Runs an account request for `form`, showing its failure there.
    fn submit(&self, form: AuthForm, request: impl Future<Output = Result<Me, Failure>> + 'static) {
        let this = self.clone();
        self.dispatch.emit(Action::AuthBusy(form));
        wasm_bindgen_futures::spawn_local(async move {
            match request.await {
                Ok(me) => this.signed_in(me),
                Err(failure) => this.failed(form, failure.into_api_error()),
            }
        });
    }

    fn failed(&self, form: AuthForm, error: ApiError) {
        self.dispatch
            .emit(Action::AuthFailed(AuthError::new(form, error)));
    }

    pub fn sign_in(&self, username: &str, password: &str) {
        let body = SignIn {
            username: username.trim().to_owned(),
            password: password.to_owned(),
        };
        if body.username.is_empty() || body.password.is_empty() {
            return self.failed(
                AuthForm::SignIn,
                ApiError::new("Enter your username and password."),
            );
        }
        self.submit(AuthForm::SignIn, async move { api::sign_in(&body).await });
    }

    pub fn sign_up(&self, username: &str, display_name: &str, password: &str) {
        match check_sign_up(username, display_name, password) {
            Ok(body) => {
                // An invite link's secret goes along; once it made the account, it
                // leaves the address.
                let body = SignUp {
                    invite: invites::invite_in_address(),
                    ..body
                };
                self.submit(AuthForm::SignUp, async move {
                    let signed_up = api::sign_up(&body).await;
                    if signed_up.is_ok() && body.invite.is_some() {
                        invites::forget_invite_in_address();
                    }
                    signed_up
                });
            }
            Err(error) => self.failed(AuthForm::SignUp, error),
        }
    }

    /// Joins without an account; the server welcomes or refuses the name.
    pub fn join_as_guest(&self, name: &str) {
        match DisplayName::parse(name) {
            Ok(name) => {
                self.dispatch.emit(Action::JoiningAsGuest {
                    name: name.as_str().to_owned(),
                    resumed: false,
                });
                self.chat.connect(Some(name.into_string()));
            }
            Err(e) => self.failed(AuthForm::Guest, ApiError::on("display_name", e.to_string())),
        }
    }

    /// Ends this session (or, for an account, every session of it) and shows the
    /// sign-in screen. The socket closes here; the server closes the account's other
    /// sockets with `SIGNED_OUT`.
    pub fn sign_out(&self, everywhere: bool) {
        if self.chat.is_guest() {
            // A guest has no server session: forgetting the name is signing out.
            persist::forget_guest_name();
            return self.signed_out();
        }
        let this = self.clone();
        wasm_bindgen_futures::spawn_local(async move {
            match api::sign_out(everywhere).await {
                // 401: already signed out (elsewhere, or it expired).
                Ok(()) | Err(Failure::Refused { status: 401, .. }) => this.signed_out(),
                Err(failure) => this.dispatch.emit(Action::Notice(format!(
                    "Could not sign out: {}",
                    failure.into_api_error().error
                ))),
            }
        });
    }

    fn signed_out(&self) {
        self.chat.disconnect();
        self.dispatch.emit(Action::SignedOut {
            guests_allowed: None,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_up_is_checked_field_by_field() {
        let field = |u: &str, d: &str, p: &str| check_sign_up(u, d, p).map_err(|e| e.field);
        assert_eq!(field("a", "", "long enough"), Err(Some("username".into())));
        assert_eq!(
            field("ada", "a\u{7}b", "long enough"),
            Err(Some("display_name".into()))
        );
        assert_eq!(field("ada", "", "short"), Err(Some("password".into())));
        let ok = check_sign_up(" Ada ", "  ", " spaced pass ").expect("valid");
        assert_eq!(ok.username, "ada");
        assert_eq!(ok.display_name, None, "blank means the username");
        assert_eq!(ok.password, " spaced pass ", "passwords are sent as typed");
        let named = check_sign_up("ada", " Ada Lovelace ", "long enough").expect("valid");
        assert_eq!(named.display_name.as_deref(), Some("Ada Lovelace"));
    }

    #[test]
    fn an_unreachable_server_reads_as_a_sentence() {
        let error = Failure::Unreachable.into_api_error();
        assert!(error.error.starts_with("Cannot reach the server"));
        assert_eq!(error.field, None);
    }
}
