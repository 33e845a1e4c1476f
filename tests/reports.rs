//! Reports never lose a verdict: a failing stage keeps what was found
//! before it and is a failed testcase itself, a file that does not load is
//! a failed suite, and JUnit testcases are unique and timed.

mod common;

use std::process::Output;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A JUnit testcase: name, time, failure message.
type Case = (String, f64, Option<String>);

/// The suites of a JUnit file: name, time, testcases. Parsing it proves it
/// is well-formed XML.
fn junit_suites(xml: &str) -> Vec<(String, f64, Vec<Case>)> {
    let doc = roxmltree::Document::parse(xml).unwrap_or_else(|e| panic!("invalid XML ({e}):\n{xml}"));
    let time = |n: roxmltree::Node| -> f64 {
        n.attribute("time").unwrap_or_else(|| panic!("no time on {n:?}")).parse().unwrap()
    };
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    root.children()
        .filter(|n| n.has_tag_name("testsuite"))
        .map(|s| {
            let cases: Vec<_> = s
                .children()
                .filter(|n| n.has_tag_name("testcase"))
                .map(|c| {
                    let failure = c.children().find(|n| n.has_tag_name("failure"));
                    (
                        c.attribute("name").unwrap().to_string(),
                        time(c),
                        failure.map(|f| f.attribute("message").unwrap_or_default().to_string()),
                    )
                })
                .collect();
            assert_eq!(s.attribute("tests").unwrap(), cases.len().to_string(), "{xml}");
            let failed = cases.iter().filter(|c| c.2.is_some()).count();
            assert_eq!(s.attribute("failures").unwrap(), failed.to_string(), "{xml}");
            (s.attribute("name").unwrap().to_string(), time(s), cases)
        })
        .collect()
}

/// `bridgelab run --junit FILE OPTIONS FILES`: its output and the JUnit.
fn run_with_reports(
    cmd: &mut std::process::Command,
    dir: &tempfile::TempDir,
    options: &[&str],
    files: &[&std::path::Path],
) -> Reports {
    let junit = dir.path().join("junit.xml");
    let text_out = cmd.args(["run", "--junit", junit.to_str().unwrap()]).args(options).args(files).output().unwrap();
    let xml = std::fs::read_to_string(&junit).unwrap();
    Reports { text: text_out, junit: xml }
}

struct Reports {
    text: Output,
    junit: String,
}

const STEP_FAILS: &str = r#"name = "stepfail"
[[container]]
name    = "web"
publish = ["8080:80"]
listen  = ["tcp:80"]

[[expect]]
from   = "external"
to     = "host"
probe  = "tcp:8080"
result = "reachable"

[[expect]]
from   = "web"
to     = "external"
probe  = "icmp"
result = "reachable"

[[step]]
do        = "stop"
container = "web"

[[step.expect]]
from   = "external"
to     = "host"
probe  = "tcp:8080"
result = "blocked"

[[step]]
do        = "start"
container = "web"
"#;

