//! `--http-redirect-listen`: plain HTTP on another port (80, typically) answered with
//! a permanent redirect to the same path and query on HTTPS, so that a person typing
//! the bare host name, or an old `http://` link, lands on the chat.
//!
//! 308 rather than 301: it keeps the method and body, so nothing is silently turned
//! into a GET. The target is `--public-url` when it is an `https://` URL; otherwise the
//! host the request named, on the HTTPS port. A host name this server does not answer
//! to gets 421, as on the HTTPS side ([`crate::http::host`]): the redirect never points
//! browsers at names it was not configured for.

use std::sync::Arc;

use axum::{
    Router,
    extract::{Request, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

use crate::http::{Hosts, PublicUrl, host::host_name};

/// Where the redirects point.
#[derive(Debug, Clone)]
pub struct Redirect {
    /// `https://host[:port]` of `--public-url`, when it names one.
    public: Option<String>,
    /// The HTTPS listener's port, for redirects to the host a request named.
    https_port: u16,
    hosts: Hosts,
}

impl Redirect {
    pub fn new(public_url: Option<&PublicUrl>, https_port: u16, hosts: Hosts) -> Self {
        let public = public_url
            .filter(|url| url.origin.starts_with("https://"))
            .map(|url| url.origin.clone());
        Self {
            public,
            https_port,
            hosts,
        }
    }

    /// The `https://host[:port]` a request with `Host: host` is sent to, or the status
    /// it gets instead.
    fn origin_for(&self, host: Option<&str>) -> Result<String, StatusCode> {
        if let Some(public) = &self.public {
            return Ok(public.clone());
        }
        let host = host.ok_or(StatusCode::BAD_REQUEST)?;
        let name = host_name(host);
        let literal_v6 = name.parse::<std::net::Ipv6Addr>().is_ok();
        let plain = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        if !plain && !literal_v6 {
            return Err(StatusCode::BAD_REQUEST);
        }
        if !self.hosts.answers(host) {
            return Err(StatusCode::MISDIRECTED_REQUEST);
        }
        let name = if literal_v6 {
            format!("[{name}]")
        } else {
            name
        };
        Ok(match self.https_port {
            443 => format!("https://{name}"),
            port => format!("https://{name}:{port}"),
        })
    }
}

/// The whole plain-HTTP side: every path redirects.
pub fn router(redirect: Redirect) -> Router {
    Router::new()
        .fallback(to_https)
        .with_state(Arc::new(redirect))
}

async fn to_https(State(redirect): State<Arc<Redirect>>, req: Request) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    let origin = match redirect.origin_for(host) {
        Ok(origin) => origin,
        Err(status) => {
            return (status, "this server answers over HTTPS, by its own name\n").into_response();
        }
    };
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    match HeaderValue::try_from(format!("{origin}{path}")) {
        Ok(location) => (
            StatusCode::PERMANENT_REDIRECT,
            [(header::LOCATION, location)],
            "moved to HTTPS\n",
        )
            .into_response(),
        Err(_) => (StatusCode::BAD_REQUEST, "bad request target\n").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn redirect(public: Option<&str>, port: u16) -> Redirect {
        let public = public.map(|p| PublicUrl::parse(p).expect("url"));
        let hosts = Hosts::new(
            public.as_ref(),
            &["chat.example.org".to_owned()],
            Arc::new(Vec::new()),
        );
        Redirect::new(public.as_ref(), port, hosts)
    }

    #[test]
    fn the_host_is_kept_and_the_port_becomes_the_https_one() {
        let r = redirect(None, 8443);
        assert_eq!(
            r.origin_for(Some("localhost:8080")),
            Ok("https://localhost:8443".to_owned())
        );
        assert_eq!(
            r.origin_for(Some("Chat.Example.org")),
            Ok("https://chat.example.org:8443".to_owned())
        );
        assert_eq!(
            r.origin_for(Some("[::1]:80")),
            Ok("https://[::1]:8443".to_owned())
        );
        assert_eq!(
            redirect(None, 443).origin_for(Some("127.0.0.1")),
            Ok("https://127.0.0.1".to_owned())
        );
    }

    #[test]
    fn strange_or_foreign_hosts_are_not_redirected_to() {
        let r = redirect(None, 443);
        assert_eq!(r.origin_for(None), Err(StatusCode::BAD_REQUEST));
        assert_eq!(
            r.origin_for(Some("evil.example")),
            Err(StatusCode::MISDIRECTED_REQUEST)
        );
        assert_eq!(
            r.origin_for(Some("a/b@localhost")),
            Err(StatusCode::BAD_REQUEST)
        );
    }

    #[test]
    fn the_public_url_wins_when_it_is_https() {
        let r = redirect(Some("https://chat.example.com:8443/ignored"), 9443);
        assert_eq!(
            r.origin_for(Some("localhost")),
            Ok("https://chat.example.com:8443".to_owned())
        );
        assert_eq!(
            r.origin_for(None),
            Ok("https://chat.example.com:8443".to_owned())
        );
        let r = redirect(Some("http://chat.example.com"), 9443);
        assert_eq!(
            r.origin_for(Some("chat.example.com")),
            Ok("https://chat.example.com:9443".to_owned())
        );
    }
}
