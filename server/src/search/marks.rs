//! Where a hit matched: a store's highlighting (SQLite's FTS5 `highlight()`,
//! PostgreSQL's `ts_headline`) writes the body back with a marker before and after each
//! match, and this turns that into byte ranges of the body, the only form marks leave
//! the server in (no markup ever does). Shared so that both stores mark alike and are
//! checked alike.
//!
//! A body may hold any character, so the markers are characters the body does not
//! contain: private-use ones, which text rarely holds ([`OPEN`], [`CLOSE`]), and others
//! from that area ([`free_markers`]) for a body that holds those.

/// The markers tried first: private-use characters, which text rarely holds.
pub const OPEN: char = '\u{E000}';
pub const CLOSE: char = '\u{E001}';

/// Whether `body` holds either usual marker (then mark it with [`free_markers`]).
pub fn holds_markers(body: &str) -> bool {
    body.contains([OPEN, CLOSE])
}

/// Two private-use characters `body` does not hold, other than the usual markers (a
/// body is at most 4,000 characters, and there are 6,400 of them).
pub fn free_markers(body: &str) -> Option<(char, char)> {
    let mut free = ('\u{E002}'..='\u{F8FF}').filter(|c| !body.contains(*c));
    Some((free.next()?, free.next()?))
}

/// The byte ranges of `body` that `highlighted` (the body with `open` and `close` around
/// each match, neither of which the body holds) marks. Anything but exactly the body
/// with markers gives no marks rather than wrong ones.
pub fn marks(highlighted: &str, body: &str, open: char, close: char) -> Vec<[u32; 2]> {
    let mut marks = Vec::new();
    let mut plain = String::with_capacity(body.len());
    let mut start = None;
    for c in highlighted.chars() {
        if c == open {
            start = Some(plain.len());
        } else if c == close {
            if let Some(start) = start.take()
                && start < plain.len()
            {
                let (Ok(s), Ok(e)) = (u32::try_from(start), u32::try_from(plain.len())) else {
                    return Vec::new();
                };
                marks.push([s, e]);
            }
        } else {
            plain.push(c);
        }
    }
    if plain != body {
        return Vec::new();
    }
    marks
}

#[cfg(test)]
mod tests {
    use super::{free_markers, marks};

    #[test]
    fn marks_are_byte_ranges_of_the_body() {
        let (o, c) = ('<', '>');
        assert_eq!(marks("<héllo> world", "héllo world", o, c), [[0, 6]]);
        assert_eq!(marks("a <b c> d <e>", "a b c d e", o, c), [[2, 5], [8, 9]]);
        assert_eq!(marks("nothing", "nothing", o, c), Vec::<[u32; 2]>::new());
        // Not the body: no marks rather than wrong ones.
        assert!(marks("<x>", "y", o, c).is_empty());
    }

    #[test]
    fn free_markers_are_not_in_the_body() {
        assert_eq!(free_markers("plain"), Some(('\u{E002}', '\u{E003}')));
        assert_eq!(free_markers("\u{E002}x"), Some(('\u{E003}', '\u{E004}')));
    }
}
