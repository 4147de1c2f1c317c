//! Message formatting: links, `code`, fenced code blocks, *emphasis*, **strong** and
//! @mentions, shown without ever handing message text to the browser's HTML parser.
//!
//! Why a small parser of our own rather than a Markdown crate: those render to an HTML
//! string, and message text comes from anyone. Here [`parse`] turns a body into a tree of
//! [`Node`]s and [`render`] builds Yew elements and text nodes from it, so the only
//! elements a message can produce are the ones named below, its characters land in text
//! nodes, and the only attributes taken from it are the `href` of a link whose scheme was
//! checked (http, https or mailto; `javascript:` and the like stay text) and the class
//! naming a code block's language (a word of letters, digits and `_+#.-`).
//!
//! Hostile input must stay cheap, and there is no timing test for it: the bounds follow
//! from the shape of the code, and the tests check the shapes they imply.
//! - No recursion while parsing, and no backtracking: each stage is one left-to-right pass.
//! - Fenced blocks: a line is looked at once as a possible opening fence. The search for its
//!   closing fence either consumes the lines it scanned or finds none, which proves that no
//!   later opener can close either, so no line is scanned twice.
//! - Code spans pair backtick runs through a table of "the next run of the same length",
//!   built in one pass from the right: no search from each opener.
//! - Links: the scan for a link's end starts only once the character after the scheme
//!   shows that a link will be made, and the link is then skipped; what trimming gives
//!   back is punctuation, which cannot start another link. Mentions come from one pass of
//!   [`mentions`].
//! - Emphasis keeps at most one open marker of each of its three kinds (`*`, `**`, `_`), so
//!   the stack of open markers is at most three deep, a closing marker looks at most three
//!   entries down, and a node is moved at most once per level when markers close or are
//!   given up. Work is O(length), and the tree is at most four deep (three kinds of
//!   emphasis around a leaf) whatever the input, which also bounds the recursion of
//!   [`render`].
//! - Every node but text takes at least two characters of input and adjacent text is
//!   merged, so a body of n bytes gives at most n + 1 nodes.

use std::{collections::HashMap, iter::Peekable, vec};

use confab_shared::mention::{Mention, mentions};
use yew::prelude::*;

/// One piece of a formatted message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Text(String),
    /// An http, https or mailto link, shown as written.
    Link(String),
    /// `@name` as written, and the username it names (lower-case).
    Mention {
        text: String,
        user: String,
    },
    Code(String),
    /// A fenced block; `lang` is the word after the opening fence, if any.
    CodeBlock {
        lang: Option<String>,
        code: String,
    },
    Emphasis(Vec<Node>),
    Strong(Vec<Node>),
}

/// The body of a message, formatted, for the reader whose username is `me`.
pub fn message_body(body: &str, me: &str) -> Html {
    render(&parse(body), me)
}

/// What `body` reads as once formatted, as plain text: the markers gone, links and
/// mentions as written, code as its text. For where elements cannot go (a reply's quote
/// is a button, which may hold no link).
pub fn plain_text(body: &str) -> String {
    fn walk(nodes: &[Node], out: &mut String) {
        for node in nodes {
            match node {
                Node::Text(t) | Node::Link(t) | Node::Code(t) => out.push_str(t),
                Node::Mention { text, .. } => out.push_str(text),
                Node::CodeBlock { code, .. } => out.push_str(code),
                Node::Emphasis(inner) | Node::Strong(inner) => walk(inner, out),
            }
        }
    }
    let mut out = String::with_capacity(body.len());
    walk(&parse(body), &mut out);
    out
}

/// Yew elements and text nodes for `nodes`. Mentions of `me` are marked `mention-me`.
pub fn render(nodes: &[Node], me: &str) -> Html {
    nodes.iter().map(|node| render_node(node, me)).collect()
}

// Links and mentions are left-to-right whatever the message around them (`dir="ltr"`,
// which also isolates them): in a right-to-left message `@ada` would otherwise show as
// `ada@`. Code says its own direction from its first letter.
fn render_node(node: &Node, me: &str) -> Html {
    match node {
        Node::Text(text) => html! { { text.clone() } },
        Node::Link(url) => html! {
            <a href={url.clone()} rel="noopener noreferrer" target="_blank" dir="ltr">{ url.clone() }</a>
        },
        Node::Mention { text, user } => {
            let mine = user.eq_ignore_ascii_case(me);
            html! {
                <span class={classes!("mention", mine.then_some("mention-me"))} dir="ltr">{ text.clone() }</span>
            }
        }
        Node::Code(code) => html! { <code dir="auto">{ code.clone() }</code> },
        Node::CodeBlock { lang, code } => {
            let class = lang.as_ref().map(|l| format!("language-{l}"));
            html! { <pre dir="auto"><code {class}>{ code.clone() }</code></pre> }
        }
        Node::Emphasis(children) => html! { <em>{ render(children, me) }</em> },
        Node::Strong(children) => html! { <strong>{ render(children, me) }</strong> },
    }
}

