//! What users get around the harness: the scenario format's JSON Schema
//! (committed, generated, and true to every shipped scenario), shell
//! completions, and a progress display that never leaks into captured output.
//! None of it needs root.

mod common;

use std::path::Path;
use std::process::Command;

use serde_json::Value;

const COMMITTED_SCHEMA: &str = "docs/scenario.schema.json";

/// `cargo install` below builds into this build's target directory and so
/// may replace target/debug/bridgelab (with the same program built without
/// dev-dependencies' features): the other tests here run it under a read
/// lock, the install under the write lock.
static BINARY: std::sync::RwLock<()> = std::sync::RwLock::new(());

fn bridgelab() -> (std::sync::RwLockReadGuard<'static, ()>, Command) {
    (BINARY.read().unwrap_or_else(|e| e.into_inner()), Command::new(common::bridgelab_bin()))
}

fn committed_schema() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(COMMITTED_SCHEMA);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn validator() -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(&bridgelab::scenario::scenario_schema()).unwrap();
    jsonschema::draft202012::options().should_validate_formats(true).build(&schema).unwrap()
}

/// A TOML scenario as the JSON an editor's schema check sees.
fn as_json(toml_text: &str) -> Value {
    let v: toml::Value = toml::from_str(toml_text).unwrap_or_else(|e| panic!("{e}\n{toml_text}"));
    serde_json::to_value(v).unwrap()
}

fn errors(v: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    v.iter_errors(instance).map(|e| format!("{} at {}", e, e.instance_path())).collect()
}

#[test]
fn the_committed_schema_is_the_generated_one() {
    let generated = bridgelab::scenario::scenario_schema();
    assert!(
        committed_schema() == generated,
        "{COMMITTED_SCHEMA} is stale: run `cargo run -- schema > {COMMITTED_SCHEMA}`"
    );
    let (_bin, mut cmd) = bridgelab();
    let out = cmd.arg("schema").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8(out.stdout).unwrap(), generated, "`bridgelab schema` prints it");
}

#[test]
fn every_shipped_scenario_validates_against_the_schema() {
    let v = validator();
    let files = common::shipped_scenarios();
    assert!(files.len() > 50, "the shipped scenarios were found: {files:?}");
    assert!(files.iter().any(|f| f.parent().unwrap().ends_with("bugs")), "the bug library too");
    for f in &files {
        let json = as_json(&std::fs::read_to_string(f).unwrap());
        let errs = errors(&v, &json);
        assert!(errs.is_empty(), "{}: {errs:#?}", f.display());
    }
}

/// Each invalid file is one mistake; the loader refuses it too, so the
/// schema says in the editor what `bridgelab check` would say later.
#[test]
fn the_schema_rejects_unknown_keys_wrong_types_and_unknown_names() {
    let v = validator();
    let good = "name = \"x\"\n[[container]]\nname = \"web\"\npublish = [\"8080:80\"]\n";
    assert!(errors(&v, &as_json(good)).is_empty());
    let cases = [
        ("an unknown top-level key", "nmae = \"x\"\n", ""),
        ("an unknown key in a table", "[daemon]\nicc = false\nfirwall = \"docker20\"\n", "/daemon"),
        ("an unknown key in an array of tables", "[[container]]\nname = \"web\"\nport = 80\n", "/container/0"),
        ("a wrong type", "[daemon]\nicc = \"no\"\n", "/daemon/icc"),
        ("a table where a list goes", "[[container]]\nname = \"web\"\npublish = \"8080:80\"\n", "/container/0/publish"),
        ("an unknown layout", "[daemon]\nfirewall = \"docker19\"\n", "/daemon/firewall"),
        (
            "an unknown verdict",
            "[[expect]]\nfrom = \"a\"\nto = \"b\"\nprobe = \"icmp\"\nresult = \"ok\"\n",
            "/expect/0/result",
        ),
        ("a probe of no kind", "[[expect]]\nfrom = \"a\"\nto = \"b\"\nprobe = \"ping\"\n", "/expect/0/probe"),
        ("not an address", "[daemon]\nip = \"1.2.3\"\n", "/daemon/ip"),
        ("a missing required key", "[[container]]\npublish = [\"80\"]\n", "/container/0"),
        ("an unknown step", "[[step]]\ndo = \"explode\"\n", "/step/0/do"),
    ];
    for (what, text, at) in cases {
        let json = as_json(text);
        let errs: Vec<_> = v.iter_errors(&json).map(|e| e.instance_path().to_string()).collect();
        assert!(!errs.is_empty(), "{what} is rejected:\n{text}");
        assert!(errs.iter().any(|p| p == at), "{what}: the error is at {at}, not {errs:?}");
        // And bridgelab's loader agrees.
        let dir = tempfile::tempdir().unwrap();
        let f = common::temp_scenario(&dir, "bad", text);
        let (_bin, mut cmd) = bridgelab();
        let out = cmd.arg("check").arg(&f).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{what}: bridgelab check refuses it too");
    }
}

