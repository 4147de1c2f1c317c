//! The account endpoints (`/api/signup`, `/api/signin`, `/api/signout`, `/api/me`) and
//! the session cookie they set, which the WebSocket upgrade then checks.
//!
//! - The cookie is `HttpOnly` (page scripts, and so injected scripts, cannot read it),
//!   `SameSite=Strict` (other sites' pages cannot make the browser send it), and
//!   `Secure` when the page was served over TLS.
//! - State-changing requests from a page on another origin are refused, as the socket
//!   refuses them: SameSite does not cover sibling subdomains, the Origin check does.
//! - Sign-in attempts are throttled per address, per (username, address or known
//!   device) and slowed per username ([`super::throttle`]), and every failure reads the
//!   same.

use std::{sync::Arc, time::Duration};

use axum::{
    Json, Router,
    extract::{ConnectInfo, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use confab_shared::{
    DisplayName, Password, Person, Username,
    api::{ApiError, Me, SECURE_SESSION_COOKIE, SESSION_COOKIE, SignIn, SignOut, SignUp},
};
use cookie::{Cookie, SameSite};

use super::{AppState, client_ip, origin_allowed};
use crate::{
    accounts::{
        AccountError, Accounts, SESSION_TTL, SessionToken, User, common_passwords, session_key,
    },
    hub::{Event, Identity, Sessions},
    metrics::{AuthRefusal, Limit},
};

/// Largest request body the account endpoints read. Their largest request, a sign-up at
/// the longest username, display name and password, is under 1.5 KiB; axum's default
/// (2 MB) would let each request make the server buffer and parse a thousand times that.
/// Larger bodies are refused with 413 before they are read whole.
pub const MAX_BODY_BYTES: usize = 4 * 1024;

/// The account endpoints, under [`confab_shared::api::PREFIX`].
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/signup", post(sign_up))
        .route("/signin", post(sign_in))
        .route("/signout", post(sign_out))
        .route("/me", get(whoami))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
}

/// An error answer: a status and the [`ApiError`] body clients show.
pub(super) struct Failure(pub(super) StatusCode, pub(super) ApiError);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let Failure(status, body) = self;
        let retry = body.retry_after_secs;
        let mut resp = (status, Json(body)).into_response();
        if let Some(secs) = retry {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

impl From<AccountError> for Failure {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::UsernameTaken => Failure(
                StatusCode::CONFLICT,
                ApiError::on("username", "that username is taken"),
            ),
            AccountError::InvalidCredentials => invalid_credentials(),
            AccountError::Disabled => Failure(
                StatusCode::FORBIDDEN,
                ApiError::new("this account is disabled; ask an administrator"),
            ),
            AccountError::InviteRefused(why) => super::invites::refused(why),
            AccountError::Hash(_) | AccountError::Store(_) => {
                tracing::error!("account request failed: {e}");
                Failure(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ApiError::new("the server could not do that; try again"),
                )
            }
        }
    }
}

fn invalid_credentials() -> Failure {
    Failure(
        StatusCode::UNAUTHORIZED,
        ApiError::new("wrong username or password"),
    )
}

pub(super) fn throttled(wait: Duration) -> Failure {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    Failure(
        StatusCode::TOO_MANY_REQUESTS,
        ApiError {
            retry_after_secs: Some(secs.max(1)),
            ..ApiError::new("too many attempts; wait a little and try again")
        },
    )
}

/// [`throttled`], counted for `/metrics`.
pub(super) fn throttled_counted(state: &AppState, wait: Duration) -> Failure {
    state.metrics.rate_limited(Limit::SignIn);
    throttled(wait)
}

/// The door of a request made without a session (signing up, using a reset link):
/// from this site's pages only, and under the per-address sign-in limit.
pub(super) async fn signed_out_request(
    headers: &HeaderMap,
    peer: std::net::SocketAddr,
    state: &AppState,
) -> Result<(), Failure> {
    check_origin(headers, state)?;
    let ip = client_ip(peer, headers, &state.trusted_proxies);
    state
        .throttle
        .per_address(ip)
        .await
        .map_err(|wait| throttled_counted(state, wait))
}

/// Refuses a state-changing request from a page on another site.
pub(super) fn check_origin(headers: &HeaderMap, state: &AppState) -> Result<(), Failure> {
    if origin_allowed(headers, &state.allowed_origins) {
        Ok(())
    } else {
        state.metrics.auth_refused(AuthRefusal::ForeignOrigin);
        Err(Failure(
            StatusCode::FORBIDDEN,
            ApiError::new("origin not allowed"),
        ))
    }
}