/// The tree of a message body.
pub fn parse(body: &str) -> Vec<Node> {
    let mut out = Vec::new();
    let lines = line_spans(body);
    let mut text_from = 0;
    // Once a search for a closing fence fails, every later one would fail too.
    let mut closers_left = true;
    let mut i = 0;
    while i < lines.len() {
        let (start, end) = lines[i];
        if closers_left && let Some(lang) = opening_fence(&body[start..end]) {
            let closer =
                (i + 1..lines.len()).find(|&j| is_closing_fence(&body[lines[j].0..lines[j].1]));
            match closer {
                Some(j) => {
                    // The line break before the fence belongs to the fence: the block
                    // starts a line of its own anyway.
                    if start > text_from {
                        inline(&body[text_from..start - 1], &mut out);
                    }
                    let code = if j > i + 1 {
                        &body[lines[i + 1].0..lines[j - 1].1]
                    } else {
                        ""
                    };
                    out.push(Node::CodeBlock {
                        lang: (!lang.is_empty()).then(|| lang.to_owned()),
                        code: code.to_owned(),
                    });
                    text_from = (lines[j].1 + 1).min(body.len());
                    i = j + 1;
                    continue;
                }
                None => closers_left = false,
            }
        }
        i += 1;
    }
    if text_from < body.len() {
        inline(&body[text_from..], &mut out);
    }
    out
}

/// Byte ranges of the lines of `text`, without their `\n`.
fn line_spans(text: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut start = 0;
    for (at, _) in text.match_indices('\n') {
        spans.push((start, at));
        start = at + 1;
    }
    spans.push((start, text.len()));
    spans
}

/// The language word of an opening fence line (empty when there is none), or `None` when
/// the line is not one. A line with more after the fence (```` ```let x = 1;``` ````) is
/// left to the code spans.
fn opening_fence(line: &str) -> Option<&str> {
    let lang = line.strip_prefix("```")?.trim_end();
    let word = lang.len() <= 32
        && lang
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '#' | '.' | '-'));
    word.then_some(lang)
}

fn is_closing_fence(line: &str) -> bool {
    line.trim() == "```"
}

/// Formats a stretch of text outside fenced blocks and appends it to `out`.
fn inline(text: &str, out: &mut Vec<Node>) {
    let mut found = mentions(text).into_iter().peekable();
    let mut b = Builder::default();
    let mut from = 0;
    for span in code_spans(text) {
        scan(text, from, span.start, &mut found, &mut b);
        b.atom(Node::Code(span.content.to_owned()));
        from = span.end;
    }
    scan(text, from, text.len(), &mut found, &mut b);
    append(out, b.finish());
}

/// A code span: its byte range, backticks included, and what it shows.
struct CodeSpan<'a> {
    start: usize,
    end: usize,
    content: &'a str,
}

/// The code spans of `text`: a run of backticks up to the next run of the same length.
/// A run with no partner is literal text.
fn code_spans(text: &str) -> Vec<CodeSpan<'_>> {
    let bytes = text.as_bytes();
    let mut runs = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'`' {
            let start = i;
            while i < bytes.len() && bytes[i] == b'`' {
                i += 1;
            }
            runs.push((start, i - start));
        } else {
            i += 1;
        }
    }
    // For each run, the next run of the same length, found from the right in one pass.
    let mut next_same = vec![None; runs.len()];
    let mut last_of_len: HashMap<usize, usize> = HashMap::new();
    for (k, &(_, len)) in runs.iter().enumerate().rev() {
        next_same[k] = last_of_len.insert(len, k);
    }
    let mut spans = Vec::new();
    let mut k = 0;
    while k < runs.len() {
        let Some(j) = next_same[k] else {
            k += 1;
            continue;
        };
        let (open, len) = runs[k];
        let close = runs[j].0;
        let mut content = &text[open + len..close];
        // As in Markdown, one space each side lets a span start or end with a backtick.
        if content.len() >= 2
            && content.starts_with(' ')
            && content.ends_with(' ')
            && !content.bytes().all(|b| b == b' ')
        {
            content = &content[1..content.len() - 1];
        }
        spans.push(CodeSpan {
            start: open,
            end: close + len,
            content,
        });
        k = j + 1;
    }
    spans
}

