//! `deploy/confab.service` as systemd reads it: `systemd-analyze verify` finds nothing
//! to say about it (an unknown or misspelt key, a bad value, a missing binary would be
//! reported), and `systemd-analyze security --offline` rates its hardening. Neither needs
//! a running systemd; `scripts/lib.sh` (`ensure_systemd_analyze`) installs the tool.
//! The nginx example is proved by a browser chatting through it (e2e/tests/nginx.spec.ts).

use std::{path::Path, process::Command};

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
