//! Mention autocomplete for the composer: typing `@` and the start of a name lists the
//! people of the room who match (by username or display name), in an ARIA combobox:
//! the composer is the combobox, the list a listbox whose active option the composer
//! names (`aria-activedescendant`), so the focus never leaves the text. Arrow keys move,
//! Enter or Tab insert `@username `, Escape closes; a click picks too.
//!
//! Finding the typed name, choosing the candidates and inserting are plain functions on
//! text (tested natively); browsers measure the caret in UTF-16 units, converted here.

use std::{collections::BTreeSet, rc::Rc};

use confab_shared::{Person, limits};
use web_sys::{HtmlTextAreaElement, KeyboardEvent};
use yew::prelude::*;

use crate::state::RoomView;

/// The list shows at most this many people.
const MAX_OPTIONS: usize = 8;
/// Authors of this many of the newest messages are candidates too: in a big public room
/// the member list names only those online.
const RECENT_AUTHORS_FROM: usize = 200;

fn username_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

/// The mention being typed where the caret is (`caret` a byte offset in `text`): the
/// byte offset of its `@` and what follows it up to the caret. `None` when the caret is
/// not in one: no `@`, an `@` inside a word (an address), or nothing typed after it.
pub fn typed_mention(text: &str, caret: usize) -> Option<(usize, &str)> {
    let before = text.get(..caret)?;
    let name_start = before
        .char_indices()
        .rev()
        .take_while(|(_, c)| username_char(*c))
        .last()
        .map_or(caret, |(i, _)| i);
    let at = name_start.checked_sub(1)?;
    if before.get(at..name_start) != Some("@") {
        return None;
    }
    let prev = before[..at].chars().next_back();
    if prev.is_some_and(|p| p.is_alphanumeric() || username_char(p) || p == '@') {
        return None;
    }
    let typed = &before[name_start..];
    (!typed.is_empty() && typed.len() <= limits::MAX_USERNAME_CHARS).then_some((at, typed))
}

/// Who may be mentioned in a room: its members, those online and recent authors, by
/// username once, without the person themself and without guests (whose usernames are
/// not mentionable).
pub fn people(view: &RoomView, me: &str) -> Vec<Person> {
    let recent = view
        .messages
        .iter()
        .rev()
        .take(RECENT_AUTHORS_FROM)
        .map(|m| Person {
            user: m.from.clone(),
            name: m.name.clone(),
            guest: false,
        });
    let mut seen = BTreeSet::new();
    view.members
        .iter()
        .cloned()
        .chain(view.online_people())
        .chain(recent)
        .filter(|p| !p.guest && p.user != me && p.user.chars().all(username_char))
        .filter(|p| seen.insert(p.user.clone()))
        .collect()
}

/// The people whose username, or a word of whose display name, starts with `typed`
/// (ignoring case): usernames first, then by display name.
pub fn matching(people: &[Person], typed: &str) -> Vec<Person> {
    let typed = typed.to_lowercase();
    let mut found: Vec<(bool, &Person)> = people
        .iter()
        .filter_map(|p| {
            let by_user = p.user.to_lowercase().starts_with(&typed);
            let by_name = p
                .name
                .to_lowercase()
                .split_whitespace()
                .any(|w| w.starts_with(&typed));
            (by_user || by_name).then_some((!by_user, p))
        })
        .collect();
    found.sort_by(|(a_name, a), (b_name, b)| {
        (a_name, a.name.to_lowercase(), &a.user).cmp(&(b_name, b.name.to_lowercase(), &b.user))
    });
    found
        .into_iter()
        .take(MAX_OPTIONS)
        .map(|(_, p)| p.clone())
        .collect()
}

/// `text` with the mention typed from `at` to `caret` replaced by `@user`, and the byte
/// offset of the caret after it. A space follows, so the person types on, unless one is
/// there already (the caret goes past it) or punctuation is (`@grace,`).
pub fn insert(text: &str, at: usize, caret: usize, user: &str) -> (String, usize) {
    let rest = text.get(caret..).unwrap_or("");
    let head = text.get(..at).unwrap_or(text);
    let mention = format!("@{user}");
    let end = head.len() + mention.len();
    match rest.chars().next() {
        Some(c) if c.is_whitespace() => (format!("{head}{mention}{rest}"), end + c.len_utf8()),
        Some(c) if !username_char(c) => (format!("{head}{mention}{rest}"), end),
        _ => (format!("{head}{mention} {rest}"), end + 1),
    }
}

/// UTF-16 offset (the browser's) to byte offset in `text`.
pub fn byte_offset(text: &str, utf16: u32) -> usize {
    let mut units = 0_u32;
    for (i, c) in text.char_indices() {
        if units >= utf16 {
            return i;
        }
        units += c.len_utf16() as u32;
    }
    text.len()
}

