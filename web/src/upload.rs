//! One file's upload (`POST /api/files?room=&name=`, the file as the body) over
//! `XMLHttpRequest`: `fetch` cannot tell how much of a request body has gone, and the
//! person watches a progress bar. A leaf like [`crate::api`]: the socket service decides
//! when files go and what their answers do to the outbox (`socket/files.rs`).

use confab_shared::{Attachment, api::ApiError};
use gloo_events::EventListener;
use wasm_bindgen::JsCast;
use web_sys::{Blob, ProgressEvent, XmlHttpRequest};
use yew::Callback;

/// How an upload ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Stored: the attachment to name in a `send`.
    Uploaded(Attachment),
    /// The server said no; `message` is its sentence for people.
    Refused { status: u16, message: String },
    /// No answer: the network or the server is gone.
    Unreachable,
}

/// Reads the server's answer: 201 with the attachment, else an `ApiError`.
pub fn outcome(status: u16, body: &str) -> Outcome {
    if (200..300).contains(&status) {
        return match serde_json::from_str::<Attachment>(body) {
            Ok(attachment) => Outcome::Uploaded(attachment),
            // A proxy's page, say: the file may be stored, but it cannot be named.
            Err(_) => Outcome::Refused {
                status,
                message: "The server's answer to the upload made no sense.".to_owned(),
            },
        };
    }
    // The sentence is the server's, as it is: it says what to do (and, over the daily
    // budget, when).
    let message = match serde_json::from_str::<ApiError>(body) {
        Ok(error) => error.error,
        Err(_) => format!("The server refused the file ({status})."),
    };
    Outcome::Refused { status, message }
}

/// The address a file of `room` called `name` is uploaded to.
pub fn url(room: &str, name: &str) -> String {
    format!(
        "{}/files?room={}&name={}",
        confab_shared::api::PREFIX,
        String::from(js_sys::encode_uri_component(room)),
        String::from(js_sys::encode_uri_component(name))
    )
}

/// An upload under way. Dropping it cancels it, silently: its callbacks are gone first.
pub struct Flight {
    xhr: XmlHttpRequest,
    listeners: Vec<EventListener>,
}

impl Flight {
    /// Starts uploading `file` to `room` as `name`. `on_progress` hears (bytes sent,
    /// bytes in all) as they go; `on_end` the outcome, once, unless it is dropped
    /// first. `on_end` runs inside the request's event: whoever owns the flight must
    /// not drop it from there (a callback cannot free itself while it runs).
    pub fn start(
        room: &str,
        name: &str,
        file: &Blob,
        on_progress: Callback<(u64, u64)>,
        on_end: Callback<Outcome>,
    ) -> Result<Flight, wasm_bindgen::JsValue> {
        let xhr = XmlHttpRequest::new()?;
        xhr.open_with_async("POST", &url(room, name), true)?;
        let upload = xhr.upload()?;
        let progress = EventListener::new(&upload, "progress", move |e| {
            if let Some(e) = e.dyn_ref::<ProgressEvent>() {
                on_progress.emit((e.loaded() as u64, e.total() as u64));
            }
        });
        let load = {
            let (xhr, on_end) = (xhr.clone(), on_end.clone());
            EventListener::new(&xhr.clone(), "load", move |_| {
                let body = xhr.response_text().ok().flatten().unwrap_or_default();
                on_end.emit(outcome(xhr.status().unwrap_or(0), &body));
            })
        };
        // `error` is the request failing without an answer; `abort` only follows our own
        // `abort()`, and by then nobody listens.
        let error = EventListener::new(&xhr, "error", move |_| on_end.emit(Outcome::Unreachable));
        xhr.send_with_opt_blob(Some(file))?;
        Ok(Flight {
            xhr,
            listeners: vec![progress, load, error],
        })
    }
}

impl Drop for Flight {
    fn drop(&mut self) {
        self.listeners.clear();
        if self.xhr.ready_state() != XmlHttpRequest::DONE {
            let _ = self.xhr.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use confab_shared::ImageSize;

    use super::*;

    #[test]
    fn an_accepted_upload_is_its_attachment() {
        let body = r#"{"id":"abc","name":"cat.png","size":42,"mime":"image/png","image":{"width":3,"height":2}}"#;
        assert_eq!(
            outcome(201, body),
            Outcome::Uploaded(Attachment {
                id: "abc".into(),
                name: "cat.png".into(),
                size: 42,
                mime: "image/png".into(),
                image: Some(ImageSize {
                    width: 3,
                    height: 2
                }),
            })
        );
    }

    #[test]
    fn a_refusal_says_the_servers_sentence() {
        let body = r#"{"error":"This file is larger than 1 KiB, the most one file may be."}"#;
        assert_eq!(
            outcome(413, body),
            Outcome::Refused {
                status: 413,
                message: "This file is larger than 1 KiB, the most one file may be.".into()
            }
        );
    }

    #[test]
    fn a_daily_budget_refusal_is_the_servers_sentence_too() {
        let body = r#"{"error":"You can upload this file in 10 minutes.","retry_after_secs":600}"#;
        assert_eq!(
            outcome(429, body),
            Outcome::Refused {
                status: 429,
                message: "You can upload this file in 10 minutes.".into()
            }
        );
    }

    #[test]
    fn an_answer_that_is_no_api_error_still_says_something() {
        assert_eq!(
            outcome(502, "<html>Bad gateway</html>"),
            Outcome::Refused {
                status: 502,
                message: "The server refused the file (502).".into()
            }
        );
        assert!(matches!(outcome(201, "not json"), Outcome::Refused { .. }));
    }
}
