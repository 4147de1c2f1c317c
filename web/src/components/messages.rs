use confab_shared::ChatMessage;
use wasm_bindgen::JsValue;
use web_sys::HtmlElement;
use yew::prelude::*;

/// Consecutive messages from one sender within this gap share one header.
const GROUP_GAP_MS: i64 = 5 * 60 * 1000;
/// How close to the bottom (px) still counts as "reading the latest".
const STICK_SLACK_PX: i32 = 48;

/// The current room's messages. Follows new messages while the reader is at the
/// bottom; leaves the scroll position alone once they scrolled up to read.
#[function_component]
pub fn MessageList() -> Html {
    let ctx = super::use_ctx();
    let state = &ctx.state;
    let list = use_node_ref();
    let stick = use_mut_ref(|| true);
    let room = state.current_room();
    let count = room.map_or(0, |r| r.messages.len());
    let last_id = room.and_then(|r| r.messages.last()).map(|m| m.id);

    let onscroll = {
        let (list, stick) = (list.clone(), stick.clone());
        Callback::from(move |_: Event| {
            if let Some(el) = list.cast::<HtmlElement>() {
                *stick.borrow_mut() =
                    el.scroll_top() + el.client_height() >= el.scroll_height() - STICK_SLACK_PX;
            }
        })
    };
    {
        let (list, stick) = (list.clone(), stick.clone());
        use_effect_with((count, last_id), move |_| {
            if *stick.borrow()
                && let Some(el) = list.cast::<HtmlElement>()
            {
                el.set_scroll_top(el.scroll_height());
            }
        });
    }

    let me = state.me.as_deref().unwrap_or_default();
    let body = match room {
        None => html! { <p class="empty">{ format!("Joining #{}…", state.current) }</p> },
        Some(r) if r.messages.is_empty() => {
            html! { <p class="empty">{ format!("No messages in #{} yet. Say hi!", state.current) }</p> }
        }
        Some(r) => {
            let items = r.messages.iter().enumerate().map(|(i, m)| {
                let starts_group = i == 0 || {
                    let prev = &r.messages[i - 1];
                    prev.from != m.from || m.ts - prev.ts > GROUP_GAP_MS
                };
                message(m, starts_group, m.from == me)
            });
            html! { <ul class="message-items">{ for items }</ul> }
        }
    };
    let typing = typing_text(&state.typing_names());
    html! {
        <>
            <div class="messages" role="log" aria-label="Messages" aria-live="polite"
                 tabindex="0" ref={list} {onscroll}>
                { body }
            </div>
            <p class="typing" data-testid="typing" aria-live="polite">{ typing }</p>
        </>
    }
}

fn message(m: &ChatMessage, starts_group: bool, mine: bool) -> Html {
    let (time, full) = format_time(m.ts);
    // The body is a text node: Yew escapes it, so user text is never parsed as HTML.
    html! {
        <li key={m.id} data-testid="message" data-from={m.from.clone()}
            class={classes!("message", mine.then_some("mine"), starts_group.then_some("first"))}>
            if starts_group {
                <div class="meta">
                    <span class="from">{ if mine { format!("{} (you)", m.from) } else { m.from.clone() } }</span>
                    <time datetime={full.clone()} title={full.clone()}>{ time.clone() }</time>
                </div>
            } else {
                <span class="visually-hidden">{ format!("{} at {time}: ", m.from) }</span>
            }
            <div class="body">{ m.body.clone() }</div>
        </li>
    }
}

/// `HH:MM` in the reader's local time zone, and the full date-time for the tooltip.
fn format_time(ts: i64) -> (String, String) {
    let date = js_sys::Date::new(&JsValue::from_f64(ts as f64));
    let short = format!("{:02}:{:02}", date.get_hours(), date.get_minutes());
    let full = String::from(date.to_string());
    (short, full)
}

fn typing_text(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => format!("{one} is typing…"),
        [a, b] => format!("{a} and {b} are typing…"),
        _ => "Several people are typing…".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::typing_text;

    #[test]
    fn typing_text_reads_naturally() {
        assert_eq!(typing_text(&[]), "");
        assert_eq!(typing_text(&["ada"]), "ada is typing…");
        assert_eq!(typing_text(&["ada", "bob"]), "ada and bob are typing…");
        assert_eq!(typing_text(&["a", "b", "c"]), "Several people are typing…");
    }
}
