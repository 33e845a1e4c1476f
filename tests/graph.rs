//! Pictures: `bridgelab graph` (dot text from the plan, SVG through
//! Graphviz), `run --graph` (arrows as a run saw them) and `run --matrix
//! --html` (the truth table as a page).

mod common;

use std::path::Path;
use std::process::{Command, Output};

use bridgelab::picture::{self, Title};

fn bridgelab(args: &[&str]) -> Output {
    Command::new(common::bridgelab_bin()).args(args).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The dot `bridgelab graph FILE` writes for a file without `versions`.
fn dot_of(path: &Path) -> String {
    let lab = bridgelab::Lab::load(path).unwrap();
    let s = lab.scenario();
    let title = Title { heading: s.name.clone(), detail: None, macs: false };
    picture::topology(s, lab.plan(), &picture::arrows_expected(&s.spec.expects), &title)
}

/// Renders with Graphviz and returns its warnings; Graphviz must be
/// installed (.ci/run installs it), as the SVG route needs it.
fn render(dot: &str) -> String {
    use std::io::Write;
    let mut child = Command::new("dot")
        .arg("-Tsvg")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("Graphviz's dot is installed (apt-get install graphviz)");
    child.stdin.take().unwrap().write_all(dot.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "dot -Tsvg refused:\n{}\n{dot}", text(&out.stderr));
    assert!(text(&out.stdout).contains("</svg>"));
    text(&out.stderr)
}

/// The picture of the plan, byte for byte: two networks and an internal
/// one, a container on two of them, a `@network` target.
#[test]
fn user_networks_graph_is_stable() {
    let dot = dot_of(&common::scenario_path("docker20-user-networks.toml"));
    insta::assert_snapshot!("graph-docker20-user-networks", dot);
}

/// `[[host.bridge]]` not Docker's, `[[machine]]`s on it.
#[test]
fn foreign_bridge_guests_graph_is_stable() {
    let dot = dot_of(&common::scenario_path("docker20-foreign-bridge-guests.toml"));
    insta::assert_snapshot!("graph-docker20-foreign-bridge-guests", dot);
}

/// A published port (host address:port → container port), an address as
/// target, `via`, and a version of a file with `versions`.
#[test]
fn published_port_graph_is_stable() {
    let out = bridgelab(&[
        "graph",
        "--version",
        "docker28",
        common::scenario_path("bugs/db01-localhost-port-from-lan.toml").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let dot = text(&out.stdout);
    assert!(dot.contains("\"host\" -> \"c:web\" [constraint=false, style=dotted"), "{dot}");
    insta::assert_snapshot!("graph-db01-docker28", dot);
}

/// Graphviz reads every shipped scenario's picture, of every run and every
/// step, without a warning.
#[test]
fn graphviz_accepts_every_shipped_scenario() {
    let mut drawn = 0;
    for path in common::shipped_scenarios() {
        for lab in bridgelab::Lab::load_all(&path).unwrap() {
            let s = lab.scenario();
            let title = Title { heading: s.name.clone(), detail: Some("start".into()), macs: true };
            let mut dots = vec![picture::topology(s, lab.plan(), &picture::arrows_expected(&s.spec.expects), &title)];
            for (step, spec) in lab.plan().steps.iter().zip(&s.spec.steps) {
                dots.push(picture::topology(s, &step.after, &picture::arrows_expected(&spec.expects), &title));
            }
            for dot in dots {
                let warnings = render(&dot);
                assert!(warnings.is_empty(), "{}: {warnings}", path.display());
                drawn += 1;
            }
        }
    }
    assert!(drawn > 100, "only {drawn} pictures");
}

/// Names with dot's syntax in them stay text: quotes and backslashes are
/// escaped, so Graphviz still reads the graph and shows them.
#[test]
fn names_with_quotes_and_backslashes_stay_text() {
    let dir = tempfile::tempdir().unwrap();
    let path = common::temp_scenario(
        &dir,
        "odd",
        "[[container]]\nname = \"aa\"\n[[container]]\nname = \"bb\"\n[[expect]]\nfrom = \"aa\"\nto = \"bb\"\nprobe = \"icmp\"\nresult = \"reachable\"\nname = 'say \"hi\" \\N } ]; x'\n",
    );
    let dot = dot_of(&path);
    assert!(dot.contains(r#"tooltip="say \"hi\" \\N } ]; x""#), "{dot}");
    let svg = render(&dot);
    assert!(svg.is_empty(), "{svg}");
}

/// -o FILE.svg writes SVG; a file with `versions` writes one per version,
/// named after it; a step that is not there is a clear error.
#[test]
fn graph_writes_svg_per_version_and_checks_its_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let db01 = common::scenario_path("bugs/db01-localhost-port-from-lan.toml");
    let out_svg = dir.path().join("db01.svg");
    let out = bridgelab(&["graph", db01.to_str().unwrap(), "-o", out_svg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    for v in ["docker1", "docker20", "docker28", "docker29"] {
        let svg = std::fs::read_to_string(dir.path().join(format!("db01@{v}.svg"))).unwrap();
        // The heading names the run: `NAME@VERSION (VERSION)`.
        assert!(svg.contains("<svg") && svg.contains(&format!("@{v} ({v})")), "{v}");
    }
    assert!(text(&out.stderr).contains("one graph per version (docker1, docker20, docker28, docker29)"));

    // SVG on stdout is one picture.
    let out = bridgelab(&["graph", "--format", "svg", db01.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("give --version or -o FILE"), "{}", text(&out.stderr));

    let steps = common::scenario_path("docker20-user-networks.toml");
    let out = bridgelab(&["graph", "--step", "2", steps.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let dot = text(&out.stdout);
    assert!(dot.contains("after step 2: connect db vault"), "{dot}");
    // After the step db is on vault too, and reaches secret.
    assert!(dot.contains("\"br:br-3883d529664a\" -> \"c:db\""), "{dot}");
    let out = bridgelab(&["graph", "--step", "3", steps.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("has 2 step(s)"), "{}", text(&out.stderr));
}

/// Without Graphviz, SVG is exit 3 with a message that says how to get it;
/// dot text needs nothing.
#[test]
fn svg_without_graphviz_says_how_to_install_it() {
    let empty = tempfile::tempdir().unwrap();
    let path = common::scenario_path("default.toml");
    let run = |format: &str| {
        Command::new(common::bridgelab_bin())
            .args(["graph", "--format", format, path.to_str().unwrap()])
            .env("PATH", empty.path())
            .output()
            .unwrap()
    };
    let out = run("svg");
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out.stderr).contains("apt-get install graphviz"), "{}", text(&out.stderr));
    let out = run("dot");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("digraph \"default\" {"));
}

/// The README's picture is the one this bridgelab draws: docs/topology.dot
/// is compared (SVG differs between Graphviz versions); docs/topology.svg
/// is its rendering. Regenerate both with the commands in the README.
#[test]
fn the_readme_picture_is_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let committed = std::fs::read_to_string(root.join("docs/topology.dot")).unwrap();
    let out = bridgelab(&["graph", common::scenario_path("docker20-user-networks.toml").to_str().unwrap()]);
    assert_eq!(
        text(&out.stdout),
        committed,
        "docs/topology.dot is stale: run the README's `bridgelab graph` commands under Pictures"
    );
    let svg = std::fs::read_to_string(root.join("docs/topology.svg")).unwrap();
    assert!(svg.contains("docker20&#45;user&#45;networks") || svg.contains("docker20-user-networks"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    assert!(readme.contains("](docs/topology.svg)"));
}

const WRONG: &str = "[daemon]\nicc = false\n[[container]]\nname = \"aa\"\n[[container]]\nname = \"bb\"\n\
    [[expect]]\nfrom = \"bb\"\nto = \"aa\"\nprobe = \"icmp\"\nresult = \"reachable\"\nname = \"hoped for\"\n\
    [[expect]]\nfrom = \"bb\"\nto = \"external\"\nprobe = \"icmp\"\nresult = \"reachable\"\n";

/// `run --graph DIR`: the arrows are what the run saw, the failed one bold
/// and marked ✗ with what was wanted, the one that held drawn plain.
#[test]
fn run_graph_marks_the_failed_expectation() {
    common::require_root();
    let dir = tempfile::tempdir().unwrap();
    let path = common::temp_scenario(&dir, "hoped", WRONG);
    let pics = dir.path().join("pics");
    let out = bridgelab(&["run", "--graph", pics.to_str().unwrap(), path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}{}", text(&out.stdout), text(&out.stderr));
    let dot = std::fs::read_to_string(pics.join("hoped.dot")).unwrap();
    let line = |to: &str| dot.lines().find(|l| l.starts_with(&format!("  \"c:bb\" -> \"{to}\""))).unwrap().to_string();
    let failed = line("c:aa");
    assert!(failed.contains("✗ wanted reachable, saw blocked"), "{failed}");
    assert!(failed.contains("style=\"dashed,bold\", penwidth=2.5"), "{failed}");
    assert!(failed.contains("#d62728"), "coloured as seen: blocked\n{failed}");
    let held = line("external");
    assert!(held.contains("#2e8b57") && !held.contains('✗') && !held.contains("bold"), "{held}");
    assert!(dot.contains("arrows as seen"), "{dot}");
    let svg = std::fs::read_to_string(pics.join("hoped.svg")).unwrap();
    assert!(svg.contains("✗ wanted reachable, saw blocked"));
}

/// `run --matrix --html FILE`: a well-formed page with a cell per ordered
/// pair, coloured by verdict, the contradicted one marked; the text table
/// is still printed.
#[test]
fn run_matrix_html_writes_the_truth_table() {
    common::require_root();
    let dir = tempfile::tempdir().unwrap();
    let path = common::temp_scenario(&dir, "hoped", WRONG);
    let page = dir.path().join("matrix.html");
    let out = bridgelab(&["run", "--matrix", "icmp", "--html", page.to_str().unwrap(), path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).contains("matrix icmp: R reachable"), "{}", text(&out.stdout));
    let html = std::fs::read_to_string(&page).unwrap();
    let opt = roxmltree::ParsingOptions { allow_dtd: true, ..Default::default() };
    let doc = roxmltree::Document::parse_with_options(&html, opt).expect("balanced tags, escaped text");
    let table = doc.descendants().find(|n| n.has_tag_name("table")).unwrap();
    assert_eq!(table.attribute("data-probe"), Some("icmp"));
    let rows: Vec<_> = table.children().filter(|n| n.has_tag_name("tr")).collect();
    let header: Vec<&str> = rows[0].children().filter_map(|n| n.text()).collect();
    assert_eq!(header, ["from \\ to", "host", "external", "aa", "bb"]);
    // Row bb: to aa blocked, contradicting the expectation; to external reachable.
    let bb = rows.iter().find(|r| r.first_child().and_then(|c| c.text()) == Some("bb")).unwrap();
    let cells: Vec<_> = bb.children().filter(|n| n.has_tag_name("td")).collect();
    assert_eq!(cells.len(), 4);
    assert_eq!(cells[2].attribute("class"), Some("blocked differs"));
    assert_eq!(cells[2].text(), Some("*x"));
    assert!(cells[2].attribute("title").unwrap().contains("expected reachable"));
    assert_eq!(cells[1].attribute("class"), Some("reachable"));
    assert_eq!(cells[3].attribute("class"), Some("self"));
    let all_cells = doc.descendants().filter(|n| n.has_tag_name("td")).count();
    assert_eq!(all_cells, 16, "4 nodes: a cell per ordered pair and the diagonal");
}
