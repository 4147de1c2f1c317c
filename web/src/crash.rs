//! What the person sees when the client panics. A panic in WebAssembly aborts: the
//! app stops reacting, and without this the page would just sit there, silently dead.
//! The hook logs the panic to the console (as Yew's default hook does, so tests and
//! developers see it) and puts a notice at the top of the page that says so and
//! offers a reload.
//!
//! The notice is built with plain DOM calls, not Yew: the renderer is what may have
//! just panicked. Its Reload button submits a `GET` form to the page itself, so
//! reloading needs no code of ours to run after the abort.

use web_sys::{Document, Element};

const NOTICE_ID: &str = "crash-notice";

/// Installs the panic hook; call before rendering.
pub fn install() {
    yew::set_custom_panic_hook(Box::new(|info| {
        console_error_panic_hook::hook(info);
        show_notice();
    }));
}

fn show_notice() {
    let Some(document) = web_sys::window().and_then(|w| w.document()) else {
        return;
    };
    if document.get_element_by_id(NOTICE_ID).is_some() {
        return;
    }
    let Some(body) = document.body() else {
        return;
    };
    // An alert: screen readers announce it without taking the focus from wherever the
    // person is (what is left of the app may still render and move it).
    if let Ok(notice) = build_notice(&document) {
        let _ = body.prepend_with_node_1(&notice);
    }
}

fn build_notice(document: &Document) -> Result<Element, wasm_bindgen::JsValue> {
    let notice = document.create_element("div")?;
    notice.set_id(NOTICE_ID);
    notice.set_class_name("crash");
    notice.set_attribute("role", "alert")?;
    let text = document.create_element("p")?;
    text.set_text_content(Some(
        "Something went wrong — reload the page. Messages you were sending are kept and go \
         out after the reload.",
    ));
    let form = document.create_element("form")?;
    form.set_attribute("method", "get")?;
    let path = web_sys::window()
        .and_then(|w| w.location().pathname().ok())
        .unwrap_or_else(|| "/".to_owned());
    form.set_attribute("action", &path)?;
    let button = document.create_element("button")?;
    button.set_attribute("type", "submit")?;
    button.set_text_content(Some("Reload"));
    form.append_child(&button)?;
    notice.append_child(&text)?;
    notice.append_child(&form)?;
    Ok(notice)
}

/// Debug builds only: a page address with `?confab-test-panic` panics right after the
/// first render, so the browser test of the dev flow (`e2e/tests/trunk-serve.spec.ts`)
/// can check what a person sees then. Release builds have no such door.
#[cfg(debug_assertions)]
pub fn panic_if_asked() {
    let asked = web_sys::window()
        .and_then(|w| w.location().search().ok())
        .is_some_and(|q| q.contains("confab-test-panic"));
    if asked {
        panic!("asked to by the page address (a debug-build test hook)");
    }
}

#[cfg(not(debug_assertions))]
pub fn panic_if_asked() {}
