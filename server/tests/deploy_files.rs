//! `deploy/confab.service` as systemd reads it: `systemd-analyze verify` finds nothing
//! to say about it (an unknown or misspelt key, a bad value, a missing binary would be
//! reported), and `systemd-analyze security --offline` rates its hardening. Neither needs
//! a running systemd; `scripts/lib.sh` (`ensure_systemd_analyze`, `ensure_strace`)
//! installs the tools. No systemd runs here to start the unit, so the hardening that
//! could stop the server is checked against what the server does: every system call it
//! makes through a chat (traced with strace) must be one the unit's `SystemCallFilter=`
//! allows, and no memory may be mapped writable and executable at once
//! (`MemoryDenyWriteExecute=`). The nginx example is proved by a browser chatting through
//! it (e2e/tests/nginx.spec.ts).

mod common;

use std::{
    collections::{BTreeSet, HashMap},
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use common::{
    Client, http_request,
    process::{free_addr, spawn_listening},
    sign_up,
};
use tempfile::TempDir;

/// Where the unit expects the binary; the checks put the binary just built there instead,
/// since `verify` looks for it.
const INSTALLED_BINARY: &str = "/usr/local/bin/confab-server";

/// The highest exposure `systemd-analyze security` may rate the unit (0 is the most
/// locked down, 10 the least; it rated 1.5 when this was written).
const MAX_EXPOSURE: f64 = 2.0;

fn unit() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/confab.service");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    assert_eq!(
        text.matches(&format!("ExecStart={INSTALLED_BINARY}\n"))
            .count(),
        1,
        "the unit runs {INSTALLED_BINARY}"
    );
    text.replace(INSTALLED_BINARY, env!("CARGO_BIN_EXE_confab-server"))
}

/// Runs `systemd-analyze ARGS… UNIT` on `text` saved as `confab.service`; returns its
/// exit status and everything it printed.
fn analyze(args: &[&str], text: &str) -> (bool, String) {
    let dir = TempDir::new().expect("temporary folder");
    let path = dir.path().join("confab.service");
    std::fs::write(&path, text).expect("write the unit");
    let out = Command::new("systemd-analyze")
        .args(args)
        .arg(&path)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run systemd-analyze ({e}): install Debian's systemd package \
                 (scripts/test.sh does, with ensure_systemd_analyze in scripts/lib.sh)"
            )
        });
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), printed)
}

/// `Ok` when `systemd-analyze verify` accepts the unit without a word: it reports unknown
/// keys and values it cannot parse as warnings and still exits 0, so silence is the test.
fn verify(text: &str) -> Result<(), String> {
    match analyze(&["verify"], text) {
        (true, printed) if printed.trim().is_empty() => Ok(()),
        (_, printed) => Err(printed),
    }
}

#[test]
fn the_systemd_unit_verifies_without_a_warning() {
    if let Err(report) = verify(&unit()) {
        panic!("systemd-analyze verify deploy/confab.service:\n{report}");
    }
}

#[test]
fn the_check_catches_a_misspelt_key_or_a_bad_value() {
    for (right, wrong) in [
        ("ProtectHome=true", "ProtectHom=true"),
        ("Restart=on-failure", "Restart=on-failur"),
        (
            "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
            "RestrictAddressFamily=AF_INET AF_INET6 AF_UNIX",
        ),
    ] {
        let text = unit();
        assert!(text.contains(right), "the unit has {right}");
        let report = verify(&text.replacen(right, wrong, 1))
            .expect_err(&format!("{wrong} must fail the check"));
        assert!(
            report.contains(wrong.split('=').next().unwrap_or(wrong))
                || report.contains("Failed to parse"),
            "the report names the mistake: {report}"
        );
    }
}

#[test]
fn the_unit_is_hardened() {
    let (_, printed) = analyze(&["security", "--offline=true"], &unit());
    let exposure: f64 = printed
        .lines()
        .find_map(|l| l.split_once("Overall exposure level for confab.service:"))
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no overall exposure in:\n{printed}"));
    assert!(
        exposure <= MAX_EXPOSURE,
        "exposure {exposure} > {MAX_EXPOSURE}:\n{printed}"
    );
}

/// Every system call in `group` (`@system-service`), its nested groups expanded, as
/// `systemd-analyze syscall-filter` lists them.
fn syscalls_in(group: &str, groups: &HashMap<String, Vec<String>>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for entry in groups.get(group).into_iter().flatten() {
        if entry.starts_with('@') {
            out.extend(syscalls_in(entry, groups));
        } else {
            out.insert(entry.clone());
        }
    }
    out
}