/// Formats `text[from..to]` (which holds no code span) into `b`: links, mentions,
/// emphasis markers, and plain text between them.
fn scan(
    text: &str,
    from: usize,
    to: usize,
    found: &mut Peekable<vec::IntoIter<Mention>>,
    b: &mut Builder,
) {
    let bytes = text.as_bytes();
    let mut plain = from;
    // Steps a byte at a time: everything looked for starts with an ASCII byte, which is
    // never part of a longer character, so each match is at a character boundary.
    let mut i = from;
    while i < to {
        // Mentions inside a code span or a link passed by are not mentions.
        while found.next_if(|m| m.start < i).is_some() {}
        if let Some(m) = found.next_if(|m| m.start == i && m.end <= to) {
            b.text(&text[plain..i]);
            b.atom(Node::Mention {
                text: text[m.start..m.end].to_owned(),
                user: m.user,
            });
            i = m.end;
            plain = i;
            continue;
        }
        if let Some(end) = link_at(text, i, to) {
            b.text(&text[plain..i]);
            b.atom(Node::Link(text[i..end].to_owned()));
            i = end;
            plain = i;
            continue;
        }
        match bytes[i] {
            b'\n' => {
                b.text(&text[plain..i]);
                // Emphasis does not run across lines: a lone `*` on one line must not
                // pair with one several lines further down.
                b.give_up_above(0);
                b.text("\n");
                i += 1;
                plain = i;
            }
            marker @ (b'*' | b'_') => {
                let start = i;
                while i < to && bytes[i] == marker {
                    i += 1;
                }
                b.text(&text[plain..start]);
                let prev = text[..start].chars().next_back();
                let next = text[i..].chars().next();
                b.markers(marker, &text[start..i], prev, next);
                plain = i;
            }
            _ => i += 1,
        }
    }
    b.text(&text[plain..to]);
}

const SCHEMES: [&str; 3] = ["https://", "http://", "mailto:"];

/// The end of the link that starts at byte `i` of `text`, if one does (ending by `to`).
fn link_at(text: &str, i: usize, to: usize) -> Option<usize> {
    let bytes = &text.as_bytes()[i..to];
    if !matches!(bytes.first(), Some(b'h' | b'H' | b'm' | b'M')) {
        return None;
    }
    let scheme = SCHEMES
        .iter()
        .find(|s| bytes.len() >= s.len() && bytes[..s.len()].eq_ignore_ascii_case(s.as_bytes()))?;
    // A scheme in the middle of a word (`xhttp://`) does not start a link.
    if text[..i]
        .chars()
        .next_back()
        .is_some_and(char::is_alphanumeric)
    {
        return None;
    }
    let body_from = i + scheme.len();
    // Something must follow the scheme: a host (or `[` of an IPv6 address), or an
    // address for mailto. Checked before looking for the end, so that a scan to the end
    // always makes a link that the caller then skips: no stretch is scanned twice. The
    // trimming below never removes this first character.
    let first = text[body_from..to].chars().next();
    if !first.is_some_and(|c| c.is_alphanumeric() || (c == '[' && scheme.starts_with("http"))) {
        return None;
    }
    let end = text[body_from..to]
        .char_indices()
        .find(|&(_, c)| ends_url(c))
        .map_or(to, |(at, _)| body_from + at);
    Some(i + trim_url_end(&text[i..end]).len())
}

/// Characters a link never runs over: spaces, markup-like quotes and brackets, and the
/// invisible characters that could make a link read as something else.
fn ends_url(c: char) -> bool {
    c.is_whitespace()
        || c.is_control()
        || matches!(c, '<' | '>' | '"' | '`')
        || matches!(
            c,
            '\u{061C}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
                | '\u{FEFF}'
        )
}

/// `url` without the punctuation that ends the sentence around it (`see https://x.org.`),
/// keeping closing brackets that close one opened inside it (Wikipedia's `Rust_(language)`).
fn trim_url_end(mut url: &str) -> &str {
    let count = |url: &str, c: char| url.chars().filter(|&x| x == c).count();
    let (mut parens, mut brackets) = (
        count(url, '(') as isize - count(url, ')') as isize,
        count(url, '[') as isize - count(url, ']') as isize,
    );
    while let Some(last) = url.chars().next_back() {
        let trim = match last {
            '.' | ',' | ':' | ';' | '!' | '?' | '\'' | '*' | '_' => true,
            ')' if parens < 0 => {
                parens += 1;
                true
            }
            ']' if brackets < 0 => {
                brackets += 1;
                true
            }
            _ => false,
        };
        if !trim {
            break;
        }
        url = &url[..url.len() - last.len_utf8()];
    }
    url
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `*text*`
    Emphasis,
    /// `**text**`
    Strong,
    /// `_text_`
    Underscore,
}

