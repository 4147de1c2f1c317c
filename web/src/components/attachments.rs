//! Files in the room: the composer's attach button and the files waiting in it, the
//! room as a drop target, pasting an image, the files of a message on its way (with
//! their progress and Cancel), and the files a message shares (an image as a preview
//! that opens full size, anything else as its name, size and type, downloaded).
//!
//! File names are the uploader's choice: always text nodes and attribute values, never
//! markup.

use confab_shared::{Attachment, ImageSize, api};
use gloo_events::{EventListener, EventListenerOptions};
use wasm_bindgen::JsCast;
use web_sys::{ClipboardEvent, DragEvent, File, FileList, HtmlInputElement};
use yew::prelude::*;

use super::Ctx;
use crate::state::{Action, LocalFile, PendingFile, UploadAction};

/// The box an image's preview is fitted in, in CSS pixels (narrower screens shrink it
/// further, keeping its shape).
const PREVIEW_MAX_WIDTH: u32 = 320;
const PREVIEW_MAX_HEIGHT: u32 = 240;

/// `bytes` as people read sizes: "340 bytes", "1.5 KiB", "25 MiB".
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return match bytes {
            1 => "1 byte".to_owned(),
            n => format!("{n} bytes"),
        };
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    // One decimal while it says something ("1.5 KiB"), none past ten ("25 MiB"); a
    // value that rounds up to the next unit's 1024 is left as it is: rare, and true.
    if value < 10.0 {
        let shown = format!("{value:.1}");
        let shown = shown.strip_suffix(".0").unwrap_or(&shown);
        format!("{shown} {}", UNITS[unit])
    } else {
        format!("{value:.0} {}", UNITS[unit])
    }
}

/// The size an image is shown at: fitted in `max_width` × `max_height`, never made
/// larger than it is, and never 0 on a side.
pub fn scaled(size: ImageSize, max_width: u32, max_height: u32) -> (u32, u32) {
    let (w, h) = (u64::from(size.width.max(1)), u64::from(size.height.max(1)));
    let (max_w, max_h) = (u64::from(max_width.max(1)), u64::from(max_height.max(1)));
    if w <= max_w && h <= max_h {
        return (w as u32, h as u32);
    }
    // Whichever side is further over the box sets the scale; rounded to the nearest
    // pixel. Kept in integers: exact for any u32.
    let (sw, sh) = if w * max_h >= h * max_w {
        (max_w, (h * max_w + w / 2) / w)
    } else {
        ((w * max_h + h / 2) / h, max_h)
    };
    (sw.max(1) as u32, sh.max(1) as u32)
}

/// What kind of file a media type is, in words; the type itself when it is not a
/// common one. Parameters (`; charset=utf-8`) say nothing to people and are left out.
pub fn kind(mime: &str) -> String {
    let mime = mime.split(';').next().unwrap_or_default().trim();
    let named = match mime {
        "application/pdf" => "PDF document",
        "application/zip" => "ZIP archive",
        "application/gzip" | "application/x-gzip" => "gzip archive",
        "text/plain" => "text",
        "application/octet-stream" => "file",
        _ => {
            return match mime.split_once('/') {
                Some(("image", sub)) => format!("{} image", sub.to_uppercase()),
                Some(("video", sub)) => format!("{} video", sub.to_uppercase()),
                Some(("audio", sub)) => format!("{} audio", sub.to_uppercase()),
                Some(("text", sub)) => format!("{} text", sub.to_uppercase()),
                _ => mime.to_owned(),
            };
        }
    };
    named.to_owned()
}

fn file_url(id: &str) -> String {
    format!("{}/files/{id}", api::PREFIX)
}

/// The files a message shares (none for a deleted one).
pub fn shared_files(files: &[Attachment], deleted: bool) -> Html {
    if deleted || files.is_empty() {
        return html! {};
    }
    html! {
        <ul class="files" aria-label="Files">
            { for files.iter().map(shared_file) }
        </ul>
    }
}

