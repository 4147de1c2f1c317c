//! Links to one message: `#room/seq` in the page's address. The fragment never reaches
//! the server, so a link works for whoever can see the room, after a reload or in
//! another tab, and says nothing to anyone else.

/// The fragment (with its `#`) of the link to message `seq` of `room`.
pub fn fragment(room: &str, seq: u64) -> String {
    format!("#{room}/{seq}")
}

/// The room and message a fragment (`location.hash`, `#` included or not) names, if it is
/// a message link; anything else in the fragment is no business of ours.
pub fn parse(hash: &str) -> Option<(String, u64)> {
    let (room, seq) = hash.strip_prefix('#').unwrap_or(hash).split_once('/')?;
    // Room ids, the server's (`_…`) included, are of these characters.
    let room_ok = !room.is_empty()
        && room
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    let seq: u64 = seq.parse().ok().filter(|s| *s > 0)?;
    room_ok.then(|| (room.to_owned(), seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_names_a_room_and_a_message() {
        assert_eq!(fragment("general", 42), "#general/42");
        assert_eq!(parse("#general/42"), Some(("general".into(), 42)));
        assert_eq!(
            parse("_d0a1/7"),
            Some(("_d0a1".into(), 7)),
            "a private room"
        );
        for not_a_link in [
            "",
            "#",
            "#general",
            "#general/",
            "#/4",
            "#general/0",
            "#general/-1",
            "#general/4x",
            "#Gen/4",
            "#a b/4",
            "#general/4/5",
        ] {
            assert_eq!(parse(not_a_link), None, "{not_a_link:?}");
        }
    }
}
