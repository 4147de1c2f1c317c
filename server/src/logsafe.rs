//! Client-controlled text on its way into a log line.
//!
//! A log is read by people and parsed by tools one line at a time, so whatever a client
//! chose (a username typed at sign-in, an `Origin` header, a parser's complaint that
//! quotes the frame) must not be able to start a line of its own, hide or reorder what
//! follows it (bidi overrides, zero-width characters), or fill the disk. [`text`] wraps
//! such a value: it is written in double quotes, with control, bidi and invisible
//! characters (and `"` and `\`) escaped, and cut to its first [`MAX_CHARS`] characters.

use std::{
    borrow::Cow,
    fmt,
    sync::atomic::{AtomicBool, Ordering},
};

/// How many characters of a client's text a log line keeps.
pub const MAX_CHARS: usize = 64;

/// Client-controlled text, safe to log with `%` (see the module docs).
pub struct LogSafe<'a>(Cow<'a, str>);

/// Wraps `s` for a log line.
pub fn text(s: &str) -> LogSafe<'_> {
    LogSafe(Cow::Borrowed(s))
}

/// Wraps bytes that should be text but may not be UTF-8 (a header value): invalid
/// sequences show as U+FFFD.
pub fn bytes(b: &[u8]) -> LogSafe<'_> {
    LogSafe(String::from_utf8_lossy(b))
}

/// Characters that change how the text around them is shown without showing
/// themselves: bidi embeddings, overrides, isolates and marks, zero-width spaces and
/// joiners, the byte-order mark, the soft hyphen, and the line and paragraph
/// separators (a line break to some viewers).
fn invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF9}'..='\u{FFFB}'
    )
}

/// Longest panic message the standard hook may write as it is.
const PLAIN_PANIC_CHARS: usize = 1024;

/// Whether a panic message can go out unescaped: nothing in it can break or hide a
/// line, and it is not long enough to matter.
fn plain_panic(message: &str) -> bool {
    message.chars().count() <= PLAIN_PANIC_CHARS
        && !message.chars().any(|c| c.is_control() || invisible(c))
}

/// Panic messages go to standard error by the standard hook, not through the log, and
/// one could quote client input (an `expect` on something a client sent). This hook
/// writes a message with a control or invisible character in it, or a very long one, as
/// [`text`] does; any other goes to the standard hook, backtrace and all.
pub fn escape_panic_messages() {
    let standard = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info.payload_as_str().unwrap_or("a non-string panic");
        if plain_panic(message) {
            return standard(info);
        }
        let thread = std::thread::current();
        let location = info
            .location()
            .map_or_else(|| "an unknown place".to_owned(), ToString::to_string);
        eprintln!(
            "thread '{}' panicked at {location}:\n{}",
            thread.name().unwrap_or("<unnamed>"),
            text(message).quoted()
        );
    }));
}

/// Whether the log is JSON (`--log-format json`), see [`inside_json_strings`].
static IN_JSON: AtomicBool = AtomicBool::new(false);

/// For a JSON log: client text is then written without the quotes around it and with
/// `"` and `\` as they are, since it lands inside a JSON string that quotes and escapes
/// it already (`"path":"/api/me"`, not `"path":"\"/api/me\""`). Control, bidi and
/// invisible characters are still written as escapes, and the text still cut, so a
/// person reading the values is not fooled either. Call once, before logging starts.
pub fn inside_json_strings() {
    IN_JSON.store(true, Ordering::Relaxed);
}

impl LogSafe<'_> {
    /// The text escaped and cut; in quotes unless `in_json`.
    fn write(&self, f: &mut fmt::Formatter<'_>, in_json: bool) -> fmt::Result {
        use fmt::Write;
        if !in_json {
            f.write_char('"')?;
        }
        let mut chars = self.0.chars();
        for c in chars.by_ref().take(MAX_CHARS) {
            match c {
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                '"' | '\\' if in_json => f.write_char(c)?,
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                c if c.is_control() || invisible(c) => write!(f, "\\u{{{:x}}}", u32::from(c))?,
                c => f.write_char(c)?,
            }
        }
        if chars.next().is_some() {
            f.write_char('…')?;
        }
        if !in_json {
            f.write_char('"')?;
        }
        Ok(())
    }

    /// Always in quotes, whatever the log's format: for text that goes out of the
    /// log (a panic message on standard error).
    fn quoted(&self) -> impl fmt::Display + '_ {
        struct Quoted<'a, 'b>(&'a LogSafe<'b>);
        impl fmt::Display for Quoted<'_, '_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.write(f, false)
            }
        }
        Quoted(self)
    }
}

