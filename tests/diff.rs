//! `bridgelab diff` against a real dockerd 20.10 (Debian 12's docker.io,
//! unpacked by `ci/install-docker20.sh`; CI installs it, and these tests
//! fail, never skip, without it): the real side is built, probed, read
//! back and removed without a trace, on success, on Ctrl-C and after a
//! SIGKILL followed by `bridgelab cleanup`.
//!
//! The comparison must find zero differences, for this file's scenario and
//! for every shipped docker20 scenario.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use bridgelab::registry::{Registry, RunRecord};

/// Default bridge with a published port, a client, a user network whose
/// container is isolated from the default bridge, a stop.
const SCENARIO: &str = r#"
name = "difftest"
about = "A small docker20 host: a published port, a client, an isolated user network, a stop."

[daemon]
firewall = "docker20"

[external]
listen = ["tcp:443"]

[[network]]
name = "usr"

[[container]]
name = "web"
publish = ["8080:80"]
listen = ["tcp:80"]

[[container]]
name = "client"

[[container]]
name = "other"
network = "usr"

[[expect]]
from = "external"
to = "host"
probe = "tcp:8080"
result = "reachable"
source = "external"

[[expect]]
from = "client"
to = "web"
probe = "tcp:80"
result = "reachable"
source = "client"

[[expect]]
from = "other"
to = "web"
probe = "tcp:80"
result = "blocked"

[[expect]]
from = "client"
to = "external"
probe = "tcp:443"
result = "reachable"
source = "host"

[[step]]
do = "stop"
container = "web"

[[step.expect]]
from = "external"
to = "host"
probe = "tcp:8080"
result = "refused"
"#;

/// Everything a diff could leave behind on this machine, named so that a
/// test can tell what appeared while it ran.
fn traces() -> BTreeSet<String> {
    let mut t = BTreeSet::new();
    if let Ok(d) = std::fs::read_dir(std::env::temp_dir()) {
        for e in d.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with(bridgelab::diff::dockerd::STATE_PREFIX) {
                t.insert(format!("dir {n}"));
            }
        }
    }
    if let Ok(d) = std::fs::read_dir("/sys/fs/cgroup") {
        for h in d.flatten() {
            if let Ok(sub) = std::fs::read_dir(h.path()) {
                for e in sub.flatten() {
                    let n = e.file_name().to_string_lossy().into_owned();
                    if n.starts_with("bl-") {
                        t.insert(format!("cgroup {}", e.path().display()));
                    }
                }
            }
        }
    }
    if let Ok(d) = std::fs::read_dir("/proc") {
        for e in d.flatten() {
            let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(bridgelab::diff::dockerd::STATE_PREFIX) {
                t.insert(format!("process {}: {cmd}", e.file_name().to_string_lossy()));
            }
        }
    }
    t
}

/// The traces that belong to run `run_id`.
fn traces_of(run_id: &str) -> Vec<String> {
    let dir = format!("{}{run_id}", bridgelab::diff::dockerd::STATE_PREFIX);
    let cgroup = bridgelab::diff::dockerd::cgroup_name(run_id);
    let mut t: Vec<String> =
        traces().into_iter().filter(|x| x.contains(&dir) || x.ends_with(&format!("/{cgroup}"))).collect();
    t.extend(common::namespaces_of(run_id));
    if Registry::default().contains(run_id) {
        t.push(format!("run record {run_id}"));
    }
    t
}

fn write_scenario(dir: &tempfile::TempDir, text: &str) -> PathBuf {
    common::temp_scenario(dir, "difftest", text)
}

