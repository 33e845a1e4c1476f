//! Verdicts that depend only on the rules: not on the kernel's ICMP rate
//! limits, not on how an ICMP error is read, not on a responder outliving
//! its container, and not on a loaded machine answering late.

mod common;

use std::net::UdpSocket;
use std::process::Command;
use std::time::Duration;

use bridgelab::apply::netns::{read_sysctl, run_in, LAB_SYSCTLS};
use bridgelab::probe::engine::{ProbeJob, Schedule};
use bridgelab::probe::packets::WireKind;
use bridgelab::probe::responder::Responders;
use bridgelab::probe::{self, matrix};
use bridgelab::scenario::ProbeSpec;
use bridgelab::Lab;

async fn up_text(dir: &tempfile::TempDir, name: &str, toml: &str) -> bridgelab::RunningLab {
    common::require_root();
    Lab::load(common::temp_scenario(dir, name, toml)).unwrap().up().await.unwrap()
}

/// `bridgelab run --matrix udp:1,…,udp:10 scenarios/default.toml`: 120 UDP
/// probes at once, 30 of them answered by external's kernel with a port
/// unreachable to the host's one uplink address. With the kernel's ICMP
/// rate limits in force most of those answers were lost (`blocked`); the
/// table must be the same, and right, every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_udp_matrix_is_the_same_and_right_every_time() {
    common::require_root();
    let root_before: Vec<String> = LAB_SYSCTLS.iter().map(|(k, _)| root_sysctl(k)).collect();
    let lab = Lab::load(common::scenario_path("default.toml")).unwrap().up().await.unwrap();
    // Every namespace of the lab has the limits lifted.
    for node in &lab.plan().nodes {
        for (key, value) in LAB_SYSCTLS {
            assert_eq!(read_sysctl(lab.netns_file(&node.name).unwrap(), key).unwrap(), *value, "{}: {key}", node.name);
        }
    }
    let probes: Vec<ProbeSpec> = (1..=10).map(ProbeSpec::Udp).collect();
    let names = matrix::nodes(&lab);
    // Nothing listens on udp:1-10: every node that can be reached refuses.
    // External has no route to the containers' subnet.
    let want = "host - r r r\nexternal r - x x\nweb r r - r\nclient r r r -\n";
    let mut tables = Vec::new();
    for _ in 0..5 {
        let cells = matrix::run(&lab, &probes).await;
        assert_eq!(cells.len(), 120);
        let text = matrix::render(&cells, &probes, &names);
        for p in &probes {
            let rows: String = text
                .lines()
                .skip_while(|l| !l.starts_with(&format!("matrix {p}:")))
                .skip(2)
                .take(4)
                .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ") + "\n")
                .collect();
            assert_eq!(rows, want, "{p}\n{text}");
        }
        for c in cells.iter().filter(|c| c.to == "external") {
            assert_eq!(c.actual.as_deref(), Some("refused"), "{c:?}");
            assert_eq!(c.detail, "ICMP port unreachable: reached, nothing listening");
        }
        tables.push(text);
    }
    assert!(tables.iter().all(|t| *t == tables[0]));
    lab.down().unwrap();
    // Never the namespace the tests run in.
    let root_after: Vec<String> = LAB_SYSCTLS.iter().map(|(k, _)| root_sysctl(k)).collect();
    assert_eq!(root_after, root_before);
}

fn root_sysctl(key: &str) -> String {
    std::fs::read_to_string(format!("/proc/sys/{}", key.replace('.', "/"))).unwrap_or_default()
}

/// A namespace a step builds anew has the limits lifted too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_rebuilt_by_a_step_has_the_limits_lifted_too() {
    let dir = tempfile::tempdir().unwrap();
    let mut lab = up_text(
        &dir,
        "rebuilt",
        "[[container]]\nname = \"aa\"\n[[step]]\ndo = \"restart\"\ncontainer = \"aa\"\n\
         [[step.expect]]\nfrom = \"aa\"\nto = \"external\"\nprobe = \"udp:9\"\nresult = \"refused\"\n",
    )
    .await;
    let mut responders = probe::start_responders(&lab).unwrap();
    let checked = probe::check_scenario(&mut lab, &mut responders).await;
    assert!(checked.failure.is_none(), "{:?}", checked.failure);
    assert!(checked.expectations.iter().all(|o| o.passed), "{:#?}", checked.expectations);
    for (key, value) in LAB_SYSCTLS {
        assert_eq!(read_sysctl(lab.netns_file("aa").unwrap(), key).unwrap(), *value, "{key}");
    }
    drop(responders);
    lab.down().unwrap();
}

