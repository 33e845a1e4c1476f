//! Big and extreme inputs: planning stays linear, every port can be
//! published, names of any length plan and build, and what the kernel
//! cannot build (a 1,024th bridge port) is refused before `run`.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use bridgelab::scenario::{Diagnostics, Scenario};
use bridgelab::{Lab, Plan};

fn plan(text: &str) -> Result<Plan, Diagnostics> {
    let s = Scenario::parse("t.toml".into(), text.to_string())?;
    bridgelab::plan::plan(&s)
}

/// The plan of a scenario that must be valid; its first mistake otherwise.
fn valid(text: &str) -> Plan {
    plan(text).unwrap_or_else(|e| panic!("{:.300}", e.to_string().lines().next().unwrap_or_default()))
}

fn refused(text: &str) -> String {
    match plan(text) {
        Ok(p) => panic!("must be refused; planned {} containers, {} steps", p.containers.len(), p.steps.len()),
        Err(e) => e.to_string(),
    }
}

/// Tests here time plans against each other, or plan huge labs: one at a
/// time, so that no timing shares the machine with another of them.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Loading and planning once, timed.
fn time_plan(text: &str) -> Duration {
    let t = Instant::now();
    let p = valid(text);
    let took = t.elapsed();
    drop(p);
    took
}

#[test]
fn every_port_can_be_published_in_linear_time() {
    let _one = one_at_a_time();
    // 65,535 fixed mappings: every port there is, planned three times (the
    // fastest counts, against a busy machine), against 8,192. 8 times the
    // ports must cost well under 8² times as much: each port's proxy check
    // scanned every earlier mapping before, quadratic.
    let all = "[[container]]\nname = \"aa\"\npublish = [\"1-65535:1-65535\"]\n";
    let best = |text: &str| (0..3).map(|_| time_plan(text)).min().unwrap();
    let few = best("[[container]]\nname = \"aa\"\npublish = [\"1-8192:1-8192\"]\n");
    let (mut every, mut p) = (Duration::MAX, None);
    for _ in 0..3 {
        let t = Instant::now();
        p = Some(valid(all));
        every = every.min(t.elapsed());
    }
    let ratio = every.as_secs_f64() / few.as_secs_f64();
    assert!(ratio < 20.0, "8,192 ports: {few:?}, 65,535: {every:?} (x{ratio:.1}; linear is x8)");
    let p = p.unwrap();
    assert_eq!(p.port_mappings.len(), 65_535);
    assert!(p
        .port_mappings
        .iter()
        .enumerate()
        .all(|(i, m)| m.host_port as usize == i + 1 && m.container_port == m.host_port));
    // Dynamic ports: the whole ephemeral range 32768-60999, each once, in order.
    let p = valid("[[container]]\nname = \"aa\"\npublish = [\"1-28232\"]\n");
    let ports: Vec<u16> = p.port_mappings.iter().map(|m| m.host_port).collect();
    assert_eq!(ports, (32768..=60999).collect::<Vec<u16>>());
    // One more than the range holds: Docker's error, once the range is
    // spent (the allocator's own test counts its steps).
    let e = refused("[[container]]\nname = \"aa\"\npublish = [\"1-65535\"]\n");
    assert_eq!(e, "t.toml:3:12: Cannot start container aa: all ports are allocated");
    // A restart releases the ports and their rules and takes them again.
    let p = valid(
        "[[container]]\nname = \"aa\"\npublish = [\"1-20000:1-20000\"]\n\
         [[step]]\ndo = \"restart\"\ncontainer = \"aa\"\n",
    );
    assert_eq!(p.steps[0].after.port_mappings.len(), 20_000);
    assert_eq!(p.steps[0].after.iptables.rule_count(), p.iptables.rule_count());
}

