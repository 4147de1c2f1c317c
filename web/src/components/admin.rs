//! The admin page, for administrators only: a button in the top bar ("Administration")
//! opens it over the chat. Whether it is open belongs to `App`, which lays the page out
//! under the top bar (whatever the bar's height once its buttons wrap), not to the
//! button. People (search, disable and enable, make or revoke an administrator, a
//! password reset link), rooms with their sizes (delete one), removing a message from
//! any room, the server's statistics and the audit log. Its data comes from
//! `/api/admin/…` over HTTP, not from the chat socket, so it lives here rather than in
//! the reducer; what others must see (a room deleted, a message removed, a disabled
//! person signed out) the server does through the hub.

use confab_shared::api::{AdminRoom, AdminStats, AdminUser, AuditEntry, RemoveMessage};
use web_sys::HtmlInputElement;
use yew::prelude::*;

use super::{
    focus_by_id,
    panel::{Loaded, closers, load},
    use_ctx,
};
use crate::admin::{self as api, when};

const TOGGLE_ID: &str = "admin-toggle";
const PANEL_ID: &str = "admin-panel";
const HEADING_ID: &str = "admin-heading";

/// The top bar's "Administration" button; renders nothing for everyone else.
#[derive(Properties, PartialEq)]
pub struct ButtonProps {
    pub open: bool,
    pub on_toggle: Callback<()>,
}

#[function_component]
pub fn AdminButton(props: &ButtonProps) -> Html {
    let ctx = use_ctx();
    if !ctx.state.admin {
        return html! {};
    }
    let onclick = props.on_toggle.reform(|_: MouseEvent| ());
    html! {
        <button type="button" id={TOGGLE_ID} aria-expanded={props.open.to_string()}
                aria-controls={PANEL_ID} {onclick}>{ "Administration" }</button>
    }
}

/// Gives the focus back to the button once the page has closed.
pub fn focus_button() {
    focus_by_id(TOGGLE_ID);
}

#[derive(Properties, PartialEq)]
pub struct PanelProps {
    pub on_close: Callback<()>,
}