/// Byte offset in `text` to UTF-16 offset.
pub fn utf16_offset(text: &str, byte: usize) -> u32 {
    text.get(..byte)
        .unwrap_or(text)
        .chars()
        .map(|c| c.len_utf16() as u32)
        .sum()
}

/// The open list: where the typed mention starts, who matches, which one is active.
#[derive(Debug, Clone, PartialEq)]
pub struct Open {
    at: usize,
    /// What is typed after the `@`.
    typed: String,
    options: Vec<Person>,
    active: usize,
}

/// What a key did to the list.
pub enum Key {
    /// Not the list's business: the composer handles it.
    Pass,
    /// Handled (moved, closed).
    Done,
    /// Insert this text, with the caret at this UTF-16 offset.
    Insert(String, u32),
}

pub const LIST_ID: &str = "mention-list";

fn option_id(i: usize) -> String {
    format!("mention-option-{i}")
}

/// The composer's handle on the list.
#[derive(Clone)]
pub struct Picker {
    open: UseStateHandle<Option<Open>>,
    /// The room on screen, whose people are listed (only once a mention is typed: a
    /// keystroke in a room of thousands must stay cheap).
    room: Option<Rc<RoomView>>,
    me: Rc<str>,
}

#[hook]
pub fn use_picker(room: Option<Rc<RoomView>>, me: &str) -> Picker {
    Picker {
        open: use_state(|| None),
        room,
        me: Rc::from(me),
    }
}

impl Picker {
    /// After the text or the caret changed: open, update or close the list.
    pub fn update(&self, area: &HtmlTextAreaElement) {
        let text = area.value();
        let caret = area
            .selection_start()
            .ok()
            .flatten()
            .map_or(text.len(), |c| byte_offset(&text, c));
        let next = typed_mention(&text, caret).and_then(|(at, typed)| {
            let people = self
                .room
                .as_ref()
                .map(|room| people(room, &self.me))
                .unwrap_or_default();
            let options = matching(&people, typed);
            let active = match &*self.open {
                // Keep the active person while they still match.
                Some(open) => open
                    .options
                    .get(open.active)
                    .and_then(|p| options.iter().position(|o| o.user == p.user))
                    .unwrap_or(0),
                None => 0,
            };
            (!options.is_empty()).then_some(Open {
                at,
                typed: typed.to_owned(),
                options,
                active,
            })
        });
        if *self.open != next {
            self.open.set(next);
        }
    }

    pub fn close(&self) {
        if self.open.is_some() {
            self.open.set(None);
        }
    }

    /// A key pressed in the composer while the list may be open.
    pub fn key(&self, e: &KeyboardEvent, area: &HtmlTextAreaElement) -> Key {
        let Some(open) = (*self.open).clone() else {
            return Key::Pass;
        };
        let n = open.options.len();
        let moved = |active| {
            self.open.set(Some(Open {
                active,
                ..open.clone()
            }));
            Key::Done
        };
        let key = match e.key().as_str() {
            "ArrowDown" => moved((open.active + 1) % n),
            "ArrowUp" => moved((open.active + n - 1) % n),
            "Escape" => {
                self.open.set(None);
                Key::Done
            }
            // A name typed out in full needs no completing: Enter sends, as it would
            // without the list.
            "Enter"
                if open
                    .options
                    .get(open.active)
                    .is_some_and(|p| p.user.eq_ignore_ascii_case(&open.typed)) =>
            {
                self.open.set(None);
                return Key::Pass;
            }
            "Enter" | "Tab" if !e.shift_key() && !e.is_composing() => self.pick(open.active, area),
            _ => return Key::Pass,
        };
        e.prevent_default();
        // Escape closes the list only, not what the composer sits in.
        e.stop_propagation();
        key
    }

    /// Inserts option `i`; the list closes.
    pub fn pick(&self, i: usize, area: &HtmlTextAreaElement) -> Key {
        let Some(open) = &*self.open else {
            return Key::Pass;
        };
        let Some(person) = open.options.get(i) else {
            return Key::Pass;
        };
        let text = area.value();
        let caret = area
            .selection_start()
            .ok()
            .flatten()
            .map_or(text.len(), |c| byte_offset(&text, c));
        let (text, caret) = insert(&text, open.at, caret.max(open.at), &person.user);
        let caret = utf16_offset(&text, caret);
        self.open.set(None);
        Key::Insert(text, caret)
    }

