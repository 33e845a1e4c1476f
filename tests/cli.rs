//! The command line: exit codes, `path:line:col` messages, and that bad
//! input creates nothing.

mod common;

use std::process::{Command, Output};

use rstest::rstest;

fn bridgelab(args: &[&str]) -> Output {
    Command::new(common::bridgelab_bin()).args(args).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// One case per Docker message (and per kind of scenario mistake) a user can meet.
#[rstest]
#[case::b_and_bip(
    "[daemon]\nbridge = \"br0\"\nbip = \"10.1.0.1/24\"\n[[host.bridge]]\nname = \"br0\"\naddress = \"10.1.0.1/24\"\n",
    "3:7: You specified -b & --bip, mutually exclusive options. Please specify only one."
)]
#[case::iptables_icc(
    "[daemon]\niptables = false\nicc = false\n",
    "3:7: You specified --iptables=false with --icc=false. ICC uses iptables to function. Please set --icc or --iptables to true."
)]
#[case::bridge_not_found("[daemon]\nbridge = \"br9\"\n", "2:10: bridge not found: br9")]
#[case::bip_mismatch(
    "[daemon]\nbip = \"172.18.9.1/16\"\n[[host.bridge]]\nname = \"docker0\"\naddress = \"172.18.0.1/16\"\n",
    "2:7: Bridge ip (172.18.0.1) does not match existing bridge configuration 172.18.9.1"
)]
#[case::out_of_range(
    "[daemon]\nfixed_cidr = \"172.17.1.0/24\"\n[[container]]\nname = \"aa\"\nip = \"172.17.9.9\"\n",
    "5:6: Cannot start container aa: requested ip is out of range"
)]
#[case::already_allocated(
    "[[container]]\nname = \"aa\"\nip = \"172.17.0.5\"\n[[container]]\nname = \"bb\"\nip = \"172.17.0.5\"\n",
    "6:6: Cannot start container bb: ip already allocated"
)]
#[case::no_available_ip(
    "[daemon]\nbip = \"10.0.0.1/30\"\n[[container]]\nname = \"aa\"\n[[container]]\nname = \"bb\"\n",
    "6:8: Cannot start container bb: no available ip addresses on network"
)]
#[case::no_free_range(
    "[host]\nroutes = [\"10.0.0.0/8\", \"172.16.0.0/12\", \"192.168.0.0/16\"]\n",
    "Could not find a free IP address range for interface 'docker0'. Please configure its address manually and run 'docker -b docker0'"
)]
#[case::bad_subnet("[daemon]\nfixed_cidr = \"10.9.0.0/24\"\n", "2:14: network does not contain specified subnet")]
#[case::bad_name(
    "[[container]]\nname = \"x\"\n",
    "2:8: Invalid container name (x), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
)]
#[case::unknown_key("[daemon]\nbogus = true\n", "2:1: unknown field `bogus`")]
#[case::wrong_type("[probe]\ntimeout_ms = \"fast\"\n", "2:14: invalid type: string \"fast\", expected")]
#[case::bad_cidr("[daemon]\nbip = \"172.17.42.1\"\n", "2:7: invalid CIDR address: 172.17.42.1")]
#[case::port_taken_twice(
    "[[container]]\nname = \"aa\"\npublish = [\"8080:80\"]\n[[container]]\nname = \"bb\"\npublish = [\"8080:81\"]\n",
    "6:12: Cannot start container bb: Bind for 0.0.0.0:8080 failed: port is already allocated"
)]
#[case::unequal_ranges(
    "[[container]]\nname = \"aa\"\npublish = [\"8000-8002:80-81\"]\n",
    "Invalid ranges specified for container and host Ports: 80-81 and 8000-8002"
)]
#[case::port_out_of_range("[[container]]\nname = \"aa\"\npublish = [\"70000:80\"]\n", "Invalid hostPort: 70000")]
#[case::bad_proto("[[container]]\nname = \"aa\"\npublish = [\"80/sctp\"]\n", "Invalid proto: sctp")]
#[case::unknown_network("[[container]]\nname = \"aa\"\nnetwork = \"lan\"\n", "3:11: network lan not found")]
fn bad_input_exits_2_with_its_location_and_creates_nothing(#[case] toml: &str, #[case] message: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = common::temp_scenario(&dir, "bad", toml);
    let p = path.to_str().unwrap();
    let before = bridgelab::registry::lab_namespaces();
    for verb in ["check", "plan", "run"] {
        let out = bridgelab(&[verb, p]);
        assert_eq!(out.status.code(), Some(2), "{verb}: {}", text(&out.stderr));
        let err = text(&out.stderr);
        assert!(err.starts_with(&format!("{p}:")), "{verb}: {err}");
        assert!(err.contains(message), "{verb}: {err:?} lacks {message:?}");
        let stdout = text(&out.stdout);
        if verb == "run" {
            // The report has the file as a failed scenario, with the same words.
            assert!(stdout.starts_with(&format!("FAIL  bad ({p}): not loaded\n")), "{stdout}");
            assert!(stdout.contains(message) && stdout.ends_with("0 passed, 1 failed\n"), "{stdout}");
        } else {
            assert!(stdout.is_empty(), "{verb} printed {stdout}");
        }
    }
    // `run` failed before creating anything: no namespace appeared that is
    // not accounted for by labs other tests hold right now.
    let after = bridgelab::registry::lab_namespaces();
    let reg = bridgelab::registry::Registry::default();
    for ns in after.iter().filter(|n| !before.contains(n)) {
        let id = bridgelab::registry::run_id_of(ns).unwrap();
        match reg.get(id) {
            Some(rec) => assert_ne!(rec.scenario, "bad", "bad input created {ns}"),
            // Another test's lab ended meanwhile: its namespaces go before its record.
            None => assert!(!bridgelab::registry::lab_namespaces().contains(ns), "{ns} has no record"),
        }
    }
}

