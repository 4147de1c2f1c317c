//! Validated values: the only way to get a [`DisplayName`], [`RoomName`] or [`Body`] is
//! through `parse`, so code holding one never re-checks it.

use crate::limits::{
    MAX_BODY_CHARS, MAX_CLIENT_ID_CHARS, MAX_NAME_CHARS, MAX_PASSWORD_BYTES, MAX_ROOM_CHARS,
    MAX_USERNAME_CHARS, MIN_PASSWORD_CHARS, MIN_USERNAME_CHARS,
};

/// Why a user-supplied value was refused. The message is meant for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    #[error("display name must be 1 to {MAX_NAME_CHARS} characters")]
    NameLength,
    #[error("display name must not contain control characters")]
    NameControlChars,
    #[error("display name must not contain invisible or text-direction characters")]
    NameInvisibleChars,
    #[error("room name must be 1 to {MAX_ROOM_CHARS} characters")]
    RoomLength,
    #[error("room name may only use a-z, 0-9, '-' and '_'")]
    RoomChars,
    #[error("message must be 1 to {MAX_BODY_CHARS} characters")]
    BodyLength,
    #[error(
        "client id must be 1 to {MAX_CLIENT_ID_CHARS} characters of A-Z, a-z, 0-9, '-' and '_'"
    )]
    ClientId,
    #[error(
        "username must be {MIN_USERNAME_CHARS} to {MAX_USERNAME_CHARS} characters of a-z, 0-9, '_', '.' and '-'"
    )]
    Username,
    #[error("a reaction is one emoji")]
    Emoji,
    #[error(
        "password must be at least {MIN_PASSWORD_CHARS} characters (and at most {MAX_PASSWORD_BYTES} bytes)"
    )]
    PasswordLength,
}

/// A display name: trimmed, 1..=32 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let name = raw.trim();
        let len = name.chars().count();
        if len == 0 || len > MAX_NAME_CHARS {
            return Err(ValidationError::NameLength);
        }
        // Control characters (newlines, bidi overrides are not control chars but NUL,
        // escape sequences and the like are) would let one name impersonate another or
        // break layouts.
        if name.chars().any(char::is_control) {
            return Err(ValidationError::NameControlChars);
        }
        // Invisible characters make two names that look the same different ("Ada" and
        // "A\u{200b}da"), and direction overrides make a name display as another
        // ("\u{202e}ada" reads "ada" backwards into what follows it).
        if has_invisible_chars(name) {
            return Err(ValidationError::NameInvisibleChars);
        }
        Ok(Self(name.to_owned()))
    }

    /// The key under which names are unique: two people cannot be "Ada" and "ada".
    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// Whether `name` holds a character that changes the direction of text or shows as
/// nothing: Unicode's format characters (general category Cf: bidi marks, embeddings,
/// overrides and isolates, zero-width spaces and joiners, the soft hyphen, tags…) and the
/// blank fillers (Hangul fillers, the braille blank). A zero-width joiner is allowed
/// between two emoji (or an emoji and its variation selector), where it builds one
/// emoji such as 👩‍💻 instead of hiding anything.
pub fn has_invisible_chars(name: &str) -> bool {
    let chars: Vec<char> = name.chars().collect();
    chars.iter().enumerate().any(|(i, &c)| {
        if c == '\u{200d}' {
            let before = i.checked_sub(1).and_then(|j| chars.get(j));
            let after = chars.get(i + 1);
            return !(before.is_some_and(|&b| is_emoji_part(b))
                && after.is_some_and(|&a| is_emoji(a)));
        }
        is_invisible(c)
    })
}

fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00ad}'                      // soft hyphen
        | '\u{034f}'                    // combining grapheme joiner
        | '\u{061c}'                    // Arabic letter mark
        | '\u{0600}'..='\u{0605}' | '\u{06dd}' | '\u{070f}' | '\u{08e2}'
        | '\u{115f}' | '\u{1160}' | '\u{3164}' | '\u{ffa0}' // Hangul fillers
        | '\u{17b4}' | '\u{17b5}' | '\u{180e}'
        | '\u{200b}'..='\u{200f}'      // zero-width space, joiners, LRM, RLM
        | '\u{202a}'..='\u{202e}'      // embeddings and overrides
        | '\u{2060}'..='\u{2064}'      // word joiner, invisible operators
        | '\u{2066}'..='\u{206f}'      // isolates and deprecated format characters
        | '\u{2800}'                    // braille blank
        | '\u{feff}'                    // zero-width no-break space
        | '\u{fff9}'..='\u{fffb}'      // interlinear annotations
        | '\u{110bd}' | '\u{110cd}' | '\u{13430}'..='\u{1343f}' | '\u{1bca0}'..='\u{1bca3}'
        | '\u{1d173}'..='\u{1d17a}'
        | '\u{e0001}' | '\u{e0020}'..='\u{e007f}' // tags
    )
}

/// Pictographs, symbols and dingbats: what emoji are drawn from.
fn is_emoji(c: char) -> bool {
    matches!(c, '\u{2600}'..='\u{27bf}' | '\u{2b00}'..='\u{2bff}' | '\u{1f000}'..='\u{1faff}')
}

/// An emoji, or what may end one before a joiner (a variation selector, a skin tone).
fn is_emoji_part(c: char) -> bool {
    is_emoji(c) || c == '\u{fe0f}'
}

/// A room name: 1..=40 characters of `[a-z0-9-_]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomName(String);

