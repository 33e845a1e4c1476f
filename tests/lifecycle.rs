//! A lab never outlives its purpose: not after an error half-way, a panic,
//! a signal, or a killed owner (then `cleanup` removes it).

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use bridgelab::apply::UpOptions;
use bridgelab::registry::{Registry, RunRecord};
use bridgelab::Lab;

/// Tests that look at every record in the registry, or make one dead on
/// purpose, must not overlap.
static REGISTRY_WIDE: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn registry_wide() -> std::sync::MutexGuard<'static, ()> {
    REGISTRY_WIDE.lock().unwrap_or_else(|e| e.into_inner())
}

fn new_run_ids(before: &[RunRecord]) -> Vec<String> {
    Registry::default()
        .list()
        .into_iter()
        .filter(|r| !before.iter().any(|b| b.run_id == r.run_id))
        .map(|r| r.run_id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_half_way_removes_everything_built_so_far() {
    common::require_root();
    // default.toml creates docker0 and three veth pairs: fail after each count
    // of links, so every stage of the build is interrupted once.
    for n in 0..4 {
        let run_id = format!("halfway{n}{}", std::process::id());
        let lab = Lab::load(common::scenario_path("default.toml")).unwrap();
        let opts = UpOptions { fail_after_links: Some(n), run_id: Some(run_id.clone()) };
        let err = lab.up_with(opts).await.expect_err("the injected failure must surface");
        assert!(err.to_string().contains("stopped on purpose"), "{err}");
        assert_eq!(err.exit_code(), 3);
        assert!(common::namespaces_of(&run_id).is_empty(), "namespaces left after failing at link {n}");
        assert!(Registry::default().get(&run_id).is_none(), "record left after failing at link {n}");
    }
}

/// A namespace whose sysctls cannot be written (here a key this kernel
/// lacks, slipped into the plan) stops the build, whichever node it is:
/// the error names the node and the key, and nothing is left, neither the
/// namespaces made before it nor those the maker made meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sysctl_that_cannot_be_written_stops_the_build_and_leaves_nothing() {
    common::require_root();
    let scenario = bridgelab::Scenario::load(common::scenario_path("default.toml")).unwrap();
    let planned = bridgelab::plan::plan(&scenario).unwrap();
    let nodes: Vec<String> = planned.nodes.iter().map(|n| n.name.clone()).collect();
    for node in [nodes.first().unwrap(), nodes.last().unwrap()] {
        let mut plan = planned.clone();
        let n = plan.nodes.iter_mut().find(|n| &n.name == node).unwrap();
        n.sysctls.push(bridgelab::plan::Sysctl { key: "net.ipv4.no_such_key".into(), value: "1".into(), write: true });
        let run_id = format!("nosysctl{}{}", nodes.iter().position(|m| m == node).unwrap(), std::process::id());
        let opts = UpOptions { run_id: Some(run_id.clone()), ..Default::default() };
        let err = bridgelab::apply::up(scenario.clone(), plan, opts).await.expect_err("the sysctl cannot be written");
        let said = err.to_string();
        assert!(said.contains(&format!("{node}: sysctls:")) && said.contains("no_such_key"), "{said}");
        assert_eq!(err.exit_code(), 3);
        assert!(common::namespaces_of(&run_id).is_empty(), "namespaces left after {node}'s sysctl failed");
        assert!(Registry::default().get(&run_id).is_none(), "record left after {node}'s sysctl failed");
        assert!(!bridgelab::registry::lab_netns_dir(&run_id).exists(), "{run_id}'s directory is left");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_id_in_use_is_refused() {
    common::require_root();
    let id = format!("taken{}", std::process::id());
    let first = Lab::load(common::scenario_path("default.toml")).unwrap();
    let running = first.up_with(UpOptions { run_id: Some(id.clone()), ..Default::default() }).await.unwrap();
    let second = Lab::load(common::scenario_path("default.toml")).unwrap();
    let err = second.up_with(UpOptions { run_id: Some(id.clone()), ..Default::default() }).await.unwrap_err();
    assert!(err.to_string().contains("already in use"), "{err}");
    // The refused run did not disturb the one holding the id.
    assert!(running.verify().await.unwrap().is_empty());
    running.down().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_while_holding_a_lab_removes_it() {
    common::require_root();
    let lab = Lab::load(common::scenario_path("network-modes.toml")).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let task = tokio::spawn(async move {
        let running = lab.up().await.unwrap();
        tx.send(running.run_id().to_string()).unwrap();
        assert!(!common::namespaces_of(running.run_id()).is_empty());
        panic!("boom while the lab is up");
    });
    let result = task.await;
    assert!(result.unwrap_err().is_panic());
    let run_id = rx.recv().unwrap();
    assert!(common::namespaces_of(&run_id).is_empty(), "namespaces survived the panic");
    assert!(Registry::default().get(&run_id).is_none(), "record survived the panic");
}

fn interrupt_run(signal: nix::sys::signal::Signal, want_code: i32) {
    common::require_root();
    let mut child = Command::new(common::bridgelab_bin())
        .args(["run", "--hold"])
        .arg(common::scenario_path("default.toml"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let run_id = line.strip_prefix("ready ").unwrap_or_else(|| panic!("unexpected output {line:?}")).trim().to_string();
    assert_eq!(common::namespaces_of(&run_id).len(), 4);
    // A held lab is named for `ip netns exec`.
    for ns in common::namespaces_of(&run_id) {
        assert!(std::path::Path::new(bridgelab::registry::NETNS_DIR).join(&ns).is_symlink(), "{ns} has no name");
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(want_code), "{signal}: {:?}", out.status);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("({signal}); lab removed")), "{err}");
    assert!(common::namespaces_of(&run_id).is_empty(), "namespaces survived {signal}");
    assert!(Registry::default().get(&run_id).is_none(), "record survived {signal}");
}

#[test]
fn sigint_tears_the_lab_down() {
    interrupt_run(nix::sys::signal::Signal::SIGINT, 130);
}

#[test]
fn sigterm_tears_the_lab_down() {
    interrupt_run(nix::sys::signal::Signal::SIGTERM, 143);
}

#[test]
fn sighup_tears_the_lab_down() {
    interrupt_run(nix::sys::signal::Signal::SIGHUP, 129);
}

#[test]
fn sigquit_tears_the_lab_down() {
    interrupt_run(nix::sys::signal::Signal::SIGQUIT, 131);
}

/// Ctrl-C at the `--hold` prompt, sent as a terminal does (to the whole
/// process group), with stdin still open: bridgelab ends at once instead of
/// waiting for an Enter that never comes.
#[test]
fn ctrl_c_at_the_hold_prompt_ends_at_once() {
    use std::os::unix::process::CommandExt;
    common::require_root();
    let mut child = Command::new(common::bridgelab_bin())
        .args(["run", "--hold"])
        .arg(common::scenario_path("existing-bridge.toml"))
        .process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    while !lines.last().is_some_and(|l: &String| l.starts_with("press Enter")) {
        let mut line = String::new();
        assert!(out.read_line(&mut line).unwrap() > 0, "no prompt: {lines:?}");
        lines.push(line);
    }
    assert_eq!(lines.last().unwrap(), "press Enter to probe and tear the lab down\n");
    let run_id = lines[0].strip_prefix("ready ").unwrap().trim().to_string();
    nix::sys::signal::killpg(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGINT).unwrap();
    let Some(done) = common::wait_at_most(child, std::time::Duration::from_secs(30)) else {
        drop(stdin);
        panic!("Ctrl-C at the prompt did not end bridgelab: it still waits for Enter");
    };
    assert_eq!(done.status.code(), Some(130));
    let err = String::from_utf8_lossy(&done.stderr);
    assert!(err.contains("interrupted (SIGINT); lab removed"), "{err}");
    assert!(common::namespaces_of(&run_id).is_empty());
    assert!(Registry::default().get(&run_id).is_none());
    drop(stdin);
}

#[test]
fn end_of_input_ends_a_held_run_normally() {
    common::require_root();
    let out = Command::new(common::bridgelab_bin())
        .args(["run", "--hold"])
        .arg(common::scenario_path("existing-bridge.toml"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let run_id = stdout.lines().next().unwrap().strip_prefix("ready ").unwrap().to_string();
    assert!(stdout.contains("\npress Enter to probe and tear the lab down\n"), "{stdout}");
    assert!(stdout.contains("PASS  existing-bridge"), "{stdout}");
    assert!(common::namespaces_of(&run_id).is_empty());
}

#[test]
fn up_keeps_a_lab_that_cleanup_spares_and_down_removes() {
    common::require_root();
    let _serial = registry_wide();
    let before = Registry::default().list();
    let out =
        Command::new(common::bridgelab_bin()).arg("up").arg(common::scenario_path("icc-off.toml")).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let ids = new_run_ids(&before);
    let run_id = ids
        .iter()
        .find(|id| String::from_utf8_lossy(&out.stdout).contains(id.as_str()))
        .expect("up prints its run id")
        .clone();
    assert_eq!(common::namespaces_of(&run_id).len(), 4, "the lab outlives `up`");

    // Its owner (`up`) has exited, but a kept lab is live for cleanup.
    let report = bridgelab::cleanup::cleanup(&Registry::default(), false).unwrap();
    assert!(report.live.contains(&run_id));
    assert_eq!(common::namespaces_of(&run_id).len(), 4);

    let down = Command::new(common::bridgelab_bin()).args(["down", &run_id]).output().unwrap();
    assert_eq!(down.status.code(), Some(0), "{}", String::from_utf8_lossy(&down.stderr));
    assert!(common::namespaces_of(&run_id).is_empty());
    let again = Command::new(common::bridgelab_bin()).args(["down", &run_id]).output().unwrap();
    assert_eq!(again.status.code(), Some(2));
}

// The guard serializes whole tests across threads, awaits included.
#[allow(clippy::await_holding_lock)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_removes_a_dead_run_and_never_a_live_one() {
    common::require_root();
    let _serial = registry_wide();
    // A live lab held by this process.
    let live = Lab::load(common::scenario_path("default.toml")).unwrap().up().await.unwrap();
    // A dead run: kept by `up`, then its record says it was not kept, so its
    // owner (the exited `up` process) being gone makes it dead.
    let before = Registry::default().list();
    let out = Command::new(common::bridgelab_bin())
        .arg("up")
        .arg(common::scenario_path("stopped-container.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let dead_id =
        new_run_ids(&before).into_iter().find(|id| String::from_utf8_lossy(&out.stdout).contains(id.as_str())).unwrap();
    let mut rec = Registry::default().get(&dead_id).unwrap();
    rec.kept = false;
    Registry::default().write(&rec).unwrap();
    assert!(!rec.is_live());

    let report = bridgelab::cleanup::cleanup(&Registry::default(), false).unwrap();
    assert!(report.removed.contains(&dead_id), "{report:?}");
    assert!(report.live.contains(&live.run_id().to_string()), "{report:?}");
    assert!(common::namespaces_of(&dead_id).is_empty());
    assert_eq!(common::namespaces_of(live.run_id()).len(), 4, "cleanup touched a live run");
    assert!(live.verify().await.unwrap().is_empty());
    live.down().unwrap();
}

/// What the root namespace shows of links, routes, addresses and firewall.
fn root_namespace_state() -> String {
    let mut s = String::new();
    for f in ["/proc/net/dev", "/proc/net/route", "/proc/net/if_inet6", "/proc/net/ipv6_route"] {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        // Counters change all the time; keep the first column (names, routes).
        for line in text.lines() {
            let keep: Vec<&str> = if f.ends_with("dev") { line.split(':').take(1).collect() } else { vec![line] };
            s.push_str(&keep.join(" "));
            s.push('\n');
        }
    }
    for key in ["net/ipv4/ip_forward", "net/ipv4/conf/all/forwarding"] {
        s.push_str(&std::fs::read_to_string(format!("/proc/sys/{key}")).unwrap_or_default());
    }
    s
}

#[test]
fn a_run_leaves_the_root_namespace_and_run_netns_as_they_were() {
    common::require_root();
    let _serial = registry_wide();
    let before = root_namespace_state();
    let mut args = vec!["run".to_string()];
    for p in common::shipped_scenarios() {
        args.push(p.to_string_lossy().into_owned());
    }
    let out = Command::new(common::bridgelab_bin()).args(&args).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    // A PASS per run: a file with `versions` runs once per version.
    let runs: usize = args[1..].iter().map(|f| bridgelab::Scenario::load(f).unwrap().variants().len()).sum();
    assert_eq!(stdout.lines().filter(|l| l.starts_with("PASS")).count(), runs, "{stdout}");
    assert_eq!(root_namespace_state(), before);
    // Every run id the output names is gone from the labs' directories,
    // /run/netns and the registry.
    let ns_dir = bridgelab::registry::lab_namespaces();
    for rec in Registry::default().list() {
        assert!(rec.is_live(), "a dead run's record remains: {rec:?}");
    }
    // Only names of bridgelab's shape count: the machine may hold other
    // `bl-` namespaces (a recipe's hand-made dockerd host) at the same time.
    let run_shaped = |id: &str| id.len() == 8 && id.bytes().all(|b| b.is_ascii_hexdigit());
    for ns in ns_dir.iter().filter(|n| bridgelab::registry::run_id_of(n).is_some_and(run_shaped)) {
        let id = bridgelab::registry::run_id_of(ns).unwrap();
        assert!(Registry::default().get(id).is_some_and(|r| r.is_live()), "{ns} belongs to no live run");
    }
}

/// Runs bridgelab inside a fresh network namespace (`unshare -n`), where
/// forwarding is off and no firewall exists, and compares that namespace's
/// state (links, routes, addresses, sysctls, both iptables variants) before
/// and after: a lab that touched the namespace it was started from shows.
#[test]
fn the_namespace_bridgelab_starts_in_is_never_touched() {
    common::require_root();
    let state = "ip -o link; ip -o addr; ip route; cat /proc/sys/net/ipv4/ip_forward \
                 /proc/sys/net/ipv4/conf/all/forwarding; iptables-nft-save; iptables-legacy-save; nft list ruleset";
    let script = format!(
        "before=$({state} 2>&1 | grep -v '^#'); {bin} run {a} {b} >/dev/null || exit 9; \
         after=$({state} 2>&1 | grep -v '^#'); [ \"$before\" = \"$after\" ] || {{ echo \"$before\"; echo ---; echo \"$after\"; exit 8; }}; \
         cat /proc/sys/net/ipv4/ip_forward",
        bin = common::bridgelab_bin(),
        a = common::scenario_path("default.toml").display(),
        b = common::scenario_path("publish.toml").display(),
    );
    let out = Command::new("unshare").args(["-n", "sh", "-c", &script]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0", "forwarding was switched on where bridgelab started");
}

/// `down` takes the run id as `up` does: a path or any other name that is
/// not 1 to 16 letters and digits is refused before it names a file, so a
/// record elsewhere on disk is never read or removed.
#[test]
fn down_refuses_a_run_id_that_is_not_one() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("victim.json");
    let rec = RunRecord {
        run_id: "victim".into(),
        scenario: "s".into(),
        scenario_path: "s.toml".into(),
        pid: 1,
        pid_start: 0,
        kept: true,
        nodes: vec![],
        daemon: None,
        built_from: None,
        served: false,
    };
    std::fs::write(&target, serde_json::to_vec(&rec).unwrap()).unwrap();
    // From /run/bridgelab/runs up to / and down to the temporary directory.
    let id = format!("../../..{}/victim", dir.path().display());
    for bad in [id.as_str(), "", "a-b", "0123456789abcdefX"] {
        let out = Command::new(common::bridgelab_bin()).args(["down", bad]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {stderr}");
        assert!(stderr.contains("invalid run id") && stderr.contains("letters and digits"), "{bad:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{bad:?}");
    }
    assert!(target.exists(), "down removed a file outside the registry");
}

// The guard serializes whole tests across threads, awaits included.
#[allow(clippy::await_holding_lock)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_leaves_a_lab_whose_record_does_not_parse_alone() {
    common::require_root();
    let _serial = registry_wide();
    let id = format!("torn{}", std::process::id());
    let lab = Lab::load(common::scenario_path("default.toml")).unwrap();
    let running = lab.up_with(UpOptions { run_id: Some(id.clone()), ..Default::default() }).await.unwrap();
    let record = Registry::default().dir().join(format!("{id}.json"));
    let text = std::fs::read(&record).unwrap();
    // A record cut short: which process owns the lab cannot be told.
    std::fs::write(&record, &text[..text.len() / 2]).unwrap();

    for all in [false, true] {
        let report = bridgelab::cleanup::cleanup(&Registry::default(), all).unwrap();
        assert!(!report.removed.contains(&id), "{report:?}");
        assert!(report.unreadable.iter().any(|u| u.run_id == id && u.path == record), "{report:?}");
        assert_eq!(common::namespaces_of(&id).len(), 4, "cleanup removed a lab it cannot read the record of");
        assert!(record.exists(), "cleanup removed a record it cannot read");
    }
    let out = Command::new(common::bridgelab_bin()).arg("cleanup").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&format!("left lab {id} alone: its record")), "{stdout}");
    assert_eq!(common::namespaces_of(&id).len(), 4);
    // A second lab cannot take the id while the record is there.
    let again = Lab::load(common::scenario_path("default.toml")).unwrap();
    let err = again.up_with(UpOptions { run_id: Some(id.clone()), ..Default::default() }).await.unwrap_err();
    assert!(err.to_string().contains("already in use"), "{err}");
    assert!(running.verify().await.unwrap().is_empty());
    running.down().unwrap();
    assert!(!record.exists());
    assert!(common::namespaces_of(&id).is_empty());
}

#[test]
fn cleanup_removes_half_written_records_of_dead_runs_only() {
    common::require_root();
    let _serial = registry_wide();
    let reg = Registry::default();
    std::fs::create_dir_all(reg.dir()).unwrap();
    let tmp = |id: &str| reg.dir().join(format!("{id}.json.tmp"));
    let mut child = Command::new("true").spawn().unwrap();
    let dead_pid = child.id();
    let dead_start = bridgelab::registry::process_start_time(dead_pid).unwrap_or(1);
    child.wait().unwrap();
    let me = std::process::id();
    let rec = |id: &str, pid: u32, pid_start: u64| RunRecord {
        run_id: id.into(),
        scenario: "s".into(),
        scenario_path: "s.toml".into(),
        pid,
        pid_start,
        kept: false,
        nodes: vec!["host".into()],
        daemon: None,
        built_from: None,
        served: false,
    };
    let (dead, live) = (format!("tmpdead{me}"), format!("tmplive{me}"));
    std::fs::write(tmp(&dead), serde_json::to_vec(&rec(&dead, dead_pid, dead_start)).unwrap()).unwrap();
    let me_start = bridgelab::registry::process_start_time(me).unwrap();
    std::fs::write(tmp(&live), serde_json::to_vec(&rec(&live, me, me_start)).unwrap()).unwrap();

    let report = bridgelab::cleanup::cleanup(&reg, false).unwrap();
    assert!(report.stale_tmp.contains(&tmp(&dead)), "{report:?}");
    assert!(!tmp(&dead).exists());
    assert!(tmp(&live).exists(), "a live writer's temporary record was removed");
    std::fs::remove_file(tmp(&live)).unwrap();
}

/// The mount entries of `/proc/thread-self/mountinfo` as (id, parent, mount point, optional fields).
fn mountinfo() -> Vec<(String, String, String, String)> {
    std::fs::read_to_string("/proc/thread-self/mountinfo")
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let sep = f.iter().position(|x| *x == "-").unwrap();
            (f[0].into(), f[1].into(), f[4].into(), f[6..sep].join(" "))
        })
        .collect()
}

/// A lab's namespaces show in a mount namespace made after the labs'
/// directory became shared, even one made before the lab (propagation), and
/// leave it with the lab: `/run/bridgelab/netns` is a shared mount, as `ip
/// netns add` makes `/run/netns`, and each lab's tmpfs in it is too. A lab
/// has no names under `/run/netns` until it is named; then they are links
/// into it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labs_show_in_other_mount_namespaces() {
    common::require_root();
    use bridgelab::registry::{lab_netns_dir, LABS_NETNS_DIR, NETNS_DIR};
    let mut first = Lab::load(common::scenario_path("default.toml")).unwrap().up().await.unwrap();
    let labs = mountinfo().into_iter().filter(|m| m.2 == LABS_NETNS_DIR).collect::<Vec<_>>();
    assert_eq!(labs.len(), 1, "{labs:?}");
    assert!(labs[0].3.contains("shared:"), "{LABS_NETNS_DIR} is not shared: {labs:?}");
    let dir = lab_netns_dir(first.run_id());
    let own = mountinfo().into_iter().filter(|m| m.2 == dir.to_string_lossy()).collect::<Vec<_>>();
    assert!(own.len() == 1 && own[0].3.contains("shared:"), "{own:?}");
    let names = first.namespaces();
    let link = |name: &String| std::path::Path::new(NETNS_DIR).join(name);
    assert!(names.iter().all(|n| std::fs::symlink_metadata(link(n)).is_err()), "a lab nobody asked to name is named");
    first.name_namespaces().unwrap();
    for name in &names {
        assert_eq!(std::fs::read_link(link(name)).unwrap(), dir.join(name));
    }

    // A mount namespace that receives propagation but sends none.
    let mut child = Command::new("unshare")
        .args(["-m", "--propagation", "slave", "sh", "-c"])
        .arg("while read x; do cat /proc/self/mountinfo; echo END; done")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut to_child = child.stdin.take().unwrap();
    let mut from_child = BufReader::new(child.stdout.take().unwrap());
    let mut seen_by_child = |lab: &str| {
        use std::io::Write;
        writeln!(to_child).unwrap();
        let mut seen = Vec::new();
        loop {
            let mut line = String::new();
            assert!(from_child.read_line(&mut line).unwrap() > 0, "the child ended");
            if line.trim() == "END" {
                break seen;
            }
            if line.contains(&format!(" {}/", lab_netns_dir(lab).display())) {
                seen.push(line);
            }
        }
    };
    assert_eq!(seen_by_child(first.run_id()).len(), 4);
    let second = Lab::load(common::scenario_path("icc-off.toml")).unwrap().up().await.unwrap();
    let id = second.run_id().to_string();
    assert_eq!(seen_by_child(&id).len(), 4, "a lab made later does not show in the other mount namespace");
    second.down().unwrap();
    assert!(seen_by_child(&id).is_empty(), "a removed lab still shows in the other mount namespace");
    first.down().unwrap();
    assert!(names.iter().all(|n| std::fs::symlink_metadata(link(n)).is_err()), "names outlive their lab");
    drop(to_child);
    child.wait().unwrap();
}

/// Making a directory shared when namespaces were mounted in it before
/// (by another tool, or an older bridgelab) keeps them mounted once, and
/// removable; doing it again stacks nothing. In a private mount namespace,
/// on a directory of its own.
#[test]
fn sharing_a_netns_directory_keeps_earlier_namespaces_removable() {
    common::require_root();
    use nix::mount::{mount, MsFlags};
    std::thread::spawn(|| {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).unwrap();
        mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("netns");
        std::fs::create_dir(&dir).unwrap();
        let early = dir.join("early");
        std::fs::write(&early, b"").unwrap();
        mount(Some("/proc/thread-self/ns/net"), &early, None::<&str>, MsFlags::MS_BIND, None::<&str>).unwrap();
        let at =
            |p: &std::path::Path| mountinfo().into_iter().filter(|m| m.2 == p.to_string_lossy()).collect::<Vec<_>>();
        for _ in 0..2 {
            bridgelab::apply::netns::share_dir(&dir).unwrap();
            let d = at(&dir);
            assert_eq!(d.len(), 1, "{d:?}");
            assert!(d[0].3.contains("shared:"), "{d:?}");
            let e = at(&early);
            assert_eq!(e.len(), 1, "mounted twice: {e:?}");
            assert_eq!(e[0].1, d[0].0, "not in the shared mount: {e:?}");
        }
        bridgelab::apply::netns::remove(&early).unwrap();
        assert!(!early.exists());
        assert!(at(&early).is_empty());
    })
    .join()
    .unwrap();
}

/// `up --help` says what is kept, what is not, and how to remove it.
#[test]
fn up_help_says_what_a_kept_lab_is_and_how_it_goes() {
    let out = Command::new(common::bridgelab_bin()).args(["up", "--help"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for want in ["ip netns exec", "bridgelab down RUN_ID", "--all", "The scenario file", "Exit codes", "responders"] {
        assert!(help.contains(want), "`up --help` lacks {want:?}:\n{help}");
    }
}
