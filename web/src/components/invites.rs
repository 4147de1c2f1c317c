//! Invite links, for those who may make them on a server that signs up by invite: a
//! button in the top bar opens a panel to make a link (shown in a read-only field with
//! a copy button) and to see and revoke the open ones. The panel's data is its own (it
//! comes from `/api/invites` over HTTP, not from the chat socket), so it lives in the
//! component rather than in the reducer.

use confab_shared::api::{Invite, NewInvite, SignUpPolicy};
use wasm_bindgen::JsCast;
use web_sys::{HtmlInputElement, HtmlSelectElement};
use yew::prelude::*;

use super::{
    FieldError, focus_by_id,
    panel::{Loaded, closers, load},
    use_ctx,
};
use crate::invites::{self, DEFAULT_LIFETIME_SECS, LIFETIMES};

const TOGGLE_ID: &str = "invites-toggle";
const PANEL_ID: &str = "invites-panel";
const LIST_HEADING_ID: &str = "invites-open-heading";

/// The top bar's "Invite people" button and, while open, its panel.
#[function_component]
pub fn InviteMenu() -> Html {
    let ctx = use_ctx();
    let open = use_state(|| false);
    if !(ctx.state.can_invite && ctx.state.sign_up == SignUpPolicy::Invite) {
        return html! {};
    }
    let toggle = {
        let open = open.clone();
        Callback::from(move |_: MouseEvent| open.set(!*open))
    };
    let close = {
        let open = open.clone();
        Callback::from(move |()| {
            open.set(false);
            focus_by_id(TOGGLE_ID);
        })
    };
    html! {
        <>
            <button type="button" id={TOGGLE_ID} aria-expanded={open.to_string()}
                    aria-controls={PANEL_ID} onclick={toggle}>{ "Invite people" }</button>
            if *open {
                <InvitePanel on_close={close} />
            }
        </>
    }
}

#[derive(Properties, PartialEq)]
struct PanelProps {
    on_close: Callback<()>,
}

#[function_component]
fn InvitePanel(props: &PanelProps) -> Html {
    let uses = use_node_ref();
    // Held here so that what is picked stays picked when the panel renders again.
    let lifetime = use_state(|| DEFAULT_LIFETIME_SECS);
    let busy = use_state(|| false);
    let error = use_state(|| None::<String>);
    let created = use_state(|| None::<String>);
    let copied = use_state(|| None::<String>);
    let listing = use_state(|| Loaded::<Vec<Invite>>::Loading);
    // Bumped after a change, to list again.
    let version = use_state(|| 0_u32);
    {
        let run = load(listing.clone(), |_: u32| async {
            invites::list().await.map(|list| list.invites)
        });
        use_effect_with(*version, move |version| run(version));
    }
    {
        // Arriving in the panel, the keyboard is in its first field.
        let uses = uses.clone();
        use_effect_with((), move |()| {
            if let Some(field) = uses.cast::<HtmlInputElement>() {
                let _ = field.focus();
            }
        });
    }
    let onsubmit = {
        let (uses, secs) = (uses.clone(), *lifetime);
        let (busy, error, created, copied, version) = (
            busy.clone(),
            error.clone(),
            created.clone(),
            copied.clone(),
            version.clone(),
        );
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            if *busy {
                return;
            }
            let count = uses
                .cast::<HtmlInputElement>()
                .map(|f| f.value())
                .unwrap_or_default();
            let Ok(count) = count.trim().parse::<u32>() else {
                error.set(Some("Enter how many accounts the link may create.".into()));
                return;
            };
            let body = NewInvite {
                uses: Some(count),
                expires_in_secs: Some(secs),
            };
            busy.set(true);
            error.set(None);
            copied.set(None);
            let (busy, error, created, version) = (
                busy.clone(),
                error.clone(),
                created.clone(),
                version.clone(),
            );
            wasm_bindgen_futures::spawn_local(async move {
                match invites::create(&body).await {
                    Ok(made) => {
                        created.set(Some(invites::link(&made.path)));
                        version.set(version.wrapping_add(1));
                    }
                    Err(failure) => error.set(Some(failure.into_api_error().error)),
                }
                busy.set(false);
            });
        })
    };
    let (onkeydown, close) = closers(&props.on_close);
    let form_error = FieldError {
        id: "invite-error",
        message: (*error).clone(),
    };
    let link = (*created).clone().map(|link| {
        let copy = {
            let (link, copied) = (link.clone(), copied.clone());
            Callback::from(move |_: MouseEvent| copy_link(link.clone(), copied.clone()))
        };
        html! {
            <div class="invite-link">
                <label for="invite-link">{ "Invite link" }</label>
                <div class="row">
                    <input id="invite-link" type="text" readonly=true value={link}
                           aria-describedby="invite-link-hint" />
                    <button type="button" onclick={copy}>{ "Copy link" }</button>
                </div>
                <p id="invite-link-hint" class="hint-text">
                    { "Shown this once: the server keeps no copy of it." }
                </p>
                <p class="hint-text" role="status">{ (*copied).clone().unwrap_or_default() }</p>
            </div>
        }
    });
    let list = listing.view(|list| match list {
        list if list.is_empty() => html! { <p class="hint-text">{ "No open invites." }</p> },
        list => html! {
            <ul class="invite-list" aria-labelledby={LIST_HEADING_ID}>
                { for list.iter().map(|invite| invite_row(invite, &error, &version)) }
            </ul>
        },
    });
    let picked = *lifetime;
    let lifetimes = LIFETIMES.iter().map(|(secs, words)| {
        html! {
            <option value={secs.to_string()} selected={*secs == picked}>{ *words }</option>
        }
    });
    let pick = {
        let lifetime = lifetime.clone();
        Callback::from(move |e: Event| {
            if let Some(secs) = e
                .target_dyn_into::<HtmlSelectElement>()
                .and_then(|f| f.value().parse::<u64>().ok())
            {
                lifetime.set(secs);
            }
        })
    };
    html! {
        <section id={PANEL_ID} class="invites-panel" aria-labelledby="invites-heading" {onkeydown}>
            <div class="invites-head">
                <h2 id="invites-heading">{ "Invite links" }</h2>
                <button type="button" onclick={close} aria-label="Close invite links">{ "×" }</button>
            </div>
            <form class="invite-form" aria-label="New invite link" aria-busy={busy.to_string()} {onsubmit}>
                <div class="row">
                    <div class="field">
                        <label for="invite-uses">{ "Uses" }</label>
                        <input id="invite-uses" ref={uses} type="number" min="1" value="1" required=true
                               inputmode="numeric" aria-describedby="invite-uses-hint" />
                    </div>
                    <div class="field">
                        <label for="invite-lifetime">{ "Expires after" }</label>
                        <select id="invite-lifetime" onchange={pick}>{ for lifetimes }</select>
                    </div>
                </div>
                <p id="invite-uses-hint" class="hint-text">{ "How many accounts the link may create." }</p>
                <button type="submit">{ "Create invite link" }</button>
                { form_error.render() }
            </form>
            { for link }
            <h3 id={LIST_HEADING_ID} tabindex="-1">{ "Open invites" }</h3>
            { list }
        </section>
    }
}

