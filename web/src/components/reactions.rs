//! Reactions: the chips under a message (emoji, count, pressed when one is the reader's,
//! and who reacted, on hover and on focus) and the picker that adds one. The chips are
//! plain buttons whose clicks the message list handles for all messages at once; the
//! picker, open for one message at a time, is a component with its own state.

use confab_shared::{ChatMessage, Emoji};
use wasm_bindgen::JsCast;
use web_sys::{HtmlElement, HtmlInputElement};
use yew::prelude::*;

/// The picker's grid: the reactions most chats see most.
pub const COMMON_EMOJI: [&str; 16] = [
    "\u{1F44D}",        // thumbs up
    "\u{1F44E}",        // thumbs down
    "\u{1F604}",        // smiling face with open mouth and smiling eyes
    "\u{1F602}",        // tears of joy
    "\u{2764}\u{FE0F}", // red heart
    "\u{1F389}",        // party popper
    "\u{1F60D}",        // heart eyes
    "\u{1F62E}",        // open mouth
    "\u{1F622}",        // crying
    "\u{1F621}",        // pouting
    "\u{1F64F}",        // folded hands
    "\u{1F440}",        // eyes
    "\u{1F680}",        // rocket
    "\u{1F525}",        // fire
    "\u{2705}",         // check mark
    "\u{1F4AF}",        // hundred points
];

/// The grid's columns, for moving up and down in it with the arrow keys.
const COLUMNS: usize = 8;

/// The chips of a message's reactions. `name` turns a username into what to call them.
pub fn chips(m: &ChatMessage, me: &str, name: &dyn Fn(&str) -> String) -> Html {
    if m.reactions.is_empty() {
        return html! {};
    }
    let chips = m.reactions.iter().map(|r| {
        let mine = r.users.iter().any(|u| u == me);
        let who = r
            .users
            .iter()
            .map(|u| name(u))
            .collect::<Vec<_>>()
            .join(", ");
        let count = r.users.len();
        let label = format!("{} {count}: {who}", r.emoji);
        html! {
            <button type="button" class={classes!("reaction", mine.then_some("mine"))}
                    data-action="toggle-reaction" data-emoji={r.emoji.clone()}
                    aria-pressed={if mine { "true" } else { "false" }}
                    aria-label={label} data-who={who}>
                <span class="emoji" aria-hidden="true">{ r.emoji.clone() }</span>
                <span class="count" aria-hidden="true">{ count }</span>
            </button>
        }
    });
    html! {
        <div class="reactions" role="group" aria-label="Reactions">{ for chips }</div>
    }
}

#[derive(Properties, PartialEq)]
pub struct PickerProps {
    /// The message's `seq`: the picker's ids, unique on the page.
    pub seq: u64,
    /// A valid emoji was chosen.
    pub on_pick: Callback<String>,
    pub on_close: Callback<()>,
}

/// A small non-modal dialog: the common emoji as a grid of buttons (arrow keys move in
/// it, Tab goes through it), a field for any one emoji, and Escape to close.
#[function_component]
pub fn EmojiPicker(props: &PickerProps) -> Html {
    let grid = use_node_ref();
    let typed = use_state(String::new);
    let error = use_state(|| None::<String>);
    {
        let grid = grid.clone();
        use_effect_with((), move |()| focus_cell(&grid, 0));
    }
    let onkeydown = {
        let on_close = props.on_close.clone();
        Callback::from(move |e: KeyboardEvent| {
            if e.key() == "Escape" {
                e.prevent_default();
                e.stop_propagation();
                on_close.emit(());
            }
        })
    };
    let on_grid_key = {
        let grid = grid.clone();
        Callback::from(move |e: KeyboardEvent| {
            let Some(at) = focused_cell(&grid) else {
                return;
            };
            let last = COMMON_EMOJI.len() - 1;
            let to = match e.key().as_str() {
                "ArrowRight" => (at + 1).min(last),
                "ArrowLeft" => at.saturating_sub(1),
                "ArrowDown" => (at + COLUMNS).min(last),
                "ArrowUp" => at.saturating_sub(COLUMNS),
                "Home" => 0,
                "End" => last,
                _ => return,
            };
            e.prevent_default();
            focus_cell(&grid, to);
        })
    };
    let cells = COMMON_EMOJI.iter().map(|emoji| {
        let on_pick = props.on_pick.clone();
        let onclick = Callback::from(move |_: MouseEvent| on_pick.emit((*emoji).to_owned()));
        html! { <button type="button" class="emoji-cell" {onclick}>{ *emoji }</button> }
    });
    let oninput = {
        let (typed, error) = (typed.clone(), error.clone());
        Callback::from(move |e: InputEvent| {
            if let Some(input) = e.target_dyn_into::<HtmlInputElement>() {
                typed.set(input.value());
                error.set(None);
            }
        })
    };
    let onsubmit = {
        let (typed, error, on_pick) = (typed.clone(), error.clone(), props.on_pick.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            match Emoji::parse(typed.trim()) {
                Ok(emoji) => on_pick.emit(emoji.into_string()),
                Err(e) => error.set(Some(e.to_string())),
            }
        })
    };
    let close = props.on_close.reform(|_: MouseEvent| ());
    let input_id = format!("emoji-input-{}", props.seq);
    let error_id = format!("emoji-error-{}", props.seq);
    html! {
        <div class="emoji-picker" role="dialog" aria-label="Add a reaction" {onkeydown}>
            <div class="emoji-grid" role="group" aria-label="Common reactions" ref={grid}
                 onkeydown={on_grid_key}>
                { for cells }
            </div>
            <form class="emoji-other" {onsubmit}>
                <label for={input_id.clone()}>{ "Any emoji" }</label>
                <input id={input_id} type="text" autocomplete="off" value={(*typed).clone()}
                       aria-invalid={if error.is_some() { "true" } else { "false" }}
                       aria-describedby={error.as_ref().map(|_| error_id.clone())} {oninput} />
                <button type="submit">{ "Add" }</button>
                <button type="button" onclick={close}>{ "Close" }</button>
                if let Some(message) = &*error {
                    <p id={error_id} class="error" role="alert">{ message.clone() }</p>
                }
            </form>
        </div>
    }
}

fn cell_buttons(grid: &NodeRef) -> Vec<HtmlElement> {
    let Some(grid) = grid.cast::<HtmlElement>() else {
        return Vec::new();
    };
    let children = grid.children();
    (0..children.length())
        .filter_map(|i| children.item(i))
        .filter_map(|e| e.dyn_into::<HtmlElement>().ok())
        .collect()
}

fn focused_cell(grid: &NodeRef) -> Option<usize> {
    let active = web_sys::window()?.document()?.active_element()?;
    cell_buttons(grid)
        .iter()
        .position(|b| AsRef::<web_sys::Element>::as_ref(b) == &active)
}

fn focus_cell(grid: &NodeRef, at: usize) {
    if let Some(button) = cell_buttons(grid).get(at) {
        let _ = button.focus();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_emoji_of_the_grid_is_one_the_server_takes() {
        for emoji in COMMON_EMOJI {
            assert!(Emoji::parse(emoji).is_ok(), "{emoji}");
        }
        assert!(COMMON_EMOJI.len().is_multiple_of(COLUMNS), "full rows");
    }
}