/// The system calls the unit's `SystemCallFilter=` lines allow.
fn allowed_by_the_unit(unit: &str) -> BTreeSet<String> {
    let out = Command::new("systemd-analyze")
        .arg("syscall-filter")
        .output()
        .expect("run systemd-analyze syscall-filter");
    let mut groups: HashMap<String, Vec<String>> = HashMap::new();
    let mut current = None;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let entry = line.trim();
        if entry.is_empty() || entry.starts_with('#') {
            continue;
        }
        if line.starts_with(char::is_whitespace) {
            if let Some(group) = &current {
                groups
                    .entry(String::clone(group))
                    .or_default()
                    .push(entry.to_owned());
            }
        } else {
            current = Some(entry.to_owned());
        }
    }
    let mut allowed = BTreeSet::new();
    for line in unit.lines() {
        let Some(filter) = line.strip_prefix("SystemCallFilter=") else {
            continue;
        };
        let (deny, names) = match filter.strip_prefix('~') {
            Some(names) => (true, names),
            None => (false, filter),
        };
        for name in names.split_whitespace() {
            let calls = if name.starts_with('@') {
                syscalls_in(name, &groups)
            } else {
                BTreeSet::from([name.to_owned()])
            };
            assert!(!calls.is_empty(), "no system calls in {name}");
            if deny {
                allowed.retain(|c| !calls.contains(c));
            } else {
                allowed.extend(calls);
            }
        }
    }
    allowed
}

/// What `id ARGS` prints (a user's or group's number).
fn id(args: &[&str]) -> String {
    let out = Command::new("id").args(args).output().expect("run id");
    assert!(out.status.success(), "id {args:?} failed");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The system call of one strace line (`PID name(…`, `PID <... name resumed>…`).
fn syscall_of(line: &str) -> Option<&str> {
    let mut words = line.split_whitespace().skip(1);
    let first = words.next()?;
    let name = if first == "<..." {
        words.next()?
    } else {
        first.split_once('(')?.0
    };
    Some(name)
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
}

#[tokio::test]
async fn the_server_makes_only_system_calls_the_unit_allows() {
    let allowed = allowed_by_the_unit(&unit());
    assert!(
        allowed.contains("epoll_wait"),
        "the filter parsed: {allowed:?}"
    );
    let dir = TempDir::new().expect("temporary folder");
    let trace = dir.path().join("strace.txt");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).expect("mkdir data");
    let addr = free_addr();
    let mut command = tokio::process::Command::new("strace");
    command.args(["-f", "-qq", "-o"]).arg(&trace);
    // Not as root, as the unit runs it (User=confab): SQLite, for one, gives its new
    // journal files the database's owner (fchown, in @privileged) only when it is root.
    if id(&["-u"]) == "0" {
        let (uid, gid) = (id(&["-u", "nobody"]), id(&["-g", "nobody"]));
        let parse = |n: &str| n.parse::<u32>().expect("a numeric id");
        std::os::unix::fs::chown(&data, Some(parse(&uid)), Some(parse(&gid)))
            .expect("give the data folder to nobody");
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .expect("let nobody into the temporary folder");
        command.args(["-u", "nobody"]);
    }
    command
        .current_dir(&data)
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_confab-server"))
        .args(["--listen", &addr.to_string(), "--data-dir"])
        .arg(&data)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true);
    let mut strace = spawn_listening(command, addr).await;

    // What a day of chat does: the page, a sign-up (Argon2), a socket, a room, a message
    // stored and delivered, a file kept on disk, a second person, a sign-out.
    let page = http_request(addr, "GET", "/healthz", &[], None).await;
    assert_eq!(page.status, 200);
    let cookie = sign_up(addr, "ada").await;
    let mut ada = Client::signed_in(addr, &cookie).await;
    ada.join("general").await;
    let upload = http_request(
        addr,
        "POST",
        "/api/files?room=general&name=notes.txt",
        &[("Cookie", &cookie)],
        Some("{\"notes\": \"under strace\"}"),
    )
    .await;
    assert_eq!(upload.status, 201, "{upload:?}");
    let bob_cookie = sign_up(addr, "bob").await;
    let mut bob = Client::signed_in(addr, &bob_cookie).await;
    bob.join("general").await;
    ada.say("general", "hello under strace").await;
    bob.next_message().await;
    let signed_out = http_request(
        addr,
        "POST",
        "/api/signout",
        &[("Cookie", &cookie)],
        Some("{}"),
    )
    .await;
    assert!(signed_out.status < 300, "{signed_out:?}");

    // A graceful stop (what systemd sends), to trace the way out too.
    let strace_pid = strace.id().expect("strace runs");
    let children =
        std::fs::read_to_string(format!("/proc/{strace_pid}/task/{strace_pid}/children"))
            .expect("strace's children");
    let server = children
        .split_whitespace()
        .next()
        .expect("the traced server");
    let status = Command::new("kill")
        .args(["-TERM", server])
        .status()
        .expect("run kill");
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(30), strace.wait())
        .await
        .expect("the server stops within 30 s of SIGTERM")
        .expect("wait for strace");
    assert!(exit.success(), "the traced server exits cleanly: {exit}");

    let text = std::fs::read_to_string(&trace).expect("read the trace");
    let made: BTreeSet<&str> = text.lines().filter_map(syscall_of).collect();
    assert!(
        made.contains("accept4") || made.contains("accept"),
        "{made:?}"
    );
    let refused: Vec<&str> = made
        .iter()
        .copied()
        .filter(|call| !allowed.contains(*call))
        .collect();
    assert!(
        refused.is_empty(),
        "SystemCallFilter= would refuse {refused:?} (all calls made: {made:?})"
    );
    let writable_and_executable: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("PROT_WRITE|PROT_EXEC") || l.contains("PROT_EXEC|PROT_WRITE"))
        .collect();
    assert!(
        writable_and_executable.is_empty(),
        "MemoryDenyWriteExecute= would refuse: {writable_and_executable:?}"
    );
}