/// The first step's `iptables-restore` fails (a stand-in refuses to
/// replace a table), and the capture directory cannot be made. Both errors
/// are reported, each as a failed testcase, and the two verdicts found
/// before the step are kept, in text, JSON and JUnit.
#[test]
fn a_failing_step_keeps_the_verdicts_before_it_and_every_error() {
    common::require_root();
    let dir = tempfile::tempdir().unwrap();
    let path = common::temp_scenario(&dir, "stepfail", STEP_FAILS);
    let tools = common::FakeTools::new();
    tools.add(
        "iptables-restore",
        r#"case " $* " in *" --noflush "*) exec "$REAL" "$@";; esac
cat >/dev/null
echo "fake: refusing to replace a table" >&2
exit 1"#,
    );
    // A regular file where the capture directory should be.
    let not_a_dir = dir.path().join("file");
    std::fs::write(&not_a_dir, "").unwrap();
    let pcap = not_a_dir.join("caps");
    let pcap_arg = ["--pcap", pcap.to_str().unwrap()];

    let r = run_with_reports(&mut tools.bridgelab(), &dir, &pcap_arg, &[&path]);
    assert_eq!(r.text.status.code(), Some(3), "an apply error is an environment problem: {}", text(&r.text.stderr));
    let t = text(&r.text.stdout);
    assert!(t.contains("FAIL  stepfail"), "{t}");
    assert!(t.contains("2/2 expectations met"), "{t}");
    assert!(t.contains("ok   external -> host (198.51.100.1) tcp:8080"), "{t}");
    assert!(t.contains("ok   web -> external"), "{t}");
    assert!(t.contains("capture: create "), "{t}");
    assert!(
        t.contains("  after step 1: stop web:\n      failed: host: iptables-restore (tables "),
        "the step's error is under the step: {t}"
    );
    assert!(t.contains("fake: refusing to replace a table"), "{t}");
    assert!(!t.contains("step 2"), "no step runs after a failed one: {t}");

    let suites = junit_suites(&r.junit);
    assert_eq!(suites.len(), 1);
    let cases = &suites[0].2;
    let case = |name: &str| cases.iter().find(|c| c.0 == name).unwrap_or_else(|| panic!("no {name}: {cases:?}"));
    assert!(case("lab matches plan").2.is_none());
    assert!(case("external -> host tcp:8080").2.is_none());
    assert!(case("web -> external icmp").2.is_none());
    let step = case("step 1: stop web").2.as_deref().expect("the step failed");
    assert!(step.contains("fake: refusing to replace a table"), "{step}");
    assert!(case("capture").2.as_deref().unwrap().contains("create "), "{cases:?}");
    assert_eq!(cases.iter().filter(|c| c.2.is_some()).count(), 2, "{cases:?}");

    let out = tools.bridgelab().args(["run", "--format", "json"]).args(pcap_arg).arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = &v[0];
    assert_eq!(s["passed"], false);
    assert_eq!(s["expectations"].as_array().unwrap().len(), 2);
    assert!(s["expectations"].as_array().unwrap().iter().all(|e| e["passed"] == true));
    let errors = s["errors"].as_array().unwrap();
    let stages: Vec<&str> = errors.iter().map(|e| e["stage"].as_str().unwrap()).collect();
    assert_eq!(stages, ["capture", "step 1: stop web"], "{errors:?}");
    assert!(errors[1]["message"].as_str().unwrap().contains("fake: refusing"), "{errors:?}");
    assert_eq!(s["steps"].as_array().unwrap().len(), 1);
    assert!(common::namespaces_of(s["run_id"].as_str().unwrap()).is_empty());
}