fn diff_command(files: &[&Path]) -> Command {
    let mut cmd = Command::new(common::bridgelab_bin());
    cmd.arg("diff").args(files);
    cmd
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Runs records of this test's own diff: those whose owner is `pid`.
fn records_of(pid: u32) -> Vec<RunRecord> {
    Registry::default().list().into_iter().filter(|r| r.pid == pid).collect()
}

/// Waits until the diff run by `pid` has a dockerd that made its socket;
/// returns its run record.
fn wait_for_daemon(child: &mut std::process::Child) -> RunRecord {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let up = records_of(child.id()).into_iter().find(|r| {
            r.daemon.as_ref().is_some_and(|d| {
                d.processes.iter().any(|p| p.name == "dockerd")
                    && d.state_dir.as_ref().is_some_and(|s| s.join("docker.sock").exists())
            })
        });
        if let Some(r) = up {
            return r;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("diff ended ({status}) before its daemon was up");
        }
        assert!(Instant::now() < deadline, "no daemon within 60 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn diff_runs_a_docker20_scenario_on_a_real_daemon_and_leaves_nothing() {
    common::require_root();
    let dir = tempfile::tempdir().unwrap();
    let path = write_scenario(&dir, SCENARIO);
    let started = Instant::now();
    let out = diff_command(&[&path]).output().unwrap();
    let shown = text(&out);
    // Docker met every expectation of the scenario: the real host was
    // built, the commands ran, and bridgelab's probes and responders
    // worked inside the real daemon's namespaces.
    assert!(shown.contains("docker met 5/5 of the scenario's expectations"), "{shown}");
    assert!(shown.contains("time: docker: host namespaces "), "{shown}");
    bridgelab::Lab::load(&path).expect("docker20 plans");
    assert_eq!(out.status.code(), Some(0), "{shown}");
    assert!(shown.contains("EQUAL"), "{shown}");
    assert!(shown.contains("-- setup: equal") && shown.contains("-- step 1: stop web: equal"), "{shown}");
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(60), "a small diff took {elapsed:?}");
    let runs = run_ids(&shown);
    assert!(!runs.is_empty(), "{shown}");
    for id in runs {
        assert_eq!(traces_of(&id), Vec::<String>::new());
    }
}

/// The oracle for the docker20 plan: every shipped `docker20-*` scenario,
/// setup and steps, has the same rules, interfaces, routes, sysctls,
/// published ports and probe outcomes in the lab as on the real daemon.
#[test]
fn every_shipped_docker20_scenario_is_equal_to_the_real_daemon() {
    common::require_root();
    let mut files: Vec<PathBuf> = std::fs::read_dir(common::scenario_path(""))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("docker20-"))
        .collect();
    files.sort();
    assert!(files.len() >= 12, "{files:?}");
    let paths: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
    let out = diff_command(&paths).output().unwrap();
    let shown = text(&out);
    for f in &files {
        let line = format!("EQUAL  {}", f.display());
        assert!(shown.lines().any(|l| l.ends_with(&line) || l == line), "{} not equal:\n{shown}", f.display());
    }
    assert_eq!(out.status.code(), Some(0), "{shown}");
    for id in run_ids(&shown) {
        assert_eq!(traces_of(&id), Vec::<String>::new());
    }
}

/// A file with `versions`: each version that has a real daemon here is
/// diffed against its own (every shipped one is equal), and the others are
/// skipped with a line that says so, not an error.
#[test]
fn every_shipped_versioned_scenario_is_equal_under_each_version_with_a_daemon() {
    common::require_root();
    let mut files: Vec<PathBuf> = common::shipped_scenarios()
        .into_iter()
        .filter(|p| std::fs::read_to_string(p).unwrap().lines().any(|l| l.starts_with("versions")))
        .collect();
    files.sort();
    assert!(files.len() >= 2, "{files:?}");
    let paths: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
    let out = diff_command(&paths).arg("--keep-going").output().unwrap();
    let shown = text(&out);
    for f in &files {
        let runs = bridgelab::Scenario::load(f).unwrap().variants();
        for run in runs {
            let v = run.version.unwrap();
            // docker1 and docker29: bridgelab has no daemon of theirs.
            let line = match bridgelab::diff::dockerd::prefix_of(v) {
                None => format!(
                    "skip  {} ({}): no real daemon for {v}: bridgelab has no dockerd of that version to compare with",
                    f.display(),
                    run.name
                ),
                Some(_) => format!("EQUAL  {} (@{v})", f.display()),
            };
            assert!(shown.lines().any(|l| l.ends_with(&line)), "{line:?} missing:\n{shown}");
        }
    }
    assert_eq!(out.status.code(), Some(0), "{shown}");
    for id in run_ids(&shown) {
        assert_eq!(traces_of(&id), Vec::<String>::new());
    }
}