/// A scenario of `n` containers that uses every kind of reference: one in
/// twenty on docker0 (publishing, exposing, linking to the previous one),
/// the rest in `none` or `container:` mode or stopped, expectations naming
/// them, and steps that remove, run and restart the daemon; and a host with
/// `n / 10` routes, nameservers and bridges.
fn big_scenario(n: usize) -> String {
    let mut s = String::from("[host]\n");
    let addr = |base: usize, i: usize| format!("100.{}.{}", base + (i >> 8), i & 255);
    let routes: Vec<String> = (0..n / 10).map(|i| format!("\"{}.0/24\"", addr(64, i))).collect();
    let dns: Vec<String> = (0..n / 10).map(|i| format!("\"{}.53\"", addr(80, i))).collect();
    s.push_str(&format!("routes = [{}]\nnameservers = [{}]\n", routes.join(", "), dns.join(", ")));
    for i in 0..n / 10 {
        s.push_str(&format!("[[host.bridge]]\nname = \"hb{i}\"\naddress = \"{}.1/24\"\n", addr(96, i)));
    }
    let mut last_bridged = None;
    for i in 0..n {
        s.push_str(&format!("[[container]]\nname = \"c{i}\"\n"));
        match (i % 20, last_bridged) {
            (0, _) => {
                s.push_str("publish = [\"80\", \"5000-5001/udp\"]\nexpose = [\"5432\"]\n");
                if let Some(p) = last_bridged {
                    s.push_str(&format!("links = [\"c{p}:db\"]\n"));
                }
                last_bridged = Some(i);
            }
            (1, Some(p)) => s.push_str(&format!("network = \"container:c{p}\"\n")),
            (2, _) => s.push_str("running = false\n"),
            _ => s.push_str("network = \"none\"\n"),
        }
    }
    for i in (0..n).step_by(10) {
        s.push_str(&format!(
            "[[expect]]\nfrom = \"c{i}\"\nto = \"c{}\"\nprobe = \"tcp:80\"\nresult = \"blocked\"\n",
            n - 1 - i
        ));
    }
    for i in (3..n).step_by(n / 5) {
        s.push_str(&format!("[[step]]\ndo = \"remove\"\ncontainer = \"c{i}\"\n"));
        s.push_str(&format!("[[step]]\ndo = \"run\"\n[step.container]\nname = \"c{i}\"\nnetwork = \"none\"\n"));
    }
    s.push_str("[[step]]\ndo = \"restart-daemon\"\n");
    s
}

#[test]
fn planning_is_linear_in_the_number_of_containers() {
    let _one = one_at_a_time();
    let (small, large) = (2_000, 16_000);
    let (a, b) = (big_scenario(small), big_scenario(large));
    let p = valid(&b);
    assert_eq!(p.containers.len(), large);
    assert_eq!(p.containers.iter().filter(|c| c.endpoint().is_some()).count(), large / 20);
    // The fastest of three runs of each, so a busy machine only slows down
    // some runs; 8 times the containers must cost well under 8² times as
    // much. It cost 26 times as much before (0.22 s for 5,000 containers,
    // 3.3 s for 20,000: quadratic).
    let best = |text: &str| (0..3).map(|_| time_plan(text)).min().unwrap();
    let (ta, tb) = (best(&a), best(&b));
    let ratio = tb.as_secs_f64() / ta.as_secs_f64();
    eprintln!("{small} containers: {ta:?}, {large}: {tb:?} (x{ratio:.1})");
    assert!(ratio < 20.0, "{small} containers: {ta:?}, {large}: {tb:?} (x{ratio:.1}; linear is x8)");
}