#[function_component]
pub fn AdminPanel(props: &PanelProps) -> Html {
    let query = use_state(String::new);
    let users = use_state(|| Loaded::<Vec<AdminUser>>::Loading);
    let rooms = use_state(|| Loaded::<Vec<AdminRoom>>::Loading);
    let stats = use_state(|| Loaded::<AdminStats>::Loading);
    let audit = use_state(|| Loaded::<Vec<AuditEntry>>::Loading);
    // What the last action did, or why it failed; a reset link to hand over.
    let done = use_state(|| None::<String>);
    let error = use_state(|| None::<String>);
    let link = use_state(|| None::<String>);
    let confirm_room = use_state(|| None::<String>);
    // Bumped after an action, to list everything again.
    let version = use_state(|| 0_u32);
    let remove_link = use_node_ref();
    {
        let deps = ((*query).clone(), *version);
        let run = load(users.clone(), |(q, _): (String, u32)| async move {
            api::users(&q).await.map(|u| u.users)
        });
        use_effect_with(deps, move |deps| run(deps));
    }
    {
        let (r, s, a) = (
            load(rooms.clone(), |_: u32| async {
                api::rooms().await.map(|r| r.rooms)
            }),
            load(stats.clone(), |_: u32| api::stats()),
            load(audit.clone(), |_: u32| async {
                api::audit().await.map(|a| a.entries)
            }),
        );
        use_effect_with(*version, move |v| {
            r(v);
            s(v);
            a(v);
        });
    }
    use_effect_with((), |()| focus_by_id(HEADING_ID));
    // Runs an action; its answer is announced and everything is listed again.
    let act = {
        let (done, error, link, version) =
            (done.clone(), error.clone(), link.clone(), version.clone());
        Callback::from(
            move |request: std::pin::Pin<
                Box<
                    dyn std::future::Future<
                            Output = Result<confab_shared::api::AdminDone, crate::api::Failure>,
                        >,
                >,
            >| {
                let (done, error, link, version) =
                    (done.clone(), error.clone(), link.clone(), version.clone());
                wasm_bindgen_futures::spawn_local(async move {
                    match request.await {
                        Ok(answer) => {
                            error.set(None);
                            link.set(answer.link.as_deref().map(crate::invites::link));
                            done.set(Some(capitalised(&answer.done)));
                        }
                        Err(failure) => {
                            done.set(None);
                            error.set(Some(failure.into_api_error().error));
                        }
                    }
                    version.set(version.wrapping_add(1));
                });
            },
        )
    };
    let (onkeydown, close) = closers(&props.on_close);
    let search = {
        let query = query.clone();
        Callback::from(move |e: InputEvent| {
            if let Some(field) = e.target_dyn_into::<HtmlInputElement>() {
                query.set(field.value());
            }
        })
    };
    let remove = {
        let (act, error) = (act.clone(), error.clone());
        let field = remove_link.clone();
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let typed = field
                .cast::<HtmlInputElement>()
                .map(|f| f.value())
                .unwrap_or_default();
            let fragment = typed.rsplit_once('#').map_or(typed.as_str(), |(_, f)| f);
            let Some((room, seq)) = crate::permalink::parse(fragment.trim()) else {
                error.set(Some(
                    "Paste a message's link: it ends in #room/number.".into(),
                ));
                return;
            };
            let body = RemoveMessage { room, seq };
            act.emit(Box::pin(async move { api::remove_message(&body).await }));
        })
    };
    let users_html = users.view(|list| match list {
        list if list.is_empty() => html! { <p class="hint-text">{ "Nobody matches." }</p> },
        list => html! {
            <table class="admin-table" aria-labelledby="admin-people-heading">
                <thead><tr>
                    <th scope="col">{ "Username" }</th><th scope="col">{ "Name" }</th>
                    <th scope="col">{ "Role" }</th><th scope="col">{ "Status" }</th>
                    <th scope="col">{ "Created" }</th><th scope="col">{ "Last sign-in" }</th>
                    <th scope="col">{ "Actions" }</th>
                </tr></thead>
                <tbody>{ for list.iter().map(|u| user_row(u, &act)) }</tbody>
            </table>
        },
    });
    let rooms_html = rooms.view(|list| {
        html! {
                <table class="admin-table" aria-labelledby="admin-rooms-heading">
                    <thead><tr>
                        <th scope="col">{ "Room" }</th><th scope="col">{ "Kind" }</th>
                        <th scope="col">{ "Members" }</th><th scope="col">{ "Messages" }</th>
                        <th scope="col">{ "Last activity" }</th><th scope="col">{ "Actions" }</th>
                    </tr></thead>
                    <tbody>{ for list.iter().map(|r| room_row(r, &act, &confirm_room)) }</tbody>
                </table>
        }
    });
    let stats_html = stats.view(|s| html! {
            <dl class="admin-stats">
                <dt>{ "Accounts" }</dt><dd>{ format!("{} ({} disabled)", s.users, s.disabled_users) }</dd>
                <dt>{ "Rooms" }</dt><dd>{ s.rooms }</dd>
                <dt>{ "Messages" }</dt><dd>{ s.messages }</dd>
                <dt>{ "Files" }</dt><dd>{ format!("{} ({})", s.files, bytes(s.file_bytes)) }</dd>
                <dt>{ "Database" }</dt><dd>{ bytes(s.database_bytes) }</dd>
            </dl>
    });
    let audit_html = audit.view(|list| match list {
        list if list.is_empty() => html! { <p class="hint-text">{ "Nothing yet." }</p> },
        list => html! {
            <ol class="admin-audit" aria-labelledby="admin-audit-heading">
                { for list.iter().map(|e| html! {
                    <li key={e.id.to_string()}>
                        <time>{ when(e.at) }</time>{ " " }
                        <strong>{ e.actor.clone() }</strong>{ format!(" {} {}", e.action, e.target) }
                        if !e.detail.is_empty() { <span class="hint-text">{ format!(" ({})", e.detail) }</span> }
                    </li>
                }) }
            </ol>
        },
    });
    html! {
        <section id={PANEL_ID} class="admin-panel" aria-labelledby={HEADING_ID} {onkeydown}>
            <div class="invites-head">
                <h2 id={HEADING_ID} tabindex="-1">{ "Administration" }</h2>
                <button type="button" onclick={close} aria-label="Close administration">{ "×" }</button>
            </div>
            <p class="success" role="status">{ (*done).clone().unwrap_or_default() }</p>
            if let Some(why) = (*error).clone() { <p class="error" role="alert">{ why }</p> }
            if let Some(link) = (*link).clone() {
                <div class="invite-link">
                    <label for="admin-reset-link">{ "Password reset link" }</label>
                    <input id="admin-reset-link" type="text" readonly=true value={link}
                           aria-describedby="admin-reset-hint" />
                    <p id="admin-reset-hint" class="hint-text">
                        { "Give it to the person: it works once, and the server keeps no copy of it." }
                    </p>
                </div>
            }
            <h3>{ "Statistics" }</h3>
            { stats_html }
            <h3 id="admin-people-heading">{ "People" }</h3>
            <label for="admin-search">{ "Search people" }</label>
            <input id="admin-search" type="search" value={(*query).clone()} oninput={search}
                   autocomplete="off" spellcheck="false" />
            { users_html }
            <h3 id="admin-rooms-heading">{ "Rooms" }</h3>
            { rooms_html }
            <h3>{ "Remove a message" }</h3>
            <form class="admin-remove" aria-label="Remove a message" onsubmit={remove}>
                <label for="admin-remove-link">{ "Message link" }</label>
                <input id="admin-remove-link" ref={remove_link} type="text" required=true
                       autocomplete="off" spellcheck="false" aria-describedby="admin-remove-hint" />
                <p id="admin-remove-hint" class="hint-text">
                    { "Paste the message's link (its Copy link action), from any room: everyone in the room sees it removed." }
                </p>
                <button type="submit">{ "Remove message" }</button>
            </form>
            <h3 id="admin-audit-heading">{ "Audit log" }</h3>
            { audit_html }
        </section>
    }
}

