//! Which host names the server answers to: the defence against DNS rebinding.
//!
//! A page on a name the attacker controls can have that name re-resolved to this
//! server's address (a private one, or loopback); the victim's browser then treats the
//! server as part of the attacker's site, and the page may call it and read the
//! answers. The browser still sends the attacker's name in `Host`, so every request
//! whose `Host` is not one this server is known by is refused with **421**, on every
//! route. Known by: IP literals and `localhost` (any port; an attacker's page has a DNS
//! name), the host of `--public-url`, and each `--allowed-host`. Ports are not compared:
//! rebinding changes what a name resolves to, not the port.
//!
//! `X-Forwarded-Host` and `X-Forwarded-Proto` are believed only from a
//! `--trusted-proxy`; from anyone else they are removed here, before any handler reads
//! them, with one exception: from a loopback peer (a development proxy such as
//! `trunk serve`, which rewrites `Host` to the backend's) `X-Forwarded-Host` is kept for
//! the Origin comparison of [`super::origin_allowed`]. It never decides the host checked
//! here, and a page cannot set it on a WebSocket handshake, nor on a cross-site request
//! without a preflight this server never approves.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use axum::{
    extract::{ConnectInfo, Request, State},
    http::{HeaderMap, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};

/// The `--public-url`: the origin browsers use to reach the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    /// `scheme://host[:port]`, lower-cased, without a default port or a path: what a
    /// browser sends as `Origin` for pages under it.
    pub origin: String,
    /// The host name alone, lower-cased.
    pub host: String,
}

impl PublicUrl {
    /// Parses `https://chat.example.com` (a path after the host is ignored).
    pub fn parse(url: &str) -> Result<Self, String> {
        let url = url.trim().to_ascii_lowercase();
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("{url:?} is not a URL such as https://chat.example.com"))?;
        let default_port = match scheme {
            "https" => ":443",
            "http" => ":80",
            _ => return Err(format!("{url:?}: the scheme must be http or https")),
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if authority.contains('@') {
            return Err(format!("{url:?}: no user name in the public URL"));
        }
        let authority = authority.strip_suffix(default_port).unwrap_or(authority);
        let host = host_name(authority);
        if host.is_empty() {
            return Err(format!("{url:?} has no host name"));
        }
        Ok(Self {
            origin: format!("{scheme}://{authority}"),
            host,
        })
    }
}

/// The host names the server answers to, and whose forwarded headers it believes.
#[derive(Debug, Clone, Default)]
pub struct Hosts {
    /// Lower-cased host names: the public URL's and the `--allowed-host` ones.
    pub names: Vec<String>,
    pub trusted_proxies: Arc<Vec<IpAddr>>,
}

impl Hosts {
    pub fn new(
        public_url: Option<&PublicUrl>,
        allowed: &[String],
        trusted_proxies: Arc<Vec<IpAddr>>,
    ) -> Self {
        let names = public_url
            .map(|p| p.host.clone())
            .into_iter()
            .chain(allowed.iter().map(|h| host_name(h)))
            .filter(|h| !h.is_empty())
            .collect();
        Self {
            names,
            trusted_proxies,
        }
    }

    /// Whether a request to `host` (a `Host` or `X-Forwarded-Host` value) is answered.
    pub fn answers(&self, host: &str) -> bool {
        let name = host_name(host);
        name == "localhost" || name.parse::<IpAddr>().is_ok() || self.names.contains(&name)
    }

    /// Whether a request from `peer` with `headers` was addressed to a host this server
    /// answers to: the `Host`, or, from a trusted proxy that sets it, every
    /// `X-Forwarded-Host`. No `Host` at all is not a browser (browsers always send one).
    fn addressed_here(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> bool {
        let trusted = peer.is_some_and(|p| self.trusted_proxies.contains(&p));
        let name = if trusted && headers.contains_key(FORWARDED_HOST) {
            FORWARDED_HOST
        } else {
            header::HOST.as_str()
        };
        headers.get_all(name).iter().all(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').all(|h| self.answers(h)))
        })
    }

    /// Removes the forwarded headers a request's sender is not believed about (see the
    /// module docs).
    fn strip_unbelieved(&self, peer: Option<IpAddr>, headers: &mut HeaderMap) {
        if peer.is_some_and(|p| self.trusted_proxies.contains(&p)) {
            return;
        }
        headers.remove(FORWARDED_PROTO);
        if !peer.is_some_and(|p| p.is_loopback()) {
            headers.remove(FORWARDED_HOST);
        }
    }
}

const FORWARDED_HOST: &str = "x-forwarded-host";
const FORWARDED_PROTO: &str = "x-forwarded-proto";

/// The host name of a `Host` value (`name`, `name:port`, `[v6]:port`), lower-cased and
/// without a trailing dot, brackets or port.
pub(crate) fn host_name(authority: &str) -> String {
    let authority = authority.trim();
    let name = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        match authority.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => authority,
        }
    };
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// The middleware: 421 for a request to a host this server does not answer to; the
/// forwarded headers it does not believe removed from the others.
pub async fn check(State(hosts): State<Arc<Hosts>>, mut req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    if !hosts.addressed_here(peer, req.headers()) {
        let host = req
            .headers()
            .get(header::HOST)
            .map_or(&[][..], |h| h.as_bytes());
        tracing::debug!(
            peer = ?peer,
            host = %crate::logsafe::bytes(host),
            "refused a request for another host (DNS rebinding?)"
        );
        return (
            StatusCode::MISDIRECTED_REQUEST,
            "This server does not answer to that host name. Reach it by IP address or \
             localhost, or start it with --public-url or --allowed-host naming it.\n",
        )
            .into_response();
    }
    hosts.strip_unbelieved(peer, req.headers_mut());
    next.run(req).await
}

