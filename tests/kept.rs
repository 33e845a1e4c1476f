//! Working with kept labs from other processes: `up --serve` with `probe`
//! and `down`, `probe` on a plain `up` lab, `shell`, `snapshot`, and the
//! errors for a run, node or lab that is not there.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use bridgelab::registry::Registry;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const SCENARIO: &str = "docker20-publish.toml";

fn bridgelab(args: &[&str]) -> Output {
    Command::new(common::bridgelab_bin()).args(args).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Starts `up --serve` and reads its output up to the line that says it
/// serves: the lab, its proxies and responders are all up by then.
fn serve() -> (Child, String, Vec<String>) {
    let mut child = Command::new(common::bridgelab_bin())
        .args(["up", "--serve"])
        .arg(common::scenario_path(SCENARIO))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut lines: Vec<String> = Vec::new();
    while !lines.last().is_some_and(|l| l.starts_with("serving until")) {
        let mut line = String::new();
        if out.read_line(&mut line).unwrap() == 0 {
            let rest = common::wait_at_most(child, Duration::from_secs(30)).map(|o| text(&o.stderr));
            panic!("up --serve ended before serving: {lines:?} {rest:?}");
        }
        lines.push(line);
    }
    let run_id = lines[0].split_whitespace().nth(1).unwrap().to_string();
    assert!(lines[0].starts_with(&format!("lab {run_id} is up and served")), "{lines:?}");
    // The rest of its output (the signal's note) goes to stderr.
    std::thread::spawn(move || for _ in out.lines() {});
    (child, run_id, lines)
}

/// Nothing of the lab is left: namespaces, record, server socket.
fn assert_gone(run_id: &str) {
    let reg = Registry::default();
    assert!(common::namespaces_of(run_id).is_empty(), "namespaces left behind");
    assert!(!reg.contains(run_id), "run record left behind");
    assert!(!reg.socket_path(run_id).exists(), "server socket left behind");
}

fn probe_json(run_id: &str, from: &str, to: &str, probe: &str) -> serde_json::Value {
    let out = bridgelab(&["probe", run_id, from, to, probe, "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Another process probes the served lab: the responders answer, and say
/// who the probe came from (DNAT keeps the client's address; the userland
/// proxy, from a container to the gateway, shows the bridge's). `down`
/// stops the server, which removes its lab and exits as on SIGTERM.
#[test]
fn a_served_lab_answers_probes_from_another_process_until_down() {
    common::require_root();
    let (child, run_id, lines) = serve();
    assert!(lines.iter().any(|l| l.contains("9 userland proxies, 4 responders")), "{lines:?}");
    let rec = Registry::default().get(&run_id).unwrap();
    assert!(rec.served && !rec.kept && rec.pid == child.id());
    assert!(Registry::default().socket_path(&run_id).exists());

    let dnat = probe_json(&run_id, "external", "host", "tcp:8080");
    assert_eq!(dnat["actual"], "reachable", "{dnat}");
    assert_eq!(dnat["source_seen"], "198.51.100.2", "{dnat}");
    let proxied = probe_json(&run_id, "client", "host", "tcp:8080");
    assert_eq!(proxied["actual"], "reachable", "{proxied}");
    assert_eq!(proxied["target"], "172.17.0.1");
    assert_eq!(proxied["source_seen"], "172.17.0.1", "the proxy connects from the bridge: {proxied}");
    let udp = probe_json(&run_id, "external", "host", "udp:8082");
    assert_eq!((&udp["actual"], &udp["source_seen"]), (&"reachable".into(), &"198.51.100.2".into()), "{udp}");
    // Published on 127.0.0.1 only: closed to the LAN, served or not.
    assert_eq!(probe_json(&run_id, "external", "host", "tcp:8081")["actual"], "refused");

    // The text form says where the source was rewritten.
    let out = bridgelab(&["probe", &run_id, "client", "host", "tcp:8080"]);
    let says = text(&out.stdout);
    assert!(says.starts_with("client -> host tcp:8080 (172.17.0.1): reachable: SYN-ACK\n"), "{says}");
    assert!(
        says.contains("source: the responder saw it come from 172.17.0.1 (host), not an address of client"),
        "{says}"
    );
    assert!(!says.contains("not served"), "{says}");

    let ls = text(&bridgelab(&["ls"]).stdout);
    assert!(ls.lines().any(|l| l.starts_with(&run_id) && l.contains(" served ")), "{ls}");

    let down = bridgelab(&["down", &run_id]);
    assert_eq!(down.status.code(), Some(0), "{}", text(&down.stderr));
    assert!(text(&down.stdout).contains(&format!("lab {run_id} removed (its server, process {}", child.id())));
    let done = common::wait_at_most(child, Duration::from_secs(30)).expect("down returned, the server ended");
    assert_eq!(done.status.code(), Some(143), "{}", text(&done.stderr));
    assert!(text(&done.stderr).contains("terminated (SIGTERM); lab removed"), "{}", text(&done.stderr));
    assert_gone(&run_id);
}

#[test]
fn ctrl_c_stops_a_served_lab_and_removes_it() {
    common::require_root();
    let (child, run_id, _) = serve();
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    let done = common::wait_at_most(child, Duration::from_secs(30)).expect("SIGINT ends the server");
    assert_eq!(done.status.code(), Some(130), "{}", text(&done.stderr));
    assert_gone(&run_id);
}

/// A server killed outright cannot tear down: its lab is a dead run, which
/// `cleanup` removes, socket included; `probe` says the server is gone.
#[test]
fn cleanup_removes_the_lab_of_a_killed_server() {
    common::require_root();
    let (child, run_id, _) = serve();
    kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
    let done = common::wait_at_most(child, Duration::from_secs(30)).unwrap();
    assert_eq!(done.status.code(), None);
    assert_eq!(common::namespaces_of(&run_id).len(), 4, "nobody removed the lab yet");
    assert!(Registry::default().socket_path(&run_id).exists());
    // Not served any more: no responders, and probe says so.
    let out = bridgelab(&["probe", &run_id, "external", "host", "tcp:8080"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("is not served"), "{}", text(&out.stdout));

    let cleanup = bridgelab(&["cleanup"]);
    assert_eq!(cleanup.status.code(), Some(0), "{}", text(&cleanup.stderr));
    assert!(text(&cleanup.stdout).contains(&format!("removed lab {run_id}")), "{}", text(&cleanup.stdout));
    assert_gone(&run_id);
}

/// A lab kept by plain `up`: probed (nothing listens), entered with
/// `shell`, and snapshotted byte for byte as the test suite snapshots it.
#[test]
fn a_kept_lab_is_probed_entered_and_snapshotted() {
    common::require_root();
    let up = Command::new(common::bridgelab_bin()).arg("up").arg(common::scenario_path(SCENARIO)).output().unwrap();
    assert_eq!(up.status.code(), Some(0), "{}", text(&up.stderr));
    let run_id = text(&up.stdout).split_whitespace().nth(1).unwrap().to_string();
    assert_eq!(common::namespaces_of(&run_id).len(), 4);

    // DNAT sends it to web:80, where no responder runs: the kernel resets.
    let out = bridgelab(&["probe", &run_id, "external", "host", "tcp:8080"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let says = text(&out.stdout);
    assert!(says.starts_with("external -> host tcp:8080 (198.51.100.1): refused: RST"), "{says}");
    assert!(says.contains(&format!("lab {run_id} is not served")), "{says}");
    assert_eq!(probe_json(&run_id, "client", "web", "icmp")["actual"], "reachable");

    // The node's own addresses and, through the fresh /sys, its own links.
    let addr = bridgelab(&["shell", &run_id, "web", "--", "ip", "-o", "-4", "addr"]);
    assert_eq!(addr.status.code(), Some(0), "{}", text(&addr.stderr));
    let addr = text(&addr.stdout);
    assert!(addr.contains("eth0    inet 172.17.0.2/16"), "{addr}");
    assert!(!addr.contains("198.51.100"), "{addr}");
    let sys = bridgelab(&["shell", &run_id, "web", "--", "ls", "/sys/class/net"]);
    assert_eq!(text(&sys.stdout), "eth0\nlo\n", "{}", text(&sys.stderr));
    let host_sys = bridgelab(&["shell", &run_id, "host", "--", "ls", "/sys/class/net"]);
    assert!(text(&host_sys.stdout).lines().any(|l| l == "docker0"), "{}", text(&host_sys.stdout));
    // The command's exit code, and its environment.
    let code = bridgelab(&["shell", &run_id, "client", "--", "sh", "-c", "echo $BRIDGELAB_NODE; exit 7"]);
    assert_eq!((code.status.code(), text(&code.stdout)), (Some(7), "client\n".to_string()));
    let missing = bridgelab(&["shell", &run_id, "web", "--", "/nonexistent/tool"]);
    assert_eq!(missing.status.code(), Some(127), "{}", text(&missing.stderr));

    let snap = bridgelab(&["snapshot", &run_id]);
    assert_eq!(snap.status.code(), Some(0), "{}", text(&snap.stderr));
    let committed = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/scenarios__lab-docker20-publish.snap"),
    )
    .unwrap();
    // insta's file: a `---` header, then the snapshot and one newline.
    let body = committed.splitn(3, "---\n").nth(2).unwrap();
    assert_eq!(text(&snap.stdout), body);

    let down = bridgelab(&["down", &run_id]);
    assert_eq!(down.status.code(), Some(0), "{}", text(&down.stderr));
    assert_gone(&run_id);
}

/// Unknown run ids and nodes are exit code 2 with the names that exist; a
/// lab whose namespaces went away is exit code 3 and says how to clean up.
#[test]
fn unknown_runs_nodes_and_gone_labs_are_clear_errors() {
    common::require_root();
    for args in [
        &["probe", "0000dead", "external", "host", "icmp"][..],
        &["shell", "0000dead", "web", "--", "true"],
        &["snapshot", "0000dead"],
    ] {
        let out = bridgelab(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(text(&out.stderr).contains("no such run: 0000dead"), "{args:?}: {}", text(&out.stderr));
    }
    let bad = bridgelab(&["snapshot", "../x"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad.stderr).contains("invalid run id"), "{}", text(&bad.stderr));

    let up = Command::new(common::bridgelab_bin()).arg("up").arg(common::scenario_path(SCENARIO)).output().unwrap();
    assert_eq!(up.status.code(), Some(0), "{}", text(&up.stderr));
    let run_id = text(&up.stdout).split_whitespace().nth(1).unwrap().to_string();

    let shell = bridgelab(&["shell", &run_id, "db", "--", "true"]);
    assert_eq!(shell.status.code(), Some(2));
    assert!(
        text(&shell.stderr)
            .contains(&format!("run {run_id} has no node \"db\"; its nodes: host, external, web, client")),
        "{}",
        text(&shell.stderr)
    );
    let probe = bridgelab(&["probe", &run_id, "external", "db", "icmp"]);
    assert_eq!(probe.status.code(), Some(2));
    assert!(text(&probe.stderr).contains("unknown node db"), "{}", text(&probe.stderr));
    let via = bridgelab(&["probe", &run_id, "external", "host", "icmp", "--via", "web"]);
    assert_eq!(via.status.code(), Some(2));
    assert!(text(&via.stderr).contains("the neighbour must be \"host\""), "{}", text(&via.stderr));
    let via = bridgelab(&["probe", &run_id, "client", "host", "icmp", "--via", "host@nonet"]);
    assert_eq!(via.status.code(), Some(2), "{}", text(&via.stdout));
    assert!(text(&via.stderr).contains("cannot send client -> host icmp via host@nonet"), "{}", text(&via.stderr));

    // One namespace removed behind bridgelab's back.
    let web = std::path::Path::new(bridgelab::registry::NETNS_DIR).join(format!("bl-{run_id}-web"));
    assert!(web.is_symlink(), "a kept lab has names for `ip netns exec`");
    bridgelab::apply::netns::remove(&web).unwrap();
    for args in [
        &["snapshot", &run_id][..],
        &["probe", &run_id, "external", "host", "icmp"],
        &["shell", &run_id, "web", "--", "true"],
    ] {
        let out = bridgelab(args);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", text(&out.stderr));
        assert!(text(&out.stderr).contains(&format!("lab {run_id} is gone or half gone")), "{}", text(&out.stderr));
    }
    let down = bridgelab(&["down", &run_id]);
    assert_eq!(down.status.code(), Some(0), "{}", text(&down.stderr));
    assert_gone(&run_id);
}

/// Each verb's --help says what it does, what it needs and its exit codes.
#[test]
fn kept_lab_verbs_explain_themselves() {
    for (verb, wants) in [
        ("up", &["--serve", "bridgelab down RUN_ID", "Ctrl-C", "bridgelab cleanup", "proxies"][..]),
        ("down", &["served", "SIGTERM"]),
        ("probe", &["reachable, refused", "blocked", "--via", "icmp, tcp:PORT or udp:PORT", "Exit codes"]),
        ("shell", &["ip netns exec", "/sys", "mount namespace", "$SHELL", "Exit codes", "127"]),
        ("snapshot", &["[snapshot]", "tests/snapshots", "Exit codes"]),
    ] {
        let out = bridgelab(&[verb, "--help"]);
        assert_eq!(out.status.code(), Some(0));
        let help = text(&out.stdout);
        for want in wants {
            assert!(help.contains(want), "`{verb} --help` lacks {want:?}:\n{help}");
        }
    }
    let top = text(&bridgelab(&["--help"]).stdout);
    for verb in ["probe", "shell", "snapshot"] {
        assert!(top.lines().any(|l| l.trim_start().starts_with(verb)), "--help lacks {verb}:\n{top}");
    }
}

/// A `run --hold` lab of a file with `versions` is the file's first
/// version: `snapshot` plans that version again and matches its committed
/// snapshot; Enter then lets the run go on and remove its lab.
#[test]
fn a_held_run_of_one_version_is_snapshotted_as_that_version() {
    use std::io::Write as _;
    common::require_root();
    let mut child = Command::new(common::bridgelab_bin())
        .args(["run", "--hold"])
        .arg(common::scenario_path("bugs/db01-localhost-port-from-lan.toml"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let run_id = line.strip_prefix("ready ").expect("ready RUN_ID").trim().to_string();
    assert_eq!(Registry::default().get(&run_id).unwrap().scenario, "db01-localhost-port-from-lan@docker1");

    let snap = bridgelab(&["snapshot", &run_id]);
    assert_eq!(snap.status.code(), Some(0), "{}", text(&snap.stderr));
    let committed = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/snapshots/scenarios__lab-db01-localhost-port-from-lan@docker1.snap"),
    )
    .unwrap();
    assert_eq!(text(&snap.stdout), committed.splitn(3, "---\n").nth(2).unwrap());
    // Its owner is alive: down leaves it to its run.
    assert_eq!(bridgelab(&["down", &run_id]).status.code(), Some(2));

    // Enter for each of the file's four versions.
    stdin.write_all(b"\n\n\n\n").unwrap();
    drop(stdin);
    std::thread::spawn(move || for _ in out.lines() {});
    let done = common::wait_at_most(child, Duration::from_secs(300)).expect("the run ends");
    assert_eq!(done.status.code(), Some(0), "{}", text(&done.stderr));
    assert!(common::namespaces_of(&run_id).is_empty());
}