/// One open invite: what is left of it, and its revoke button.
fn invite_row(
    invite: &Invite,
    error: &UseStateHandle<Option<String>>,
    version: &UseStateHandle<u32>,
) -> Html {
    let summary = describe(invite, js_sys::Date::now());
    let revoke = {
        let (id, error, version) = (invite.id, error.clone(), version.clone());
        Callback::from(move |_: MouseEvent| {
            let (error, version) = (error.clone(), version.clone());
            wasm_bindgen_futures::spawn_local(async move {
                match invites::revoke(id).await {
                    Ok(()) => {
                        error.set(None);
                        // Its button goes with it: keep the keyboard in the panel.
                        focus_by_id(LIST_HEADING_ID);
                    }
                    Err(failure) => error.set(Some(failure.into_api_error().error)),
                }
                version.set(version.wrapping_add(1));
            });
        })
    };
    html! {
        <li key={invite.id.to_string()}>
            <span>{ summary.clone() }</span>
            <button type="button" class="small danger" onclick={revoke}
                    aria-label={format!("Revoke invite: {summary}")}>{ "Revoke" }</button>
        </li>
    }
}

/// "1 of 2 uses left, expires in 6 days, by ada".
fn describe(invite: &Invite, now_ms: f64) -> String {
    let uses = if invite.uses_left == 0 {
        "used up".to_owned()
    } else {
        format!(
            "{} of {} {} left",
            invite.uses_left,
            invite.max_uses,
            if invite.max_uses == 1 { "use" } else { "uses" }
        )
    };
    let by = invite
        .created_by
        .as_deref()
        .map_or("by the command line".to_owned(), |who| format!("by {who}"));
    format!(
        "{uses}, expires {}, {by}",
        in_words(invite.expires_at as f64 - now_ms)
    )
}

/// "in 6 days", "in 3 hours", "in 12 minutes", "in under a minute".
fn in_words(ms: f64) -> String {
    let minutes = (ms / 60_000.0).floor().max(0.0) as u64;
    let (n, unit) = match minutes {
        0 => return "in under a minute".to_owned(),
        m if m >= 2 * 24 * 60 => (m / (24 * 60), "day"),
        m if m >= 2 * 60 => (m / 60, "hour"),
        m => (m, "minute"),
    };
    format!("in {n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// Copies the link to the clipboard, or, where the browser will not, selects it for the
/// person to copy; `copied` says which.
fn copy_link(link: String, copied: UseStateHandle<Option<String>>) {
    wasm_bindgen_futures::spawn_local(async move {
        let written = match web_sys::window().map(|w| w.navigator().clipboard()) {
            Some(clipboard) => wasm_bindgen_futures::JsFuture::from(clipboard.write_text(&link))
                .await
                .is_ok(),
            None => false,
        };
        if written {
            copied.set(Some("Copied to the clipboard.".into()));
            return;
        }
        let field = web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.get_element_by_id("invite-link"))
            .and_then(|e| e.dyn_into::<HtmlInputElement>().ok());
        if let Some(field) = field {
            let _ = field.focus();
            field.select();
        }
        copied.set(Some(
            "The browser would not copy it: the link is selected, copy it with Ctrl+C.".into(),
        ));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invite_reads_as_a_sentence() {
        let invite = Invite {
            id: 1,
            created_by: Some("ada".into()),
            created_at: 0,
            expires_at: 6 * 86_400_000 + 5_000,
            max_uses: 2,
            uses_left: 1,
        };
        assert_eq!(
            describe(&invite, 0.0),
            "1 of 2 uses left, expires in 6 days, by ada"
        );
        let used = Invite {
            uses_left: 0,
            max_uses: 1,
            created_by: None,
            ..invite
        };
        assert_eq!(
            describe(&used, 6.0 * 86_400_000.0 - 3.0 * 3_600_000.0),
            "used up, expires in 3 hours, by the command line"
        );
        assert_eq!(in_words(90_000.0), "in 1 minute");
        assert_eq!(in_words(-5.0), "in under a minute");
    }
}
