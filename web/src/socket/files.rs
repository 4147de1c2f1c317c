//! The files the person shares: held here, in memory, from the moment they are attached
//! in a composer until their message is acknowledged (the state only names them by a
//! key), and uploaded when their message is in the outbox and the connection is up.
//! The rules about the outbox (when the `send` goes, what a refusal does) are
//! [`Resume`](crate::resume::Resume)'s, in `resume/files.rs`; this is their browser
//! half: `File` objects, requests, retries.

use std::{
    cell::RefCell,
    collections::BTreeMap,
    rc::{Rc, Weak},
};

use gloo_timers::future::TimeoutFuture;
use web_sys::File;
use yew::Callback;

use super::{Chat, Inner, new_client_id};
use crate::{
    state::{Action, LocalFile, Pending, PendingFile, UploadAction, too_many_files},
    upload::{Flight, Outcome},
};

/// Uploads that fail without an answer while the connection is up are tried this many
/// times in all before the message waits for the person's Retry.
const MAX_TRIES: u32 = 3;
/// The pause before trying again, times the attempt's number.
const RETRY_DELAY_MS: u32 = 2_000;

/// See the module documentation.
#[derive(Default)]
pub(super) struct Files {
    /// Attached in a composer, not sent yet.
    attached: RefCell<BTreeMap<String, File>>,
    /// Of messages in the outbox.
    queued: RefCell<BTreeMap<String, File>>,
    /// Uploads under way.
    flights: RefCell<BTreeMap<String, Flight>>,
    /// Attempts that got no answer, since the last welcome.
    tries: RefCell<BTreeMap<String, u32>>,
}

impl Files {
    /// Keeps only the files of messages still in the outbox, and so cancels the uploads
    /// of the others (discarded, cancelled); returns the keys of those uploads.
    pub(super) fn keep_only(&self, wanted: impl Fn(&str) -> bool) -> Vec<String> {
        self.queued.borrow_mut().retain(|key, _| wanted(key));
        let mut flights = self.flights.borrow_mut();
        let keys: Vec<String> = flights.keys().filter(|k| !wanted(k)).cloned().collect();
        for key in &keys {
            // Dropping a flight aborts it without a word (see `Flight`).
            drop(flights.remove(key));
        }
        keys
    }

    /// Forgets every file (signing out).
    pub(super) fn clear(&self) {
        self.attached.borrow_mut().clear();
        self.queued.borrow_mut().clear();
        let flights = std::mem::take(&mut *self.flights.borrow_mut());
        drop(flights);
        self.tries.borrow_mut().clear();
    }
}

impl Chat {
    /// Files chosen, dropped or pasted in `room`'s composer, which takes `room_left`
    /// more: they wait there, listed, until the message is sent.
    pub fn attach(&self, room: &str, files: Vec<File>, room_left: usize) {
        if files.is_empty() {
            return;
        }
        let left_out = files.len().saturating_sub(room_left);
        let mut listed = Vec::new();
        for file in files.into_iter().take(room_left) {
            // Unique across reloads too: the outbox saved by an earlier page still names
            // its lost files by their keys.
            let key = format!("file-{}", new_client_id());
            listed.push(LocalFile {
                key: key.clone(),
                name: file.name(),
                size: file.size() as u64,
            });
            self.0.files.attached.borrow_mut().insert(key, file);
        }
        let dispatch = &self.0.dispatch;
        dispatch.emit(Action::Uploads(UploadAction::Attached {
            room: room.to_owned(),
            files: listed,
        }));
        if left_out > 0 {
            dispatch.emit(Action::Uploads(UploadAction::Refused {
                room: room.to_owned(),
                message: too_many_files(left_out),
            }));
        }
    }

    /// Takes a file out of `room`'s composer.
    pub fn unattach(&self, room: &str, key: &str) {
        self.0.files.attached.borrow_mut().remove(key);
        self.0.dispatch.emit(Action::Uploads(UploadAction::Removed {
            room: room.to_owned(),
            key: key.to_owned(),
        }));
    }

    /// Queues a message sharing `files` (those attached in `room`'s composer): one
    /// outbox entry, shown at once with its files; they upload when the connection is
    /// up, and the message goes once they all did.
    pub fn send_with_files(
        &self,
        room: &str,
        body: &str,
        reply_to: Option<u64>,
        files: &[LocalFile],
    ) {
        let mut pending_files = Vec::with_capacity(files.len());
        {
            let (mut attached, mut queued) = (
                self.0.files.attached.borrow_mut(),
                self.0.files.queued.borrow_mut(),
            );
            for f in files {
                if let Some(file) = attached.remove(&f.key) {
                    queued.insert(f.key.clone(), file);
                    pending_files.push(PendingFile {
                        key: f.key.clone(),
                        name: f.name.clone(),
                        size: f.size,
                        uploaded: None,
                        lost: false,
                    });
                }
            }
        }
        self.0.dispatch.emit(Action::Uploads(UploadAction::Sent {
            room: room.to_owned(),
        }));
        self.queue(Pending {
            client_id: new_client_id(),
            room: room.to_owned(),
            body: body.to_owned(),
            failed: None,
            reply_to,
            change: None,
            files: pending_files,
        });
        self.0.start_uploads();
    }

