//! The account endpoints of [`confab_shared::api`] over HTTP (`fetch`): who am I, sign
//! in, sign up, sign out, change the password. A leaf: the session flow ([`crate::account`]) and the socket
//! service ([`crate::socket`], which asks `/api/me` when reconnecting keeps failing) both
//! use it, and it uses neither.

use confab_shared::api::{self, ApiError, ChangePassword, Me, SignIn, SignOut, SignUp};
use gloo_net::http::{Request, Response};
use serde::de::DeserializeOwned;

/// Why an account request failed.
#[derive(Debug)]
pub enum Failure {
    /// The server said no, with a status and why.
    Refused { status: u16, error: ApiError },
    /// No answer, or none this client understands (the server is down, or a proxy
    /// answered in its place).
    Unreachable,
}

impl Failure {
    pub fn into_api_error(self) -> ApiError {
        match self {
            Failure::Refused { error, .. } => error,
            Failure::Unreachable => {
                ApiError::new("Cannot reach the server. Check your connection and try again.")
            }
        }
    }
}

pub(crate) fn endpoint(name: &str) -> String {
    format!("{}/{name}", api::PREFIX)
}

/// Sends a request; any status but 2xx becomes [`Failure::Refused`] with the server's
/// [`ApiError`] (or one made from the status, when the body is not one).
pub(crate) async fn send(request: Result<Request, gloo_net::Error>) -> Result<Response, Failure> {
    let response = request
        .map_err(|_| Failure::Unreachable)?
        .send()
        .await
        .map_err(|_| Failure::Unreachable)?;
    if response.ok() {
        return Ok(response);
    }
    let status = response.status();
    let error = response.json::<ApiError>().await.unwrap_or_else(|_| {
        ApiError::new(format!(
            "The server refused ({status} {}).",
            response.status_text()
        ))
    });
    Err(Failure::Refused { status, error })
}

pub(crate) async fn json<T: DeserializeOwned>(response: Response) -> Result<T, Failure> {
    response.json().await.map_err(|_| Failure::Unreachable)
}

/// Who the session cookie belongs to; 401 when there is no session.
pub async fn me() -> Result<Me, Failure> {
    json(send(Request::get(&endpoint("me")).build()).await?).await
}

pub async fn sign_in(body: &SignIn) -> Result<Me, Failure> {
    json(send(Request::post(&endpoint("signin")).json(body)).await?).await
}

pub async fn sign_up(body: &SignUp) -> Result<Me, Failure> {
    json(send(Request::post(&endpoint("signup")).json(body)).await?).await
}

pub async fn sign_out(everywhere: bool) -> Result<(), Failure> {
    send(Request::post(&endpoint("signout")).json(&SignOut { everywhere }))
        .await
        .map(drop)
}

/// Changes the password; the server ends every other session of the account.
pub async fn change_password(body: &ChangePassword) -> Result<(), Failure> {
    send(Request::post(&endpoint("password")).json(body))
        .await
        .map(drop)
}

/// Ends every session of the account but this one.
pub async fn sign_out_others() -> Result<(), Failure> {
    send(Request::post(&endpoint("signout-others")).json(&serde_json::json!({})))
        .await
        .map(drop)
}
