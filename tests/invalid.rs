//! `tests/invalid/`: one scenario per kind of mistake. Each is refused by
//! `check`, `plan` and `run` with exit 2 and its exact `path:line:col:
//! message` (snapshotted), and `run` creates nothing for any of them.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rstest::rstest;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The file's path relative to the crate, as a user would type it.
fn relative(path: &Path) -> String {
    path.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap().to_string_lossy().into_owned()
}

fn bridgelab(args: &[&str]) -> Output {
    Command::new(common::bridgelab_bin()).current_dir(env!("CARGO_MANIFEST_DIR")).args(args).output().unwrap()
}

/// What the file says it gets wrong: its first comment line.
fn mistake(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let first = text.lines().next().unwrap_or_default();
    first.strip_prefix("# ").unwrap_or_else(|| panic!("{}: start with a `# what is wrong` line", path.display())).into()
}

#[rstest]
fn check_and_plan_refuse_it_with_its_location(#[files("tests/invalid/*.toml")] path: PathBuf) {
    let rel = relative(&path);
    let out = bridgelab(&["check", &rel]);
    assert_eq!(out.status.code(), Some(2), "{rel}: {}", text(&out.stderr));
    assert!(out.stdout.is_empty(), "{rel}: check printed {}", text(&out.stdout));
    let err = text(&out.stderr);
    for line in err.lines() {
        let rest = line.strip_prefix(&format!("{rel}:")).unwrap_or_else(|| panic!("{line:?} lacks the path"));
        let mut parts = rest.splitn(3, ':');
        let (l, c) = (parts.next().unwrap(), parts.next().unwrap());
        assert!(l.parse::<usize>().is_ok() && c.parse::<usize>().is_ok(), "{line:?} lacks line:col");
        assert!(line.chars().count() < 600, "an unbounded line: {line:?}");
    }
    let name = path.file_stem().unwrap().to_string_lossy().into_owned();
    insta::with_settings!({ description => mistake(&path), omit_expression => true }, {
        insta::assert_snapshot!(name, err);
    });
    // `plan` loads the same way and says the same.
    let plan = bridgelab(&["plan", &rel]);
    assert_eq!(plan.status.code(), Some(2));
    assert_eq!(text(&plan.stderr), err);
}

#[rstest]
fn run_creates_nothing_for_it(#[files("tests/invalid/*.toml")] path: PathBuf) {
    let rel = relative(&path);
    let check = text(&bridgelab(&["check", &rel]).stderr);
    let first = check.lines().next().unwrap();
    let (out, left) = common::run_in_fresh_run_dir(&["run", &rel]);
    assert_eq!(out.status.code(), Some(2), "{rel}: {}{}", text(&out.stdout), text(&out.stderr));
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(said.contains(first), "{rel}: run does not say {first:?}: {said}");
    assert!(left.is_empty(), "{rel}: run left {left:?}");
}

/// The isolation above can see: a lab kept by `up` in the fresh /run shows
/// its namespaces and record there, so an empty list means nothing was made.
#[test]
fn the_fresh_run_dir_sees_what_a_lab_makes() {
    let scenario = common::scenario_path("icc-off.toml");
    let script = "\"$BRIDGELAB\" up \"$1\" || exit 9\nlist_run\n\
                  for r in /run/bridgelab/runs/*.json; do id=$(basename \"$r\" .json); done\n\
                  \"$BRIDGELAB\" down \"$id\"";
    let (out, left) = common::in_fresh_run_dir(script, &[scenario.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}{}", text(&out.stdout), text(&out.stderr));
    let netns: Vec<&String> = left.iter().filter(|f| f.starts_with("/run/netns/bl-")).collect();
    let records: Vec<&String> = left.iter().filter(|f| f.starts_with("/run/bridgelab/runs/")).collect();
    assert_eq!((netns.len(), records.len()), (4, 1), "{left:?}");
}

/// The one mistake too big to commit: 1,024 containers on docker0, one more
/// port than a Linux bridge takes. Refused at the 1,024th, by every verb.
#[test]
fn the_1024th_container_on_a_bridge_is_refused_and_nothing_is_made() {
    common::require_root();
    let dir = tempfile::tempdir().unwrap();
    let mut toml = String::from("# 1,024 containers on docker0.\n");
    for i in 0..1024 {
        toml.push_str(&format!("[[container]]\nname = \"c{i}\"\n"));
    }
    let path = common::temp_scenario(&dir, "too-many-containers", &toml);
    let p = path.to_str().unwrap();
    let want = format!(
        "{p}:2049:8: Cannot start container c1023: bridge docker0 is full: a Linux bridge takes at most 1023 ports \
         (BR_MAX_PORTS), this would be port 1024\n"
    );
    for verb in ["check", "plan"] {
        let out = bridgelab(&[verb, p]);
        assert_eq!(out.status.code(), Some(2), "{verb}");
        assert_eq!(text(&out.stderr), want, "{verb}");
    }
    let (out, left) = common::run_in_fresh_run_dir(&["run", p]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains(want.trim_end()), "{}", text(&out.stderr));
    assert!(left.is_empty(), "run left {left:?}");
}