impl RoomName {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let len = raw.chars().count();
        if len == 0 || len > MAX_ROOM_CHARS {
            return Err(ValidationError::RoomLength);
        }
        if !raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            return Err(ValidationError::RoomChars);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// A message body: 1..=4000 characters after trimming surrounding whitespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body(String);

impl Body {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let body = raw.trim();
        let len = body.chars().count();
        if len == 0 || len > MAX_BODY_CHARS {
            return Err(ValidationError::BodyLength);
        }
        Ok(Self(body.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// One emoji, for a reaction: a single grapheme (so flags, keycaps, skin tones and
/// families made of several code points count as one) of at most
/// [`crate::limits::MAX_EMOJI_BYTES`], every code point of which belongs to emoji, with
/// at least one pictograph. Text, however short, is not a reaction.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Emoji(String);

impl Emoji {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        use unicode_segmentation::UnicodeSegmentation;
        let one_grapheme = raw.graphemes(true).count() == 1;
        let pictograph = raw.chars().any(is_pictograph);
        // A keycap (`1️⃣`) is a digit, `#` or `*` with its combining mark.
        let keycap = raw.ends_with('\u{20E3}');
        let parts_ok = raw.chars().all(|c| {
            is_pictograph(c)
                || matches!(c, '\u{200D}' | '\u{FE0F}' | '\u{20E3}')
                || ('\u{1F3FB}'..='\u{1F3FF}').contains(&c) // skin tones
                || ('\u{E0020}'..='\u{E007F}').contains(&c) // tag sequences (flags of regions)
                || (keycap && (c.is_ascii_digit() || c == '#' || c == '*'))
        });
        if raw.len() > crate::limits::MAX_EMOJI_BYTES
            || !one_grapheme
            || !parts_ok
            || !(pictograph || keycap)
        {
            return Err(ValidationError::Emoji);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// Code points that are emoji pictographs or symbols with an emoji presentation: the
/// blocks Unicode's `Extended_Pictographic` property covers, and the regional indicators
/// that pair into flags.
fn is_pictograph(c: char) -> bool {
    matches!(c,
        '\u{00A9}' | '\u{00AE}' | '\u{203C}' | '\u{2049}' | '\u{2122}' | '\u{2139}'
        | '\u{2194}'..='\u{21AA}'
        | '\u{231A}'..='\u{23FF}'
        | '\u{24C2}'
        | '\u{25AA}'..='\u{25FE}'
        | '\u{2600}'..='\u{27BF}'
        | '\u{2934}' | '\u{2935}'
        | '\u{2B05}'..='\u{2B55}'
        | '\u{3030}' | '\u{303D}' | '\u{3297}' | '\u{3299}'
        | '\u{1F000}'..='\u{1F2FF}'
        | '\u{1F300}'..='\u{1F3FA}'
        | '\u{1F400}'..='\u{1FAFF}'
    )
}

/// A client's id for one of its messages: 1..=64 characters of `[A-Za-z0-9_-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientId(String);

impl ClientId {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let ok_len = (1..=MAX_CLIENT_ID_CHARS).contains(&raw.len());
        if !ok_len
            || !raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(ValidationError::ClientId);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl std::fmt::Display for DisplayName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Display for ClientId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Display for RoomName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod emoji_tests {
    use super::*;

    #[test]
    fn a_reaction_is_one_emoji() {
        for ok in [
            "👍",
            "❤️",
            "🎉",
            "😀",
            "🇫🇷",
            "1️⃣",
            "👍🏽",
            "👩‍👩‍👧",
            "🏳️‍🌈",
            "✅",
            "🦀",
            "🏴\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}",
        ] {
            assert_eq!(
                Emoji::parse(ok).map(Emoji::into_string),
                Ok(ok.to_owned()),
                "{ok}"
            );
        }
        for bad in [
            "",
            "a",
            "ok",
            "👍👍",
            "1",
            "#",
            " 👍",
            "👍 ",
            "<b>",
            "\u{202E}👍",
            "\u{200D}",
            "\u{FE0F}",
            "🏽",
            "👍a",
            &"👍\u{FE0F}".repeat(10),
        ] {
            assert_eq!(Emoji::parse(bad), Err(ValidationError::Emoji), "{bad:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_with_invisible_or_direction_characters_are_refused() {
        for sneaky in [
            "A\u{200b}da",  // zero-width space: looks like "Ada"
            "\u{202e}ada",  // right-to-left override
            "ada\u{2066}",  // isolate
            "\u{200f}Ada",  // right-to-left mark
            "Ad\u{00ad}a",  // soft hyphen
            "\u{3164}",     // Hangul filler: a blank name
            "Ada\u{feff}",  // zero-width no-break space
            "A\u{200d}da",  // a joiner between letters hides nothing good
            "\u{e0061}Ada", // tag character
        ] {
            assert_eq!(
                DisplayName::parse(sneaky),
                Err(ValidationError::NameInvisibleChars),
                "{sneaky:?}"
            );
        }
        for fine in [
            "Ada",
            "Zoë",
            "李雷",
            "עדה",
            "أحمد",
            "👩\u{200d}💻 Ada",
            "❤\u{fe0f}\u{200d}🔥",
        ] {
            assert!(DisplayName::parse(fine).is_ok(), "{fine:?}");
        }
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(
            DisplayName::parse("  Ada ").map(|n| n.into_string()),
            Ok("Ada".into())
        );
        assert_eq!(DisplayName::parse("   "), Err(ValidationError::NameLength));
        assert_eq!(DisplayName::parse(""), Err(ValidationError::NameLength));
        assert!(DisplayName::parse(&"x".repeat(32)).is_ok());
        assert_eq!(
            DisplayName::parse(&"x".repeat(33)),
            Err(ValidationError::NameLength)
        );
        // Characters, not bytes: 32 emoji are fine.
        assert!(DisplayName::parse(&"\u{1F600}".repeat(32)).is_ok());
        assert_eq!(
            DisplayName::parse("a\u{7}b"),
            Err(ValidationError::NameControlChars)
        );
        assert_eq!(
            DisplayName::parse("a\nb"),
            Err(ValidationError::NameControlChars)
        );
    }

    #[test]
    fn name_key_is_case_insensitive() {
        let a = DisplayName::parse("Ada").expect("valid");
        let b = DisplayName::parse("aDA").expect("valid");
        assert_eq!(a.key(), b.key());
        assert_eq!(a.as_str(), "Ada");
    }

    #[test]
    fn room_names_use_a_small_alphabet() {
        assert!(RoomName::parse("general").is_ok());
        assert!(RoomName::parse("rust-help_2").is_ok());
        assert!(RoomName::parse(&"a".repeat(40)).is_ok());
        assert_eq!(
            RoomName::parse(&"a".repeat(41)),
            Err(ValidationError::RoomLength)
        );
        assert_eq!(RoomName::parse(""), Err(ValidationError::RoomLength));
        assert_eq!(RoomName::parse("General"), Err(ValidationError::RoomChars));
        assert_eq!(RoomName::parse("a b"), Err(ValidationError::RoomChars));
        assert_eq!(RoomName::parse(" general"), Err(ValidationError::RoomChars));
        assert_eq!(
            RoomName::parse("caf\u{e9}"),
            Err(ValidationError::RoomChars)
        );
    }

    #[test]
    fn client_ids_are_short_and_plain() {
        assert!(ClientId::parse("0f3a-9_Z").is_ok());
        assert!(ClientId::parse(&"a".repeat(64)).is_ok());
        assert_eq!(
            ClientId::parse(&"a".repeat(65)),
            Err(ValidationError::ClientId)
        );
        assert_eq!(ClientId::parse(""), Err(ValidationError::ClientId));
        assert_eq!(ClientId::parse("a b"), Err(ValidationError::ClientId));
        assert_eq!(ClientId::parse("\u{e9}"), Err(ValidationError::ClientId));
    }

    #[test]
    fn bodies_are_trimmed_and_bounded() {
        assert_eq!(
            Body::parse("  hi \n").map(Body::into_string),
            Ok("hi".into())
        );
        assert_eq!(
            Body::parse("line one\nline two").map(Body::into_string),
            Ok("line one\nline two".into())
        );
        assert_eq!(Body::parse(" \n\t "), Err(ValidationError::BodyLength));
        assert!(Body::parse(&"x".repeat(4000)).is_ok());
        assert_eq!(
            Body::parse(&"x".repeat(4001)),
            Err(ValidationError::BodyLength)
        );
        // Surrounding whitespace does not count towards the limit.
        assert!(Body::parse(&format!("  {}  ", "x".repeat(4000))).is_ok());
    }
}

/// An account's sign-in name: 2..=32 characters of `[a-z0-9_.-]`, compared without case
/// and stored in lower case, so "Ada" and "ada" are one account. Separate from the
/// display name, which people may change and which may contain any character.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let name = raw.trim().to_ascii_lowercase();
        let len = name.chars().count();
        let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c);
        if !(MIN_USERNAME_CHARS..=MAX_USERNAME_CHARS).contains(&len) || !name.chars().all(allowed) {
            return Err(ValidationError::Username);
        }
        Ok(Self(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password as typed: never trimmed or normalised (spaces count), at least 8
/// characters, at most 1 KiB. `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        if raw.chars().count() < MIN_PASSWORD_CHARS || raw.len() > MAX_PASSWORD_BYTES {
            return Err(ValidationError::PasswordLength);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(…)")
    }
}

#[cfg(test)]
mod account_tests {
    use super::*;

    #[test]
    fn usernames_are_lower_cased_and_limited_to_a_small_alphabet() {
        assert_eq!(
            Username::parse(" Ada.L-1_ ").map(|u| u.0),
            Ok("ada.l-1_".into())
        );
        for bad in [
            "a",
            "",
            "ada lovelace",
            "adá",
            "x".repeat(33).as_str(),
            "ada@home",
        ] {
            assert_eq!(
                Username::parse(bad),
                Err(ValidationError::Username),
                "{bad:?}"
            );
        }
        assert!(Username::parse(&"x".repeat(32)).is_ok());
    }

    #[test]
    fn passwords_keep_every_character_and_never_print() {
        assert_eq!(
            Password::parse("  spaced  ").map(|p| p.0),
            Ok("  spaced  ".into())
        );
        assert_eq!(
            Password::parse("1234567"),
            Err(ValidationError::PasswordLength)
        );
        assert_eq!(
            Password::parse(&"é".repeat(513)),
            Err(ValidationError::PasswordLength),
            "1,026 bytes"
        );
        let p = Password::parse("correct horse").expect("valid");
        assert_eq!(format!("{p:?}"), "Password(…)");
    }
}