/// A small docker28 host: ports on every address and on 127.0.0.1 (raw
/// table), a routed network the external node routes to directly (a
/// gateway mode), random MACs.
const SCENARIO28: &str = r#"
name = "diff28"
about = "docker28 against a real dockerd 28.5.2: 127.0.0.1 ports, a routed network reached directly."

[daemon]
firewall = "docker28"

[external]
routes = ["10.20.0.0/24"]

[[network]]
name = "routed"
subnet = "10.20.0.0/24"
gateway_mode = "routed"

[[container]]
name = "web"
publish = ["8080:80", "127.0.0.1:8081:80"]
listen = ["tcp:80"]

[[container]]
name = "rt"
network = "routed"
publish = ["8090:80"]
listen = ["tcp:80", "tcp:81"]

[[expect]]
from = "external"
to = "host"
probe = "tcp:8080"
result = "reachable"
source = "external"

# Routed mode: the published port is reached on the container's own address.
[[expect]]
from = "external"
to = "rt"
probe = "tcp:80"
result = "reachable"
source = "external"

# ... and nothing else is.
[[expect]]
from = "external"
to = "rt"
probe = "tcp:81"
result = "blocked"

[[step]]
do = "stop"
container = "web"

[[step.expect]]
from = "external"
to = "host"
probe = "tcp:8080"
result = "refused"
"#;

/// dockerd 28.5.2 (`ci/install-docker28.sh`) runs a docker28 scenario,
/// meets its expectations and leaves nothing behind, and bridgelab's lab is
/// equal to it.
#[test]
fn diff_runs_a_docker28_scenario_on_a_real_daemon_and_leaves_nothing() {
    common::require_root();
    let dir = tempfile::tempdir().unwrap();
    let path = common::temp_scenario(&dir, "diff28", SCENARIO28);
    let started = Instant::now();
    let out = diff_command(&[&path]).output().unwrap();
    let shown = text(&out);
    assert!(shown.contains("bridgelab against dockerd 28.5.2"), "{shown}");
    assert!(shown.contains("docker met 4/4 of the scenario's expectations"), "{shown}");
    bridgelab::Lab::load(&path).expect("docker28 plans");
    assert_eq!(out.status.code(), Some(0), "{shown}");
    assert!(shown.contains("EQUAL"), "{shown}");
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(60), "a small diff took {elapsed:?}");
    let runs = run_ids(&shown);
    assert!(!runs.is_empty(), "{shown}");
    for id in runs {
        assert_eq!(traces_of(&id), Vec::<String>::new());
    }
}

