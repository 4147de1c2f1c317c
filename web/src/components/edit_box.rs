//! Editing a message in place: a labelled text area in the message itself, prefilled
//! with its text. Enter saves, Shift+Enter starts a new line, Escape cancels. A
//! component of its own so that typing in it renders only it, never the message list.

use confab_shared::Body;
use web_sys::HtmlTextAreaElement;
use yew::prelude::*;

#[derive(Properties, PartialEq)]
pub struct EditBoxProps {
    /// The message's `seq`: the text area's id, unique on the page.
    pub seq: u64,
    /// Its text now.
    pub body: AttrValue,
    /// The new text, checked against the body rules; the same text is a cancel.
    pub on_save: Callback<String>,
    pub on_cancel: Callback<()>,
}

#[function_component]
pub fn EditBox(props: &EditBoxProps) -> Html {
    let text = {
        let body = props.body.to_string();
        use_state(move || body)
    };
    let error = use_state(|| None::<String>);
    let area = use_node_ref();
    {
        let area = area.clone();
        use_effect_with((), move |()| {
            if let Some(area) = area.cast::<HtmlTextAreaElement>() {
                let _ = area.focus();
                // At the end of the text, where an edit usually goes.
                let end = area.value().encode_utf16().count() as u32;
                let _ = area.set_selection_range(end, end);
            }
        });
    }
    let save = {
        let (text, error, on_save, on_cancel, body) = (
            text.clone(),
            error.clone(),
            props.on_save.clone(),
            props.on_cancel.clone(),
            props.body.clone(),
        );
        Callback::from(move |()| match Body::parse(&text) {
            Ok(new) if new.as_str() == body.trim() => on_cancel.emit(()),
            Ok(new) => on_save.emit(new.into_string()),
            Err(e) => error.set(Some(e.to_string())),
        })
    };
    let oninput = {
        let (text, error) = (text.clone(), error.clone());
        Callback::from(move |e: InputEvent| {
            if let Some(area) = e.target_dyn_into::<HtmlTextAreaElement>() {
                text.set(area.value());
                error.set(None);
            }
        })
    };
    let onkeydown = {
        let (save, cancel) = (save.clone(), props.on_cancel.clone());
        Callback::from(move |e: KeyboardEvent| match e.key().as_str() {
            "Enter" if !e.shift_key() && !e.is_composing() => {
                e.prevent_default();
                save.emit(());
            }
            "Escape" => {
                e.prevent_default();
                e.stop_propagation();
                cancel.emit(());
            }
            _ => {}
        })
    };
    let onsubmit = {
        let save = save.clone();
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            save.emit(());
        })
    };
    let cancel = props.on_cancel.reform(|_: MouseEvent| ());
    let id = format!("edit-{}", props.seq);
    let error_id = format!("edit-error-{}", props.seq);
    html! {
        <form class="edit-box" {onsubmit}>
            <label for={id.clone()} class="visually-hidden">{ "Edit message" }</label>
            <textarea {id} ref={area} rows="2" dir="auto" value={(*text).clone()}
                      aria-invalid={if error.is_some() { "true" } else { "false" }}
                      aria-describedby={error.as_ref().map(|_| error_id.clone())}
                      {oninput} {onkeydown} />
            if let Some(message) = &*error {
                <p id={error_id} class="error" role="alert">{ message.clone() }</p>
            }
            <div class="edit-buttons">
                <button type="submit">{ "Save" }</button>
                <button type="button" onclick={cancel}>{ "Cancel" }</button>
                <span class="hint-text">{ "Enter to save, Escape to cancel" }</span>
            </div>
        </form>
    }
}
