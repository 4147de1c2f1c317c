//! The invite endpoints (`POST`/`GET /api/invites`, `DELETE /api/invites/{id}`) and
//! what the sign-up policy (`--sign-up`) asks of `/api/signup`.
//!
//! Invites are made, listed and revoked by signed-in administrators, and by members when
//! the server runs with `--members-invite`; a member sees and revokes only their own.
//! Like the other account endpoints: session cookie, Origin check on the requests that
//! change something, bodies of at most [`MAX_BODY_BYTES`].

use std::time::Duration;

use axum::{
    Json, Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{delete, get},
};
use confab_shared::api::{ApiError, CreatedInvite, Invites, NewInvite, SignUpPolicy};

use super::{
    AppState,
    account::{Failure, MAX_BODY_BYTES, blocking, check_origin, identify},
};
use crate::{
    accounts::User,
    invites::{self, InviteError},
    store::invites::InviteRefusal,
};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/invites", get(list).post(create))
        .route("/invites/{id}", delete(revoke))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
}

/// What a sign-up needs under the server's policy, checked before any password is
/// hashed: `Ok(None)` to go ahead without an invite, `Ok(Some(secret))` to go ahead
/// using that invite (taken for good in the transaction that creates the account), or
/// the refusal. Under `open` an invite is not needed and not used up.
pub(super) async fn sign_up_admission(
    state: &AppState,
    invite: Option<String>,
) -> Result<Option<String>, Failure> {
    match state.sign_up {
        SignUpPolicy::Open => Ok(None),
        SignUpPolicy::Closed => Err(Failure(
            StatusCode::FORBIDDEN,
            ApiError::new("This server is not taking new accounts. Ask its administrator for one."),
        )),
        SignUpPolicy::Invite => {
            let Some(token) = invite.filter(|t| !t.is_empty()) else {
                return Err(Failure(
                    StatusCode::FORBIDDEN,
                    ApiError::on(
                        "invite",
                        "New accounts on this server need an invite link. Ask someone here for one.",
                    ),
                ));
            };
            let check = token.clone();
            match blocking(&state.accounts, move |a| a.invite_refusal(&check)).await? {
                Some(why) => Err(refused(why)),
                None => Ok(Some(token)),
            }
        }
    }
}

/// The answer to a sign-up whose invite cannot be used.
pub(super) fn refused(why: InviteRefusal) -> Failure {
    let message = match why {
        InviteRefusal::Unknown => {
            "This invite link is not valid: it may be mistyped or revoked. Ask for a new one."
        }
        InviteRefusal::Expired => "This invite link has expired. Ask for a new one.",
        InviteRefusal::UsedUp => "This invite link has been used up. Ask for a new one.",
    };
    Failure(StatusCode::FORBIDDEN, ApiError::on("invite", message))
}

/// The signed-in person, if they may manage invites.
async fn inviter(headers: &HeaderMap, state: &AppState) -> Result<User, Failure> {
    let Ok(Some((user, _))) = identify(headers, state).await else {
        return Err(Failure(
            StatusCode::UNAUTHORIZED,
            ApiError::new("not signed in"),
        ));
    };
    if invites::may_invite(&user, state.members_invite) {
        Ok(user)
    } else {
        Err(Failure(
            StatusCode::FORBIDDEN,
            ApiError::new("Only administrators can make invite links on this server."),
        ))
    }
}

async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(form): Json<NewInvite>,
) -> Result<Response, Failure> {
    check_origin(&headers, &state)?;
    let user = inviter(&headers, &state).await?;
    let limits = state.invite_limits;
    let lifetime = form.expires_in_secs.map(Duration::from_secs);
    let (uses, lifetime) = invites::check_request(form.uses, lifetime, limits)
        .map_err(|e| Failure(StatusCode::BAD_REQUEST, ApiError::new(e.to_string())))?;
    let creator = user.clone();
    let made = tokio::task::spawn_blocking({
        let accounts = std::sync::Arc::clone(&state.accounts);
        move || accounts.create_invite(Some(&creator), uses, lifetime, limits)
    })
    .await;
    let (invite, token) = match made {
        Ok(Ok(made)) => made,
        Ok(Err(e @ InviteError::TooMany(_))) => {
            state.metrics.rate_limited(crate::metrics::Limit::Invites);
            return Err(Failure(
                StatusCode::TOO_MANY_REQUESTS,
                ApiError::new(e.to_string()),
            ));
        }
        Ok(Err(e @ InviteError::Invalid(_))) => {
            return Err(Failure(
                StatusCode::BAD_REQUEST,
                ApiError::new(e.to_string()),
            ));
        }
        Ok(Err(InviteError::Store(e))) => return Err(crate::accounts::AccountError::from(e).into()),
        Err(e) => {
            tracing::error!("invite task failed: {e}");
            return Err(Failure(
                StatusCode::INTERNAL_SERVER_ERROR,
                ApiError::new("the server could not do that; try again"),
            ));
        }
    };
    tracing::info!(user = %user.username, invite = invite.id, uses, "invite created");
    let created = CreatedInvite {
        invite,
        path: token.path(),
        token: token.as_str().to_owned(),
    };
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

async fn list(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<Invites>, Failure> {
    let user = inviter(&headers, &state).await?;
    let invites = blocking(&state.accounts, move |a| a.invites_for(&user)).await?;
    Ok(Json(Invites { invites }))
}

async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Result<StatusCode, Failure> {
    check_origin(&headers, &state)?;
    let user = inviter(&headers, &state).await?;
    let username = user.username.clone();
    if blocking(&state.accounts, move |a| a.revoke_invite(&user, id)).await? {
        tracing::info!(user = %username, invite = id, "invite revoked");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Failure(
            StatusCode::NOT_FOUND,
            ApiError::new("There is no such invite (it may have expired or been revoked)."),
        ))
    }
}