/// An emphasis marker waiting for its closing partner, and what came after it.
struct Frame {
    kind: Kind,
    marker: &'static str,
    children: Vec<Node>,
}

/// Builds the inline tree while markers open and close. At most one frame of each kind is
/// open, so `open` is at most three deep.
#[derive(Default)]
struct Builder {
    root: Vec<Node>,
    open: Vec<Frame>,
}

impl Builder {
    fn current(&mut self) -> &mut Vec<Node> {
        match self.open.last_mut() {
            Some(frame) => &mut frame.children,
            None => &mut self.root,
        }
    }

    fn text(&mut self, text: &str) {
        if !text.is_empty() {
            push_text(self.current(), text);
        }
    }

    fn atom(&mut self, node: Node) {
        self.current().push(node);
    }

    fn position(&self, kind: Kind) -> Option<usize> {
        self.open.iter().position(|f| f.kind == kind)
    }

    /// A run of `*` or `_` between `prev` and `next`.
    fn markers(&mut self, marker: u8, run: &str, prev: Option<char>, next: Option<char>) {
        let space_before = prev.is_none_or(char::is_whitespace);
        let space_after = next.is_none_or(char::is_whitespace);
        if marker == b'_' {
            // Only at word boundaries: `snake_case_name` stays as written. `__` is not
            // strong, or every `__init__` would be.
            let can_open = !space_after && !prev.is_some_and(char::is_alphanumeric);
            let can_close = !space_before && !next.is_some_and(char::is_alphanumeric);
            if run.len() == 1 {
                self.marker(Kind::Underscore, "_", can_open, can_close);
            } else {
                self.text(run);
            }
            return;
        }
        let (can_open, can_close) = (!space_after, !space_before);
        match run.len() {
            1 => self.marker(Kind::Emphasis, "*", can_open, can_close),
            2 => self.marker(Kind::Strong, "**", can_open, can_close),
            3 => {
                // `***` is both. Opening, emphasis goes outside; closing, whichever is
                // open innermost closes first.
                let mut kinds = [Kind::Emphasis, Kind::Strong];
                if can_close {
                    kinds
                        .sort_by_key(|&k| std::cmp::Reverse(self.position(k).map_or(0, |p| p + 1)));
                }
                for kind in kinds {
                    let marker = if kind == Kind::Strong { "**" } else { "*" };
                    self.marker(kind, marker, can_open, can_close);
                }
            }
            _ => self.text(run),
        }
    }

    fn marker(&mut self, kind: Kind, marker: &'static str, can_open: bool, can_close: bool) {
        let open_at = self.position(kind);
        if can_close && let Some(at) = open_at {
            self.close(at);
        } else if can_open && open_at.is_none() {
            self.open.push(Frame {
                kind,
                marker,
                children: Vec::new(),
            });
        } else {
            self.text(marker);
        }
    }

    /// Closes the frame at `at`; the markers opened inside it and still open are text.
    fn close(&mut self, at: usize) {
        self.give_up_above(at + 1);
        let Some(frame) = self.open.pop() else {
            return;
        };
        if frame.children.is_empty() {
            self.text(frame.marker);
            self.text(frame.marker);
            return;
        }
        let node = match frame.kind {
            Kind::Strong => Node::Strong(frame.children),
            Kind::Emphasis | Kind::Underscore => Node::Emphasis(frame.children),
        };
        self.atom(node);
    }

    /// Turns the markers opened above the first `keep` back into text.
    fn give_up_above(&mut self, keep: usize) {
        while self.open.len() > keep {
            let Some(frame) = self.open.pop() else {
                return;
            };
            let parent = self.current();
            push_text(parent, frame.marker);
            append(parent, frame.children);
        }
    }

    fn finish(mut self) -> Vec<Node> {
        self.give_up_above(0);
        self.root
    }
}

/// Appends `text`, merged into the text before it if there is some.
fn push_text(nodes: &mut Vec<Node>, text: &str) {
    if let Some(Node::Text(last)) = nodes.last_mut() {
        last.push_str(text);
    } else {
        nodes.push(Node::Text(text.to_owned()));
    }
}

