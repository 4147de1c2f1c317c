//! Admission control: how many connections the server holds in total and per client IP
//! address. Two counts use it: WebSockets, checked before the upgrade, so a refused
//! client costs one HTTP response, not a WebSocket session; and HTTP connections before
//! any upgrade, checked as they are accepted (see [`crate::listener`]), so a refused one
//! costs a few bytes written and a close.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex, PoisonError},
};

use axum::http::StatusCode;

/// Connection caps.
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    pub total: usize,
    pub per_ip: usize,
}

/// Counts open connections; cheap to clone.
#[derive(Debug, Clone)]
pub struct Admission {
    caps: Caps,
    open: Arc<Mutex<Counts>>,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
pub struct Ticket {
    open: Arc<Mutex<Counts>>,
    /// `None` for a place counted in the total only.
    ip: Option<IpAddr>,
}

/// Why a connection was refused, as the HTTP status that says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The server is full: 503.
    Full,
    /// This address has too many connections: 429.
    TooManyFromAddress,
}

impl Refused {
    pub fn status(self) -> StatusCode {
        match self {
            Refused::Full => StatusCode::SERVICE_UNAVAILABLE,
            Refused::TooManyFromAddress => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Refused::Full => "the server holds as many connections as it is allowed to\n",
            Refused::TooManyFromAddress => "too many connections from your address\n",
        }
    }
}

/// The address a per-address limit counts a client under. An IPv6 client is counted by
/// its /64: one ordinary allocation (a home, a phone, a server) is a whole /64, and
/// counting each of its 2^64 addresses apart would make the limit no limit. An IPv4
/// address written as IPv6 (`::ffff:a.b.c.d`) is the IPv4 address.
pub fn limit_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let network = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(std::net::Ipv6Addr::from(network))
            }
        },
    }
}

impl Admission {
    pub fn new(caps: Caps) -> Self {
        Self {
            caps,
            open: Arc::default(),
        }
    }

    /// Takes a place for a connection from `ip` (counted by [`limit_key`]), if there is
    /// one.
    pub fn admit(&self, ip: IpAddr) -> Result<Ticket, Refused> {
        let ip = limit_key(ip);
        // The counts stay consistent even if a holder panicked: every update is a
        // single increment or decrement.
        let mut counts = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if counts.total >= self.caps.total {
            return Err(Refused::Full);
        }
        let from_ip = counts.per_ip.entry(ip).or_default();
        if *from_ip >= self.caps.per_ip {
            return Err(Refused::TooManyFromAddress);
        }
        *from_ip += 1;
        counts.total += 1;
        Ok(Ticket {
            open: Arc::clone(&self.open),
            ip: Some(ip),
        })
    }

    /// Takes a place counted in the total only: for a reverse proxy listed with
    /// `--trusted-proxy`, whose connections carry many clients.
    pub fn admit_any(&self) -> Result<Ticket, Refused> {
        let mut counts = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if counts.total >= self.caps.total {
            return Err(Refused::Full);
        }
        counts.total += 1;
        Ok(Ticket {
            open: Arc::clone(&self.open),
            ip: None,
        })
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut counts = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        counts.total = counts.total.saturating_sub(1);
        let Some(ip) = self.ip else { return };
        if let Some(n) = counts.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                counts.per_ip.remove(&ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_client_is_counted_by_its_64() {
        let caps = Caps {
            total: 100,
            per_ip: 2,
        };
        let admission = Admission::new(caps);
        let ip = |s: &str| -> IpAddr { s.parse().expect("ip") };
        let _a = admission.admit(ip("2001:db8:1:2::1")).expect("first");
        let _b = admission
            .admit(ip("2001:db8:1:2:ffff:ffff:ffff:fffe"))
            .expect("second");
        assert_eq!(
            admission.admit(ip("2001:db8:1:2:aaaa::7")).err(),
            Some(Refused::TooManyFromAddress),
            "a third address of the same /64 is the same client"
        );
        assert!(
            admission.admit(ip("2001:db8:1:3::1")).is_ok(),
            "the next /64 is another"
        );
        assert_eq!(limit_key(ip("::ffff:10.0.0.1")), ip("10.0.0.1"));
        assert_eq!(limit_key(ip("10.0.0.1")), ip("10.0.0.1"));
    }

    #[test]
    fn caps_apply_and_places_come_back() {
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let b: IpAddr = "10.0.0.2".parse().expect("ip");
        let adm = Admission::new(Caps {
            total: 3,
            per_ip: 2,
        });
        let t1 = adm.admit(a).expect("first");
        let _t2 = adm.admit(a).expect("second");
        assert_eq!(adm.admit(a).err(), Some(Refused::TooManyFromAddress));
        let _t3 = adm.admit(b).expect("other address");
        assert_eq!(adm.admit(b).err(), Some(Refused::Full));
        drop(t1);
        assert!(adm.admit(a).is_ok(), "a dropped ticket frees its place");
    }

    #[test]
    fn a_place_in_the_total_only_ignores_the_per_address_cap_but_not_the_total() {
        let adm = Admission::new(Caps {
            total: 3,
            per_ip: 1,
        });
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let _t1 = adm.admit(a).expect("first");
        let t2 = adm.admit_any().expect("total only");
        let _t3 = adm.admit_any().expect("total only, again");
        assert_eq!(adm.admit_any().err(), Some(Refused::Full));
        drop(t2);
        assert_eq!(adm.admit(a).err(), Some(Refused::TooManyFromAddress));
        assert!(adm.admit_any().is_ok(), "its place came back");
    }
}
