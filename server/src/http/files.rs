//! The file endpoints: `POST /api/files?room=&name=` (an upload, streamed to disk),
//! `GET /api/files/{id}` and `GET /api/files/{id}/thumb` (downloads). What is kept
//! where (on this node's disk, or in PostgreSQL with a cache here), and the locks that
//! order it against the sweep, is [`crate::files`].
//!
//! An upload is never whole in memory: its body is read chunk by chunk into a temporary
//! file while its SHA-256 is computed, and refused the moment it passes a limit (from
//! its `Content-Length` before a byte is read, when it declares one). A [`TempFiles`]
//! guard removes the temporary files on every way out that does not keep them,
//! including the client going away (the handler's future is then dropped, and the
//! guard with it).
//!
//! A download checks the room's rule on every request, and everything it cannot serve
//! (no such id, a room the person may not see, a missing file) gets the one answer of
//! [`not_found`], so that probing ids tells nothing. The file is served by tower-http's
//! `ServeFile` (ranges, `ETag`, conditional requests), then labelled by us: the type
//! sniffed from its bytes, `nosniff`, a sandboxing CSP, and `inline` only for the
//! images the server decoded.

use std::sync::Arc;

use axum::{
    Json, Router,
    body::Body,
    extract::{Path, Query, Request, State, rejection::QueryRejection},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use confab_shared::{RoomName, api::ApiError};
use futures_util::StreamExt;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tower::ServiceExt;
use tower_http::services::ServeFile;

use super::{
    AppState,
    account::{Failure, check_origin, identify},
};
use crate::{
    files::{self, Files, Received, Refusal, name, preview, sniff},
    hub::now_ms,
    store::files::{Blob, RoomAccess},
};

/// How long a browser may keep a download without asking again. The bytes under an id
/// never change; a day bounds how long a copy outlives the person's access to the room.
const CACHE_CONTROL: &str = "private, max-age=86400, immutable";
/// What a download may do if a browser renders it anyway: nothing (no script, no
/// loads, no forms, an opaque origin).
const SANDBOX: &str = "sandbox; default-src 'none'";
/// Bytes buffered before a write to the temporary file.
const WRITE_BUFFER: usize = 256 * 1024;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/files", post(counted_upload))
        .route("/files/{id}", get(download))
        .route("/files/{id}/thumb", get(thumbnail))
}

#[derive(Debug, Deserialize)]
struct UploadQuery {
    room: String,
    #[serde(default)]
    name: String,
}

/// Removes the temporary files of an upload when dropped, whatever became of it. After
/// a successful keep they have been renamed away (or are still there, for content that
/// was stored already), so removing what is left is always right.
struct TempFiles {
    file: std::path::PathBuf,
    thumb: std::path::PathBuf,
}

impl Drop for TempFiles {
    fn drop(&mut self) {
        for path in [&self.file, &self.thumb] {
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!("cannot remove {}: {e}", path.display()),
            }
        }
    }
}

fn failed() -> Failure {
    Failure(
        StatusCode::INTERNAL_SERVER_ERROR,
        ApiError::new("The server could not store this file. Try again."),
    )
}

/// Runs blocking file work (SQLite, PostgreSQL's synchronous client, the file system,
/// decoding) off the async workers.
async fn blocking<T: Send + 'static>(
    files: &Arc<Files>,
    work: impl FnOnce(&Files) -> Result<T, Refusal> + Send + 'static,
) -> Result<T, Refusal> {
    let files = Arc::clone(files);
    tokio::task::spawn_blocking(move || work(&files))
        .await
        .unwrap_or_else(|e| Err(Refusal::Io(std::io::Error::other(e.to_string()))))
}

/// Sizes as people read them: "25 MiB", "1.5 GiB", "900 bytes".
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    let shown = format!("{value:.1}");
    let shown = shown.strip_suffix(".0").unwrap_or(&shown);
    format!("{shown} {}", UNITS[unit])
}

impl From<Refusal> for Failure {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::OverBudget { retry_after } => {
                let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
                Failure(
                    StatusCode::TOO_MANY_REQUESTS,
                    ApiError {
                        retry_after_secs: Some(secs.max(1)),
                        ..ApiError::new(format!(
                            "You have uploaded as much as you may in a day. You can upload \
                             this file in {}.",
                            human_wait(secs)
                        ))
                    },
                )
            }
            Refusal::StoreFull => Failure(
                StatusCode::INSUFFICIENT_STORAGE,
                ApiError::new(
                    "The server has no room for more files. Ask its administrator to make room.",
                ),
            ),
            Refusal::Store(e) => {
                tracing::error!("upload failed: {e}");
                failed()
            }
            Refusal::Io(e) => {
                tracing::error!("upload failed: {e}");
                failed()
            }
        }
    }
}

fn human_wait(secs: u64) -> String {
    match secs {
        0..=89 => "a minute".to_owned(),
        90..=5_399 => format!("{} minutes", secs.div_ceil(60)),
        _ => format!("{} hours", secs.div_ceil(3_600)),
    }
}