/// Runs blocking account work (Argon2, SQLite) off the async workers.
/// Password hashes (Argon2id: 19 MiB and a few tens of milliseconds of one core each) run
/// on a pool of their own, one thread per core, and only that many at once. Without a
/// bound, a thousand sign-in attempts in flight would take a thousand blocking threads and
/// 19 GiB, and a real person's sign-in would wait behind all of them for CPU. A pool of its
/// own rather than tokio's blocking threads also keeps the memory of past hashes to one
/// allocator arena per core: each new blocking thread would keep its own 19 MiB. Waiting
/// attempts hold no thread and no memory. Session lookups (socket upgrades, `/api/me`) are
/// plain reads on tokio's blocking threads, so they never queue behind hashing.
struct Hashers {
    /// One place per hashing thread: at most this many jobs are queued or running.
    places: tokio::sync::Semaphore,
    jobs: std::sync::Mutex<std::sync::mpsc::Sender<Box<dyn FnOnce() + Send>>>,
}

static HASHERS: std::sync::LazyLock<Hashers> = std::sync::LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let (jobs, queue) = std::sync::mpsc::channel::<Box<dyn FnOnce() + Send>>();
    let queue = Arc::new(std::sync::Mutex::new(queue));
    for n in 0..cores {
        let queue = Arc::clone(&queue);
        let spawned = std::thread::Builder::new()
            .name(format!("hasher-{n}"))
            .spawn(move || {
                loop {
                    // Poisoning needs a panic while holding the lock, and `recv` does not
                    // panic; take the queue either way.
                    let job = queue.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    match job {
                        Ok(job) => job(),
                        Err(_) => break,
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!("cannot start a password hashing thread: {e}");
        }
    }
    Hashers {
        places: tokio::sync::Semaphore::new(cores),
        jobs: std::sync::Mutex::new(jobs),
    }
});

/// Runs account work that hashes a password on the hashing pool (see [`Hashers`]).
pub(super) async fn hashing<T: Send + 'static>(
    accounts: &Arc<Accounts>,
    work: impl FnOnce(&Accounts) -> Result<T, AccountError> + Send + 'static,
) -> Result<T, Failure> {
    let failed = || {
        Failure(
            StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::new("the server could not do that; try again"),
        )
    };
    // The semaphore is never closed, so acquiring cannot fail.
    let _place = HASHERS.places.acquire().await.map_err(|_| failed())?;
    let (done, result) = tokio::sync::oneshot::channel();
    let accounts = Arc::clone(accounts);
    let job: Box<dyn FnOnce() + Send> = Box::new(move || {
        let _ = done.send(work(&accounts));
    });
    let queued = HASHERS
        .jobs
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send(job);
    if queued.is_err() {
        tracing::error!("the password hashing threads are gone");
        return Err(failed());
    }
    match result.await {
        Ok(result) => result.map_err(Failure::from),
        Err(_) => {
            tracing::error!("a password hashing job was dropped (the thread panicked?)");
            Err(failed())
        }
    }
}

pub(super) async fn blocking<T: Send + 'static>(
    accounts: &Arc<Accounts>,
    work: impl FnOnce(&Accounts) -> Result<T, AccountError> + Send + 'static,
) -> Result<T, Failure> {
    let accounts = Arc::clone(accounts);
    match tokio::task::spawn_blocking(move || work(&accounts)).await {
        Ok(result) => result.map_err(Failure::from),
        Err(e) => {
            tracing::error!("account task failed: {e}");
            Err(Failure(
                StatusCode::INTERNAL_SERVER_ERROR,
                ApiError::new("the server could not do that; try again"),
            ))
        }
    }
}

fn me(user: &User, state: &AppState) -> Me {
    Me {
        you: Person {
            user: user.username.clone(),
            name: user.display_name.clone(),
            guest: false,
        },
        admin: user.is_admin,
        guests_allowed: state.allow_guests,
        sign_up: state.sign_up,
        can_invite: crate::invites::may_invite(user, state.members_invite),
    }
}

/// Whether the page came over TLS (the server serves it with `--tls-cert`, a proxy says
/// so, or the operator does with `--secure-cookies`; the first and last set
/// `secure_cookies`): then the session cookie is `Secure` and `__Host-` named.
pub(super) fn secure(headers: &HeaderMap, state: &AppState) -> bool {
    state.secure_cookies
        || headers
            .get("x-forwarded-proto")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
}