/// Runs `iptables ARGS` (the variant the lab's rules use) in the lab's host.
fn host_iptables(lab: &bridgelab::RunningLab, args: &[&str]) {
    let (restore, _) = bridgelab::apply::iptables::tools();
    let tool = restore.trim_end_matches("-restore").to_string();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let out =
        run_in(lab.netns_file("host").unwrap(), move || Command::new(&tool).arg("-w").args(&args).output()).unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `-j REJECT` answers a SYN with an ICMP port unreachable: that is a block
/// by a firewall, and the report names the ICMP message. Only a RST
/// (`--reject-with tcp-reset`, or a closed port) is `refused`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_icmp_error_to_a_syn_is_blocked_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let expect = |to: &str, port: u16, result: &str| {
        format!("[[expect]]\nfrom = \"aa\"\nto = \"{to}\"\nprobe = \"tcp:{port}\"\nresult = \"{result}\"\n")
    };
    let toml = format!(
        "[[container]]\nname = \"aa\"\n{}{}{}{}",
        expect("external", 9, "blocked"),
        expect("host", 9, "blocked"),
        expect("external", 10, "refused"),
        expect("external", 11, "refused"),
    );
    let lab = up_text(&dir, "reject", &toml).await;
    host_iptables(&lab, &["-I", "FORWARD", "-p", "tcp", "--dport", "9", "-j", "REJECT"]);
    host_iptables(&lab, &["-I", "INPUT", "-p", "tcp", "--dport", "9", "-j", "REJECT"]);
    host_iptables(&lab, &["-I", "FORWARD", "-p", "tcp", "--dport", "10", "-j", "REJECT", "--reject-with", "tcp-reset"]);
    let responders = Responders::default();
    let out = probe::check(&lab, &responders, &lab.scenario().spec.expects).await;
    let details: Vec<(&str, &str)> =
        out.iter().map(|o| (o.actual.as_deref().unwrap_or("error"), o.detail.as_str())).collect();
    assert_eq!(
        details,
        [
            ("blocked", "ICMP port unreachable (code 3)"),
            ("blocked", "ICMP port unreachable (code 3)"),
            ("refused", "RST: reached, nothing listening"),
            // Nothing listens on external's tcp:11: its own kernel's RST.
            ("refused", "RST: reached, nothing listening"),
        ]
    );
    assert!(out.iter().all(|o| o.passed), "{out:#?}");
    lab.down().unwrap();
}

/// A UDP echo inside `node` that answers each datagram only after `delay`,
/// as a machine under load may; it ends after `count` datagrams or 5 s of
/// quiet.
fn slow_udp_echo(lab: &bridgelab::RunningLab, node: &str, port: u16, delay: Duration, count: usize) {
    let s = run_in(lab.netns_file(node).unwrap(), move || UdpSocket::bind(("0.0.0.0", port))).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        for _ in 0..count {
            let Ok((n, peer)) = s.recv_from(&mut buf) else { return };
            std::thread::sleep(delay);
            let _ = s.send_to(&buf[..n], peer);
        }
    });
}

/// Silence is patient only where an answer is expected: a probe expected
/// `reachable` waits for an answer that comes later than
/// `timeout × (retries + 1)`, while a probe expected `blocked` still costs
/// exactly `retries + 1` attempts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_is_patient_only_where_an_answer_is_expected() {
    let dir = tempfile::tempdir().unwrap();
    let lab = up_text(
        &dir,
        "patience",
        "[daemon]\nicc = false\n[probe]\ntimeout_ms = 200\nretries = 1\n\
         [[container]]\nname = \"aa\"\nlisten = [\"tcp:80\"]\n[[container]]\nname = \"bb\"\n\
         [[expect]]\nfrom = \"bb\"\nto = \"external\"\nprobe = \"udp:7000\"\nresult = \"reachable\"\n\
         [[expect]]\nfrom = \"bb\"\nto = \"aa\"\nprobe = \"tcp:80\"\nresult = \"blocked\"\n",
    )
    .await;
    let timeout = Duration::from_millis(200);
    let late = Duration::from_millis(700);
    assert!(late > Schedule::new(timeout, 1, false).total());
    slow_udp_echo(&lab, "external", 7000, late, 5);
    let responders = probe::start_responders(&lab).unwrap();
    let out = probe::check(&lab, &responders, &lab.scenario().spec.expects).await;
    assert!(out.iter().all(|o| o.passed), "{out:#?}");
    // The answer cannot have come before the echo's delay.
    assert!(out[0].elapsed_ms >= late.as_millis() as u64, "{:?}", out[0]);
    assert_eq!(out[1].detail, "no answer to 2 attempts in 400 ms");

    // The same silent target (icc = false drops it), patient or not.
    let aa = lab.plan().container("aa").unwrap().ip().unwrap();
    let job = |patient| ProbeJob { netns: "bb".into(), dst: aa, kind: WireKind::Tcp(80), patient, via: None };
    let r = probe::run_jobs(&lab, vec![job(false), job(true)], timeout, 1).await;
    assert_eq!((&r[0].outcome, r[0].attempts, r[0].waited), (&probe::engine::Outcome::Silence, 2, 2 * timeout));
    let patient = Schedule::new(timeout, 1, true);
    assert_eq!(r[1].outcome, probe::engine::Outcome::Silence);
    assert_eq!((u64::from(r[1].attempts), r[1].waited), (patient.attempts(), patient.total()));
    drop(responders);
    lab.down().unwrap();
}