/// One good file and one bad: exit 2, and the bad one is a failed suite in
/// every format.
#[test]
fn a_file_that_does_not_load_is_a_failed_suite_in_every_format() {
    common::require_root();
    let dir = tempfile::tempdir().unwrap();
    let bad = common::temp_scenario(&dir, "bad", "[daemon]\nbogus = true\n");
    let good = common::scenario_path("network-modes.toml");

    let r = run_with_reports(&mut std::process::Command::new(common::bridgelab_bin()), &dir, &[], &[&good, &bad]);
    assert_eq!(r.text.status.code(), Some(2), "{}", text(&r.text.stderr));
    let err = text(&r.text.stderr);
    assert!(err.contains(&format!("{}:2:1: unknown field `bogus`", bad.display())), "{err}");
    let t = text(&r.text.stdout);
    assert!(t.contains("PASS  network-modes"), "{t}");
    assert!(t.contains(&format!("FAIL  bad ({}): not loaded", bad.display())), "{t}");
    assert!(t.contains(&format!("      {}:2:1: unknown field `bogus`", bad.display())), "{t}");
    assert!(t.ends_with("1 passed, 1 failed\n"), "{t}");

    let suites = junit_suites(&r.junit);
    assert_eq!(suites.len(), 2, "{}", r.junit);
    let (name, _, cases) = &suites[1];
    assert_eq!(name, "bad");
    assert_eq!(cases.len(), 1);
    assert_eq!(cases[0].0, "load");
    assert!(cases[0].2.as_deref().unwrap().contains("unknown field `bogus`"), "{cases:?}");
    let doc = roxmltree::Document::parse(&r.junit).unwrap();
    let root = doc.root_element();
    assert_eq!(
        (root.attribute("name"), root.attribute("tests"), root.attribute("failures")),
        (Some("bridgelab"), Some("4"), Some("1")),
        "{}",
        r.junit
    );
    // What quick-junit adds: each suite's start, properties, and its text
    // report lines; the file that did not load has no run id.
    let suites: Vec<_> = root.children().filter(|n| n.has_tag_name("testsuite")).collect();
    let props = |s: &roxmltree::Node| -> Vec<(String, String)> {
        s.descendants()
            .filter(|n| n.has_tag_name("property"))
            .map(|p| (p.attribute("name").unwrap().to_string(), p.attribute("value").unwrap().to_string()))
            .collect()
    };
    let good_props = props(&suites[0]);
    let names: Vec<&str> = good_props.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(names, ["file", "run_id", "layout", "bridgelab.version"], "{}", r.junit);
    assert_eq!(good_props[0].1, good.display().to_string());
    assert_eq!(good_props[2].1, "docker1", "network-modes.toml has no firewall: Docker 1.6.2's layout");
    let bad_props: Vec<String> = props(&suites[1]).into_iter().map(|p| p.0).collect();
    assert_eq!(bad_props, ["file", "bridgelab.version"]);
    let started =
        |s: &roxmltree::Node| chrono::DateTime::parse_from_rfc3339(s.attribute("timestamp").unwrap()).unwrap();
    assert!(started(&suites[0]) <= started(&suites[1]), "the good file ran first");
    let out =
        |s: &roxmltree::Node| s.children().find(|n| n.has_tag_name("system-out")).unwrap().text().unwrap().to_string();
    assert!(out(&suites[0]).starts_with("PASS  network-modes"), "{}", out(&suites[0]));
    assert!(out(&suites[1]).contains("unknown field `bogus`"), "{}", out(&suites[1]));

    let out = std::process::Command::new(common::bridgelab_bin())
        .args(["run", "--format", "json"])
        .args([&good, &bad])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert_eq!(v[0]["passed"], true);
    assert_eq!(v[1]["scenario"], "bad");
    assert_eq!(v[1]["passed"], false);
    assert_eq!(v[1]["run_id"], serde_json::Value::Null);
    assert_eq!(v[1]["errors"][0]["stage"], "load");
    assert!(v[1]["errors"][0]["message"].as_str().unwrap().contains("2:1: unknown field `bogus`"));
}

/// The same probe at the top level, twice, and after each of two steps:
/// every testcase name differs, and every testcase and suite has a time
/// that was measured.
#[test]
fn junit_testcases_are_unique_and_timed() {
    common::require_root();
    let dir = tempfile::tempdir().unwrap();
    let probe = "from = \"bb\"\nto = \"aa\"\nprobe = \"icmp\"\nresult = \"reachable\"\n";
    let toml = format!(
        "name = \"same\"\n[[container]]\nname = \"aa\"\n[[container]]\nname = \"bb\"\n\
         [[expect]]\n{probe}[[expect]]\n{probe}\
         [[step]]\ndo = \"restart\"\ncontainer = \"aa\"\n[[step.expect]]\n{probe}\
         [[step]]\ndo = \"restart\"\ncontainer = \"aa\"\n[[step.expect]]\n{probe}"
    );
    let path = common::temp_scenario(&dir, "same", &toml);
    let r = run_with_reports(&mut std::process::Command::new(common::bridgelab_bin()), &dir, &[], &[&path]);
    assert_eq!(r.text.status.code(), Some(0), "{}{}", text(&r.text.stdout), text(&r.text.stderr));
    let suites = junit_suites(&r.junit);
    let (_, suite_time, cases) = &suites[0];
    let names: Vec<&str> = cases.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "lab matches plan",
            "bb -> aa icmp",
            "bb -> aa icmp (2)",
            "step 1: restart aa",
            "step 1: restart aa: bb -> aa icmp",
            "step 2: restart aa",
            "step 2: restart aa: bb -> aa icmp",
        ]
    );
    // Building a lab takes time, and so do the steps (a namespace rebuilt):
    // those were measured, not left out or zero.
    assert!(cases[0].1 > 0.0 && cases[3].1 > 0.0 && cases[5].1 > 0.0, "{cases:?}");
    let sum: f64 = cases.iter().map(|c| c.1).sum();
    assert!(*suite_time >= sum - 0.01, "the suite ({suite_time}) covers its cases ({sum})");
}