/// The session cookie's name for this request (see [`SECURE_SESSION_COOKIE`]).
fn cookie_name(headers: &HeaderMap, state: &AppState) -> &'static str {
    if secure(headers, state) {
        SECURE_SESSION_COOKIE
    } else {
        SESSION_COOKIE
    }
}

/// The `Set-Cookie` value for a new session, or (`None`) one that deletes it.
fn session_cookie(token: Option<&SessionToken>, headers: &HeaderMap, state: &AppState) -> String {
    let secure = secure(headers, state);
    let max_age = if token.is_some() {
        cookie::time::Duration::seconds(i64::try_from(SESSION_TTL.as_secs()).unwrap_or(i64::MAX))
    } else {
        cookie::time::Duration::ZERO
    };
    Cookie::build((
        cookie_name(headers, state),
        token.map_or("", SessionToken::as_str),
    ))
    .http_only(true)
    .same_site(SameSite::Strict)
    .secure(secure)
    .path("/")
    .max_age(max_age)
    .build()
    .to_string()
}

pub(super) fn with_cookie(mut resp: Response, cookie: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, value);
    }
    resp
}

/// The session token the request carries, if any: only in the cookie of this request's
/// name, so over TLS a plain `confab_session` someone planted is ignored.
pub(super) fn session_token(headers: &HeaderMap, state: &AppState) -> Option<String> {
    let name = cookie_name(headers, state);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name && !c.value().is_empty())
        .map(|c| c.value().to_owned())
}

/// Who the request's cookie signs in: `Ok(None)` without a cookie, `Err` with a
/// cookie that is not (or no longer) a session.
pub(super) async fn identify(
    headers: &HeaderMap,
    state: &AppState,
) -> Result<Option<(User, String)>, ()> {
    let Some(token) = session_token(headers, state) else {
        return Ok(None);
    };
    let lookup = token.clone();
    match blocking(&state.accounts, move |a| a.authenticate(&lookup)).await {
        Ok(Some(user)) => Ok(Some((user, token))),
        Ok(None) | Err(_) => Err(()),
    }
}

/// The identity a socket upgrade gets: the cookie's user, a guest when guests are
/// allowed and there is no cookie, else refused with 401.
pub(super) async fn socket_identity(headers: &HeaderMap, state: &AppState) -> Option<Identity> {
    // Taken before the lookup: a session found valid was valid at this instant or later.
    let checked_at = std::time::Instant::now();
    match identify(headers, state).await {
        Ok(Some((user, token))) => Some(Identity::User {
            username: user.username,
            display_name: user.display_name,
            admin: user.is_admin,
            session: session_key(&token),
            checked_at,
        }),
        Ok(None) if state.allow_guests => Some(Identity::Guest),
        Ok(None) | Err(()) => None,
    }
}

async fn sign_up(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    Json(form): Json<SignUp>,
) -> Result<Response, Failure> {
    signed_out_request(&headers, peer, &state).await?;
    let refused = |f: &Failure| {
        if f.0 == StatusCode::FORBIDDEN {
            state.metrics.auth_refused(AuthRefusal::SignUpRefused);
        }
    };
    let invite = super::invites::sign_up_admission(&state, form.invite.clone())
        .await
        .inspect_err(refused)?;
    let username = Username::parse(&form.username).map_err(|e| {
        Failure(
            StatusCode::BAD_REQUEST,
            ApiError::on("username", e.to_string()),
        )
    })?;
    let password = new_password(&form.password, "password")?;
    let display = match form.display_name.as_deref().map(str::trim) {
        Some(name) if !name.is_empty() => name,
        _ => username.as_str(),
    };
    let display_name = DisplayName::parse(display).map_err(|e| {
        Failure(
            StatusCode::BAD_REQUEST,
            ApiError::on("display_name", e.to_string()),
        )
    })?;
    let (user, token) = hashing(&state.accounts, move |a| {
        let user = match &invite {
            Some(invite) => a.sign_up_invited(&username, &display_name, &password, invite)?,
            None => a.sign_up(&username, &display_name, &password, false)?,
        };
        let token = a.start_session(user.id)?;
        Ok((user, token))
    })
    .await
    .inspect_err(refused)?;
    state.metrics.sign_ups.increment(1);
    tracing::info!(user = %user.username, "account created");
    state
        .hub
        .send(Event::UserAdded {
            username: user.username.clone(),
            display_name: user.display_name.clone(),
        })
        .await;
    let cookie = session_cookie(Some(&token), &headers, &state);
    let resp = (StatusCode::CREATED, Json(me(&user, &state))).into_response();
    Ok(known_device(
        with_cookie(resp, &cookie),
        &user.username,
        None,
        &headers,
        &state,
    ))
}

