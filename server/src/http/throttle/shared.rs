//! The sign-in throttle's counts in Redis, so that they hold for a whole cluster: with
//! counts per node, an attacker spreading guesses over N nodes behind a load balancer
//! would get N times every allowance.
//!
//! The same three counts as [`super::local`], with the same numbers and answers, kept as
//! GCRA keeps a leaky bucket (one instant per count, see `counts.lua`), which is what the
//! local per-address limiter (`governor`) does too. Each call is one Lua script, so it is
//! atomic across nodes and costs one round trip; its clock is Redis's, so the nodes'
//! clocks need not agree.
//!
//! Keys are `confab:throttle:{kind}:{hash}`: the hash (SHA-256 of the length-prefixed
//! parts) means no username, however spelled, can name another count's key, and keeps
//! usernames and addresses out of Redis. Each key expires when its count is back to
//! nothing.
//!
//! Redis must never make a sign-in fail or hang: every call is bounded by
//! [`CALL_TIMEOUT`]; when it fails, this returns `None` and the caller counts the attempt
//! in its own process. After a failure Redis is left alone for [`RETRY_AFTER`] (attempts
//! meanwhile go straight to the local counts rather than each waiting out the timeout),
//! and an outage is logged once when it starts and once when it ends.

use std::{
    net::IpAddr,
    sync::{
        Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use redis::{
    IntoConnectionInfo, Script,
    aio::{ConnectionManager, ConnectionManagerConfig},
};
use sha2::{Digest, Sha256};

use super::{Attempt, CountedIn, Source, ThrottleLimits};
use crate::{admission::limit_key, http::device::DeviceId};

/// How long one call to Redis may take before the attempt is counted locally instead.
const CALL_TIMEOUT: Duration = Duration::from_millis(200);
/// How long Redis is left alone after a call failed.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// The prefix of every key.
const PREFIX: &str = "confab:throttle";

/// One attempt's leaking time at `per_min` a minute, in microseconds (Redis's unit here).
fn interval_us(per_min: std::num::NonZeroU32) -> f64 {
    60e6 / f64::from(per_min.get())
}

fn micros(us: i64) -> Duration {
    Duration::from_micros(u64::try_from(us).unwrap_or(0))
}

/// The key of one count: `kind` and a hash of `parts`, each length-prefixed so that no
/// choice of parts collides with another.
fn key(kind: &str, parts: &[&[u8]]) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    format!(
        "{PREFIX}:{kind}:{}",
        data_encoding::HEXLOWER.encode(&hash.finalize())
    )
}

fn address_key(ip: IpAddr) -> String {
    key("ip", &[limit_key(ip).to_string().as_bytes()])
}

fn from_key(username: &str, source: Source) -> String {
    match source {
        Source::Address(ip) => key("user-ip", &[username.as_bytes(), ip.to_string().as_bytes()]),
        Source::Device(id) => key("user-device", &[username.as_bytes(), &id]),
    }
}

fn username_key(username: &str) -> String {
    key("user", &[username.as_bytes()])
}

/// The counts in Redis, and whether Redis is answering.
pub(super) struct Shared {
    limits: ThrottleLimits,
    redis: ConnectionManager,
    script: Script,
    /// Set while Redis is taken to be down: the outage is logged when this turns.
    down: AtomicBool,
    /// Until when Redis is left alone after a failure.
    resting_until: Mutex<Option<Instant>>,
}

impl Shared {
    /// Connects lazily (the first call does): fails only when `url` is not a Redis URL.
    pub(super) fn connect(limits: ThrottleLimits, url: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url.into_connection_info()?)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CALL_TIMEOUT))
            .set_response_timeout(Some(CALL_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(RETRY_AFTER);
        Ok(Self {
            limits,
            redis: ConnectionManager::new_lazy_with_config(client, config)?,
            script: Script::new(include_str!("counts.lua")),
            down: AtomicBool::new(false),
            resting_until: Mutex::new(None),
        })
    }

    /// Counts one attempt from `ip` (see [`super::Throttle::per_address`]); `None` when
    /// Redis did not answer.
    pub(super) async fn per_address(&self, ip: IpAddr) -> Option<Result<(), Duration>> {
        let mut call = self.script.prepare_invoke();
        call.key(address_key(ip))
            .arg("address")
            .arg(interval_us(self.limits.per_ip))
            .arg(self.limits.per_ip.get());
        let wait: i64 = self.run(&call).await?;
        Some(if wait > 0 { Err(micros(wait)) } else { Ok(()) })
    }

    /// Counts one attempt at `username`'s password (see [`super::Throttle::sign_in`]);
    /// `None` when Redis did not answer.
    pub(super) async fn sign_in(
        &self,
        ip: IpAddr,
        username: &str,
        device: Option<DeviceId>,
    ) -> Option<Result<Attempt, Duration>> {
        let limits = self.limits;
        let source = device.map_or(Source::Address(limit_key(ip)), Source::Device);
        let mut call = self.script.prepare_invoke();
        call.key(address_key(ip))
            .key(from_key(username, source))
            .key(username_key(username))
            .arg("sign_in")
            .arg(interval_us(limits.per_ip))
            .arg(limits.per_ip.get())
            .arg(interval_us(limits.per_user_ip))
            .arg(limits.per_user_ip.get())
            .arg(interval_us(limits.per_username));
        let (outcome, value): (i64, i64) = self.run(&call).await?;
        Some(match outcome {
            2 => {
                // The username's count before this attempt, in attempts.
                let before = value as f64 / interval_us(limits.per_username);
                let over = before + 1.0 - f64::from(limits.per_username.get());
                Ok(Attempt {
                    username: username.to_owned(),
                    source,
                    counted_in: CountedIn::Cluster,
                    delay: limits.delay(over, device),
                })
            }
            _ => Err(micros(value)),
        })
    }

    /// Hands a right password's attempt back (see [`super::Throttle::succeeded`]). When
    /// Redis does not answer, the attempt stays counted until it leaks away: the owner
    /// may wait a little longer next time, which is the safe way to be wrong.
    pub(super) async fn succeeded(&self, attempt: &Attempt) {
        let limits = self.limits;
        let mut call = self.script.prepare_invoke();
        call.key(from_key(&attempt.username, attempt.source))
            .key(username_key(&attempt.username))
            .arg("give_back")
            .arg(interval_us(limits.per_user_ip))
            .arg(interval_us(limits.per_username));
        let _: Option<i64> = self.run(&call).await;
    }

    /// Runs one call within [`CALL_TIMEOUT`], unless Redis is resting after a failure;
    /// `None` when it did not answer.
    async fn run<T: redis::FromRedisValue>(&self, call: &redis::ScriptInvocation<'_>) -> Option<T> {
        {
            let resting = self
                .resting_until
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if resting.is_some_and(|until| Instant::now() < until) {
                return None;
            }
        }
        let mut redis = self.redis.clone();
        let failure = match tokio::time::timeout(CALL_TIMEOUT, call.invoke_async(&mut redis)).await
        {
            Ok(Ok(answer)) => {
                if self.down.swap(false, Ordering::Relaxed) {
                    tracing::info!("Redis answers again: sign-in limits hold for the cluster");
                }
                return Some(answer);
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {CALL_TIMEOUT:?}"),
        };
        *self
            .resting_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now() + RETRY_AFTER);
        if !self.down.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "Redis does not answer ({failure}): sign-in limits are counted per node \
                 until it does"
            );
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_cannot_be_forged_by_choosing_a_username() {
        let ip: IpAddr = "203.0.113.9".parse().expect("ip");
        // Without length prefixes these two would hash the same bytes.
        assert_ne!(
            from_key("ada", Source::Address(ip)),
            key("user-ip", &[b"ada2", b"03.0.113.9"])
        );
        assert_ne!(
            from_key("ada", Source::Device([1; 16])),
            from_key("ada", Source::Address(ip))
        );
        assert_ne!(username_key("ada"), username_key("Ada"));
        let k = username_key("ada:x\r\n*");
        assert!(k.starts_with("confab:throttle:user:"), "{k}");
        assert_eq!(k.len(), "confab:throttle:user:".len() + 64);
    }
}