/// Without a plan on bridgelab's side, `diff` shows Docker 28's side in
/// full: every table (raw and ip6tables included), the containers with
/// their random MACs mapped, the verdicts; every line is Docker's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_lab_dockers_28_side_is_shown_in_full() {
    common::require_root();
    let dir = tempfile::tempdir().unwrap();
    let path = common::temp_scenario(&dir, "nolab28", SCENARIO28);
    let dockers = bridgelab::diff::dockerd::find_dockers(None).unwrap_or_else(|e| panic!("{e}"));
    let report = bridgelab::diff::diff_with(&path, &dockers, |_| {
        Err(bridgelab::Error::Environment("no plan in this test".into()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let shown = report.text(false);
    assert!(report.docker_version.starts_with("28.5.2"), "{shown}");
    assert_eq!(report.lab_error.as_deref(), Some("no plan in this test"));
    assert!(!report.equal());
    assert!(shown.contains("DIFFERENT (bridgelab has no lab to compare)"), "{shown}");
    assert_eq!(report.phases.len(), 2, "{shown}");
    for p in &report.phases {
        assert!(p.hunks.iter().all(|l| l.starts_with("@@") || l.starts_with('+')), "{shown}");
    }
    let setup = &report.phases[0].hunks;
    for line in [
        // The command with the gateway mode, and what it made.
        "+docker network create --driver bridge --subnet 10.20.0.0/24 --opt com.docker.network.bridge.gateway_mode_ipv4=routed routed: ok",
        "+-A DOCKER -o br-routed -p icmp -j ACCEPT",
        "+-A DOCKER-ISOLATION-STAGE-1 -o br-routed -j RETURN",
        // Raw: direct access to the nat-mode container, and the loopback port.
        "+*raw",
        "+-A PREROUTING -d 172.17.0.2/32 ! -i docker0 -j DROP",
        "+-A PREROUTING -d 127.0.0.1/32 ! -i lo -p tcp -m tcp --dport 8081 -j DROP",
        // ip6tables: 28's skeleton.
        "@@ ip6tables-save (host) @@",
        "+-A OUTPUT ! -d ::1/128 -m addrtype --dst-type LOCAL -j DOCKER",
        // Random MACs, mapped.
        "+web eth0 172.17.0.2/16 mac random mtu 1500 up",
        "+rt eth0 10.20.0.2/24 mac random mtu 1500 up",
        "+external -> rt tcp:81: blocked",
    ] {
        assert!(setup.iter().any(|l| l == line), "{line:?} missing:\n{shown}");
    }
    assert!(!setup.iter().any(|l| l.contains("-A PREROUTING -d 10.20.0.2/32")), "routed: no raw DROP\n{shown}");
    assert!(report.phases[1].hunks.iter().any(|l| l == "+web: not running"), "{shown}");
    assert_eq!(traces_of(&report.docker_run), Vec::<String>::new());
}

/// The oracle for the docker28 plan: every shipped `docker28-*` scenario is
/// EQUAL to dockerd 28.5.2, setup and steps.
#[test]
fn every_shipped_docker28_scenario_is_equal_to_the_real_daemon() {
    common::require_root();
    let mut files: Vec<PathBuf> = std::fs::read_dir(common::scenario_path(""))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("docker28-"))
        .collect();
    files.sort();
    assert!(files.len() >= 12, "{files:?}");
    // bridgelab must plan each of them: a scenario it cannot plan is a
    // failure here, said as such (not as a wall of Docker's rules).
    let unplanned: Vec<String> =
        files.iter().filter_map(|f| bridgelab::Lab::load(f).err().map(|e| format!("{}: {e}", f.display()))).collect();
    assert!(unplanned.is_empty(), "bridgelab cannot plan these docker28 scenarios:\n{}", unplanned.join("\n"));
    let paths: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
    let out = diff_command(&paths).arg("--keep-going").output().unwrap();
    let shown = text(&out);
    let differ: Vec<String> = files
        .iter()
        .filter(|f| {
            let line = format!("EQUAL  {}", f.display());
            !shown.lines().any(|l| l.ends_with(&line) || l == line)
        })
        .map(|f| f.display().to_string())
        .collect();
    assert!(differ.is_empty(), "not EQUAL to dockerd 28.5.2: {differ:?}\n{shown}");
    assert_eq!(out.status.code(), Some(0), "{shown}");
    for id in run_ids(&shown) {
        assert_eq!(traces_of(&id), Vec::<String>::new());
    }
}

/// The run ids a report names (`runs: docker ID, bridgelab ID`).
fn run_ids(report: &str) -> Vec<String> {
    let Some(at) = report.find("(runs: ") else { return vec![] };
    let rest = &report[at + 7..];
    let list = &rest[..rest.find(')').unwrap_or(rest.len())];
    list.split(", ").filter_map(|p| p.split_once(' ').map(|(_, id)| id.to_string())).collect()
}

#[test]
fn ctrl_c_during_a_diff_removes_the_daemon_and_everything_else() {
    common::require_root();
    let dir = tempfile::tempdir().unwrap();
    let path = write_scenario(&dir, SCENARIO);
    let mut child = diff_command(&[&path]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let rec = wait_for_daemon(&mut child);
    let dockerd = rec.daemon.as_ref().unwrap().processes.iter().find(|p| p.name == "dockerd").unwrap().clone();
    assert!(dockerd.alive());
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGINT).unwrap();
    let out = common::wait_at_most(child, Duration::from_secs(60)).expect("diff did not end after SIGINT");
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    assert!(!dockerd.alive(), "dockerd survived Ctrl-C");
    assert_eq!(traces_of(&rec.run_id), Vec::<String>::new());
}

#[test]
fn cleanup_ends_the_daemon_of_a_killed_diff_by_its_recorded_pid() {
    common::require_root();
    let dir = tempfile::tempdir().unwrap();
    let path = write_scenario(&dir, SCENARIO);
    let mut child = diff_command(&[&path]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let rec = wait_for_daemon(&mut child);
    child.kill().unwrap();
    child.wait().unwrap();
    // The owner is gone; its daemon is not, until cleanup.
    let daemon = rec.daemon.clone().unwrap();
    let dockerd = daemon.processes.iter().find(|p| p.name == "dockerd").unwrap().clone();
    assert!(dockerd.alive(), "dockerd died with its owner: nothing left to test");
    assert!(!traces_of(&rec.run_id).is_empty());
    let out = Command::new(common::bridgelab_bin()).arg("cleanup").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("removed lab {}", rec.run_id)), "{}", text(&out));
    assert!(!dockerd.alive(), "cleanup left dockerd running");
    for p in &daemon.processes {
        assert!(!p.alive(), "{p:?} survived cleanup");
    }
    assert_eq!(traces_of(&rec.run_id), Vec::<String>::new());
}

#[test]
fn a_scenario_for_another_docker_is_refused_with_exit_3() {
    common::require_root();
    let dir = tempfile::tempdir().unwrap();
    let docker1 = common::scenario_path("default.toml");
    let out = diff_command(&[&docker1]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("firewall = \"docker1\" imitates Docker 1.6.2"), "{}", text(&out));
    // A docker28 scenario on the 20.10 of --docker: which Docker it needs,
    // and how to install that one.
    let d28 = common::temp_scenario(&dir, "d28", "[daemon]\nfirewall = \"docker28\"\n");
    let out = diff_command(&[&d28])
        .arg("--docker")
        .arg(Path::new(bridgelab::diff::dockerd::PREFIX).join("usr/sbin/dockerd"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("needs dockerd 28.x, and this dockerd is 20.10."), "{}", text(&out));
    assert!(text(&out).contains("sudo ./ci/install-docker28.sh"), "{}", text(&out));
    // No dockerd where --docker points: how to get one.
    let out = Command::new(common::bridgelab_bin())
        .args(["diff", "--docker", "/nonexistent/dockerd"])
        .arg(&d28)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("ci/install-docker20.sh"), "{}", text(&out));
    assert!(text(&out).contains("ci/install-docker28.sh"), "{}", text(&out));
    // A scenario that does not load is exit 2, and no daemon starts for it.
    let bad = common::temp_scenario(&dir, "bad", "[daemon]\nfirewall = \"docker20\"\nbogus = 1\n");
    let out = diff_command(&[&bad]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    // diff stops at the first file that is not equal, unless told to go on:
    // then every file is diffed and the exit code is the worst.
    let out = diff_command(&[&bad, &docker1]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("stopping after") && !text(&out).contains("docker1"), "{}", text(&out));
    let out = diff_command(&[&bad, &docker1]).arg("--keep-going").output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("firewall = \"docker1\" imitates Docker 1.6.2"), "{}", text(&out));
}

/// bridgelab's side goes through the same reader as Docker's: a docker1
/// lab read back shows its containers, ports, bridges, routes and sysctls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lab_is_read_back_through_the_reader_docker_goes_through() {
    common::require_root();
    let lab = bridgelab::Lab::load(common::scenario_path("publish.toml")).unwrap();
    let running = lab.up().await.unwrap();
    let r = bridgelab::diff::read_lab(&running).await.unwrap();
    let names = bridgelab::diff::compare::Names::default();
    let world = bridgelab::diff::compare::render(&r, &names, &Default::default(), false);
    let section = |t: &str| world.section(t).unwrap_or_else(|| panic!("no {t} in {world:#?}")).lines.clone();
    let plan = running.plan();
    for c in &plan.containers {
        let ep = c.endpoint().unwrap();
        let line = format!("{} eth0 {} mac {} mtu {} up", c.name, ep.address, ep.mac, ep.mtu);
        assert!(section("containers").contains(&line), "{line:?} not in {:#?}", section("containers"));
    }
    assert_eq!(section("published ports").len(), plan.port_mappings.len());
    assert!(section("iptables-save (host)").iter().any(|l| l.contains("-j DNAT")));
    assert!(section("routes (host)").iter().any(|l| l.starts_with("default via 198.51.100.2 dev eth0")));
    assert!(section("sysctls").contains(&"host net.ipv4.ip_forward = 1".to_string()));
    assert!(section("bridges (host)").iter().any(|l| l.starts_with("docker0 172.17.42.1/16 ")));
    // The same world twice: no difference.
    assert!(bridgelab::diff::compare::diff(&world, &world).is_empty());
    running.down().unwrap();
}

