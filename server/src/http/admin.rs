//! The admin page's endpoints, `/api/admin/…`: what `confab-server admin` does, for an
//! administrator signed in to the web client, plus removing a message from any room.
//! Plain JSON over HTTP (not socket messages): they are rare, each one answers one
//! person, and the chat protocol stays as small as it was. What everyone must see live
//! — a room deleted, a message removed, a disabled person's sockets closed — goes
//! through the hub all the same.
//!
//! Every request needs the session cookie of an administrator (401 without a session,
//! 403 for anyone else, checked before anything is read or changed), passes the same
//! Origin check as the account endpoints (a page on another site cannot act with an
//! administrator's cookie), and is written to the audit log when it changes something
//! (see [`crate::admin`]).

use axum::{
    Json, Router,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    routing::{get, post},
};
use confab_shared::api::{
    AdminDone, AdminRooms, AdminStats, AdminUsers, ApiError, AuditLog, RemoveMessage,
};
use serde::Deserialize;

use super::{
    AppState,
    account::{Failure, MAX_BODY_BYTES, check_origin, identify},
};
use crate::{
    accounts::{Accounts, User},
    admin::{self, Actor, AdminError},
    hub::Event,
};

/// The routes, under [`confab_shared::api::PREFIX`].
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/users", get(users))
        .route("/admin/users/{name}/{action}", post(user_action))
        .route("/admin/rooms", get(rooms))
        .route("/admin/rooms/{name}/delete", post(delete_room))
        .route("/admin/messages/remove", post(remove_message))
        .route("/admin/stats", get(stats))
        .route("/admin/audit", get(audit))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
}

impl From<AdminError> for Failure {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::NoSuchUser(_) | AdminError::NoSuchRoom(_) => {
                Failure(StatusCode::NOT_FOUND, ApiError::new(e.to_string()))
            }
            AdminError::Refused(why) => Failure(StatusCode::CONFLICT, ApiError::new(why)),
            AdminError::Account(e) => e.into(),
        }
    }
}

/// The administrator making the request, or the refusal.
async fn administrator(headers: &HeaderMap, state: &AppState) -> Result<User, Failure> {
    check_origin(headers, state)?;
    match identify(headers, state).await {
        Ok(Some((user, _))) if user.is_admin => Ok(user),
        Ok(Some(_)) => Err(Failure(
            StatusCode::FORBIDDEN,
            ApiError::new("only administrators can do that"),
        )),
        _ => Err(Failure(
            StatusCode::UNAUTHORIZED,
            ApiError::new("not signed in"),
        )),
    }
}

/// Runs an administrator's store work off the Tokio workers.
async fn blocking<T: Send + 'static>(
    state: &AppState,
    work: impl FnOnce(&Accounts) -> Result<T, AdminError> + Send + 'static,
) -> Result<T, Failure> {
    let accounts = std::sync::Arc::clone(&state.accounts);
    match tokio::task::spawn_blocking(move || work(&accounts)).await {
        Ok(result) => result.map_err(Failure::from),
        Err(e) => {
            tracing::error!("admin task failed: {e}");
            Err(Failure(
                StatusCode::INTERNAL_SERVER_ERROR,
                ApiError::new("the server could not do that; try again"),
            ))
        }
    }
}

#[derive(Debug, Deserialize)]
struct UserQuery {
    #[serde(default)]
    q: String,
}

async fn users(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<UserQuery>,
) -> Result<Json<AdminUsers>, Failure> {
    administrator(&headers, &state).await?;
    let users = blocking(&state, move |a| admin::users(a, &query.q)).await?;
    Ok(Json(AdminUsers { users }))
}