    pub fn expanded(&self) -> &'static str {
        if self.open.is_some() { "true" } else { "false" }
    }

    pub fn controls(&self) -> Option<&'static str> {
        self.open.as_ref().map(|_| LIST_ID)
    }

    pub fn active_descendant(&self) -> Option<String> {
        self.open.as_ref().map(|o| option_id(o.active))
    }

    /// The listbox, when open; `on_pick` gets the index of an option clicked.
    pub fn render(&self, on_pick: &Callback<usize>) -> Html {
        let Some(open) = &*self.open else {
            return html! {};
        };
        let options = open.options.iter().enumerate().map(|(i, p)| {
            // Picked on mousedown, with the default prevented, so the composer keeps
            // the focus (and its caret) through the click.
            let onmousedown = on_pick.reform(move |e: MouseEvent| {
                e.prevent_default();
                i
            });
            let active = i == open.active;
            html! {
                <li id={option_id(i)} role="option" aria-selected={active.to_string()}
                    class={classes!("mention-option", active.then_some("active"))} {onmousedown}>
                    <span class="mention-name">{ p.name.clone() }</span>
                    <span class="mention-user">{ format!("@{}", p.user) }</span>
                </li>
            }
        });
        html! {
            <ul id={LIST_ID} role="listbox" aria-label="People to mention" class="mention-list">
                { for options }
            </ul>
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(user: &str, name: &str) -> Person {
        Person {
            user: user.into(),
            name: name.into(),
            guest: false,
        }
    }

    #[test]
    fn a_mention_is_typed_after_an_at_sign_that_starts_a_word() {
        assert_eq!(typed_mention("hi @gr", 6), Some((3, "gr")));
        assert_eq!(typed_mention("@g", 2), Some((0, "g")));
        assert_eq!(typed_mention("hi @gr there", 6), Some((3, "gr")));
        assert_eq!(typed_mention("(@Gr", 4), Some((1, "Gr")));
        assert_eq!(typed_mention("hi @", 4), None, "nothing typed yet");
        assert_eq!(typed_mention("ada@example", 11), None, "an address");
        assert_eq!(typed_mention("hi @gr there", 12), None);
        assert_eq!(typed_mention("é@gr", 5), None);
        assert_eq!(typed_mention("—@gr", 6), Some((3, "gr")));
        assert_eq!(typed_mention("@gr", 99), None);
    }

    #[test]
    fn people_match_by_username_or_a_word_of_their_name() {
        let people = [
            p("grace", "Grace Hopper"),
            p("ada", "Ada Lovelace"),
            p("hedy", "Hedy Lamarr"),
            p("glen", "Ada Glen"),
        ];
        let users = |typed| -> Vec<String> {
            matching(&people, typed)
                .into_iter()
                .map(|p| p.user)
                .collect()
        };
        assert_eq!(users("g"), ["glen", "grace"]);
        assert_eq!(users("L"), ["ada", "hedy"]);
        assert_eq!(users("ada"), ["ada", "glen"]);
        assert_eq!(users("z"), Vec::<String>::new());
        let many: Vec<Person> = (0..20).map(|i| p(&format!("u{i:02}"), "U")).collect();
        assert_eq!(matching(&many, "u").len(), MAX_OPTIONS);
    }

    #[test]
    fn candidates_are_members_online_and_authors_once_without_me_or_guests() {
        let mut view = RoomView {
            members: vec![p("ada", "Ada"), p("bob", "Bob")],
            ..RoomView::default()
        };
        view.online.insert("~zoe".into());
        view.online.insert("cy".into());
        let said = confab_shared::ChatMessage {
            from: "dee".into(),
            name: "Dee".into(),
            ..confab_shared::ChatMessage::default()
        };
        view.messages = Rc::new(vec![Rc::new(said.clone()), Rc::new(said)]);
        let users: Vec<String> = people(&view, "ada").into_iter().map(|p| p.user).collect();
        assert_eq!(users, ["bob", "cy", "dee"]);
    }

    #[test]
    fn inserting_replaces_what_was_typed() {
        assert_eq!(insert("hi @gr", 3, 6, "grace"), ("hi @grace ".into(), 10));
        assert_eq!(
            insert("hi @gr there", 3, 6, "grace"),
            ("hi @grace there".into(), 10)
        );
        assert_eq!(insert("@g, ok", 0, 2, "grace"), ("@grace, ok".into(), 6));
        assert_eq!(insert("@g", 0, 2, "grace"), ("@grace ".into(), 7));
    }

    #[test]
    fn caret_offsets_convert_between_utf16_and_bytes() {
        let text = "é😀 @g";
        assert_eq!(byte_offset(text, 0), 0);
        assert_eq!(byte_offset(text, 1), 2);
        assert_eq!(byte_offset(text, 3), 6);
        assert_eq!(byte_offset(text, 6), text.len());
        assert_eq!(byte_offset(text, 60), text.len());
        assert_eq!(utf16_offset(text, text.len()), 6);
        assert_eq!(utf16_offset(text, 6), 3);
    }
}
