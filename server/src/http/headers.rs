//! Security headers on every response: what the browser may do with what we serve.
//!
//! The Content-Security-Policy allows exactly what the client needs and nothing else:
//! its own scripts, styles and socket (`'self'`), compiling its WebAssembly
//! (`'wasm-unsafe-eval'`, which allows no `eval` of JavaScript), and the one inline
//! `<script type="module">` trunk writes into `index.html` to start the app, allowed by
//! its SHA-256 (read from the built page when the server starts, so a rebuilt client
//! needs no configuration). Injected markup could therefore run no script, load nothing
//! from elsewhere and send nothing anywhere; `frame-ancestors 'none'` keeps other sites
//! from framing the app (clickjacking). `nosniff` stops browsers from guessing a type
//! other than the one sent; `no-referrer` keeps room ids out of other sites' logs.

use axum::http::{HeaderName, HeaderValue, header};
use sha2::{Digest, Sha256};
use tower_http::set_header::SetResponseHeaderLayer;

/// The policy for a client whose `index.html` is `index` (empty when none is served).
pub fn content_security_policy(index: &str) -> String {
    let inline: String = inline_scripts(index)
        .map(|script| {
            let digest = Sha256::digest(script.as_bytes());
            format!(" 'sha256-{}'", data_encoding::BASE64.encode(&digest))
        })
        .collect();
    format!(
        "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'{inline}; style-src 'self'; \
         img-src 'self' data:; connect-src 'self'; manifest-src 'self'; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'"
    )
}

/// The text of each inline `<script>` element (one with no `src`) of `html`.
fn inline_scripts(html: &str) -> impl Iterator<Item = &str> {
    html.split("<script").skip(1).filter_map(|rest| {
        let (attributes, rest) = rest.split_once('>')?;
        if attributes.contains("src=") {
            return None;
        }
        rest.split_once("</script>").map(|(body, _)| body)
    })
}

/// The layers that set the headers, outermost last.
pub fn layers(csp: &str) -> Option<[SetResponseHeaderLayer<HeaderValue>; 4]> {
    let csp = HeaderValue::from_str(csp).ok()?;
    let set =
        |name: HeaderName, value: HeaderValue| SetResponseHeaderLayer::if_not_present(name, value);
    Some([
        set(header::CONTENT_SECURITY_POLICY, csp),
        set(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        set(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        set(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_inline_start_script_is_allowed_by_its_hash_and_nothing_else_inline() {
        let index = r#"<html><head><link rel="stylesheet" href="/style.css"/>
<script type="module">
import init from '/app.js';
await init();
</script><script src="/other.js"></script></head></html>"#;
        let csp = content_security_policy(index);
        let body = "\nimport init from '/app.js';\nawait init();\n";
        let hash = data_encoding::BASE64.encode(&Sha256::digest(body.as_bytes()));
        assert!(csp.contains(&format!("'sha256-{hash}'")), "{csp}");
        assert_eq!(
            csp.matches("'sha256-").count(),
            1,
            "only the inline one: {csp}"
        );
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("'unsafe-eval'"),
            "{csp}"
        );
        assert!(csp.contains("frame-ancestors 'none'"));
        assert!(csp.contains("default-src 'none'"));
    }
}
