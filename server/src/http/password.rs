//! Password change (`POST /api/password`) and signing out the other sessions
//! (`POST /api/signout-others`): what a person does when they suspect someone else knows
//! their password or holds one of their sessions.
//!
//! Both need the session cookie and pass the same Origin check and body limit as the other
//! account endpoints. A password change checks the current password under the sign-in
//! throttle (a stolen session must not become a way to guess it), refuses a new password
//! that breaks the sign-up rules or is a common one, and then ends every other session of
//! the person; their open sockets are closed with 4002 `signed out` through the hub, as a
//! sign-out closes them. The session that asked stays signed in.
//!
//! A password reset (`POST /api/password-reset`) needs no session: the secret of a link
//! an administrator made (`crate::admin::reset_link`) stands for the current password.
//! It works once, sets the new password (same rules), and ends every session of the
//! account, closing its sockets; the person then signs in with the new password.

use axum::{
    Json, Router,
    extract::{ConnectInfo, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
};
use confab_shared::{
    Password,
    api::{ApiError, ChangePassword, ResetPassword},
};

use super::{
    AppState,
    account::{
        Failure, MAX_BODY_BYTES, blocking, check_origin, hashing, identify, new_password, secure,
        signed_out_request, throttled_counted,
    },
    client_ip,
};
use crate::{
    accounts::{AccountError, User, session_key},
    hub::{Event, Sessions},
};

/// The routes, under [`confab_shared::api::PREFIX`].
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/password", post(change_password))
        .route("/signout-others", post(sign_out_others))
        .route("/password-reset", post(reset_password))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
}

/// The signed-in person and their session token, or 401.
async fn signed_in(headers: &HeaderMap, state: &AppState) -> Result<(User, String), Failure> {
    match identify(headers, state).await {
        Ok(Some(found)) => Ok(found),
        _ => Err(Failure(
            StatusCode::UNAUTHORIZED,
            ApiError::new("not signed in"),
        )),
    }
}

/// Closes the person's sockets of every session but `token`'s (the sessions are already
/// deleted).
async fn close_other_sockets(state: &AppState, user: User, token: &str) {
    state
        .hub
        .send(Event::SignedOut {
            username: user.username,
            sessions: Sessions::AllBut(session_key(token)),
            at: std::time::Instant::now(),
        })
        .await;
}

async fn change_password(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    Json(form): Json<ChangePassword>,
) -> Result<Response, Failure> {
    check_origin(&headers, &state)?;
    let (user, token) = signed_in(&headers, &state).await?;
    let new = new_password(&form.new_password, "new_password")?;
    let device = state
        .devices
        .of_request(&headers, secure(&headers, &state), &user.username);
    let ip = client_ip(peer, &headers, &state.trusted_proxies);
    let attempt = state
        .throttle
        .sign_in(ip, &user.username, device)
        .await
        .map_err(|wait| throttled_counted(&state, wait))?;
    tokio::time::sleep(attempt.delay).await;
    let wrong_current = || {
        Failure(
            StatusCode::BAD_REQUEST,
            ApiError::on("current_password", "that is not your current password"),
        )
    };
    let current = Password::parse(&form.current_password).map_err(|_| wrong_current())?;
    let (changer, keep) = (user.clone(), token.clone());
    let changed = hashing(&state.accounts, move |a| {
        match a.change_password(&changer, &current, &new, &keep) {
            Ok(()) => Ok(true),
            Err(AccountError::InvalidCredentials) => Ok(false),
            Err(e) => Err(e),
        }
    })
    .await?;
    if !changed {
        tracing::info!(%peer, user = %user.username, "password change refused: wrong current password");
        return Err(wrong_current());
    }
    state.throttle.succeeded(&attempt).await;
    tracing::info!(user = %user.username, "password changed; other sessions ended");
    close_other_sockets(&state, user, &token).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn sign_out_others(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    check_origin(&headers, &state)?;
    let (user, token) = signed_in(&headers, &state).await?;
    let (user_id, keep) = (user.id, token.clone());
    blocking(&state.accounts, move |a| a.sign_out_others(user_id, &keep)).await?;
    tracing::info!(user = %user.username, "other sessions ended");
    close_other_sockets(&state, user, &token).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn reset_password(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    Json(form): Json<ResetPassword>,
) -> Result<Response, Failure> {
    signed_out_request(&headers, peer, &state).await?;
    let new = new_password(&form.new_password, "new_password")?;
    let token = form.token;
    let used = hashing(&state.accounts, move |a| {
        crate::admin::use_reset(a, &token, &new).map_err(|e| match e {
            crate::admin::AdminError::Account(e) => e,
            // `use_reset` fails with nothing else.
            other => AccountError::Hash(other.to_string()),
        })
    })
    .await?;
    let Some(username) = used else {
        tracing::info!(%peer, "password reset refused: the link is not good");
        return Err(Failure(
            StatusCode::BAD_REQUEST,
            ApiError::new(
                "this password reset link has been used or has expired; ask an administrator for a new one",
            ),
        ));
    };
    tracing::info!(user = %username, "password reset with an administrator's link; sessions ended");
    state
        .hub
        .send(Event::SignedOut {
            username,
            sessions: Sessions::All,
            at: std::time::Instant::now(),
        })
        .await;
    Ok(StatusCode::NO_CONTENT.into_response())
}
