//! Passwords too common to allow: the ones a guesser tries first, whatever throttle is in
//! front of sign-in. Sign-up, password change and `admin create` refuse them.
//!
//! The list (`common-passwords.txt` beside this file, one a line, most common first) is
//! the 10,000 most frequent passwords of at least 8 characters (shorter ones are refused by
//! the length rule already) from the frequency list in the npm package
//! `@zxcvbn-ts/language-common` 4.1.3 (`src/passwords.json`, MIT licence, see
//! `COMMON-PASSWORDS.md` beside this file), lower-cased. A password is common when its
//! lower-cased form is on the list: "Password1" is as guessable as "password1".

use std::{collections::HashSet, sync::LazyLock};

static LIST: &str = include_str!("common-passwords.txt");

/// Built on first use: 10,000 slices into the list, about 400 KiB with the table.
static COMMON: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    LIST.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect()
});

/// Whether `password` is on the list, ignoring case.
pub fn is_common(password: &str) -> bool {
    COMMON.contains(password.to_lowercase().as_str())
}

/// What a person is told when their password is on the list.
pub const REFUSAL: &str = "that password is one of the 10,000 most common ones; choose another (a few unrelated words make a good one)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_holds_ten_thousand_lower_case_passwords_of_eight_characters_or_more() {
        assert_eq!(COMMON.len(), 10_000);
        assert!(COMMON.iter().all(|p| p.chars().count() >= 8));
        assert!(COMMON.iter().all(|p| *p == p.to_lowercase()));
    }

    #[test]
    fn common_passwords_are_found_whatever_their_case() {
        for common in [
            "password",
            "Password1",
            "QWERTYUIOP",
            "iloveyou",
            "trustno1",
        ] {
            assert!(is_common(common), "{common}");
        }
        for fine in [
            "correct horse battery",
            "vN3#q8!zLp",
            "passwordpasswordx",
            "",
        ] {
            assert!(!is_common(fine), "{fine}");
        }
    }
}