/// Appends `more`, merging text where the two meet.
fn append(nodes: &mut Vec<Node>, more: Vec<Node>) {
    let mut more = more.into_iter();
    match more.next() {
        Some(Node::Text(text)) => push_text(nodes, &text),
        Some(node) => nodes.push(node),
        None => return,
    }
    nodes.extend(more);
}

#[cfg(test)]
mod tests {

    #[test]
    fn plain_text_drops_the_markers_and_keeps_what_they_mark() {
        assert_eq!(
            super::plain_text(
                "Thanks @ada, **great** work. I will *look* at `x.rs`, see https://e.org/a."
            ),
            "Thanks @ada, great work. I will look at x.rs, see https://e.org/a."
        );
        assert_eq!(super::plain_text("**unclosed"), "**unclosed");
    }
    use super::*;

    /// How deep the tree can be: three nested kinds of emphasis around a leaf.
    const MAX_DEPTH: usize = 4;

    fn text(s: &str) -> Node {
        Node::Text(s.to_owned())
    }

    fn link(s: &str) -> Node {
        Node::Link(s.to_owned())
    }

    fn code(s: &str) -> Node {
        Node::Code(s.to_owned())
    }

    fn mention(text: &str, user: &str) -> Node {
        Node::Mention {
            text: text.to_owned(),
            user: user.to_owned(),
        }
    }

    fn em(children: Vec<Node>) -> Node {
        Node::Emphasis(children)
    }

    fn strong(children: Vec<Node>) -> Node {
        Node::Strong(children)
    }

    fn block(lang: Option<&str>, code: &str) -> Node {
        Node::CodeBlock {
            lang: lang.map(str::to_owned),
            code: code.to_owned(),
        }
    }

    /// Parses to nothing but the text itself.
    fn plain(s: &str) {
        assert_eq!(parse(s), vec![text(s)], "{s:?} should stay plain text");
    }

    fn depth(nodes: &[Node]) -> usize {
        nodes
            .iter()
            .map(|n| match n {
                Node::Emphasis(c) | Node::Strong(c) => 1 + depth(c),
                _ => 1,
            })
            .max()
            .unwrap_or(0)
    }

    fn count(nodes: &[Node]) -> usize {
        nodes
            .iter()
            .map(|n| match n {
                Node::Emphasis(c) | Node::Strong(c) => 1 + count(c),
                _ => 1,
            })
            .sum()
    }

    /// What the reader sees, in order (a code block's language word first).
    fn visible(nodes: &[Node], out: &mut String) {
        for n in nodes {
            match n {
                Node::Text(s) | Node::Link(s) | Node::Code(s) => out.push_str(s),
                Node::Mention { text, .. } => out.push_str(text),
                Node::CodeBlock { lang, code } => {
                    out.push_str(lang.as_deref().unwrap_or(""));
                    out.push_str(code);
                }
                Node::Emphasis(c) | Node::Strong(c) => visible(c, out),
            }
        }
    }

    /// No two text nodes side by side, no empty text, no empty emphasis.
    fn tidy(nodes: &[Node]) -> bool {
        nodes
            .windows(2)
            .all(|w| !matches!(w, [Node::Text(_), Node::Text(_)]))
            && nodes.iter().all(|n| match n {
                Node::Text(s) => !s.is_empty(),
                Node::Emphasis(c) | Node::Strong(c) => !c.is_empty() && tidy(c),
                _ => true,
            })
    }

    /// The bounds the module promises, for any input.
    fn check_bounds(input: &str) {
        let nodes = parse(input);
        assert!(
            depth(&nodes) <= MAX_DEPTH,
            "too deep for {input:?}: {nodes:?}"
        );
        assert!(
            count(&nodes) <= input.len() + 1,
            "too many nodes for {input:?}"
        );
        assert!(tidy(&nodes), "untidy tree for {input:?}: {nodes:?}");
        // Formatting only removes markers: every letter and digit is still shown, in order.
        let mut shown = String::new();
        visible(&nodes, &mut shown);
        let letters = |s: &str| {
            s.chars()
                .filter(|c| c.is_alphanumeric())
                .collect::<String>()
        };
        assert_eq!(
            letters(&shown),
            letters(input),
            "text lost or repeated for {input:?}"
        );
    }

    #[test]
    fn plain_text_stays_one_text_node() {
        plain("hello world");
        plain("line one\nline two\n\n  indented");
        plain("2 * 3 * 4 = 24");
        plain("<script>alert(1)</script>");
        plain("<img src=x onerror=alert(1)>");
        plain("[link](javascript:alert(1))");
        plain("a & b &amp; c");
        assert_eq!(parse(""), vec![]);
    }