fn too_large(max: u64) -> Failure {
    Failure(
        StatusCode::PAYLOAD_TOO_LARGE,
        ApiError::new(format!(
            "This file is too large: the server takes files of up to {}.",
            human_size(max)
        )),
    )
}

/// `POST /api/files?room=R&name=N`: see the module documentation and `docs/PROTOCOL.md`.
/// [`upload`], its refusals for the daily budget counted for `/metrics`.
async fn counted_upload(
    State(state): State<AppState>,
    query: Result<Query<UploadQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Failure> {
    let metrics = Arc::clone(&state.metrics);
    let result = upload(State(state), query, headers, body).await;
    if matches!(&result, Err(Failure(StatusCode::TOO_MANY_REQUESTS, _))) {
        metrics.rate_limited(crate::metrics::Limit::Uploads);
    }
    result
}

async fn upload(
    State(state): State<AppState>,
    query: Result<Query<UploadQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Failure> {
    check_origin(&headers, &state)?;
    let Ok(Some((user, _))) = identify(&headers, &state).await else {
        return Err(Failure(
            StatusCode::UNAUTHORIZED,
            ApiError::new("Sign in to share files."),
        ));
    };
    let no_room = || {
        Failure(
            StatusCode::NOT_FOUND,
            ApiError::new("There is no such room to share this file in."),
        )
    };
    let Ok(Query(query)) = query else {
        return Err(no_room());
    };
    let room = RoomName::parse(&query.room).map_err(|_| no_room())?;
    let files = Arc::clone(&state.files);
    let limits = files.limits;
    let username = user.username;
    {
        let (room, who) = (room.to_string(), username.clone());
        let access = blocking(&files, move |f| Ok(f.room_access(&room, Some(&who))?)).await?;
        if !matches!(
            access,
            RoomAccess::Public | RoomAccess::Members { member: true }
        ) {
            return Err(no_room());
        }
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_file_bytes) {
        return Err(too_large(limits.max_file_bytes));
    }
    // With a declared size, every limit is checked before a byte is read; without one,
    // an empty file must fit (someone already over the budget is refused at once), and
    // the stream is checked as it comes.
    let at_least = declared.unwrap_or(0);
    {
        let who = username.clone();
        blocking(&files, move |f| {
            f.check_budget(&who, at_least.max(1), now_ms())?;
            f.check_room(at_least)
        })
        .await?;
    }
    let temp = TempFiles {
        file: files.temp_path(),
        thumb: files.temp_path(),
    };
    let (hash, size, head) = receive(&files, &temp, &username, body).await?;
    let mime = sniff::sniff(&head);
    let known = {
        let hash = hash.clone();
        blocking(&files, move |f| Ok(f.known_blob(&hash)?)).await?
    };
    // Stored already: its preview too. Else decode it, a few at a time.
    let image = if known.is_none() && sniff::is_previewable(&mime) {
        let _turn = files.previews.acquire().await;
        let (path, thumb, mime) = (temp.file.clone(), temp.thumb.clone(), mime.clone());
        let bounds = files.limits.preview;
        blocking(&files, move |_| {
            let Some(made) = preview::make(&path, &mime, bounds) else {
                return Ok(None);
            };
            files::write_synced(&thumb, &made.thumb)?;
            Ok(Some(made.size))
        })
        .await?
    } else {
        None
    };
    let name = name::clean(&query.name);
    let (tmp, thumb) = (temp.file.clone(), temp.thumb.clone());
    let attachment = blocking(&files, move |f| {
        f.keep(
            Received {
                tmp: &tmp,
                thumb: image.is_some().then_some(thumb.as_path()),
                blob: Blob {
                    hash,
                    size,
                    mime,
                    image,
                },
                room: room.as_str(),
                uploader: &username,
                name: &name,
            },
            now_ms(),
        )
    })
    .await?;
    drop(temp);
    Ok((StatusCode::CREATED, Json(attachment)).into_response())
}

/// Streams `body` into the temporary file, hashing it and keeping its first bytes for
/// sniffing; refuses as soon as it passes the size limit, the uploader's budget or the
/// store's room. The file is fsynced before this returns.
async fn receive(
    files: &Arc<Files>,
    temp: &TempFiles,
    username: &str,
    body: Body,
) -> Result<(String, u64, Vec<u8>), Failure> {
    let limits = files.limits;
    let file = tokio::fs::File::create(&temp.file)
        .await
        .map_err(Refusal::from)?;
    let mut out = tokio::io::BufWriter::with_capacity(WRITE_BUFFER, file);
    let mut hasher = Sha256::new();
    let mut head = Vec::with_capacity(sniff::HEAD_BYTES);
    let mut size = 0u64;
    // Where the limits stand now; checked again, exactly, when the file is kept.
    let mut checked = 0u64;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            tracing::debug!("upload interrupted: {e}");
            Failure(
                StatusCode::BAD_REQUEST,
                ApiError::new("The upload was interrupted. Try again."),
            )
        })?;
        size += chunk.len() as u64;
        if size > limits.max_file_bytes {
            return Err(too_large(limits.max_file_bytes));
        }
        // Ask the store again every 1 MiB: the budget and the room are not per chunk.
        if size >= checked + 1024 * 1024 {
            checked = size;
            let who = username.to_owned();
            blocking(files, move |f| {
                f.check_budget(&who, size, now_ms())?;
                f.check_room(size)
            })
            .await?;
        }
        hasher.update(&chunk);
        if head.len() < sniff::HEAD_BYTES {
            let take = (sniff::HEAD_BYTES - head.len()).min(chunk.len());
            head.extend_from_slice(&chunk[..take]);
        }
        out.write_all(&chunk).await.map_err(Refusal::from)?;
    }
    out.flush().await.map_err(Refusal::from)?;
    out.into_inner().sync_all().await.map_err(Refusal::from)?;
    let hash = data_encoding::HEXLOWER.encode(&hasher.finalize());
    Ok((hash, size, head))
}