type Act = Callback<
    std::pin::Pin<
        Box<
            dyn std::future::Future<
                    Output = Result<confab_shared::api::AdminDone, crate::api::Failure>,
                >,
        >,
    >,
>;

fn user_row(user: &AdminUser, act: &Act) -> Html {
    let name = user.username.clone();
    let button = |action: &'static str, label: &'static str, class: &'static str| {
        let (act, name) = (act.clone(), name.clone());
        let onclick = Callback::from(move |_: MouseEvent| {
            let name = name.clone();
            act.emit(Box::pin(
                async move { api::user_action(&name, action).await },
            ));
        });
        html! {
            <button type="button" class={classes!("small", class)} {onclick}
                    aria-label={format!("{label}: {}", user.username)}>{ label }</button>
        }
    };
    html! {
        <tr key={user.username.clone()}>
            <td>{ user.username.clone() }</td>
            <td>{ user.display_name.clone() }</td>
            <td>{ if user.admin { "administrator" } else { "member" } }</td>
            <td>{ if user.disabled { "disabled" } else { "active" } }</td>
            <td>{ when(user.created_at) }</td>
            <td>{ user.last_seen.map_or_else(|| "—".to_owned(), when) }</td>
            <td><div class="admin-actions">
                if user.disabled { { button("enable", "Enable", "") } } else { { button("disable", "Disable", "danger") } }
                if user.admin { { button("revoke", "Revoke admin", "") } } else { { button("grant", "Make admin", "") } }
                { button("reset-password", "Reset password", "") }
            </div></td>
        </tr>
    }
}

fn room_row(room: &AdminRoom, act: &Act, confirm: &UseStateHandle<Option<String>>) -> Html {
    let shown = match &room.title {
        Some(title) if *title != room.name => format!("{title} ({})", room.name),
        _ => room.name.clone(),
    };
    let asking = confirm.as_deref() == Some(room.name.as_str());
    let ask = {
        let (confirm, name) = (confirm.clone(), room.name.clone());
        Callback::from(move |_: MouseEvent| confirm.set(Some(name.clone())))
    };
    let cancel = {
        let confirm = confirm.clone();
        Callback::from(move |_: MouseEvent| confirm.set(None))
    };
    let delete = {
        let (act, confirm, name) = (act.clone(), confirm.clone(), room.name.clone());
        Callback::from(move |_: MouseEvent| {
            confirm.set(None);
            let name = name.clone();
            act.emit(Box::pin(async move { api::delete_room(&name).await }));
        })
    };
    html! {
        <tr key={room.name.clone()}>
            <td>{ shown.clone() }</td>
            <td>{ room.kind.clone() }</td>
            <td>{ room.members }</td>
            <td>{ room.messages }</td>
            <td>{ room.last_activity.map_or_else(|| "—".to_owned(), when) }</td>
            <td><div class="admin-actions">
                if asking {
                    <button type="button" class="small danger" onclick={delete}
                            aria-label={format!("Yes, delete {shown} for everyone")}>{ "Yes, delete" }</button>
                    <button type="button" class="small" onclick={cancel}>{ "Cancel" }</button>
                } else if room.name != confab_shared::DEFAULT_ROOM {
                    <button type="button" class="small danger" onclick={ask}
                            aria-label={format!("Delete room {shown}")}>{ "Delete" }</button>
                }
            </div></td>
        </tr>
    }
}

/// "12.3 MB".
fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "kB", "MB", "GB", "TB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} bytes")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect::<String>() + "."
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_in_units() {
        assert_eq!(bytes(999), "999 bytes");
        assert_eq!(bytes(12_345_678), "12.3 MB");
        assert_eq!(capitalised("disabled bob"), "Disabled bob.");
    }
}
