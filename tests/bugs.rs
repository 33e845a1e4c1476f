//! The shape of the bug library, `scenarios/bugs/` (no root: the files are
//! only loaded; tests/scenarios.rs builds and probes them, tests/diff.rs
//! diffs them against the real daemons).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use bridgelab::scenario::Scenario;

const BUGS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/bugs");

fn bug_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(BUGS)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

fn file_name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

/// Whether `text` holds `moby/moby#` followed by a number.
fn cites_moby(text: &str) -> bool {
    // libnetwork's tracker held Docker's networking issues until 2021.
    ["moby/moby#", "moby/libnetwork#"].iter().any(|repo| {
        text.match_indices(repo).any(|(i, m)| text[i + m.len()..].starts_with(|c: char| c.is_ascii_digit()))
    })
}

/// The `dbNN-….toml` names in the README table's rows (lines `| DB-…`).
fn readme_files() -> BTreeSet<String> {
    let readme = std::fs::read_to_string(format!("{BUGS}/README.md")).unwrap();
    let mut names = BTreeSet::new();
    for line in readme.lines().filter(|l| l.starts_with("| DB-")) {
        for word in line.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '.')) {
            if word.starts_with("db") && word.ends_with(".toml") {
                names.insert(word.to_string());
            }
        }
    }
    names
}

#[test]
fn every_bug_file_runs_under_versions_shows_a_change_or_says_it_holds_everywhere_and_cites_moby() {
    let files = bug_files();
    assert!(!files.is_empty(), "no bug files in {BUGS}");
    for path in &files {
        let name = file_name(path);
        let s = Scenario::load(path).unwrap_or_else(|e| panic!("{e}"));
        let spec = &s.spec;
        let versions = spec.versions.as_ref().unwrap_or_else(|| panic!("{name}: no top-level `versions`"));
        assert!(!versions.get_ref().is_empty(), "{name}: `versions` is empty");
        let about = spec.about.as_deref().unwrap_or_else(|| panic!("{name}: no `about`"));
        assert!(cites_moby(about), "{name}: the `about` cites no moby/moby#NNNN (or moby/libnetwork#NNNN)");
        let changes = spec.expects.iter().chain(spec.steps.iter().flat_map(|st| st.expects.iter())).any(|e| {
            e.result_by_version.as_ref().is_some_and(|by| {
                let results: BTreeSet<String> = by.get_ref().values().map(|v| format!("{:?}", v.get_ref())).collect();
                results.len() > 1
            })
        });
        let everywhere = about.to_lowercase().contains("every version");
        // A bug of releases no layout imitates (25.0.x, 27.3, 1.12) shows
        // the fixed behaviour only, and says so.
        let fixed_only = about.contains("no layout for the affected releases");
        // A bug still open in the one layout it concerns (DB-19: 29's
        // nftables backend) has no fix to show; its `about` says so.
        let open_in_one = versions.get_ref().len() == 1 && about.contains("open") && about.contains("no fix");
        assert!(
            changes || everywhere || open_in_one || fixed_only,
            "{name}: no expectation whose result differs between versions, and the `about` says neither that it holds in every version nor that it is open in the one layout it concerns (no fix), nor that there is no layout for the affected releases"
        );
    }
}

#[test]
fn bug_file_names_are_dbnn_and_their_stems_are_unique_across_scenarios() {
    let shipped: BTreeSet<String> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    for path in bug_files() {
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        let digits = stem.strip_prefix("db").map(|r| r.split('-').next().unwrap_or(""));
        assert!(
            digits.is_some_and(|d| d.len() == 2 && d.chars().all(|c| c.is_ascii_digit())) && stem.len() > 5,
            "{stem}: bug files are named dbNN-short-name.toml"
        );
        // Snapshots are named by stem: two files with one stem would share them.
        assert!(!shipped.contains(&stem), "{stem} is also a file in scenarios/");
    }
}

#[test]
fn the_readme_table_lists_every_bug_file_and_only_files_that_exist() {
    let on_disk: BTreeSet<String> = bug_files().iter().map(|p| file_name(p)).collect();
    let listed = readme_files();
    let missing: Vec<_> = on_disk.difference(&listed).collect();
    assert!(missing.is_empty(), "scenarios/bugs/README.md's table does not list {missing:?}");
    let phantom: Vec<_> = listed.difference(&on_disk).collect();
    assert!(phantom.is_empty(), "scenarios/bugs/README.md's table lists files that do not exist: {phantom:?}");
}

/// Issue 10 asks for at least 25 bugs. The library is written in two parts
/// (DB-01 to DB-14, DB-15 on); this holds once both are merged.
#[test]
fn the_library_has_at_least_25_bugs() {
    let n = bug_files().len();
    assert!(n >= 25, "scenarios/bugs/ has {n} bug files; issue 10 asks for at least 25");
}