    /// Stops a file's upload (or its wait for one) and takes it out of its message.
    pub fn cancel_upload(&self, key: &str) {
        let now = self.0.resume.borrow_mut().cancel_file(key);
        if let Some(msg) = now {
            self.request(msg);
        }
        self.0.publish_outbox();
        self.0
            .dispatch
            .emit(Action::Uploads(UploadAction::Finished {
                key: key.to_owned(),
            }));
    }
}

impl Inner {
    /// Starts the uploads the outbox waits for and that are not under way, if the
    /// connection is up (else the next welcome does).
    pub(super) fn start_uploads(self: &Rc<Self>) {
        if !self.open.get() {
            return;
        }
        let due = self.resume.borrow().uploads_due();
        for due in due {
            if self.files.flights.borrow().contains_key(&due.key) {
                continue;
            }
            let Some(file) = self.files.queued.borrow().get(&due.key).cloned() else {
                // Not in memory: uploaded by an earlier page, and the server no longer
                // knows the upload (`unknown_file`). Waiting would be forever.
                self.resume
                    .borrow_mut()
                    .file_refused(&due.key, "this page no longer has it: attach it again");
                self.publish_outbox();
                continue;
            };
            let progress = {
                let (dispatch, key) = (self.dispatch.clone(), due.key.clone());
                Callback::from(move |(sent, total): (u64, u64)| {
                    dispatch.emit(Action::Uploads(UploadAction::Progress {
                        key: key.clone(),
                        sent,
                        total,
                    }));
                })
            };
            let ended = {
                // Weak: a flight the session forgot must not keep the service alive.
                let (inner, due) = (Rc::downgrade(self), due.clone());
                Callback::from(move |outcome: Outcome| {
                    let (inner, due) = (Weak::clone(&inner), due.clone());
                    // Later, not inside the request's event: ending drops the flight,
                    // and with it the listener running now.
                    wasm_bindgen_futures::spawn_local(async move {
                        if let Some(inner) = inner.upgrade() {
                            inner.upload_ended(&due.room, &due.key, &due.name, outcome);
                        }
                    });
                })
            };
            match Flight::start(&due.room, &due.name, &file, progress, ended) {
                Ok(flight) => {
                    self.files
                        .flights
                        .borrow_mut()
                        .insert(due.key.clone(), flight);
                    self.dispatch.emit(Action::Uploads(UploadAction::Progress {
                        key: due.key,
                        sent: 0,
                        total: file.size() as u64,
                    }));
                }
                Err(_) => self.upload_ended(&due.room, &due.key, &due.name, Outcome::Unreachable),
            }
        }
    }

    /// A welcome: uploads cut off by the disconnect go again, with a fresh count of
    /// tries.
    pub(super) fn restart_uploads(self: &Rc<Self>) {
        self.files.tries.borrow_mut().clear();
        self.start_uploads();
    }

    fn upload_ended(self: &Rc<Self>, room: &str, key: &str, name: &str, outcome: Outcome) {
        if self.files.flights.borrow_mut().remove(key).is_none() {
            // Cancelled, or the session ended, meanwhile.
            return;
        }
        self.dispatch.emit(Action::Uploads(UploadAction::Finished {
            key: key.to_owned(),
        }));
        let refused = |message: String| {
            self.dispatch.emit(Action::Uploads(UploadAction::Refused {
                room: room.to_owned(),
                message,
            }));
        };
        match outcome {
            Outcome::Uploaded(attachment) => {
                self.files.tries.borrow_mut().remove(key);
                let now = self.resume.borrow_mut().uploaded(key, attachment);
                if let Some(msg) = now {
                    Chat(Rc::clone(self)).request(msg);
                }
            }
            // The session is over: the file is kept for when the person is back.
            Outcome::Refused {
                status: 401,
                message,
            } => {
                self.resume.borrow_mut().upload_failed(key, &message);
                refused(message);
            }
            Outcome::Refused { message, .. } => {
                self.resume.borrow_mut().file_refused(key, &message);
                refused(format!("{name}: {message}"));
            }
            Outcome::Unreachable => {
                let tries = {
                    let mut tries = self.files.tries.borrow_mut();
                    let n = tries.entry(key.to_owned()).or_default();
                    *n += 1;
                    *n
                };
                if !self.open.get() {
                    // Disconnected: the next welcome uploads it again.
                } else if tries < MAX_TRIES {
                    let inner = Rc::downgrade(self);
                    wasm_bindgen_futures::spawn_local(async move {
                        TimeoutFuture::new(RETRY_DELAY_MS * tries).await;
                        if let Some(inner) = inner.upgrade() {
                            inner.start_uploads();
                        }
                    });
                } else {
                    let message = format!("{name} could not be uploaded: the connection failed.");
                    self.resume.borrow_mut().upload_failed(key, &message);
                    refused(message);
                }
            }
        }
        self.publish_outbox();
    }
}