#[test]
fn names_of_any_length_plan_and_print() {
    let _one = one_at_a_time();
    // Over 65,535 characters `format!` could not pad the name column.
    let long = format!("w{}", "e".repeat(70_000));
    let text = format!(
        "[[container]]\nname = \"{long}\"\npublish = [\"80\"]\n[[container]]\nname = \"side\"\nnetwork = \"container:{long}\"\n"
    );
    let p = valid(&text);
    let shown = p.to_string();
    assert!(shown.contains(&format!("  {long}  bridge")), "{:.300}", shown);
    assert!(shown.lines().any(|l| l.starts_with("  side  container:w")), "short names keep their column");
    assert!(serde_json::to_string(&p).unwrap().contains(&long));
    // A mistake quoting it stays one short line.
    let e = refused(&format!("{text}[[step]]\ndo = \"stop\"\ncontainer = \"{long}x\"\n"));
    assert!(e.len() < 200 && e.contains("… (70002 characters)"), "{e:.300}");
}

#[test]
fn a_bridge_takes_1023_ports_and_the_1024th_is_refused_where_it_is_made() {
    let _one = one_at_a_time();
    let bridged = |n: usize| (0..n).map(|i| format!("[[container]]\nname = \"c{i}\"\n")).collect::<String>();
    // 1,023 ports, plus containers that attach none: host and none modes,
    // a stopped one, one sharing a namespace.
    let full = format!(
        "{}[[container]]\nname = \"h1\"\nnetwork = \"host\"\n[[container]]\nname = \"n1\"\nnetwork = \"none\"\n\
         [[container]]\nname = \"s1\"\nrunning = false\n[[container]]\nname = \"j1\"\nnetwork = \"container:c0\"\n",
        bridged(1023)
    );
    let p = valid(&full);
    let ports = p.node("host").unwrap().links.iter().filter(|l| l.master.as_deref() == Some("docker0")).count();
    assert_eq!(ports, 1023);
    // One more running container, in the file or by a step.
    let e = refused(&format!("{full}[[container]]\nname = \"x1\"\n"));
    assert_eq!(
        e,
        "t.toml:2060:8: Cannot start container x1: bridge docker0 is full: a Linux bridge takes at most 1023 ports \
         (BR_MAX_PORTS), this would be port 1024"
    );
    let e = refused(&format!("{full}[[step]]\ndo = \"start\"\ncontainer = \"s1\"\n"));
    assert!(e.starts_with("t.toml:2054:8: Cannot start container s1: bridge docker0 is full"), "{e}");
    let e = refused(&format!("{full}[[step]]\ndo = \"run\"\n[step.container]\nname = \"x1\"\n"));
    assert!(e.starts_with("t.toml:2062:8: Cannot start container x1: bridge docker0 is full"), "{e}");
    // A stop frees a port for the next one.
    plan(&format!("{full}[[step]]\ndo = \"stop\"\ncontainer = \"c5\"\n[[step]]\ndo = \"start\"\ncontainer = \"s1\"\n"))
        .unwrap();
}