    #[test]
    fn links_need_an_allowed_scheme() {
        assert_eq!(
            parse("see https://example.org/a?b=1#c now"),
            vec![
                text("see "),
                link("https://example.org/a?b=1#c"),
                text(" now")
            ]
        );
        assert_eq!(parse("http://x.org"), vec![link("http://x.org")]);
        assert_eq!(parse("HTTPS://X.ORG/A"), vec![link("HTTPS://X.ORG/A")]);
        assert_eq!(
            parse("mail mailto:ada@example.org"),
            vec![text("mail "), link("mailto:ada@example.org")]
        );
        assert_eq!(parse("MailTo:ada@x.org"), vec![link("MailTo:ada@x.org")]);
        plain("javascript:alert(1)");
        plain("JavaScript:alert(document.cookie)");
        plain("data:text/html,<script>alert(1)</script>");
        plain("vbscript:msgbox(1)");
        plain("file:///etc/passwd");
        plain("example.org/page");
        plain("www.example.org");
        plain("ftp://example.org");
    }

    #[test]
    fn links_need_something_after_the_scheme_and_a_word_boundary() {
        plain("https://");
        plain("https:// spaced");
        plain("mailto:");
        plain("https://.");
        plain("xhttps://example.org");
        plain("javascripthttp://x.org");
        // A scheme after punctuation starts a link; the href is still http.
        assert_eq!(
            parse("javascript:http://x.org"),
            vec![text("javascript:"), link("http://x.org")]
        );
        assert_eq!(
            parse("http://[::1]:8080/"),
            vec![link("http://[::1]:8080/")]
        );
    }

    #[test]
    fn trailing_punctuation_ends_the_sentence_not_the_link() {
        assert_eq!(
            parse("see https://x.org/a."),
            vec![text("see "), link("https://x.org/a"), text(".")]
        );
        assert_eq!(
            parse("https://x.org/a, https://x.org/b!?"),
            vec![
                link("https://x.org/a"),
                text(", "),
                link("https://x.org/b"),
                text("!?")
            ]
        );
        assert_eq!(
            parse("'https://x.org/q'"),
            vec![text("'"), link("https://x.org/q"), text("'")]
        );
        assert_eq!(
            parse("\"https://x.org/q\""),
            vec![text("\""), link("https://x.org/q"), text("\"")]
        );
        assert_eq!(
            parse("<https://x.org/q>"),
            vec![text("<"), link("https://x.org/q"), text(">")]
        );
        // Dots inside stay.
        assert_eq!(
            parse("https://x.org/a.b.c"),
            vec![link("https://x.org/a.b.c")]
        );
    }

    #[test]
    fn balanced_brackets_stay_in_the_link() {
        let wiki = "https://en.wikipedia.org/wiki/Rust_(programming_language)";
        assert_eq!(parse(wiki), vec![link(wiki)]);
        assert_eq!(
            parse(&format!("(see {wiki})")),
            vec![text("(see "), link(wiki), text(")")]
        );
        assert_eq!(
            parse(&format!("({wiki}).")),
            vec![text("("), link(wiki), text(").")]
        );
        assert_eq!(
            parse("(https://x.org/a)"),
            vec![text("("), link("https://x.org/a"), text(")")]
        );
        assert_eq!(
            parse("[https://x.org/a]"),
            vec![text("["), link("https://x.org/a"), text("]")]
        );
        assert_eq!(
            parse("https://x.org/a[1]"),
            vec![link("https://x.org/a[1]")]
        );
    }

    #[test]
    fn links_stop_at_invisible_and_direction_characters() {
        assert_eq!(
            parse("https://x.org/a\u{202E}gpj.exe"),
            vec![link("https://x.org/a"), text("\u{202E}gpj.exe")]
        );
        assert_eq!(
            parse("https://x.org\u{200B}evil"),
            vec![link("https://x.org"), text("\u{200B}evil")]
        );
        assert_eq!(
            parse("https://x.org/\u{2067}b"),
            vec![link("https://x.org/"), text("\u{2067}b")]
        );
    }

    #[test]
    fn links_are_not_formatted_inside() {
        assert_eq!(
            parse("https://x.org/a_b_c/*d*/@ada"),
            vec![link("https://x.org/a_b_c/*d*/@ada")]
        );
        assert_eq!(
            parse("*see https://x.org/a*"),
            vec![em(vec![text("see "), link("https://x.org/a")])]
        );
        assert_eq!(
            parse("**https://x.org**"),
            vec![strong(vec![link("https://x.org")])]
        );
        assert_eq!(
            parse("_https://x.org/a_b_"),
            vec![em(vec![link("https://x.org/a_b")])]
        );
    }