#[test]
fn bash_completions_name_every_verb_and_parse() {
    let (_bin, mut cmd) = bridgelab();
    let out = cmd.args(["completions", "bash"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let script = String::from_utf8(out.stdout).unwrap();
    let help = Command::new(common::bridgelab_bin()).arg("--help").output().unwrap();
    drop(_bin);
    let help = String::from_utf8(help.stdout).unwrap();
    // The verbs as --help lists them, so a new verb is checked without
    // touching this test.
    let verbs: Vec<&str> = help
        .split("Commands:")
        .nth(1)
        .unwrap()
        .lines()
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|v| *v != "help")
        .collect();
    for v in ["run", "check", "diff", "completions", "schema"] {
        assert!(verbs.contains(&v), "{v} in {verbs:?}");
    }
    for v in &verbs {
        // clap_complete's bash script dispatches on `bridgelab__subcmd__VERB`.
        let case = format!("cmd=\"bridgelab__subcmd__{}\"", v.replace('-', "__"));
        assert!(script.contains(&case), "{v} is completed: no {case}");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bridgelab.bash");
    std::fs::write(&path, &script).unwrap();
    let bash = Command::new("bash").arg("-n").arg(&path).output().unwrap();
    assert!(bash.status.success(), "bash -n: {}", String::from_utf8_lossy(&bash.stderr));
}

#[test]
fn completions_exist_for_the_other_shells() {
    let _bin = bridgelab().0;
    for (shell, mark) in [("zsh", "#compdef bridgelab"), ("fish", "complete -c bridgelab"), ("elvish", "bridgelab")] {
        let out = Command::new(common::bridgelab_bin()).args(["completions", shell]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{shell}");
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(script.contains(mark), "{shell}: {script}");
        assert!(script.contains("schema"), "{shell} completes the verbs");
    }
    let out = Command::new(common::bridgelab_bin()).args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "an unknown shell is a usage error");
}

/// Two scenarios, one that does not load: on a terminal (a pty from
/// util-linux's `script`) the bar shows the count and what runs, and is
/// cleared before the report; with stderr captured, as in CI, none of it
/// appears.
#[test]
fn progress_shows_on_a_terminal_and_never_in_captured_output() {
    common::require_root();
    let dir = tempfile::tempdir().unwrap();
    let bad = common::temp_scenario(&dir, "bad", "[daemon]\nbogus = true\n");
    let good = common::scenario_path("default.toml");

    let _bin = bridgelab().0;
    let out = Command::new(common::bridgelab_bin()).arg("run").args([&good, &bad]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("unknown field `bogus`"), "{err}");
    for mark in ["\r", "\x1b[", "running", "1/2", "passed"] {
        assert!(!err.contains(mark), "no progress in captured stderr ({mark:?}): {err:?}");
    }
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.starts_with("PASS  default"), "{stdout}");

    let cmd = format!("{} run {} {}", common::bridgelab_bin(), good.display(), bad.display());
    let tty = Command::new("script").args(["-qec", &cmd, "/dev/null"]).env("TERM", "xterm").output().unwrap();
    let screen = String::from_utf8_lossy(&tty.stdout).into_owned();
    assert_eq!(tty.status.code(), Some(2), "{screen}");
    assert!(screen.contains("0/2"), "the bar with the count: {screen:?}");
    assert!(screen.contains("running default"), "the scenario it runs: {screen:?}");
    assert!(screen.contains("1 passed, 0 failed; running"), "the counts so far: {screen:?}");
    let report = screen.find("PASS  default").or_else(|| screen.find("PASS\x1b[0m  default")).expect("the report");
    let (during, after) = screen.split_at(report);
    assert!(during.ends_with("\r\x1b[2K") || during.ends_with("\x1b[2K\x1b[32m"), "the bar is cleared: {during:?}");
    assert!(!after.contains("running"), "no bar after the report: {after:?}");
}

/// `cargo install --path .` gives a working `bridgelab`: the package's
/// metadata, binary target and lock file are right. It builds into this
/// build's target directory and needs no network. Without dev-dependencies
/// some 50 crates get other features than `cargo test`'s and are rebuilt
/// once: less than the 70 s a fresh debug install takes on this 2-core
/// machine, and a few seconds once they are there.
#[test]
fn cargo_install_from_the_checkout_works() {
    let _bin = BINARY.write().unwrap_or_else(|e| e.into_inner());
    let root = tempfile::tempdir().unwrap();
    // target/debug/bridgelab: two levels under the target directory.
    let target = Path::new(common::bridgelab_bin()).parent().unwrap().parent().unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["install", "--debug", "--locked", "--offline", "--path", env!("CARGO_MANIFEST_DIR"), "--root"])
        .arg(root.path())
        .env("CARGO_TARGET_DIR", target)
        .output()
        .unwrap();
    assert!(out.status.success(), "cargo install: {}", String::from_utf8_lossy(&out.stderr));
    let installed = root.path().join("bin/bridgelab");
    let v = Command::new(&installed).arg("--version").output().unwrap();
    assert_eq!(String::from_utf8(v.stdout).unwrap(), format!("bridgelab {}\n", env!("CARGO_PKG_VERSION")));
    // And it is the whole tool, not a stub: it checks a shipped scenario.
    let check = Command::new(&installed).arg("check").arg(common::scenario_path("default.toml")).output().unwrap();
    assert_eq!(check.status.code(), Some(0), "{}", String::from_utf8_lossy(&check.stderr));
}