/// bridgelab's limit is the kernel's: a bridge takes 1,023 ports and refuses
/// the 1,024th with "Exchange full" (`BR_MAX_PORTS`). Checked in a throwaway
/// network namespace.
#[test]
fn the_kernel_refuses_a_bridges_1024th_port() {
    let _one = one_at_a_time();
    common::require_root();
    let mut batch = String::from("link add br0 type bridge\n");
    for i in 1..=1024 {
        batch.push_str(&format!("link add v{i} type veth peer name p{i}\nlink set v{i} master br0\n"));
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("batch");
    std::fs::write(&file, batch).unwrap();
    let script = "ip -force -batch \"$1\"; ip -o link show master br0 | wc -l";
    let out = Command::new("unshare").args(["--net", "sh", "-c", script, "sh"]).arg(&file).output().unwrap();
    let err = text(&out.stderr);
    assert!(err.contains("Exchange full"), "{err}");
    assert_eq!(err.matches("Exchange full").count(), 1, "only the 1,024th fails: {err}");
    assert_eq!(text(&out.stdout).trim(), "1023");
}

/// Docker takes names of any length; a namespace file name takes 255 bytes.
/// A 250-character container builds, passes, and is found again by `ls`
/// and `down` through its run record.
// The guard serializes whole tests, awaits included.
#[allow(clippy::await_holding_lock)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_with_a_250_character_name_builds_and_goes() {
    let _one = one_at_a_time();
    common::require_root();
    let long = format!("w{}", "e".repeat(249));
    let dir = tempfile::tempdir().unwrap();
    let path = common::temp_scenario(
        &dir,
        "long-name",
        &format!(
            "[[container]]\nname = \"{long}\"\npublish = [\"8080:80\"]\nlisten = [\"tcp:80\"]\n\
             [[container]]\nname = \"side\"\nnetwork = \"container:{long}\"\n\
             [[expect]]\nfrom = \"external\"\nto = \"host\"\nprobe = \"tcp:8080\"\nresult = \"reachable\"\n\
             [[expect]]\nfrom = \"host\"\nto = \"{long}\"\nprobe = \"icmp\"\nresult = \"reachable\"\n"
        ),
    );
    // Built, probed and removed by `run`.
    let out = Command::new(common::bridgelab_bin()).args(["run", "--format", "json"]).arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["passed"], true, "{v}");
    assert!(common::namespaces_of(v[0]["run_id"].as_str().unwrap()).is_empty());

    // Kept: its namespace has a shortened name, which `ls` lists.
    let run_id = format!("long{}", std::process::id());
    let lab = Lab::load(&path).unwrap();
    let running =
        lab.up_with(bridgelab::apply::UpOptions { run_id: Some(run_id.clone()), ..Default::default() }).await.unwrap();
    assert!(running.verify().await.unwrap().is_empty());
    let names = common::namespaces_of(&run_id);
    assert_eq!(names.len(), 3, "{names:?}");
    let hashed = names.iter().find(|n| n.contains('~')).expect("a shortened name");
    assert!(hashed.len() <= 255 && hashed.starts_with(&format!("bl-{run_id}-weee")), "{hashed}");
    running.detach().unwrap();
    let ls = Command::new(common::bridgelab_bin()).args(["ls", "--format", "json"]).output().unwrap();
    let rows: serde_json::Value = serde_json::from_slice(&ls.stdout).unwrap();
    let row = rows.as_array().unwrap().iter().find(|r| r["run_id"] == run_id.as_str()).expect("ls lists the lab");
    assert_eq!(row["namespaces"].as_array().unwrap().len(), 3);

    // `down` finds every namespace, the shortened one included, from the
    // node names in the run record.
    let out = Command::new(common::bridgelab_bin()).args(["down", &run_id]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(common::namespaces_of(&run_id).is_empty(), "{:?}", common::namespaces_of(&run_id));
    assert!(bridgelab::registry::Registry::default().get(&run_id).is_none());
}