    #[test]
    fn inline_code_is_taken_as_written() {
        assert_eq!(
            parse("run `cargo test` now"),
            vec![text("run "), code("cargo test"), text(" now")]
        );
        assert_eq!(
            parse("`*not em* https://x.org @ada <b>`"),
            vec![code("*not em* https://x.org @ada <b>")]
        );
        assert_eq!(parse("``a ` b``"), vec![code("a ` b")]);
        assert_eq!(parse("`` `tick` ``"), vec![code("`tick`")]);
        assert_eq!(parse("`  `"), vec![code("  ")]);
        assert_eq!(parse("```let x = 1;```"), vec![code("let x = 1;")]);
        // Runs pair by length: the single backtick has no partner.
        assert_eq!(parse("`a``b``"), vec![text("`a"), code("b")]);
        // A span may run over lines; white space is kept.
        assert_eq!(parse("`a\n  b`"), vec![code("a\n  b")]);
    }

    #[test]
    fn unclosed_code_stays_literal() {
        plain("`unclosed");
        plain("a ` b");
        plain("``a`");
        plain("```");
        plain("```rust\nfn main() {}");
    }

    #[test]
    fn fenced_blocks_keep_their_white_space() {
        assert_eq!(
            parse("```\n  indented\n\tx  y\n\n```"),
            vec![block(None, "  indented\n\tx  y\n")]
        );
        assert_eq!(
            parse("look:\n```rust\nfn main() {\n    *p = 1; // @ada https://x.org\n}\n```\nnice?"),
            vec![
                text("look:"),
                block(
                    Some("rust"),
                    "fn main() {\n    *p = 1; // @ada https://x.org\n}"
                ),
                text("nice?"),
            ]
        );
        assert_eq!(parse("```\n```"), vec![block(None, "")]);
        assert_eq!(
            parse("```\na\n```\n```\nb\n```"),
            vec![block(None, "a"), block(None, "b")]
        );
        // Closing fences may carry white space; CRLF line ends work.
        assert_eq!(
            parse("```c++ \r\nx\r\n  ```  "),
            vec![block(Some("c++"), "x\r")]
        );
    }

    #[test]
    fn only_a_word_may_follow_an_opening_fence() {
        // With more than a word after it, the line is not a fence; its backticks pair as
        // code spans if they can.
        assert_eq!(parse("```a b\nx\n```"), vec![code("a b\nx\n")]);
        assert_eq!(parse("x```\ny\n```"), vec![text("x"), code("\ny\n")]);
    }

    #[test]
    fn emphasis_and_strong() {
        assert_eq!(
            parse("*soft* and **loud** and _also soft_"),
            vec![
                em(vec![text("soft")]),
                text(" and "),
                strong(vec![text("loud")]),
                text(" and "),
                em(vec![text("also soft")]),
            ]
        );
        assert_eq!(
            parse("**bold *and em* inside**"),
            vec![strong(vec![
                text("bold "),
                em(vec![text("and em")]),
                text(" inside")
            ])]
        );
        assert_eq!(
            parse("***both***"),
            vec![em(vec![strong(vec![text("both")])])]
        );
        assert_eq!(parse("**a***"), vec![strong(vec![text("a")]), text("*")]);
        assert_eq!(
            parse("a*b*c"),
            vec![text("a"), em(vec![text("b")]), text("c")]
        );
        assert_eq!(parse("*@ada*"), vec![em(vec![mention("@ada", "ada")])]);
        assert_eq!(parse("*`x`*"), vec![em(vec![code("x")])]);
    }

    #[test]
    fn underscores_need_word_boundaries() {
        plain("snake_case_name and my_var_");
        plain("__init__ and __dunder__");
        plain("1_000_000");
        assert_eq!(
            parse("an _honest_ word"),
            vec![text("an "), em(vec![text("honest")]), text(" word")]
        );
        assert_eq!(
            parse("(_aside_)"),
            vec![text("("), em(vec![text("aside")]), text(")")]
        );
    }

