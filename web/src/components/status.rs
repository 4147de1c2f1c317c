use yew::prelude::*;

use crate::state::Conn;

/// Connection state, announced politely to screen readers when it changes.
#[function_component]
pub fn ConnectionStatus() -> Html {
    let ctx = super::use_ctx();
    let (state, text) = match ctx.state.conn {
        Conn::Idle => ("idle", String::new()),
        Conn::Open => ("open", "Connected".to_owned()),
        Conn::Connecting => ("connecting", "Connecting…".to_owned()),
        Conn::NoNetwork => ("offline", "Offline: waiting for the network…".to_owned()),
        Conn::Reconnecting { retry_in_ms } => (
            "offline",
            format!(
                "Reconnecting… (next try in {} s)",
                retry_in_ms.div_ceil(1000).max(1)
            ),
        ),
    };
    html! {
        <span class={classes!("status", state)} data-testid="connection" data-state={state}
              role="status" aria-live="polite">
            { text }
        </span>
    }
}
