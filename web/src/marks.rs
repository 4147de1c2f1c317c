//! Where a search matched, as pieces of text: a hit's body cut to an excerpt around its
//! first match, in plain slices of the body, each marked or not. The search results
//! wrap the marked ones in `<mark>` elements of text; nothing from the server is ever
//! parsed as markup. The ranges come from the server and are checked here: one that is
//! empty, reversed, past the body, inside a character or overlapping the one before is
//! ignored, never a panic.

/// Characters of a hit's body shown; a longer body is cut around its first match.
pub const EXCERPT_CHARS: usize = 280;
/// Characters kept before the first match when the body is cut.
const LEAD_CHARS: usize = 60;

/// One piece of an excerpt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece<'a> {
    pub text: &'a str,
    pub marked: bool,
}

/// A hit's body as shown: its pieces, and whether text was cut before and after them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Excerpt<'a> {
    pub pieces: Vec<Piece<'a>>,
    pub cut_before: bool,
    pub cut_after: bool,
}

/// The ranges of `marks` that can be marked in `body`: in order, not overlapping, not
/// empty, within the body and on character boundaries.
pub fn valid_ranges(body: &str, marks: &[[u32; 2]]) -> Vec<(usize, usize)> {
    let mut ranges = Vec::with_capacity(marks.len());
    let mut end_of_last = 0;
    for [start, end] in marks {
        let (Ok(start), Ok(end)) = (usize::try_from(*start), usize::try_from(*end)) else {
            continue;
        };
        let fits = start < end
            && start >= end_of_last
            && end <= body.len()
            && body.is_char_boundary(start)
            && body.is_char_boundary(end);
        if fits {
            ranges.push((start, end));
            end_of_last = end;
        }
    }
    ranges
}

/// The byte where the `n`th character from `from` starts (or the end).
fn chars_forward(body: &str, from: usize, n: usize) -> usize {
    body[from..]
        .char_indices()
        .nth(n)
        .map_or(body.len(), |(i, _)| from + i)
}

/// The byte where the character `n` characters before `to` starts (or 0).
fn chars_back(body: &str, to: usize, n: usize) -> usize {
    if n == 0 {
        return to;
    }
    body[..to]
        .char_indices()
        .rev()
        .nth(n - 1)
        .map_or(0, |(i, _)| i)
}

/// The excerpt of `body` to show, at most `max_chars` characters, with the valid ranges
/// of `marks` marked: all of a short body, else the part from a little before the first
/// match.
pub fn excerpt<'a>(body: &'a str, marks: &[[u32; 2]], max_chars: usize) -> Excerpt<'a> {
    let ranges = valid_ranges(body, marks);
    let (from, to) = if body.chars().count() <= max_chars {
        (0, body.len())
    } else {
        let anchor = ranges.first().map_or(0, |(start, _)| *start);
        let from = chars_back(body, anchor, LEAD_CHARS.min(max_chars / 2));
        (from, chars_forward(body, from, max_chars))
    };
    let mut pieces = Vec::new();
    let mut at = from;
    for (start, end) in ranges {
        let (start, end) = (start.clamp(from, to), end.clamp(from, to));
        if start >= end {
            continue;
        }
        if at < start {
            pieces.push(Piece {
                text: &body[at..start],
                marked: false,
            });
        }
        pieces.push(Piece {
            text: &body[start..end],
            marked: true,
        });
        at = end;
    }
    if at < to {
        pieces.push(Piece {
            text: &body[at..to],
            marked: false,
        });
    }
    Excerpt {
        pieces,
        cut_before: from > 0,
        cut_after: to < body.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(e: &Excerpt) -> String {
        e.pieces
            .iter()
            .map(|p| match p.marked {
                true => format!("[{}]", p.text),
                false => p.text.to_owned(),
            })
            .collect()
    }

    #[test]
    fn ranges_mark_the_words_they_name() {
        let body = "Rust borrow checker, rust again";
        let e = excerpt(body, &[[0, 4], [21, 25]], EXCERPT_CHARS);
        assert_eq!(shown(&e), "[Rust] borrow checker, [rust] again");
        assert!(!e.cut_before && !e.cut_after);
        assert_eq!(shown(&excerpt(body, &[], EXCERPT_CHARS)), body);
        assert_eq!(
            shown(&excerpt(body, &[[0, 31]], EXCERPT_CHARS)),
            format!("[{body}]")
        );
    }

    #[test]
    fn ranges_count_bytes_and_fall_on_character_boundaries() {
        // "é" is two bytes, the crab four.
        let body = "café \u{1F980} crabe";
        let e = excerpt(body, &[[0, 5], [6, 10], [11, 16]], EXCERPT_CHARS);
        assert_eq!(shown(&e), "[café] [\u{1F980}] [crabe]");
        // Inside a character: ignored, the rest still marked.
        let e = excerpt(body, &[[0, 4], [7, 10], [11, 16]], EXCERPT_CHARS);
        assert_eq!(shown(&e), "café \u{1F980} [crabe]");
    }

    #[test]
    fn bad_ranges_are_ignored_safely() {
        let body = "hello world";
        for marks in [
            vec![[6, 100]],
            vec![[20, 25]],
            vec![[5, 5]],
            vec![[7, 3]],
            vec![[u32::MAX, u32::MAX]],
        ] {
            let e = excerpt(body, &marks, EXCERPT_CHARS);
            assert_eq!(shown(&e), body, "{marks:?}");
        }
        // Overlapping or out of order: the first wins, the rest of the order goes on.
        let e = excerpt(body, &[[0, 5], [3, 8], [6, 11]], EXCERPT_CHARS);
        assert_eq!(shown(&e), "[hello] [world]");
        let e = excerpt(body, &[[6, 11], [0, 5]], EXCERPT_CHARS);
        assert_eq!(shown(&e), "hello [world]");
        assert_eq!(shown(&excerpt("", &[[0, 1]], EXCERPT_CHARS)), "");
    }

    #[test]
    fn a_long_body_is_cut_around_its_first_match() {
        let body = format!("{}needle{}", "a".repeat(1_000), "é".repeat(1_000));
        let e = excerpt(&body, &[[1_000, 1_006]], 100);
        assert!(e.cut_before && e.cut_after);
        let text = shown(&e);
        assert_eq!(text.chars().count(), 102, "100 and the brackets");
        assert!(text.starts_with(&"a".repeat(50)), "{text}");
        assert!(text.contains("[needle]"), "{text}");
        // A match past the cut is clipped, not shown half outside.
        let e = excerpt(&body, &[[1_000, 1_006], [1_006, 3_006]], 100);
        assert!(shown(&e).ends_with(&format!("[{}]", "é".repeat(44))));
        // No match: the start.
        let e = excerpt(&body, &[], 10);
        assert_eq!((shown(&e).as_str(), e.cut_before), ("aaaaaaaaaa", false));
    }
}