/// The one answer for every download that cannot be served.
fn not_found() -> Response {
    Failure(
        StatusCode::NOT_FOUND,
        ApiError::new("There is no such file."),
    )
    .into_response()
}

async fn download(State(state): State<AppState>, Path(id): Path<String>, req: Request) -> Response {
    serve(state, id, req, false).await
}

async fn thumbnail(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    serve(state, id, req, true).await
}

/// Serves upload `id` (or its preview) to whoever may see its room; [`not_found`] to
/// everyone else.
async fn serve(state: AppState, id: String, req: Request, thumb: bool) -> Response {
    if !files::is_upload_id(&id) {
        return not_found();
    }
    // A cookie that is no (longer a) session counts as none: a guest, where guests may
    // come in.
    let who = match identify(req.headers(), &state).await {
        Ok(Some((user, _))) => Some(user.username),
        _ => None,
    };
    let files = Arc::clone(&state.files);
    let found = {
        let who = who.clone();
        blocking(&files, move |f| Ok(f.lookup(&id, who.as_deref())?)).await
    };
    let (upload, access) = match found {
        Ok(Some(found)) => found,
        Ok(None) => return not_found(),
        Err(e) => {
            tracing::error!("download failed: {e}");
            return failed().into_response();
        }
    };
    let visible = match access {
        RoomAccess::Public => who.is_some() || state.allow_guests,
        RoomAccess::Members { member } => member,
        RoomAccess::Missing => false,
    };
    if !visible {
        return not_found();
    }
    let blob = &upload.blob;
    let inline = blob.image.is_some();
    if thumb && !inline {
        return not_found();
    }
    let mime = if thumb {
        "image/png"
    } else {
        blob.mime.as_str()
    };
    // In a cluster the bytes may have to come from the database into this node's cache
    // first: only once the person may see them.
    let local = match files.on_disk(blob, thumb) {
        Some(path) => Ok(Some(path)),
        None => {
            let blob = blob.clone();
            blocking(&files, move |f| Ok(f.local(&blob, thumb)?)).await
        }
    };
    let path = match local {
        Ok(Some(path)) => path,
        // Swept since the lookup.
        Ok(None) => return not_found(),
        Err(e) => {
            tracing::error!("download failed: {e}");
            return failed().into_response();
        }
    };
    let served = ServeFile::new(path).oneshot(req).await;
    let mut resp = match served {
        Ok(resp) => resp.map(Body::new),
        Err(never) => match never {},
    };
    if resp.status() == StatusCode::NOT_FOUND {
        // A row whose file is gone (a disk mishap): not worth telling apart.
        tracing::warn!(hash = %blob.hash, "a stored file is missing");
        return not_found();
    }
    let disposition = name::disposition(&upload.name, inline || thumb);
    let status = resp.status();
    let h = resp.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, mime),
        (header::CONTENT_DISPOSITION, disposition.as_str()),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::CONTENT_SECURITY_POLICY, SANDBOX),
        (header::CACHE_CONTROL, CACHE_CONTROL),
    ] {
        match HeaderValue::from_str(value) {
            Ok(value) => {
                h.insert(name, value);
            }
            // Every value here is ASCII by construction; refuse rather than serve
            // unlabelled.
            Err(_) => return not_found(),
        }
    }
    if !status.is_success() && status != StatusCode::NOT_MODIFIED {
        h.remove(header::CONTENT_DISPOSITION);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_say_them() {
        assert_eq!(human_size(900), "900 bytes");
        assert_eq!(human_size(25 * 1024 * 1024), "25 MiB");
        assert_eq!(human_size(1536 * 1024 * 1024), "1.5 GiB");
        assert_eq!(human_size(10 * 1024 * 1024 * 1024), "10 GiB");
    }

    #[test]
    fn waits_read_as_people_say_them() {
        assert_eq!(human_wait(1), "a minute");
        assert_eq!(human_wait(600), "10 minutes");
        assert_eq!(human_wait(86_400), "24 hours");
    }
}
