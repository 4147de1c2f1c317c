//! The sign-in throttle's counts in this process: all of them on a single server, and
//! a node's own while Redis does not answer (see [`super`] for what is counted and why).

use std::{
    collections::HashMap,
    hash::Hash,
    net::IpAddr,
    num::NonZeroU32,
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter, clock::Clock};

use super::{Attempt, CountedIn, Source, ThrottleLimits};
use crate::{admission::limit_key, http::device::DeviceId};

/// A count that forgets at a steady rate.
#[derive(Debug, Clone, Copy)]
struct Level {
    level: f64,
    at: Instant,
}

impl Level {
    /// The level at `now`, after leaking `per_min` a minute since last time.
    fn at(&mut self, now: Instant, per_min: NonZeroU32) -> f64 {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.level = (self.level - elapsed * f64::from(per_min.get()) / 60.0).max(0.0);
        self.at = now;
        self.level
    }
}

#[derive(Debug, Default)]
struct Counts {
    by_user_source: HashMap<(String, Source), Level>,
    by_username: HashMap<String, Level>,
}

/// Sign-in attempts so far, in this process.
pub(super) struct Local {
    limits: ThrottleLimits,
    by_ip: DefaultKeyedRateLimiter<IpAddr>,
    counts: Mutex<Counts>,
}

fn level<K: Eq + Hash>(map: &mut HashMap<K, Level>, key: K, now: Instant) -> &mut Level {
    map.entry(key).or_insert(Level {
        level: 0.0,
        at: now,
    })
}

impl Local {
    pub(super) fn new(limits: ThrottleLimits) -> Self {
        Self {
            limits,
            by_ip: RateLimiter::keyed(Quota::per_minute(limits.per_ip)),
            counts: Mutex::default(),
        }
    }

    /// Counts one attempt from `ip` against the per-address allowance; `Err` holds how
    /// long until the next would pass.
    pub(super) fn per_address(&self, ip: IpAddr) -> Result<(), Duration> {
        let clock = governor::clock::DefaultClock::default();
        self.by_ip
            .check_key(&limit_key(ip))
            .map_err(|not_until| not_until.wait_time_from(clock.now()))
    }

    /// Counts one attempt at `username`'s password from `ip`, or from `device` when the
    /// browser holds a valid device cookie for that username. `Err` (429) holds how long
    /// until the next would pass; `Ok` says how long this one waits first.
    pub(super) fn sign_in(
        &self,
        ip: IpAddr,
        username: &str,
        device: Option<DeviceId>,
        now: Instant,
    ) -> Result<Attempt, Duration> {
        self.per_address(ip)?;
        let source = device.map_or(Source::Address(limit_key(ip)), Source::Device);
        let limits = self.limits;
        // The counts stay consistent even if a holder panicked: each update is a few
        // arithmetic steps with nothing that panics between them.
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let local = level(
            &mut counts.by_user_source,
            (username.to_owned(), source),
            now,
        );
        let cap = f64::from(limits.per_user_ip.get());
        let used = local.at(now, limits.per_user_ip);
        if used + 1.0 > cap {
            let wait = (used + 1.0 - cap) * 60.0 / cap;
            return Err(Duration::from_secs_f64(wait));
        }
        local.level += 1.0;
        let everywhere = level(&mut counts.by_username, username.to_owned(), now);
        let over =
            everywhere.at(now, limits.per_username) + 1.0 - f64::from(limits.per_username.get());
        everywhere.level += 1.0;
        Ok(Attempt {
            username: username.to_owned(),
            source,
            counted_in: CountedIn::Node,
            delay: limits.delay(over, device),
        })
    }