    #[test]
    fn unclosed_or_spaced_markers_stay_literal() {
        plain("*unclosed");
        plain("**unclosed");
        plain("_unclosed");
        plain("* not a list *");
        plain("** spaced **");
        plain("****");
        plain("****four****");
        plain("*a\nb*");
        assert_eq!(parse("*a **b*"), vec![em(vec![text("a **b")])]);
        assert_eq!(parse("**a *b**"), vec![strong(vec![text("a *b")])]);
        assert_eq!(parse("*a* *b"), vec![em(vec![text("a")]), text(" *b")]);
    }

    #[test]
    fn emphasis_does_not_run_across_lines() {
        assert_eq!(
            parse("*one\ntwo* *three*"),
            vec![text("*one\ntwo* "), em(vec![text("three")])]
        );
        assert_eq!(parse("**a\n*b*"), vec![text("**a\n"), em(vec![text("b")])]);
    }

    #[test]
    fn mentions_are_found_outside_code() {
        assert_eq!(
            parse("hi @Ada and @bob."),
            vec![
                text("hi "),
                mention("@Ada", "ada"),
                text(" and "),
                mention("@bob", "bob"),
                text("."),
            ]
        );
        assert_eq!(parse("`@ada`"), vec![code("@ada")]);
        assert_eq!(parse("```\n@ada\n```"), vec![block(None, "@ada")]);
        plain("mail ada@example.org");
        plain("@a and @@ada");
        assert_eq!(
            parse("**@grace.h**"),
            vec![strong(vec![mention("@grace.h", "grace.h")])]
        );
    }

    #[test]
    fn hostile_text_is_text() {
        for hostile in [
            "<script>alert(1)</script>",
            "<img src=x onerror=alert(1)>",
            "<a href=\"javascript:alert(1)\">x</a>",
            "</div><div onclick=alert(1)>",
            "<!-- <svg onload=alert(1)> -->",
            "&lt;b&gt; &#x3C;script&#x3E;",
            "\u{202E}evil\u{202C} \u{2067}more",
            "\0\u{7}\u{1b}[31m",
        ] {
            plain(hostile);
        }
    }

    #[test]
    fn pathological_inputs_stay_flat_and_small() {
        let n = 4000;
        let inputs = [
            "*".repeat(n),
            "_".repeat(n),
            "`".repeat(n),
            "[".repeat(n),
            "(".repeat(n),
            "@".repeat(n),
            format!("{}a{}", "*".repeat(n / 2), "*".repeat(n / 2)),
            "*a".repeat(n / 2),
            "**a".repeat(n / 3),
            "*_".repeat(n / 2),
            "*_**".repeat(n / 4),
            "_a *b **c ".repeat(n / 10),
            "`a".repeat(n / 2),
            "`".repeat(n / 2) + "a" + &"`".repeat(n / 2 - 1),
            "` ``".repeat(n / 4),
            "```\n".repeat(n / 4),
            "```rust\n".repeat(n / 8),
            "```\n```x\n".repeat(n / 9),
            format!("https://x.org/{}", "a".repeat(n - 14)),
            format!("https://x.org/{}", "(".repeat(n - 14)),
            format!("https://x.org/{}", ")".repeat(n - 14)),
            format!("https://x.org/{}", ".".repeat(n - 14)),
            "https://".repeat(n / 8),
            "https://.".repeat(n / 9),
            "mailto:@".repeat(n / 8),
            "http://a ".repeat(n / 9),
            "@ab ".repeat(n / 4),
            "\u{202E}".repeat(n / 3),
            "<script>".repeat(n / 8),
        ];
        for input in &inputs {
            check_bounds(input);
        }
        // Markers nest no deeper than three kinds, however many are opened.
        assert_eq!(depth(&parse("*_**x**_*")), MAX_DEPTH);
        let nested = format!("{}x{}", "*_**".repeat(1000), "**_*".repeat(1000));
        check_bounds(&nested);
    }

    #[test]
    fn bounds_hold_for_generated_inputs() {
        // A fixed pseudo-random walk over the characters that mean something here, so
        // each run checks the same inputs.
        let alphabet: Vec<char> = "*_`@\n ()[].:/ahtpsmilo\u{202E}".chars().collect();
        let pieces = [
            "https://",
            "mailto:",
            "```",
            "```rust\n",
            "\n```\n",
            "@ada",
            "**",
            "snake_case",
        ];
        let mut seed: u64 = 0x5eed;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) as usize
        };
        for _ in 0..3000 {
            let len = next() % 60;
            let mut input = String::new();
            for _ in 0..len {
                if next() % 5 == 0 {
                    input.push_str(pieces[next() % pieces.len()]);
                } else {
                    input.push(alphabet[next() % alphabet.len()]);
                }
            }
            check_bounds(&input);
        }
    }
}