async fn user_action(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((name, action)): Path<(String, String)>,
) -> Result<Json<AdminDone>, Failure> {
    let me = administrator(&headers, &state).await?;
    let lifetime = state.password_reset_lifetime;
    let done = match action.as_str() {
        "disable" | "enable" => {
            let disabled = action == "disable";
            let name = blocking(&state, move |a| {
                admin::set_disabled(a, Actor::Admin(&me.username), &name, disabled)
            })
            .await?;
            if disabled {
                state
                    .hub
                    .send(Event::Disabled {
                        username: name.clone(),
                        at: std::time::Instant::now(),
                    })
                    .await;
                AdminDone {
                    done: format!("disabled {name}"),
                    link: None,
                }
            } else {
                AdminDone {
                    done: format!("enabled {name}"),
                    link: None,
                }
            }
        }
        "grant" | "revoke" => {
            let grant = action == "grant";
            let name = blocking(&state, move |a| {
                admin::set_admin(a, Actor::Admin(&me.username), &name, grant)
            })
            .await?;
            AdminDone {
                done: if grant {
                    format!("{name} is an administrator")
                } else {
                    format!("{name} is no longer an administrator")
                },
                link: None,
            }
        }
        "reset-password" => {
            let link = blocking(&state, move |a| {
                admin::reset_link(a, Actor::Admin(&me.username), &name, lifetime)
            })
            .await?;
            AdminDone {
                done: format!(
                    "a password reset link for {}, good once for {}",
                    link.username,
                    crate::invites::describe(lifetime)
                ),
                link: Some(link.path),
            }
        }
        _ => {
            return Err(Failure(
                StatusCode::NOT_FOUND,
                ApiError::new(format!("no such action: {action}")),
            ));
        }
    };
    Ok(Json(done))
}

async fn rooms(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<AdminRooms>, Failure> {
    administrator(&headers, &state).await?;
    let rooms = blocking(&state, admin::rooms).await?;
    Ok(Json(AdminRooms { rooms }))
}

/// What the hub answered to an administrator's deletion.
async fn hub_answer(
    answer: tokio::sync::oneshot::Receiver<Result<(), String>>,
) -> Result<(), Failure> {
    match answer.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(why)) => Err(Failure(StatusCode::CONFLICT, ApiError::new(why))),
        Err(_) => Err(Failure(
            StatusCode::SERVICE_UNAVAILABLE,
            ApiError::new("the server is stopping"),
        )),
    }
}

async fn delete_room(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(room): Path<String>,
) -> Result<Json<AdminDone>, Failure> {
    let me = administrator(&headers, &state).await?;
    let (reply, answer) = tokio::sync::oneshot::channel();
    state
        .hub
        .send(Event::AdminDeleteRoom {
            room: room.clone(),
            reply,
        })
        .await;
    hub_answer(answer).await?;
    let target = room.clone();
    blocking(&state, move |a| {
        admin::record(a, Actor::Admin(&me.username), "delete-room", &target, "")
    })
    .await?;
    Ok(Json(AdminDone {
        done: format!("deleted room {room}"),
        link: None,
    }))
}

async fn remove_message(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(form): Json<RemoveMessage>,
) -> Result<Json<AdminDone>, Failure> {
    let me = administrator(&headers, &state).await?;
    let (reply, answer) = tokio::sync::oneshot::channel();
    state
        .hub
        .send(Event::AdminRemoveMessage {
            room: form.room.clone(),
            seq: form.seq,
            by: me.username.clone(),
            reply,
        })
        .await;
    hub_answer(answer).await?;
    let (room, seq) = (form.room.clone(), form.seq);
    blocking(&state, move |a| {
        admin::record(
            a,
            Actor::Admin(&me.username),
            "remove-message",
            &room,
            &format!("message {seq}"),
        )
    })
    .await?;
    Ok(Json(AdminDone {
        done: format!("removed message {} of {}", form.seq, form.room),
        link: None,
    }))
}

async fn stats(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<AdminStats>, Failure> {
    administrator(&headers, &state).await?;
    Ok(Json(blocking(&state, admin::stats).await?))
}

async fn audit(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<AuditLog>, Failure> {
    administrator(&headers, &state).await?;
    let entries = blocking(&state, admin::audit).await?;
    Ok(Json(AuditLog { entries }))
}