impl fmt::Display for LogSafe<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, IN_JSON.load(Ordering::Relaxed))
    }
}

impl fmt::Debug for LogSafe<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_breaks_and_control_characters_are_escaped() {
        let forged =
            "ada\n2026-12-01T00:00:00.000000Z  INFO confab_server: account created\r\x1b[31m\x07\0";
        let logged = text(forged).to_string();
        assert!(!logged.chars().any(char::is_control), "{logged}");
        assert_eq!(
            logged,
            "\"ada\\n2026-12-01T00:00:00.000000Z  INFO confab_server: account cre…\""
        );
        assert_eq!(
            text("a\tb\r\x1b[0m\u{7f}").to_string(),
            "\"a\\tb\\r\\u{1b}[0m\\u{7f}\""
        );
    }

    /// `s` as a JSON log writes it (without touching the process-wide switch).
    fn in_json(s: &str) -> String {
        struct InJson<'a>(LogSafe<'a>);
        impl fmt::Display for InJson<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.write(f, true)
            }
        }
        InJson(text(s)).to_string()
    }

    #[test]
    fn in_a_json_log_quotes_are_left_to_json_and_the_rest_is_escaped_as_ever() {
        assert_eq!(in_json("/api/me"), "/api/me");
        assert_eq!(in_json(r#"say "hi" \o/"#), r#"say "hi" \o/"#);
        assert_eq!(in_json("a\nb\u{202E}c"), "a\\nb\\u{202e}c");
        assert_eq!(in_json(&"x".repeat(100)).chars().count(), MAX_CHARS + 1);
        // Out of the log, quoted whatever the switch says.
        assert_eq!(text("a\"b").quoted().to_string(), r#""a\"b""#);
    }

    #[test]
    fn bidi_and_invisible_characters_are_escaped() {
        let logged = text("admin\u{202E}txt.exe\u{200B}\u{2066}\u{FEFF}\u{2028}").to_string();
        assert_eq!(
            logged,
            "\"admin\\u{202e}txt.exe\\u{200b}\\u{2066}\\u{feff}\\u{2028}\""
        );
    }

    #[test]
    fn quotes_and_backslashes_cannot_end_the_value_early() {
        assert_eq!(
            text(r#"x" level="ERROR\"#).to_string(),
            r#""x\" level=\"ERROR\\""#
        );
    }

    #[test]
    fn long_text_keeps_a_bounded_prefix() {
        let long = "é".repeat(10_000);
        let logged = text(&long).to_string();
        assert_eq!(logged.chars().count(), MAX_CHARS + 3);
        assert!(logged.ends_with("é…\""));
        // Exactly the limit is not cut.
        let exact = "x".repeat(MAX_CHARS);
        assert_eq!(text(&exact).to_string(), format!("\"{exact}\""));
    }

    #[test]
    fn a_panic_message_that_could_forge_a_line_is_not_left_to_the_standard_hook() {
        assert!(plain_panic(
            "called `Result::unwrap()` on an `Err` value: Error(\"x\")"
        ));
        assert!(!plain_panic(
            "bad name ada\n2026-12-01T00:00:00Z ERROR forged"
        ));
        assert!(!plain_panic("admin\u{202E}"));
        assert!(!plain_panic(&"x".repeat(PLAIN_PANIC_CHARS + 1)));
    }

    #[test]
    fn ordinary_text_is_kept_as_it_is_in_quotes() {
        assert_eq!(text("Zoë 李 😀").to_string(), "\"Zoë 李 😀\"");
        assert_eq!(
            bytes(b"https://evil.example").to_string(),
            "\"https://evil.example\""
        );
        assert_eq!(bytes(b"a\xffb").to_string(), "\"a\u{FFFD}b\"");
    }
}
