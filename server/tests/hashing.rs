//! Password hashing under a flood of sign-in attempts: hashes run one per core, waiting
//! attempts hold no thread and no memory, and a signed-in person's requests do not queue
//! behind them. In a test binary of its own, so the process's memory high-water mark is
//! this test's.

mod common;

use std::{num::NonZeroU32, time::Instant};

use common::{PASSWORD, http_post, http_request, sign_up, start_with};
use serde_json::json;

/// Attempts in flight at once: far more than the cores of any machine this runs on.
const ATTEMPTS: usize = 64;

/// The process's peak resident memory so far, in KiB (`VmHWM`).
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_sign_ins_hashes_one_per_core_and_does_not_hold_up_a_signed_in_person() {
    let many = NonZeroU32::new(10_000).expect("non-zero");
    let server = start_with(|c| {
        c.allow_guests = false;
        c.sign_in_per_ip_per_min = many;
        c.sign_in_per_user_ip_per_min = many;
        c.sign_in_per_user_per_min = many;
    })
    .await;
    let addr = server.addr;
    let cookie = sign_up(addr, "ada").await;
    let before = peak_rss_kib();

    let started = Instant::now();
    let attempts: Vec<_> = (0..ATTEMPTS)
        .map(|_| {
            tokio::spawn(async move {
                let wrong = json!({"username": "ada", "password": format!("not {PASSWORD}")});
                http_post(addr, "/api/signin", &[], &wrong).await.status
            })
        })
        .collect();
    // While they queue: a person already signed in asks who they are (a session lookup,
    // the same kind of read a socket upgrade makes).
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let asked = Instant::now();
    let me = http_request(addr, "GET", "/api/me", &[("Cookie", cookie.as_str())], None).await;
    let me_took = asked.elapsed();
    assert_eq!(me.status, 200);
    for attempt in attempts {
        assert_eq!(attempt.await.expect("attempt"), 401);
    }
    let flood_took = started.elapsed();
    let grew_kib = peak_rss_kib().saturating_sub(before);
    eprintln!(
        "{ATTEMPTS} sign-ins in {flood_took:?}; /api/me answered in {me_took:?} meanwhile; \
         peak memory grew {} MiB",
        grew_kib / 1024
    );
    // One Argon2id hash holds 19 MiB while it runs: all 64 at once would need over a
    // gigabyte, one per core a few tens of MiB (figures in docs/RELIABILITY.md).
    assert!(
        grew_kib < 600 * 1024,
        "peak memory grew {} MiB during {ATTEMPTS} sign-ins",
        grew_kib / 1024
    );
    // Behind 64 hashes sharing the cores it takes hundreds of milliseconds.
    assert!(
        me_took < std::time::Duration::from_millis(250),
        "/api/me took {me_took:?} behind the hashing"
    );
}
