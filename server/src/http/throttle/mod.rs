//! How sign-in attempts are throttled, so that guessing a password is slow while the
//! person whose username is under attack still gets in.
//!
//! Three counts, each forgetting at its own steady rate (a leaky bucket):
//!
//! - **Per address**, for any usernames: `--sign-in-per-ip-per-min` attempts (sign-ins and
//!   sign-ups alike), then **429**. Stops one address trying many usernames.
//! - **Per (username, where from)**: `--sign-in-per-user-ip-per-min` wrong passwords, then
//!   **429** with `Retry-After`, even for the right password (else the 429 would stop no
//!   guesser). "Where from" is the address (an IPv6 address by its /64, see
//!   [`limit_key`](crate::admission::limit_key)), or for a browser with a valid device
//!   cookie for that username (see [`super::device`]), that device. So a guesser
//!   elsewhere, even behind the owner's own NAT, never uses up the owner's allowance.
//! - **Per username, from everywhere**: past `--sign-in-per-user-per-min` wrong passwords
//!   an attempt is not refused but **slowed**: it waits one second per wrong password over
//!   that allowance, at most `--sign-in-max-delay-secs`, before its password is checked.
//!   Attempts from a device with a valid device cookie for that username are never
//!   slowed. A guesser spread over many addresses gets at most one try per address per
//!   window, each slowed; the owner waits at most the maximum delay from a new browser and
//!   nothing from one they signed in with before.
//!
//! An attempt is counted when it starts (so a burst of concurrent guesses cannot all pass
//! before the first fails) and handed back when its password was right: the owner's own
//! sign-ins never count against them. The same counts guard the current-password check of a
//! password change.
//!
//! Where the counts live: in this process ([`local`]), or, on a node of a cluster, in
//! Redis ([`shared`]), so that spreading guesses over N nodes does not buy N times the
//! allowance. Redis is asked first; while it cannot answer within a short bound, each
//! attempt is counted here instead, so a Redis outage weakens the limits to per node but
//! never fails or holds up a sign-in.

mod local;
mod shared;

use std::{net::IpAddr, num::NonZeroU32, time::Duration};

use super::device::DeviceId;
use local::Local;
use shared::Shared;

/// The throttle's numbers (see the module documentation).
#[derive(Debug, Clone, Copy)]
pub struct ThrottleLimits {
    /// Attempts from one address, for any usernames, per minute.
    pub per_ip: NonZeroU32,
    /// Wrong passwords for one username from one address or device, per minute, before
    /// 429.
    pub per_user_ip: NonZeroU32,
    /// Wrong passwords for one username from everywhere, per minute, before attempts from
    /// unknown devices are slowed.
    pub per_username: NonZeroU32,
    /// The longest a slowed attempt waits.
    pub max_delay: Duration,
}

/// What one slowed attempt waits per wrong password over the per-username allowance.
const DELAY_STEP: Duration = Duration::from_secs(1);

impl ThrottleLimits {
    /// How long an attempt waits when the per-username count, this attempt included, is
    /// `over` its allowance.
    fn delay(&self, over: f64, device: Option<DeviceId>) -> Duration {
        if device.is_some() || over <= 0.0 {
            Duration::ZERO
        } else {
            DELAY_STEP.mul_f64(over.ceil()).min(self.max_delay)
        }
    }
}

/// Where an attempt comes from, as the per-(username, where from) count sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// An address (by [`limit_key`](crate::admission::limit_key)).
    Address(IpAddr),
    /// A browser holding a device cookie for the username.
    Device(DeviceId),
}

/// Which counts an attempt went into: it is handed back to the same ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CountedIn {
    Node,
    Cluster,
}

/// A counted attempt; hand it back with [`Throttle::succeeded`] when the password was
/// right.
#[derive(Debug)]
pub struct Attempt {
    username: String,
    source: Source,
    counted_in: CountedIn,
    /// How long to wait before checking the password.
    pub delay: Duration,
}

/// Sign-in attempts so far (see the module documentation): in Redis when there is one,
/// else, or while it does not answer, in this process.
pub struct Throttle {
    local: Local,
    cluster: Option<Shared>,
}

impl Throttle {
    /// Counts in this process alone (a single server).
    pub fn new(limits: ThrottleLimits) -> Self {
        Self {
            local: Local::new(limits),
            cluster: None,
        }
    }

    /// Counts in the Redis at `url`, shared by every node using it, and in this process
    /// while Redis does not answer. Does not wait for Redis (a node may start while it is
    /// down); fails only when `url` is not a Redis URL.
    pub fn clustered(limits: ThrottleLimits, url: &str) -> anyhow::Result<Self> {
        Ok(Self {
            local: Local::new(limits),
            cluster: Some(Shared::connect(limits, url)?),
        })
    }

    /// Counts one attempt from `ip` against the per-address allowance; `Err` holds how
    /// long until the next would pass.
    pub async fn per_address(&self, ip: IpAddr) -> Result<(), Duration> {
        if let Some(cluster) = &self.cluster
            && let Some(counted) = cluster.per_address(ip).await
        {
            return counted;
        }
        self.local.per_address(ip)
    }

    /// Counts one attempt at `username`'s password from `ip`, or from `device` when the
    /// browser holds a valid device cookie for that username. `Err` (429) holds how long
    /// until the next would pass; `Ok` says how long this one waits first.
    pub async fn sign_in(
        &self,
        ip: IpAddr,
        username: &str,
        device: Option<DeviceId>,
    ) -> Result<Attempt, Duration> {
        if let Some(cluster) = &self.cluster
            && let Some(counted) = cluster.sign_in(ip, username, device).await
        {
            return counted;
        }
        self.local
            .sign_in(ip, username, device, std::time::Instant::now())
    }

    /// The password was right: the attempt does not count.
    pub async fn succeeded(&self, attempt: &Attempt) {
        match (attempt.counted_in, &self.cluster) {
            (CountedIn::Cluster, Some(cluster)) => cluster.succeeded(attempt).await,
            _ => self.local.succeeded(attempt),
        }
    }

    /// Forgets addresses and usernames whose counts here are back to nothing, so the maps
    /// do not grow with every address and username ever tried. (Redis forgets its own: each
    /// count expires when it is back to nothing.)
    pub fn forget_idle(&self) {
        self.local.forget_idle();
    }
}