/// Says at start when the server listens beyond loopback and knows no host name: then
/// people reaching it by name get 421 until one is given.
pub fn advise(listen: SocketAddr, hosts: &Hosts) {
    if !listen.ip().is_loopback() && hosts.names.is_empty() {
        tracing::warn!(
            "listening on {listen}: requests are answered when addressed by IP address or \
             localhost only; to reach the server by name, start it with --public-url \
             https://NAME (or --allowed-host NAME)"
        );
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn hosts(names: &[&str]) -> Hosts {
        Hosts::new(
            None,
            &names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>(),
            Arc::new(vec!["10.0.0.1".parse().expect("ip")]),
        )
    }

    #[test]
    fn ip_literals_and_localhost_are_always_answered_names_only_when_listed() {
        let h = hosts(&[]);
        for ok in [
            "127.0.0.1:9000",
            "127.0.0.1",
            "192.168.1.20:80",
            "[::1]:9000",
            "[2001:db8::1]",
            "localhost:8080",
            "LOCALHOST",
            "localhost.",
        ] {
            assert!(h.answers(ok), "{ok}");
        }
        for refused in [
            "evil.example:9000",
            "evil.example",
            "127.0.0.1.evil.example",
            "localhost.evil.example",
            "",
        ] {
            assert!(!h.answers(refused), "{refused}");
        }
        let h = hosts(&["Chat.Example.com"]);
        assert!(h.answers("chat.example.com:443"));
        assert!(h.answers("CHAT.example.com."));
        assert!(!h.answers("example.com"));
    }

    #[test]
    fn the_public_url_is_an_origin_and_a_name() {
        let p = PublicUrl::parse("HTTPS://Chat.Example.com:443/some/path").expect("parses");
        assert_eq!(p.origin, "https://chat.example.com");
        assert_eq!(p.host, "chat.example.com");
        let p = PublicUrl::parse("http://chat.example.com:8000").expect("parses");
        assert_eq!(p.origin, "http://chat.example.com:8000");
        let p = PublicUrl::parse("http://[::1]:9000/").expect("parses");
        assert_eq!(
            (p.origin.as_str(), p.host.as_str()),
            ("http://[::1]:9000", "::1")
        );
        for bad in ["chat.example.com", "ftp://x", "https://", "https://u@x"] {
            assert!(PublicUrl::parse(bad).is_err(), "{bad}");
        }
        let h = Hosts::new(
            Some(&PublicUrl::parse("https://chat.example.com").expect("ok")),
            &[],
            Arc::default(),
        );
        assert!(h.answers("chat.example.com"));
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(*name, HeaderValue::from_static(value));
        }
        h
    }

    #[test]
    fn x_forwarded_host_decides_only_from_a_trusted_proxy() {
        let h = hosts(&[]);
        let proxy = Some("10.0.0.1".parse().expect("ip"));
        let other = Some("10.0.0.2".parse().expect("ip"));
        let loopback = Some("127.0.0.1".parse().expect("ip"));
        // A rebinding page cannot pass by adding the header itself.
        let forged = headers(&[("host", "evil.example:9000"), (FORWARDED_HOST, "127.0.0.1")]);
        for peer in [other, loopback, None] {
            assert!(!h.addressed_here(peer, &forged), "{peer:?}");
        }
        // From the trusted proxy, the forwarded host is the one checked.
        let proxied = headers(&[("host", "backend"), (FORWARDED_HOST, "127.0.0.1:8080")]);
        assert!(h.addressed_here(proxy, &proxied));
        assert!(!h.addressed_here(other, &proxied));
        let proxied = headers(&[("host", "127.0.0.1"), (FORWARDED_HOST, "evil.example")]);
        assert!(!h.addressed_here(proxy, &proxied));
        assert!(h.addressed_here(other, &proxied));
        // What trunk serve sends: Host rewritten to the backend's address.
        let trunk = headers(&[("host", "127.0.0.1"), (FORWARDED_HOST, "127.0.0.1:8080")]);
        assert!(h.addressed_here(loopback, &trunk));
        assert!(
            h.addressed_here(None, &HeaderMap::new()),
            "no Host: not a browser"
        );
    }

    #[test]
    fn unbelieved_forwarded_headers_are_removed() {
        let h = hosts(&[]);
        let sent = headers(&[(FORWARDED_HOST, "a:1"), (FORWARDED_PROTO, "https")]);
        let mut from_proxy = sent.clone();
        h.strip_unbelieved(Some("10.0.0.1".parse().expect("ip")), &mut from_proxy);
        assert_eq!(from_proxy, sent);
        let mut from_loopback = sent.clone();
        h.strip_unbelieved(Some("::1".parse().expect("ip")), &mut from_loopback);
        assert!(from_loopback.contains_key(FORWARDED_HOST));
        assert!(!from_loopback.contains_key(FORWARDED_PROTO));
        let mut from_anyone = sent;
        h.strip_unbelieved(Some("203.0.113.9".parse().expect("ip")), &mut from_anyone);
        assert!(from_anyone.is_empty());
    }
}