fn shared_file(file: &Attachment) -> Html {
    let href = file_url(&file.id);
    let size = human_size(file.size);
    match file.image {
        Some(image) => {
            let (width, height) = scaled(image, PREVIEW_MAX_WIDTH, PREVIEW_MAX_HEIGHT);
            html! {
                <li key={file.id.clone()} class="file image">
                    <a class="file-preview" href={href} target="_blank" rel="noopener"
                       title={format!("{} ({size}): open full size", file.name)}>
                        <img src={format!("{}/thumb", file_url(&file.id))} alt={file.name.clone()}
                             width={width.to_string()} height={height.to_string()} loading="lazy" />
                        <span class="visually-hidden">{ " (opens full size in a new tab)" }</span>
                    </a>
                </li>
            }
        }
        None => html! {
            <li key={file.id.clone()} class="file other">
                { document_icon() }
                <span class="file-text">
                    <a class="file-name" href={href} download={file.name.clone()}><bdi>{ file.name.clone() }</bdi></a>
                    <span class="file-meta">{ format!("{size} · {}", kind(&file.mime)) }</span>
                </span>
            </li>
        },
    }
}

#[derive(Properties, PartialEq)]
pub struct PendingFilesProps {
    pub files: Vec<PendingFile>,
}

/// The files of a message on its way: uploaded, uploading (a labelled progress bar,
/// Cancel), waiting for the connection (Cancel), or lost to a reload.
#[function_component]
pub fn PendingFiles(props: &PendingFilesProps) -> Html {
    let ctx = super::use_ctx();
    let item = |f: &PendingFile| {
        let cancel = {
            let (chat, key) = (ctx.chat.clone(), f.key.clone());
            Callback::from(move |_: MouseEvent| chat.cancel_upload(&key))
        };
        let cancel = html! {
            <button type="button" onclick={cancel} aria-label={format!("Cancel {}", f.name)}>{ "Cancel" }</button>
        };
        let progress = ctx.state.uploads.progress.get(&f.key).copied();
        let id = format!("upload-{}", f.key);
        let status = match (&f.uploaded, f.lost, progress) {
            (Some(_), _, _) => html! { <span class="file-meta">{ "uploaded" }</span> },
            (None, true, _) => {
                html! { <span class="file-meta lost">{ "not sent, attach again" }</span> }
            }
            (None, false, Some(p)) => html! {
                <>
                    <progress id={id.clone()} max={p.total.to_string()} value={p.sent.to_string()}>
                        { format!("{} %", p.percent()) }
                    </progress>
                    <span class="file-meta" aria-hidden="true">{ format!("{} %", p.percent()) }</span>
                    { cancel }
                </>
            },
            (None, false, None) => html! {
                <>
                    <span class="file-meta">{ "waiting to upload" }</span>
                    { cancel }
                </>
            },
        };
        html! {
            <li key={f.key.clone()} class="file pending-file">
                <label for={id} class="file-name">
                    <span class="visually-hidden">{ "Uploading " }</span><bdi>{ f.name.clone() }</bdi>
                </label>
                <span class="file-meta">{ human_size(f.size) }</span>
                { status }
            </li>
        }
    };
    html! {
        <ul class="files pending-files" aria-label="Files">
            { for props.files.iter().map(item) }
        </ul>
    }
}

/// The attach button of `room`'s composer: a real file input (so keyboards, screen
/// readers and tests reach it as one), drawn as a button by its label.
#[function_component]
pub fn AttachButton() -> Html {
    let ctx = super::use_ctx();
    if ctx.state.me.as_ref().is_none_or(|p| p.guest) {
        // Only accounts may upload.
        return html! {};
    }
    let onchange = {
        let ctx = ctx.clone();
        Callback::from(move |e: Event| {
            let Some(input) = e.target_dyn_into::<HtmlInputElement>() else {
                return;
            };
            attach(&ctx, files_of(input.files()));
            // The same file can be chosen again after being removed.
            input.set_value("");
        })
    };
    html! {
        <span class="attach">
            <input id="composer-files" type="file" multiple=true class="attach-input" {onchange} />
            <label for="composer-files" class="attach-button" title="Attach files (or drop them here, or paste an image)">
                { paperclip() }<span class="attach-text">{ "Attach files" }</span>
            </label>
        </span>
    }
}

/// A sheet with a folded corner, for a file that is not previewed. Decorative.
fn document_icon() -> Html {
    html! {
        <svg class="file-icon" aria-hidden="true" focusable="false" width="22" height="26" viewBox="0 0 22 26">
            <path fill="none" stroke="currentColor" stroke-width="1.5" stroke-linejoin="round"
                  d="M3 1.5h10.5L19.5 7.5v17H3z M13.5 1.5v6h6" />
        </svg>
    }
}