#[test]
fn a_missing_file_is_bad_input() {
    let out = bridgelab(&["check", "/nonexistent/x.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("cannot read scenario"), "{}", text(&out.stderr));
}

/// How many runs the files make: one each, or one per version.
fn runs(files: &[String]) -> usize {
    files.iter().map(|f| bridgelab::Scenario::load(f).unwrap().variants().len()).sum()
}

#[test]
fn check_accepts_every_shipped_scenario() {
    let mut args = vec!["check".to_string()];
    for p in common::shipped_scenarios() {
        args.push(p.to_string_lossy().into_owned());
    }
    let out = Command::new(common::bridgelab_bin()).args(&args).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // A line per run: a file with `versions` has one per version.
    assert_eq!(text(&out.stdout).lines().count(), runs(&args[1..]));
}

#[test]
fn plan_prints_text_and_json() {
    let path = common::scenario_path("default.toml");
    let out = bridgelab(&["plan", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let t = text(&out.stdout);
    assert!(t.contains("bridge: docker0 172.17.42.1/16 (candidate 1 of 12)"), "{t}");
    assert!(t.contains("172.17.0.1/16 mac 02:42:ac:11:00:01"), "{t}");
    let out = bridgelab(&["plan", "--format", "json", path.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["containers"][0]["endpoint"]["mac"], "02:42:ac:11:00:01");
}

#[test]
fn help_explains_verbs_and_exit_codes() {
    let out = bridgelab(&["--help"]);
    let t = text(&out.stdout);
    for word in [
        "check",
        "plan",
        "run",
        "up",
        "down",
        "ls",
        "cleanup",
        "import",
        "audit",
        "Exit codes",
        "3 environment problem",
    ] {
        assert!(t.contains(word), "--help lacks {word:?}:\n{t}");
    }
    for code in ["129 SIGHUP", "130 SIGINT", "131 SIGQUIT", "143 SIGTERM"] {
        assert!(t.contains(code), "--help lacks {code:?}:\n{t}");
    }
}

#[test]
fn run_help_explains_files_format_and_hold() {
    let out = bridgelab(&["run", "--help"]);
    let t = text(&out.stdout);
    for words in [
        "<FILES>...\n          Scenario files (TOML), run one after another",
        "`text`: a PASS/FAIL line per scenario",
        "`json`: an array with one object per scenario",
        "Enter (or end of input) goes on to probe and tear the lab down",
    ] {
        assert!(t.contains(words), "run --help lacks {words:?}:\n{t}");
    }
}

#[test]
fn without_root_run_is_an_environment_problem_and_plan_still_works() {
    common::require_root();
    let path = common::scenario_path("default.toml");
    let as_nobody = |verb: &str| {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all"])
            .arg(common::bridgelab_bin())
            .args([verb, path.to_str().unwrap()])
            .output()
            .unwrap()
    };
    let out = as_nobody("run");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("needs root"), "{}", text(&out.stderr));
    let out = as_nobody("plan");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn run_reports_json() {
    common::require_root();
    let path = common::scenario_path("network-modes.toml");
    let out = bridgelab(&["run", "--format", "json", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["passed"], true);
    assert_eq!(v[0]["mismatches"].as_array().unwrap().len(), 0);
    assert_eq!(v[0]["expectations"].as_array().unwrap().len(), 2);
    assert!(common::namespaces_of(v[0]["run_id"].as_str().unwrap()).is_empty());
}

/// Every shipped scenario, in three shards (`run --shard K/3`, as a CI
/// matrix runs them): each passes, and the shards are disjoint and cover
/// every file.
#[test]
fn every_scenario_passes_with_iptables_legacy_too() {
    common::require_root();
    let all: Vec<String> = common::shipped_scenarios().iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let mut seen: Vec<String> = Vec::new();
    let mut reports = 0;
    for k in 1..=3 {
        let shard = format!("{k}/3");
        let mut args = vec!["run", "--format", "json", "--shard", &shard];
        args.extend(all.iter().map(String::as_str));
        let out =
            Command::new(common::bridgelab_bin()).env("BRIDGELAB_IPTABLES", "legacy").args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "shard {shard}: {}{}", text(&out.stdout), text(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut files: Vec<String> = Vec::new();
        for r in v.as_array().unwrap() {
            assert_eq!(r["passed"], true, "shard {shard}: {r}");
            reports += 1;
            let f = r["file"].as_str().unwrap().to_string();
            if !files.contains(&f) {
                files.push(f);
            }
        }
        assert!(!files.is_empty(), "shard {shard} ran nothing");
        for f in &files {
            assert!(!seen.contains(f), "{f} ran in two shards");
        }
        seen.extend(files);
    }
    seen.sort();
    assert_eq!(seen, all);
    assert_eq!(reports, runs(&all));
}

/// `check --shard` slices as `run --shard` does: sorted, disjoint, complete,
/// whatever order the files are given in.
#[test]
fn shards_of_the_shipped_scenarios_are_disjoint_and_cover_them() {
    let all: Vec<String> = common::shipped_scenarios().iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let mut reversed = all.clone();
    reversed.reverse();
    let mut seen: Vec<String> = Vec::new();
    for k in 1..=3 {
        let shard = format!("{k}/3");
        let mut files = Vec::new();
        for order in [&all, &reversed] {
            let mut args = vec!["check", "--shard", &shard];
            args.extend(order.iter().map(String::as_str));
            let out = bridgelab(&args);
            assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
            assert!(text(&out.stderr).contains(&format!("shard {shard}: ")), "{}", text(&out.stderr));
            let mut these: Vec<String> =
                text(&out.stdout).lines().map(|l| l.split_whitespace().nth(1).unwrap().to_string()).collect();
            these.dedup();
            files.push(these);
        }
        assert_eq!(files[0], files[1], "shard {shard} depends on the order of the files");
        // Neighbours are dealt out round-robin, so each shard has a third.
        assert!(files[0].len().abs_diff(all.len() / 3) <= 1, "shard {shard}: {} files", files[0].len());
        seen.extend(files.swap_remove(0));
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), seen.len(), "a file in two shards");
    assert_eq!(sorted, all);
}

#[rstest]
#[case::zero("0/3")]
#[case::past_the_end("4/3")]
#[case::no_total("3")]
#[case::not_a_number("a/b")]
#[case::no_shards("1/0")]
fn a_bad_shard_is_a_usage_error(#[case] shard: &str) {
    let path = common::scenario_path("default.toml");
    for verb in ["check", "run"] {
        let out = bridgelab(&[verb, "--shard", shard, path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{verb} --shard {shard}");
        let err = text(&out.stderr);
        assert!(err.contains(&format!("invalid value '{shard}' for '--shard <K/N>'")), "{err}");
        assert!(err.contains("expected K/N with 1 <= K <= N"), "{err}");
    }
}

#[test]
fn a_failed_expectation_exits_1_and_says_why_in_every_format() {
    common::require_root();
    let dir = tempfile::tempdir().unwrap();
    let path = common::temp_scenario(
        &dir,
        "wrong",
        "name = \"wrong\"\n[daemon]\nicc = false\n[[container]]\nname = \"aa\"\nlisten = [\"tcp:80\"]\n[[container]]\nname = \"bb\"\n\
         [[expect]]\nfrom = \"bb\"\nto = \"aa\"\nprobe = \"tcp:80\"\nresult = \"reachable\"\n\
         [[expect]]\nfrom = \"bb\"\nto = \"external\"\nprobe = \"icmp\"\nresult = \"reachable\"\n",
    );
    let junit = dir.path().join("junit.xml");
    let out = Command::new(common::bridgelab_bin())
        .args(["run", "--junit", junit.to_str().unwrap(), path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let t = text(&out.stdout);
    assert!(t.contains("FAIL bb -> aa (172.17.0.1) tcp:80: expected reachable, got blocked"), "{t}");
    // Expected reachable: silence is given up to 2 s before it counts.
    assert!(t.contains("wrong.toml:10:8 no answer to 5 attempts in 2000 ms"), "{t}");
    assert!(t.contains("ok   bb -> external"), "{t}");
    assert!(t.ends_with("0 passed, 1 failed\n"), "{t}");
    let x = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&x).unwrap_or_else(|e| panic!("{e}: {x}"));
    let suite = doc.descendants().find(|n| n.has_tag_name("testsuite")).unwrap();
    let attr = |name| suite.attribute(name).unwrap_or_else(|| panic!("no {name}: {x}"));
    assert_eq!((attr("name"), attr("tests"), attr("failures")), ("wrong", "3", "1"), "{x}");
    assert!(attr("time").parse::<f64>().is_ok(), "{x}");
    let failure = doc.descendants().find(|n| n.has_tag_name("failure")).unwrap();
    assert_eq!(
        failure.attribute("message"),
        Some(
            "expected reachable, got blocked: no answer to 5 attempts in 2000 ms; \
             dropped by the host's rule filter: -A FORWARD -i docker0 -o docker0 -j DROP"
        ),
        "{x}"
    );

    let out = Command::new(common::bridgelab_bin())
        .args(["run", "--format", "json", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["passed"], false);
    assert_eq!(v[0]["expectations"][0]["actual"], "blocked");
    assert_eq!(v[0]["expectations"][1]["passed"], true);
}

#[test]
fn matrix_prints_the_truth_table_and_marks_contradictions() {
    common::require_root();
    let path = common::scenario_path("icc-off.toml");
    let out = bridgelab(&["run", "--matrix", "icmp,tcp:80", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let t = text(&out.stdout);
    assert!(t.contains("matrix tcp:80"), "{t}");
    // client -> web is dropped by icc=false, client -> external gets out.
    let row = t.lines().skip_while(|l| !l.starts_with("matrix tcp:80")).find(|l| l.starts_with("client")).unwrap();
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols, ["client", "r", "r", "x", "-"], "{t}");

    // An expectation the wire contradicts is marked and fails the run.
    let dir = tempfile::tempdir().unwrap();
    let wrong = common::temp_scenario(
        &dir,
        "contradicted",
        "[daemon]\nicc = false\n[[container]]\nname = \"aa\"\n[[container]]\nname = \"bb\"\n[[expect]]\nfrom = \"bb\"\nto = \"aa\"\nprobe = \"icmp\"\nresult = \"blocked\"\n",
    );
    let out = bridgelab(&["run", "--matrix", "icmp", "--format", "json", wrong.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "the expectation itself holds");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let cells = v[0]["matrix"].as_array().unwrap();
    assert_eq!(cells.len(), 12, "4 nodes, every ordered pair");
    assert!(cells.iter().all(|c| c["differs"] == false));
}

#[test]
fn pcap_captures_the_bridge_and_the_uplink_readably() {
    common::require_root();
    let dir = tempfile::tempdir().unwrap();
    let path = common::scenario_path("default.toml");
    let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let out = bridgelab(&["run", "--pcap", dir.path().to_str().unwrap(), path.to_str().unwrap()]);
    let after = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    // A failed expectation is reported on stdout: show both.
    assert_eq!(out.status.code(), Some(0), "{}{}", text(&out.stdout), text(&out.stderr));
    // pcap-file reads them back too: nanosecond timestamps, in order, all
    // within the run, and every frame whole.
    for name in ["default-docker0.pcap", "default-eth0.pcap"] {
        let file = std::fs::File::open(dir.path().join(name)).unwrap();
        let mut r = pcap_file::pcap::PcapReader::new(file).unwrap();
        assert_eq!(r.header().ts_resolution, pcap_file::TsResolution::NanoSecond);
        let mut last = before;
        let mut frames = 0;
        while let Some(p) = r.next_packet() {
            let p = p.unwrap();
            assert!(
                p.timestamp >= last && p.timestamp <= after,
                "{name}: {:?} not in order within the run",
                p.timestamp
            );
            assert_eq!(p.data.len() as u32, p.orig_len, "{name}: a frame was cut");
            last = p.timestamp;
            frames += 1;
        }
        assert!(frames > 0, "{name} holds frames");
    }
    // tcpdump reads them back: the probes crossed the bridge and the uplink.
    let read = |name: &str| {
        let out =
            Command::new("tcpdump").args(["-nr"]).arg(dir.path().join(name)).output().expect("tcpdump is installed");
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let bridge = read("default-docker0.pcap");
    assert!(bridge.contains("IP 172.17.0.2.") && bridge.contains("> 172.17.0.1.80: Flags [S]"), "{bridge}");
    let uplink = read("default-eth0.pcap");
    assert!(uplink.contains("IP 198.51.100.1 > 198.51.100.2: ICMP echo request"), "masqueraded echo: {uplink}");
}

/// `run --versions`: one file under several layouts, a verdict table with a
/// column per version. A 127.0.0.1-published port reached from the LAN
/// flips between 20.10 (reachable) and 28 (blocked in raw PREROUTING); a
/// version the file cannot be expressed in is a column that says why.
#[test]
fn run_versions_prints_a_verdict_table_per_file() {
    common::require_root();
    let dir = tempfile::tempdir().unwrap();
    let path = common::temp_scenario(
        &dir,
        "lan",
        r#"
[daemon]
firewall       = "docker20"
userland_proxy = false

[[container]]
name    = "web"
publish = ["127.0.0.1:8080:80"]
listen  = ["tcp:80"]

[[expect]]
from   = "external"
to     = "127.0.0.1"
via    = "host"
probe  = "tcp:8080"
result = "reachable"
name   = "loopback port from the LAN"

[[expect]]
from   = "host"
to     = "127.0.0.1"
probe  = "tcp:8080"
result = "reachable"
name   = "loopback port from the host"
"#,
    );
    let p = path.to_str().unwrap();
    let out = bridgelab(&["run", "--versions", "docker1,docker20,docker28", p]);
    let stdout = text(&out.stdout);
    // docker1 has no --userland-proxy: bad input for that column.
    assert_eq!(out.status.code(), Some(2), "{stdout}{}", text(&out.stderr));
    let table: Vec<&str> = stdout.lines().skip_while(|l| !l.starts_with(p)).collect();
    let cells = |row: &str| -> Vec<String> {
        let line = table.iter().find(|l| l.trim_start().starts_with(row)).unwrap_or_else(|| panic!("{row}:\n{stdout}"));
        line[line.find(row).unwrap() + row.len()..]
            .split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(String::from)
            .collect()
    };
    assert_eq!(cells(p), ["docker1", "docker20", "docker28"], "{stdout}");
    assert_eq!(cells("loopback port from the LAN"), ["n/a", "reachable", "blocked *"], "{stdout}");
    assert_eq!(cells("loopback port from the host"), ["n/a", "reachable", "reachable"], "{stdout}");
    assert_eq!(cells("verdict"), ["FAIL", "PASS", "FAIL"], "{stdout}");
    assert!(stdout.contains("docker1: load: ") && stdout.contains("(under docker1)"), "{stdout}");
    // Each version that could run was its own lab, reported under NAME@VERSION.
    assert!(stdout.contains("PASS  lan@docker20") && stdout.contains("FAIL  lan@docker28"), "{stdout}");
    // Without the docker1 column, only the verdicts decide: 1 for 28's.
    let out = bridgelab(&["run", "--versions", "docker20,docker28", p]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let out = bridgelab(&["run", "--versions", "docker20", "--format", "json", p]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json[0]["scenario"], "lan@docker20");
}