/// Each published port is a proxy socket in `run`. Under systemd's usual
/// soft limit of 1,024 open files a lab with 3,000 ports still builds (the
/// soft limit is raised to the hard one); under a hard limit too low for it,
/// `run` says so before it builds anything.
#[test]
fn a_lab_with_thousands_of_published_ports_gets_its_open_files() {
    let _one = one_at_a_time();
    common::require_root();
    let (_, hard) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
    assert!(hard >= 4096, "this test needs a hard limit of 4096 open files or more, not {hard}");
    let dir = tempfile::tempdir().unwrap();
    let path = common::temp_scenario(
        &dir,
        "ports",
        "[[container]]\nname = \"aa\"\npublish = [\"1-3000:1-3000\"]\nlisten = [\"tcp:2999\"]\n\
         [[expect]]\nfrom = \"external\"\nto = \"host\"\nprobe = \"tcp:2999\"\nresult = \"reachable\"\n",
    );
    let p = path.to_str().unwrap();
    let limited = |soft: u64, hard: u64| {
        Command::new("prlimit")
            .arg(format!("--nofile={soft}:{hard}"))
            .arg(common::bridgelab_bin())
            .args(["run", p])
            .output()
            .unwrap()
    };
    let out = limited(1024, hard);
    assert_eq!(out.status.code(), Some(0), "{}{}", text(&out.stdout), text(&out.stderr));
    // Too few even at the hard limit: an environment problem, said up front.
    let (out, left) = common::in_fresh_run_dir(
        "prlimit --nofile=1024:2048 \"$BRIDGELAB\" run \"$1\"; rc=$?; list_run; exit $rc",
        &[p],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("3000 published ports (a userland proxy each): it needs about 3518 open files, and this process may open 2048"),
        "{}",
        text(&out.stderr)
    );
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn published_ports_and_plan_size_are_bounded_with_a_location() {
    let _one = one_at_a_time();
    // Every port of both protocols (131,070), then one more.
    let e = refused(
        "[[container]]\nname = \"aa\"\npublish = [\"1-65535:1-65535\", \"1-65535:1-65535/udp\"]\n\
         [[container]]\nname = \"bb\"\npublish = [\"127.0.0.1:80:80\"]\n",
    );
    assert_eq!(
        e,
        "t.toml:6:12: Cannot start container bb: bridgelab publishes at most 131070 ports in one lab, each with a proxy"
    );
    // Links make two rules per exposed port: the 8th link to a container
    // exposing 65,535 ports would pass 1,000,000 rules.
    let mut links = String::from("[[container]]\nname = \"db\"\nexpose = [\"1-65535\"]\n");
    for i in 1..=8 {
        links.push_str(&format!("[[container]]\nname = \"c{i}\"\nlinks = [\"db:db\"]\n"));
    }
    assert_eq!(
        refused(&links),
        "t.toml:27:10: Cannot start container c8: too big to plan: its link to db would make more than 1000000 rules"
    );
    // The plan keeps the lab after every step: 1,000 containers restarted
    // one at a time would hold about 2,000,000 things.
    let mut text = String::new();
    for i in 0..1000 {
        text.push_str(&format!("[[container]]\nname = \"c{i}\"\nnetwork = \"none\"\n"));
    }
    for i in 0..1000 {
        text.push_str(&format!("[[step]]\ndo = \"restart\"\ncontainer = \"c{i}\"\n"));
    }
    // Refused at the step that crosses the bound, the 496th (line 4487).
    assert_eq!(
        refused(&text),
        "t.toml:4487:6: too big to plan: after step 496 the plan holds 1001952 containers, links, routes, port \
         mappings and rules (a long name counting once per 32 characters wherever it appears), more than \
         bridgelab's 1000000 (it keeps the whole lab after every step): use fewer steps, a smaller lab or shorter \
         names"
    );
}

/// The text of a plan is linear in its size: each step's rules are compared
/// with the start's, which are rendered once, not once per step. 300 steps
/// after 28,232 published ports took 20 s to print in a debug build, 70
/// times as long as one step; now about as long.
#[test]
fn printing_many_steps_after_many_rules_is_fast() {
    let _one = one_at_a_time();
    let steps = |n: usize| {
        let mut text = String::from("[[container]]\nname = \"aa\"\npublish = [\"1-28232\"]\n");
        text.push_str(&"[[step]]\ndo = \"restart-daemon\"\n".repeat(n));
        valid(&text)
    };
    let (one, many) = (steps(1), steps(300));
    let print = |p: &Plan| {
        (0..3)
            .map(|_| {
                let t = Instant::now();
                assert!(!p.to_string().is_empty());
                t.elapsed()
            })
            .min()
            .unwrap()
    };
    assert_eq!(many.to_string().matches("\nafter step ").count(), 300);
    let (t1, t300) = (print(&one), print(&many));
    assert!(t300 < t1 * 10, "1 step: {t1:?}, 300 steps: {t300:?}");
}

/// A long name is held and hashed once per container, not once per port:
/// a 70,000-character name on 10,000 ports is refused (its plan would
/// repeat the name with each port, 700 MB of text) about as fast as a short
/// name plans. Before, building it copied and hashed the name per port and
/// took 12 times as long.
#[test]
fn a_long_name_costs_once_not_once_per_port() {
    let _one = one_at_a_time();
    let lab = |name: &str| {
        format!(
            "[[container]]\nname = \"{name}\"\nexpose = [\"1-5000\"]\npublish = [\"1-10000\"]\n\
             [[container]]\nname = \"x{name}\"\nlinks = [\"{name}:db\"]\n"
        )
    };
    let (short, long) = (lab("web"), lab(&format!("w{}", "e".repeat(70_000))));
    let e = refused(&long);
    assert!(e.starts_with("t.toml:2:8: too big to plan: after the start the plan holds "), "{e:.200}");
    let time = |text: &str| {
        let t = Instant::now();
        let _ = plan(text);
        t.elapsed()
    };
    let best = |text: &str| (0..3).map(|_| time(text)).min().unwrap();
    let (ts, tl) = (best(&short), best(&long));
    assert!(tl < ts * 4, "short name: {ts:?}, long name: {tl:?}");
}

/// The same with Docker 20.10's userland proxy off: the bindings nothing
/// relays are in the plan too (the text lists them with the name), so they
/// count as mappings do. Found by the fuzzer: 28,232 ports under a
/// 70,000-character name printed 2 GB.
#[test]
fn a_long_name_on_ports_without_a_proxy_is_refused() {
    let _one = one_at_a_time();
    let long = format!("w{}", "e".repeat(70_000));
    let text = format!(
        "[daemon]\nfirewall = \"docker20\"\nuserland_proxy = false\n\
         [[container]]\nname = \"{long}\"\npublish = [\"1-28232\"]\n"
    );
    let t = Instant::now();
    let e = refused(&text);
    assert!(e.contains("too big to plan: after the start the plan holds "), "{e:.200}");
    assert!(e.starts_with("t.toml:5:8: "), "pointed at the long name: {e:.200}");
    assert!(t.elapsed() < std::time::Duration::from_secs(10), "{:?}", t.elapsed());
}

/// Links follow `container:` modes to the container that owns the
/// namespace, as Docker's `RegisterLinks` does; many links along one long
/// chain must not each walk all of it (16,000 links along a chain of 16,000
/// took 60 times as long as 2,000 along 2,000).
#[test]
fn links_along_a_long_container_chain_are_linear() {
    let _one = one_at_a_time();
    let lab = |n: usize| {
        let mut s = String::from("[[container]]\nname = \"c0\"\n");
        for i in 1..n {
            s.push_str(&format!("[[container]]\nname = \"c{i}\"\nnetwork = \"container:c{}\"\n", i - 1));
        }
        let links: Vec<String> = (0..n).map(|i| format!("\"c{}:a{i}\"", n - 1)).collect();
        s.push_str(&format!("[[container]]\nname = \"aa\"\nlinks = [{}]\n", links.join(", ")));
        s
    };
    let (small, large) = (2_000, 16_000);
    let p = valid(&lab(large));
    assert_eq!(p.containers.iter().filter(|c| c.running).count(), large + 1);
    let best = |text: &str| (0..3).map(|_| time_plan(text)).min().unwrap();
    let (ta, tb) = (best(&lab(small)), best(&lab(large)));
    let ratio = tb.as_secs_f64() / ta.as_secs_f64();
    eprintln!("{small}: {ta:?}, {large}: {tb:?} (x{ratio:.1})");
    assert!(ratio < 20.0, "{small}: {ta:?}, {large}: {tb:?} (x{ratio:.1}; linear is x8)");
}

/// A start that fails at a late port first maps (and then unmaps) every
/// port before it, as Docker does; the plan keeps none of that work, so it
/// is bounded on its own: the start that passes the bound is refused, and
/// nothing after it is started.
#[test]
fn work_given_back_by_failed_starts_is_bounded_with_a_location() {
    let _one = one_at_a_time();
    let mut text = String::from("[[container]]\nname = \"web\"\npublish = [\"8080:80\"]\n");
    for i in 0..1000 {
        text.push_str(&format!("[[container]]\nname = \"n{i}\"\npublish = [\"1-65535:1-65535\"]\n"));
    }
    let t = Instant::now();
    let e = refused(&text);
    let took = t.elapsed();
    let lines: Vec<&str> = e.lines().collect();
    // Each of n0..n7 maps 8,079 ports with three rules each, then meets
    // web's 8080; n8 passes 262,140.
    assert_eq!(lines.len(), 10, "{e:.2000}");
    assert_eq!(
        lines[8],
        "t.toml:30:12: too big to plan: failed starts up to this one made and gave back more than 262140 port \
         mappings and rules"
    );
    assert_eq!(
        lines[9],
        "t.toml:30:12: Cannot start container n8: Bind for 0.0.0.0:8080 failed: port is already allocated"
    );
    assert!(took < Duration::from_secs(30), "took {took:?}");
}

/// Docker 28 inserts each published port's ACCEPT at the head of filter
/// DOCKER (a deque) and adds a raw rule per loopback port: many ports still
/// plan in linear time (x8 the ports, well under x64).
#[test]
fn docker28_ports_plan_in_linear_time() {
    let _one = one_at_a_time();
    let lab = |n: usize| {
        format!(
            "[daemon]\nfirewall = \"docker28\"\n[[container]]\nname = \"web\"\n\
             publish = [\"127.0.0.1:{}-{}:1-{n}\"]\n",
            30_001,
            30_000 + n
        )
    };
    let (small, large) = (2_000, 16_000);
    let p = valid(&lab(large));
    assert!(p.iptables.rule_count() > 3 * large, "{}", p.iptables.rule_count());
    assert!(p.iptables.render().contains("! -i lo -p tcp -m tcp --dport 46000 -j DROP"));
    let best = |text: &str| (0..3).map(|_| time_plan(text)).min().unwrap();
    let (ta, tb) = (best(&lab(small)), best(&lab(large)));
    let ratio = tb.as_secs_f64() / ta.as_secs_f64();
    eprintln!("{small}: {ta:?}, {large}: {tb:?} (x{ratio:.1})");
    assert!(ratio < 20.0, "{small}: {ta:?}, {large}: {tb:?} (x{ratio:.1}; linear is x8)");
}

/// Docker 29's nftabler adds a batch per port; each batch is all or nothing.
/// Taking a failed batch back by its own undo log (not by copying the table
/// before each batch) and finding a rule through an index (not by walking
/// its group) keep many ports linear (x8 the ports, well under x64).
#[test]
fn docker29_nftables_ports_plan_in_linear_time() {
    let _one = one_at_a_time();
    let lab = |n: usize| {
        format!(
            "[daemon]\nfirewall = \"docker29\"\nbackend = \"nftables\"\n[host]\nforwarding = true\n\
             [[container]]\nname = \"web\"\npublish = [\"{}-{}:1-{n}\"]\n",
            30_001,
            30_000 + n
        )
    };
    let (small, large) = (1_000, 8_000);
    let p = valid(&lab(large));
    let listing = p.iptables.nft.listing();
    assert!(
        listing.contains("tcp dport 38000 counter dnat to 172.17.0.2:8000"),
        "{}",
        &listing[..2000.min(listing.len())]
    );
    let best = |text: &str| (0..3).map(|_| time_plan(text)).min().unwrap();
    let (ta, tb) = (best(&lab(small)), best(&lab(large)));
    let ratio = tb.as_secs_f64() / ta.as_secs_f64();
    eprintln!("{small}: {ta:?}, {large}: {tb:?} (x{ratio:.1})");
    assert!(ratio < 20.0, "{small}: {ta:?}, {large}: {tb:?} (x{ratio:.1}; linear is x8)");
}