/// Drawn rather than an emoji, and hidden from assistive technology: the label's text
/// is its name.
fn paperclip() -> Html {
    html! {
        <svg class="paperclip" aria-hidden="true" focusable="false" width="14" height="14" viewBox="0 0 16 16">
            <path fill="none" stroke="currentColor" stroke-width="1.5" stroke-linecap="round"
                  d="M10.5 4.5 5.3 9.7a1.5 1.5 0 0 0 2.1 2.1l5.6-5.6a3 3 0 0 0-4.2-4.2L3.2 7.6a4.5 4.5 0 0 0 6.4 6.4l4.9-4.9" />
        </svg>
    }
}

/// What the composer holds besides text: the files attached, each with Remove, and
/// the last refusal of a file for this room.
#[function_component]
pub fn ComposerFiles() -> Html {
    let ctx = super::use_ctx();
    let room = ctx.state.current.clone();
    let attached = ctx.state.uploads.attached_in(&room);
    let error = ctx.state.uploads.error_in(&room).map(|message| {
        let dismiss = {
            let (state, room) = (ctx.state.clone(), room.clone());
            Callback::from(move |_: MouseEvent| {
                state.dispatch(Action::Uploads(UploadAction::DismissError { room: room.clone() }));
            })
        };
        html! {
            <p class="error upload-error" role="alert" id="composer-file-error">
                <span>{ message.to_owned() }</span>
                <button type="button" onclick={dismiss} aria-label="Dismiss the file error">{ "×" }</button>
            </p>
        }
    });
    let item = |f: &LocalFile| {
        let remove = {
            let (chat, room, key) = (ctx.chat.clone(), room.clone(), f.key.clone());
            Callback::from(move |_: MouseEvent| chat.unattach(&room, &key))
        };
        html! {
            <li key={f.key.clone()} class="file attached">
                <bdi class="file-name">{ f.name.clone() }</bdi>
                <span class="file-meta">{ human_size(f.size) }</span>
                <button type="button" onclick={remove} aria-label={format!("Remove {}", f.name)}>{ "Remove" }</button>
            </li>
        }
    };
    let list = (!attached.is_empty()).then(|| {
        html! {
            <ul class="files attached-files" aria-label="Files to send">
                { for attached.iter().map(item) }
            </ul>
        }
    });
    html! {
        <>
            { for error }
            { for list }
        </>
    }
}

/// Attaches `files` in the current room's composer (a guest is told files are for
/// accounts).
fn attach(ctx: &Ctx, files: Vec<File>) {
    if files.is_empty() {
        return;
    }
    let room = ctx.state.current.clone();
    if ctx.state.me.as_ref().is_none_or(|p| p.guest) {
        ctx.state.dispatch(Action::Uploads(UploadAction::Refused {
            room,
            message: "Guests cannot share files: sign up to share them.".to_owned(),
        }));
        return;
    }
    let left = ctx.state.uploads.room_left(&room);
    ctx.chat.attach(&room, files, left);
}

fn files_of(list: Option<FileList>) -> Vec<File> {
    let Some(list) = list else {
        return Vec::new();
    };
    (0..list.length()).filter_map(|i| list.get(i)).collect()
}

/// Pasting into the composer: files on the clipboard (a copied image, a screenshot)
/// are attached; text pastes as usual.
pub fn on_paste(ctx: &Ctx) -> Callback<Event> {
    let ctx = ctx.clone();
    Callback::from(move |e: Event| {
        let Some(paste) = e.dyn_ref::<ClipboardEvent>() else {
            return;
        };
        let files = files_of(paste.clipboard_data().and_then(|d| d.files()));
        if !files.is_empty() {
            e.prevent_default();
            attach(&ctx, files);
        }
    })
}

/// What the room needs to take files dropped on it.
pub struct DropZone {
    pub ondragenter: Callback<DragEvent>,
    pub ondragover: Callback<DragEvent>,
    pub ondragleave: Callback<DragEvent>,
    pub ondrop: Callback<DragEvent>,
    /// Files are being dragged over the room: show where they go.
    pub active: bool,
}

impl DropZone {
    /// The visible drop target, while files are dragged over the room.
    pub fn overlay(&self) -> Html {
        if !self.active {
            return html! {};
        }
        html! {
            <div class="drop-target" aria-hidden="true">
                <p>{ "Drop files to attach them to your message" }</p>
            </div>
        }
    }
}

/// Whether a drag carries files (not a selection of text, a link).
fn carries_files(e: &DragEvent) -> bool {
    e.data_transfer().is_some_and(|d| {
        d.types()
            .iter()
            .any(|t| t.as_string().as_deref() == Some("Files"))
    })
}

