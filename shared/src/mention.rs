//! `@username` mentions in message text, found the same way by the server (which
//! counts them for the people mentioned) and the client (which highlights them).
//!
//! A mention is `@` and a username (2 to 32 of `a-z 0-9 _ . -`, any case) where the `@`
//! starts the text or follows a character that cannot be part of a username or an
//! address: `mail ada@example.org` mentions nobody. A trailing `.` or `-` ends the
//! sentence rather than the name (`thanks @ada.`).

use crate::limits::{MAX_USERNAME_CHARS, MIN_USERNAME_CHARS};

/// One mention: the byte range of `@name` in the text, and the username it names
/// (lower-cased).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mention {
    pub start: usize,
    pub end: usize,
    pub user: String,
}

fn username_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

/// Every mention in `text`, in order.
pub fn mentions(text: &str) -> Vec<Mention> {
    let mut found = Vec::new();
    let mut prev: Option<char> = None;
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        let starts =
            c == '@' && !prev.is_some_and(|p| p.is_alphanumeric() || username_char(p) || p == '@');
        prev = Some(c);
        if !starts {
            continue;
        }
        let name_start = at + 1;
        let mut end = name_start;
        while let Some(&(i, n)) = chars.peek() {
            if !username_char(n) {
                break;
            }
            end = i + n.len_utf8();
            prev = Some(n);
            chars.next();
        }
        let name = text[name_start..end].trim_end_matches(['.', '-']);
        if (MIN_USERNAME_CHARS..=MAX_USERNAME_CHARS).contains(&name.len()) {
            found.push(Mention {
                start: at,
                end: name_start + name.len(),
                user: name.to_ascii_lowercase(),
            });
        }
    }
    found
}

/// Whether `text` mentions `user` (a username, lower-case).
pub fn mentions_user(text: &str, user: &str) -> bool {
    // Cheap refusal first: most messages mention nobody.
    text.contains('@') && mentions(text).iter().any(|m| m.user == user)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users(text: &str) -> Vec<String> {
        mentions(text).into_iter().map(|m| m.user).collect()
    }

    #[test]
    fn mentions_are_found_where_a_name_can_start() {
        assert_eq!(users("@ada hi"), ["ada"]);
        assert_eq!(users("hi @Ada, and @bob."), ["ada", "bob"]);
        assert_eq!(users("(@grace.h)"), ["grace.h"]);
        assert_eq!(users("thanks @ada."), ["ada"]);
        assert_eq!(users("mail ada@example.org"), Vec::<String>::new());
        assert_eq!(users("@@ada @a @"), Vec::<String>::new());
        assert_eq!(users(&format!("@{}", "a".repeat(33))), Vec::<String>::new());
        assert_eq!(users("é@ada"), Vec::<String>::new());
        assert_eq!(users("—@ada"), ["ada"]);
    }

    #[test]
    fn ranges_cover_the_at_sign_and_the_name() {
        let text = "hey @Bob-, look";
        let m = &mentions(text)[0];
        assert_eq!(&text[m.start..m.end], "@Bob");
        assert!(mentions_user(text, "bob"));
        assert!(!mentions_user(text, "bo"));
    }
}