    /// The password was right: the attempt does not count.
    pub(super) fn succeeded(&self, attempt: &Attempt) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(l) = counts
            .by_user_source
            .get_mut(&(attempt.username.clone(), attempt.source))
        {
            l.level = (l.level - 1.0).max(0.0);
        }
        if let Some(l) = counts.by_username.get_mut(&attempt.username) {
            l.level = (l.level - 1.0).max(0.0);
        }
    }

    /// Forgets addresses and usernames whose counts are back to nothing, so the maps do
    /// not grow with every address and username ever tried.
    pub(super) fn forget_idle(&self) {
        self.by_ip.retain_recent();
        self.by_ip.shrink_to_fit();
        let now = Instant::now();
        let limits = self.limits;
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        counts
            .by_user_source
            .retain(|_, l| l.at(now, limits.per_user_ip) > 0.0);
        counts
            .by_username
            .retain(|_, l| l.at(now, limits.per_username) > 0.0);
        counts.by_user_source.shrink_to_fit();
        counts.by_username.shrink_to_fit();
    }

    /// Entries held, for tests of [`Self::forget_idle`].
    #[cfg(test)]
    fn held(&self) -> usize {
        let counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        counts.by_user_source.len() + counts.by_username.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(v: u32) -> NonZeroU32 {
        NonZeroU32::new(v).expect("non-zero")
    }

    fn throttle() -> Local {
        Local::new(ThrottleLimits {
            per_ip: n(1000),
            per_user_ip: n(3),
            per_username: n(4),
            max_delay: Duration::from_secs(5),
        })
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn the_sign_in_throttle_counts_an_ipv6_client_by_its_64() {
        let by_ip = Local::new(ThrottleLimits {
            per_ip: n(2),
            ..throttle().limits
        });
        assert!(by_ip.per_address(ip("2001:db8::1")).is_ok());
        assert!(by_ip.per_address(ip("2001:db8::2")).is_ok());
        assert!(
            by_ip.per_address(ip("2001:db8::3")).is_err(),
            "a third address of the same /64 is the same client"
        );
        assert!(by_ip.per_address(ip("2001:db8:0:1::1")).is_ok());
        // And so does the per-(username, address) count.
        let t = throttle();
        let t0 = Instant::now();
        for host in 1..=3 {
            assert!(
                t.sign_in(ip(&format!("2001:db8::{host}")), "ada", None, t0)
                    .is_ok()
            );
        }
        assert!(t.sign_in(ip("2001:db8::9"), "ada", None, t0).is_err());
        assert!(t.sign_in(ip("2001:db8:0:1::1"), "ada", None, t0).is_ok());
    }

    #[test]
    fn wrong_passwords_from_one_address_are_refused_then_forgiven_at_the_rate() {
        let t = throttle();
        let t0 = Instant::now();
        let attacker = ip("203.0.113.9");
        for _ in 0..3 {
            assert!(t.sign_in(attacker, "ada", None, t0).is_ok());
        }
        let wait = t
            .sign_in(attacker, "ada", None, t0)
            .expect_err("the fourth wrong password within the minute");
        assert_eq!(wait, Duration::from_secs(20), "one try back every 20 s");
        assert!(t.sign_in(attacker, "ada", None, t0 + wait).is_ok());
        // Another username from the same address, and the same username from another
        // address, have counts of their own.
        assert!(t.sign_in(attacker, "bob", None, t0).is_ok());
        assert!(t.sign_in(ip("198.51.100.1"), "ada", None, t0).is_ok());
    }

    #[test]
    fn right_passwords_do_not_count() {
        let t = throttle();
        let t0 = Instant::now();
        for _ in 0..20 {
            let attempt = t
                .sign_in(ip("203.0.113.9"), "ada", None, t0)
                .expect("never refused");
            assert_eq!(attempt.delay, Duration::ZERO);
            t.succeeded(&attempt);
        }
    }

    #[test]
    fn guesses_from_many_addresses_are_slowed_not_refused_except_on_a_known_device() {
        let t = throttle();
        let t0 = Instant::now();
        let delays: Vec<u64> = (1..=8)
            .map(|k| {
                t.sign_in(ip(&format!("203.0.113.{k}")), "ada", None, t0)
                    .expect("a new address is not refused")
                    .delay
                    .as_secs()
            })
            .collect();
        // Four wrong passwords are free, then one second per wrong password more, at
        // most five.
        assert_eq!(delays, [0, 0, 0, 0, 1, 2, 3, 4]);
        for k in 9..=20 {
            let delay = t
                .sign_in(ip(&format!("203.0.113.{k}")), "ada", None, t0)
                .expect("slowed, never refused")
                .delay;
            assert_eq!(delay, Duration::from_secs(5));
        }
        // The owner's browser, known by its device cookie, is not slowed, and has its
        // own count even behind the attacker's address.
        let owner = t
            .sign_in(ip("203.0.113.1"), "ada", Some([7; 16]), t0)
            .expect("the owner's device");
        assert_eq!(owner.delay, Duration::ZERO);
        // Other usernames are not slowed by the attack on this one.
        assert_eq!(
            t.sign_in(ip("203.0.113.1"), "bob", None, t0)
                .expect("bob")
                .delay,
            Duration::ZERO
        );
        // The slowing fades at the allowance's rate: after a quiet ten minutes, none.
        let later = t0 + Duration::from_secs(600);
        assert_eq!(
            t.sign_in(ip("198.51.100.1"), "ada", None, later)
                .expect("later")
                .delay,
            Duration::ZERO
        );
    }

    #[test]
    fn idle_entries_are_forgotten() {
        let t = throttle();
        let attempt = t
            .sign_in(ip("203.0.113.9"), "ada", None, Instant::now())
            .expect("ok");
        t.succeeded(&attempt);
        assert_eq!(t.held(), 2);
        t.forget_idle();
        assert_eq!(t.held(), 0);
    }
}