/// Makes the room a drop target for files. Entering and leaving each child fires its
/// own events, so the drag is counted in and out.
#[hook]
pub fn use_drop_zone(ctx: &Ctx) -> DropZone {
    let depth = use_mut_ref(|| 0_u32);
    let active = use_state(|| false);
    use_effect_with((), |()| {
        // A file dropped beside the room (on the sidebar, say) would otherwise replace
        // the page with the file, and the chat with it.
        let listeners = web_sys::window().map(|window| {
            ["dragover", "drop"].map(|event| {
                EventListener::new_with_options(
                    &window,
                    event,
                    EventListenerOptions::enable_prevent_default(),
                    |e| {
                        if e.dyn_ref::<DragEvent>().is_some_and(carries_files) {
                            e.prevent_default();
                        }
                    },
                )
            })
        });
        move || drop(listeners)
    });
    let ondragenter = {
        let (depth, active) = (depth.clone(), active.clone());
        Callback::from(move |e: DragEvent| {
            if carries_files(&e) {
                e.prevent_default();
                *depth.borrow_mut() += 1;
                active.set(true);
            }
        })
    };
    let ondragover = Callback::from(move |e: DragEvent| {
        if carries_files(&e) {
            // Without this the browser opens the file instead.
            e.prevent_default();
            if let Some(d) = e.data_transfer() {
                d.set_drop_effect("copy");
            }
        }
    });
    let ondragleave = {
        let (depth, active) = (depth.clone(), active.clone());
        Callback::from(move |_: DragEvent| {
            let mut depth = depth.borrow_mut();
            *depth = depth.saturating_sub(1);
            if *depth == 0 {
                active.set(false);
            }
        })
    };
    let ondrop = {
        let (depth, active, ctx) = (depth.clone(), active.clone(), ctx.clone());
        Callback::from(move |e: DragEvent| {
            *depth.borrow_mut() = 0;
            active.set(false);
            let files = files_of(e.data_transfer().and_then(|d| d.files()));
            if !files.is_empty() {
                e.prevent_default();
                attach(&ctx, files);
                super::focus_by_id("composer");
            }
        })
    };
    DropZone {
        ondragenter,
        ondragover,
        ondragleave,
        ondrop,
        active: *active,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_say_them() {
        assert_eq!(human_size(0), "0 bytes");
        assert_eq!(human_size(1), "1 byte");
        assert_eq!(human_size(1023), "1023 bytes");
        assert_eq!(human_size(1024), "1 KiB");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(10 * 1024), "10 KiB");
        assert_eq!(human_size(25 * 1024 * 1024), "25 MiB");
        assert_eq!(human_size(5 * 1024 * 1024 * 1024 / 2), "2.5 GiB");
        assert_eq!(human_size(u64::MAX), "16777216 TiB");
    }

    fn size(width: u32, height: u32) -> ImageSize {
        ImageSize { width, height }
    }

    #[test]
    fn previews_fit_the_box_keeping_their_shape() {
        // Small ones are not blown up.
        assert_eq!(scaled(size(100, 50), 320, 240), (100, 50));
        assert_eq!(scaled(size(320, 240), 320, 240), (320, 240));
        // Wide: the width sets the scale.
        assert_eq!(scaled(size(4000, 1000), 320, 240), (320, 80));
        // Tall: the height does.
        assert_eq!(scaled(size(1000, 4000), 320, 240), (60, 240));
        // Rounded to the nearest pixel.
        assert_eq!(scaled(size(3000, 2001), 320, 240), (320, 213));
        // A sliver keeps a pixel; a degenerate size is not a division by zero.
        assert_eq!(scaled(size(100_000, 1), 320, 240), (320, 1));
        assert_eq!(scaled(size(0, 0), 320, 240), (1, 1));
        assert_eq!(scaled(size(u32::MAX, u32::MAX), 320, 240), (240, 240));
    }

    #[test]
    fn kinds_name_the_common_types() {
        assert_eq!(kind("application/pdf"), "PDF document");
        assert_eq!(kind("text/plain; charset=utf-8"), "text");
        assert_eq!(kind("text/csv;charset=utf-8"), "CSV text");
        assert_eq!(kind("image/svg+xml"), "SVG+XML image");
        assert_eq!(kind("application/octet-stream"), "file");
        assert_eq!(kind("application/x-thing"), "application/x-thing");
        assert_eq!(kind("nonsense"), "nonsense");
    }
}