#[test]
fn diff_help_says_what_it_compares_and_its_exit_codes() {
    let out = Command::new(common::bridgelab_bin()).args(["diff", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for want in ["--docker <PATH>", "--keep-going", "compared as a", "3 no usable dockerd", "bridgelab cleanup"] {
        assert!(help.contains(want), "{want:?} missing from:\n{help}");
    }
}

/// The comparison itself, with a lab on bridgelab's side: a Docker 1.6.2
/// lab (`docker1`) against the real 20.10 differs where those two Dockers
/// differ, and agrees where they agree, phase by phase.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lab_that_differs_from_docker_is_shown_as_a_difference() {
    common::require_root();
    let dir = tempfile::tempdir().unwrap();
    let path = common::temp_scenario(
        &dir,
        "labdiff",
        r#"
        name = "labdiff"
        [daemon]
        firewall = "docker20"
        [[container]]
        name = "web"
        publish = ["8080:80"]
        listen = ["tcp:80"]
        [[container]]
        name = "client"
        [[expect]]
        from = "external"
        to = "host"
        probe = "tcp:8080"
        result = "reachable"
        source = "external"
        [[step]]
        do = "stop"
        container = "web"
        [[step.expect]]
        from = "client"
        to = "external"
        probe = "tcp:443"
        result = "refused"
        "#,
    );
    let dockers = bridgelab::diff::dockerd::find_dockers(None).unwrap_or_else(|e| panic!("{e}"));
    let report = bridgelab::diff::diff_with(&path, &dockers, |s| {
        let mut s = s.clone();
        s.spec.daemon.firewall = None;
        bridgelab::Lab::from_scenario(s)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let shown = report.text(false);
    println!("{shown}");
    assert!(report.lab_error.is_none(), "{shown}");
    assert!(!report.equal(), "{shown}");
    assert_eq!(report.phases.len(), 2, "{shown}");
    let has = |phase: usize, line: &str| report.phases[phase].hunks.iter().any(|l| l == line);
    for (phase, line) in [
        // 1.6.2 left FORWARD alone and numbered from the bridge's .1.
        (0, "-:FORWARD ACCEPT"),
        (0, "+:FORWARD DROP"),
        (0, "+:DOCKER-USER -"),
        (0, "-web eth0 172.17.0.1/16 mac 02:42:ac:11:00:01 mtu 1500 up"),
        (0, "+web eth0 172.17.0.2/16 mac 02:42:ac:11:00:02 mtu 1500 up"),
        (0, "-docker0 172.17.42.1/16 mtu 1500 up ports 2"),
        (0, "+docker0 172.17.0.1/16 mtu 1500 up ports 2"),
        // Docker 20.10 also binds the published port on ::.
        (0, "+web 80/tcp <- [::]:8080"),
        (1, "-docker0 172.17.42.1/16 mtu 1500 up ports 1"),
        (1, "+docker0 172.17.0.1/16 mtu 1500 up ports 1"),
    ] {
        assert!(has(phase, line), "{line:?} missing from phase {phase}:\n{shown}");
    }
    // Where both Dockers agree, nothing is shown: the port is reached from
    // outside with the client's address, and a stopped container is
    // stopped on both sides.
    for phase in &report.phases {
        for l in &phase.hunks {
            assert!(!(l.starts_with(['-', '+']) && l.contains("external -> host tcp:8080")), "{l}\n{shown}");
            assert!(!(l.starts_with(['-', '+']) && l.contains("web: not running")), "{l}\n{shown}");
            assert!(!(l.starts_with(['-', '+']) && l.contains("docker stop -t 1 web: ok")), "{l}\n{shown}");
        }
        assert!(phase.details.is_empty(), "{shown}");
    }
    assert!(shown.contains("DIFFERENT (2 of 2 phases differ)"), "{shown}");
    assert_eq!(run_ids(&shown), [report.docker_run.clone(), report.lab_run.clone().unwrap()]);
    assert_eq!(traces_of(&report.docker_run), Vec::<String>::new());
    assert_eq!(traces_of(report.lab_run.as_ref().unwrap()), Vec::<String>::new());
}

/// diff started inside a fresh network namespace (`unshare -n`) leaves that
/// namespace as it found it (links, addresses, routes, forwarding, both
/// iptables variants, nft), and the mount table, /etc/docker and
/// /var/lib/docker of the machine too: the daemon lives in namespaces of
/// its own.
#[test]
fn diff_never_touches_the_namespaces_it_starts_in() {
    common::require_root();
    let dir = tempfile::tempdir().unwrap();
    let path = common::temp_scenario(
        &dir,
        "untouched",
        "[daemon]\nfirewall = \"docker20\"\n[[container]]\nname = \"web\"\npublish = [\"8080:80\"]\n",
    );
    let state = "ip -o link; ip -o addr; ip route; cat /proc/sys/net/ipv4/ip_forward \
                 /proc/sys/net/ipv4/conf/all/forwarding; iptables-nft-save; iptables-legacy-save; nft list ruleset";
    let script = format!(
        "before=$({state} 2>&1 | grep -v '^#'); {bin} diff {file} >/dev/null; code=$?; \
         after=$({state} 2>&1 | grep -v '^#'); [ \"$before\" = \"$after\" ] || {{ echo \"$before\"; echo ---; echo \"$after\"; exit 8; }}; \
         exit $code",
        bin = common::bridgelab_bin(),
        file = path.display()
    );
    let mounts = || -> BTreeSet<String> {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter_map(|l| l.split(' ').nth(4).map(String::from))
            // Where namespaces are mounted, as `ip netns add` leaves it.
            .filter(|m| !m.starts_with("/run/netns/") && !m.starts_with(bridgelab::registry::LABS_NETNS_DIR))
            .collect()
    };
    let etc = Path::new("/etc/docker").exists();
    let var = Path::new("/var/lib/docker").exists();
    let before = mounts();
    let out = Command::new("unshare").args(["-n", "sh", "-c", &script]).output().unwrap();
    let code = out.status.code();
    assert_eq!(code, Some(0), "{}", text(&out));
    let after = mounts();
    assert_eq!(
        (before.difference(&after).collect::<Vec<_>>(), after.difference(&before).collect::<Vec<_>>()),
        (vec![], vec![]),
        "the machine's mount table changed (gone, new)"
    );
    assert_eq!(Path::new("/etc/docker").exists(), etc);
    assert_eq!(Path::new("/var/lib/docker").exists(), var);
}