async fn sign_in(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    Json(form): Json<SignIn>,
) -> Result<Response, Failure> {
    check_origin(&headers, &state)?;
    // A username that cannot exist is throttled under (a bounded prefix of) its raw
    // spelling, and fails like a wrong password.
    let username = Username::parse(&form.username);
    let key = username.as_ref().map_or_else(
        |_| {
            form.username
                .chars()
                .take(64)
                .collect::<String>()
                .to_lowercase()
        },
        |u| u.as_str().to_owned(),
    );
    let device = state
        .devices
        .of_request(&headers, secure(&headers, &state), &key);
    let ip = client_ip(peer, &headers, &state.trusted_proxies);
    let attempt = state
        .throttle
        .sign_in(ip, &key, device)
        .await
        .map_err(|wait| throttled_counted(&state, wait))?;
    // Slowed, not refused: see `throttle`. Waiting holds no hashing place.
    tokio::time::sleep(attempt.delay).await;
    let (Ok(username), Ok(password)) = (username, Password::parse(&form.password)) else {
        // Logged like any other refusal, so whoever watches the log sees every attempt.
        tracing::info!(%peer, user = %crate::logsafe::text(&key), "sign-in refused");
        state.metrics.auth_refused(AuthRefusal::BadCredentials);
        return Err(invalid_credentials());
    };
    let (user, token) = hashing(&state.accounts, move |a| a.sign_in(&username, &password))
        .await
        .inspect_err(|f| {
            tracing::info!(%peer, user = %crate::logsafe::text(&key), "sign-in refused");
            if f.0 == StatusCode::UNAUTHORIZED {
                state.metrics.auth_refused(AuthRefusal::BadCredentials);
            }
        })?;
    state.throttle.succeeded(&attempt).await;
    state.metrics.sign_ins.increment(1);
    let cookie = session_cookie(Some(&token), &headers, &state);
    Ok(known_device(
        with_cookie(Json(me(&user, &state)).into_response(), &cookie),
        &user.username,
        device,
        &headers,
        &state,
    ))
}

/// Checks a new password against the rules (length, not a common one); `field` names the
/// form field an error is shown under.
pub(super) fn new_password(raw: &str, field: &str) -> Result<Password, Failure> {
    let password = Password::parse(raw)
        .map_err(|e| Failure(StatusCode::BAD_REQUEST, ApiError::on(field, e.to_string())))?;
    if common_passwords::is_common(password.as_str()) {
        return Err(Failure(
            StatusCode::BAD_REQUEST,
            ApiError::on(field, common_passwords::REFUSAL),
        ));
    }
    Ok(password)
}

/// Adds the device cookie that makes this browser a known device of `username` (see
/// [`super::device`]), renewing the one it has.
fn known_device(
    mut resp: Response,
    username: &str,
    known: Option<super::device::DeviceId>,
    headers: &HeaderMap,
    state: &AppState,
) -> Response {
    let cookie = state
        .devices
        .set_cookie(username, known, secure(headers, state));
    if let Some(value) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        resp.headers_mut().append(header::SET_COOKIE, value);
    }
    resp
}

async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Option<Json<SignOut>>,
) -> Result<Response, Failure> {
    check_origin(&headers, &state)?;
    let everywhere = form.is_some_and(|Json(f)| f.everywhere);
    if let Ok(Some((user, token))) = identify(&headers, &state).await {
        let key = session_key(&token);
        let user_id = user.id;
        blocking(&state.accounts, move |a| {
            if everywhere {
                a.sign_out_everywhere(user_id)
            } else {
                a.sign_out(&token)
            }
        })
        .await?;
        state
            .hub
            .send(Event::SignedOut {
                username: user.username,
                sessions: if everywhere {
                    Sessions::All
                } else {
                    Sessions::One(key)
                },
                at: std::time::Instant::now(),
            })
            .await;
    }
    let cookie = session_cookie(None, &headers, &state);
    Ok(with_cookie(StatusCode::NO_CONTENT.into_response(), &cookie))
}

async fn whoami(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<Me>, Failure> {
    match identify(&headers, &state).await {
        Ok(Some((user, _))) => Ok(Json(me(&user, &state))),
        _ => Err(Failure(
            StatusCode::UNAUTHORIZED,
            ApiError {
                guests_allowed: Some(state.allow_guests),
                sign_up: Some(state.sign_up),
                ..ApiError::new("not signed in")
            },
        )),
    }
}
