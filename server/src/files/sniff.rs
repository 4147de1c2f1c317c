//! A file's media type, from its first bytes.
//!
//! The name and the uploader's `Content-Type` say what someone claims; the bytes say
//! what a browser would make of them. Serving the type found here, with `nosniff`, keeps
//! HTML, SVG or script renamed `.png` from being run as a page. Magic numbers come from
//! the `infer` crate (a table of a few hundred formats, no dependencies, no I/O); what
//! it does not know is `text/plain` when it reads as UTF-8 text, else
//! `application/octet-stream`. SVG is XML text to `infer`, never an image here: it can
//! carry script.

/// The type of bytes nothing recognises.
pub const UNKNOWN: &str = "application/octet-stream";

/// Bytes of the start of a file [`sniff`] looks at.
pub const HEAD_BYTES: usize = 8 * 1024;

/// The media type of a file that starts with `head`.
pub fn sniff(head: &[u8]) -> String {
    if let Some(kind) = infer::get(head) {
        return kind.mime_type().to_owned();
    }
    if looks_like_text(head) {
        return "text/plain; charset=utf-8".to_owned();
    }
    UNKNOWN.to_owned()
}

/// The types the server decodes to make a preview, and serves `inline` when it could.
pub fn is_previewable(mime: &str) -> bool {
    matches!(
        mime,
        "image/png" | "image/jpeg" | "image/gif" | "image/webp"
    )
}

/// UTF-8 without control characters other than the whitespace ones (the head may end
/// inside a character).
fn looks_like_text(head: &[u8]) -> bool {
    let control = |b: &u8| *b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0c) || *b == 0x7f;
    if head.is_empty() || head.iter().any(control) {
        return false;
    }
    match std::str::from_utf8(head) {
        Ok(_) => true,
        // Cut inside the last character: fine if that is all that is wrong.
        Err(e) => e.error_len().is_none() && head.len() - e.valid_up_to() < 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";

    #[test]
    fn the_type_comes_from_the_bytes() {
        assert_eq!(sniff(PNG), "image/png");
        assert_eq!(sniff(b"\xff\xd8\xff\xe0\0\x10JFIF\0"), "image/jpeg");
        assert_eq!(sniff(b"GIF89a\x01\0\x01\0"), "image/gif");
        assert_eq!(sniff(b"RIFF\x1a\0\0\0WEBPVP8L"), "image/webp");
        assert_eq!(sniff(b"%PDF-1.7\n"), "application/pdf");
        assert_eq!(sniff(b"PK\x03\x04\x14\0\0\0\x08\0"), "application/zip");
    }

    #[test]
    fn markup_is_never_an_image() {
        let html = sniff(b"<!DOCTYPE html><html><script>alert(1)</script></html>");
        assert!(!is_previewable(&html), "{html}");
        assert!(html.starts_with("text/"), "{html}");
        let svg =
            sniff(b"<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>");
        assert!(!is_previewable(&svg) && !svg.contains("svg"), "{svg}");
    }

    #[test]
    fn text_and_anything_else() {
        assert_eq!(sniff("héllo wörld".as_bytes()), "text/plain; charset=utf-8");
        // Cut in the middle of "é".
        assert_eq!(sniff(&"hé".as_bytes()[..2]), "text/plain; charset=utf-8");
        assert_eq!(sniff(b"\0\x01\x02\x03binary"), UNKNOWN);
        assert_eq!(sniff(&[7u8; 100]), UNKNOWN);
        assert_eq!(sniff(b"a\tb\r\nc\x0c"), "text/plain; charset=utf-8");
        assert_eq!(sniff(b"\xff\xfe\xfd not utf-8"), UNKNOWN);
        assert_eq!(sniff(b""), UNKNOWN);
    }

    #[test]
    fn only_four_image_types_are_previewed() {
        for mime in ["image/png", "image/jpeg", "image/gif", "image/webp"] {
            assert!(is_previewable(mime));
        }
        for mime in [
            "image/svg+xml",
            "image/bmp",
            "image/tiff",
            "text/html",
            UNKNOWN,
        ] {
            assert!(!is_previewable(mime));
        }
    }
}
