//! A shared file's name: cleaned when it is uploaded, and put in `Content-Disposition`
//! when it is downloaded.
//!
//! The name is shown to others and offered as the name to save under, so it loses what
//! could mislead or escape: any path (a browser sends only the base name, a script may
//! send `../../x`), control characters (line breaks would forge lines in a list) and
//! invisible ones (a right-to-left override makes `txt.exe` read `exe.txt`). Long names
//! are cut keeping their extension, which is what people look at.

use confab_shared::{has_invisible_chars, limits::MAX_FILE_NAME_CHARS};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// The name a file is called when nothing is left of the one it came with.
pub const FALLBACK: &str = "file";

/// Longest extension kept whole when a long name is cut.
const MAX_EXTENSION_CHARS: usize = 16;

/// The name to keep for an upload called `raw`.
pub fn clean(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let kept: String = base
        .chars()
        .filter(|c| !c.is_control() && !has_invisible_chars(c.encode_utf8(&mut [0; 4])))
        .collect();
    let name = kept.trim();
    if name.is_empty() || name.chars().all(|c| c == '.') {
        return FALLBACK.to_owned();
    }
    if name.chars().count() <= MAX_FILE_NAME_CHARS {
        return name.to_owned();
    }
    let (stem, extension) = match name.rsplit_once('.') {
        Some((stem, ext))
            if !stem.is_empty() && (1..=MAX_EXTENSION_CHARS).contains(&ext.chars().count()) =>
        {
            (stem, Some(ext))
        }
        _ => (name, None),
    };
    let room = MAX_FILE_NAME_CHARS - extension.map_or(0, |e| e.chars().count() + 1);
    let mut cut: String = stem.chars().take(room).collect();
    cut.truncate(cut.trim_end().len());
    if let Some(ext) = extension {
        cut.push('.');
        cut.push_str(ext);
    }
    cut
}

/// RFC 5987 `attr-char`s, which go unencoded in `filename*`; everything else is
/// percent-encoded (as UTF-8).
const ATTR_CHAR: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// The `Content-Disposition` of a download (RFC 6266): `inline` for an image the server
/// could decode, `attachment` for everything else. The name travels twice: `filename*`
/// exactly (RFC 5987, UTF-8 percent-encoded), and `filename` as plain ASCII for the rare
/// client that knows no better, with every other character replaced.
pub fn disposition(name: &str, inline: bool) -> String {
    let ascii: String = name
        .chars()
        .map(|c| match c {
            ' '..='~' if c != '"' && c != '\\' && c != '%' => c,
            _ => '_',
        })
        .collect();
    let encoded = utf8_percent_encode(name, ATTR_CHAR);
    let kind = if inline { "inline" } else { "attachment" };
    format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_control_characters_go() {
        assert_eq!(clean("../../etc/passwd"), "passwd");
        assert_eq!(clean("C:\\Users\\ada\\notes.txt"), "notes.txt");
        assert_eq!(clean("two\nlines\r.txt"), "twolines.txt");
        assert_eq!(clean("  spaced  .pdf  "), "spaced  .pdf");
        assert_eq!(clean("photo\u{202e}gnp.exe"), "photognp.exe");
        assert_eq!(clean("zero\u{200b}width"), "zerowidth");
    }

    #[test]
    fn nothing_left_is_a_plain_name() {
        for raw in ["", "   ", "/", "a/", "..", ".", "\u{202e}", "dir\\"] {
            assert_eq!(clean(raw), FALLBACK, "{raw:?}");
        }
    }

    #[test]
    fn long_names_are_cut_keeping_the_extension() {
        let long = format!("{}.tar.gz", "é".repeat(300));
        let cut = clean(&long);
        assert_eq!(cut.chars().count(), MAX_FILE_NAME_CHARS);
        assert!(cut.ends_with("é.gz"), "{cut}");
        let no_ext = "x".repeat(500);
        assert_eq!(clean(&no_ext).chars().count(), MAX_FILE_NAME_CHARS);
        // An "extension" too long to be one is cut like the rest.
        let odd = format!("a.{}", "y".repeat(400));
        assert_eq!(clean(&odd).chars().count(), MAX_FILE_NAME_CHARS);
        let kept = "k".repeat(MAX_FILE_NAME_CHARS);
        assert_eq!(clean(&kept), kept);
    }

    #[test]
    fn the_disposition_carries_the_name_safely() {
        assert_eq!(
            disposition("report.pdf", false),
            "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"
        );
        assert_eq!(
            disposition("Résumé \"final\";.txt", false),
            "attachment; filename=\"R_sum_ _final_;.txt\"; \
             filename*=UTF-8''R%C3%A9sum%C3%A9%20%22final%22%3B.txt"
        );
        assert!(disposition("cat.png", true).starts_with("inline; "));
        // Whatever the name, the value is a valid header value.
        let nasty = "a\"b\\c%d\u{7f}é😀;,=";
        let value = disposition(nasty, false);
        assert!(axum::http::HeaderValue::from_str(&value).is_ok(), "{value}");
        assert!(value.is_ascii());
    }
}
