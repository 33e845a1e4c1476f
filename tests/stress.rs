//! A short run of `bench/stress-kill.sh`: SIGKILLs of `run`, `run --hold`
//! and `up` at random moments, each followed by `cleanup`, leave nothing
//! behind (namespaces, mounts, records, processes, root rules). The full
//! 200-kill run is in bench/README.md; this one keeps it honest in CI.

mod common;

#[test]
fn ten_random_sigkills_then_cleanup_leave_nothing() {
    common::require_root();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/stress-kill.sh");
    let out = std::process::Command::new("bash")
        .arg(script)
        .arg("10")
        .env("BRIDGELAB", common::bridgelab_bin())
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("kills: 10 ") && stdout.contains("; with leftovers: 0\n"), "{stdout}");
}
