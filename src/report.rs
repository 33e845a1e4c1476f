//! Verdicts for people (text, coloured on a terminal) and for CI (JSON,
//! JUnit XML: one testcase per expectation, the reason on failure).
//!
//! The last stage only renders: everything it shows was decided earlier and
//! is data ([`ScenarioReport`], [`ExpectOutcome`]), so the same run reads
//! the same as text, JSON and JUnit, and a failure always carries its
//! `path:line:col` and what was seen on the wire. [`Checked`] prints as
//! the text report does, for assertions in users' tests.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::apply::Mismatch;
use crate::probe::{Checked, ExpectOutcome};

/// The stage of a scenario that did not load.
pub const STAGE_LOAD: &str = "load";
/// The stage of building the lab (`up`).
pub const STAGE_BUILD: &str = "build";
/// Reading the built lab back: an error there fails this testcase.
pub const STAGE_MATCHES_PLAN: &str = "lab matches plan";
pub const STAGE_RESPONDERS: &str = "responders";
pub const STAGE_CAPTURE: &str = "capture";
pub const STAGE_MATRIX: &str = "matrix";
pub const STAGE_TEARDOWN: &str = "teardown";

/// Everything a run found out about one scenario file.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioReport {
    pub file: PathBuf,
    /// The scenario's name (the file's stem when it did not load).
    pub scenario: String,
    pub run_id: Option<String>,
    /// Where the built lab differs from its plan, before any step.
    pub mismatches: Vec<Mismatch>,
    /// Every verdict, steps included, even when a later stage failed.
    pub expectations: Vec<ExpectOutcome>,
    /// The `[[step]]`s carried out; a step that failed is the last.
    pub steps: Vec<StepReport>,
    /// Failures that are not verdicts, in the order they happened; each is
    /// a failed testcase of its own, or of the step it stopped.
    pub errors: Vec<RunError>,
    /// The all-pairs table, when asked for (`--matrix`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub matrix: Vec<crate::probe::matrix::Cell>,
    pub passed: bool,
    /// How long building the lab and reading it back took; `None` when
    /// no lab was built.
    pub build_ms: Option<u64>,
    /// The whole scenario, from loading the file to teardown.
    pub elapsed_ms: u64,
    /// When the scenario started (JUnit's `timestamp`).
    #[serde(skip)]
    pub started: SystemTime,
    /// The Docker layout the lab was built in (`docker20`...), a JUnit
    /// property; `None` when no lab was planned.
    #[serde(skip)]
    pub layout: Option<String>,
}

/// One `[[step]]` carried out.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    /// `step N: action`.
    pub label: String,
    /// Where the lab then differs from the step's plan.
    pub mismatches: Vec<Mismatch>,
    /// Performing the step and reading the lab back (not its probes).
    pub elapsed_ms: u64,
}

/// A failure that is not a verdict: the file did not load, or building,
/// reading back, a step, a capture or the teardown failed.
#[derive(Debug, Clone, Serialize)]
pub struct RunError {
    /// What was being done: one of the `STAGE_*` names, or a step's label.
    pub stage: String,
    pub message: String,
    pub elapsed_ms: u64,
}

/// Whole milliseconds of a duration, for reports.
pub fn millis(d: Duration) -> u64 {
    d.as_millis().try_into().unwrap_or(u64::MAX)
}

impl ScenarioReport {
    pub fn new(file: PathBuf, scenario: String) -> ScenarioReport {
        ScenarioReport {
            file,
            scenario,
            run_id: None,
            mismatches: vec![],
            expectations: vec![],
            steps: vec![],
            errors: vec![],
            matrix: vec![],
            passed: false,
            build_ms: None,
            elapsed_ms: 0,
            started: SystemTime::now(),
            layout: None,
        }
    }

    /// A file that did not load (or plan): a failed suite of its own.
    pub fn not_loaded(file: &Path, error: &crate::Error, elapsed: Duration) -> ScenarioReport {
        let name = file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let mut r = ScenarioReport::new(file.to_path_buf(), name);
        r.started = SystemTime::now().checked_sub(elapsed).unwrap_or(r.started);
        r.error(STAGE_LOAD, error, elapsed);
        r.elapsed_ms = millis(elapsed);
        r.conclude();
        r
    }

    /// Records a failure of `stage` that took `elapsed`.
    pub fn error(&mut self, stage: &str, message: impl ToString, elapsed: Duration) {
        self.errors.push(RunError {
            stage: stage.to_string(),
            message: message.to_string(),
            elapsed_ms: millis(elapsed),
        });
    }

    /// Takes in what checking the scenario found, its failed step included.
    pub fn add_checked(&mut self, checked: Checked) {
        self.expectations.extend(checked.expectations);
        let mut failed_after = None;
        for s in checked.steps {
            failed_after = Some(s.elapsed);
            self.steps.push(StepReport { label: s.label, mismatches: s.mismatches, elapsed_ms: millis(s.elapsed) });
        }
        if let Some(f) = checked.failure {
            self.error(&f.step, &f.error, failed_after.unwrap_or_default());
        }
    }

    pub fn not_loaded_error(&self) -> Option<&RunError> {
        self.errors.iter().find(|e| e.stage == STAGE_LOAD)
    }

    /// Sets `passed` from what was found.
    pub fn conclude(&mut self) {
        self.passed = self.errors.is_empty()
            && self.mismatches.is_empty()
            && self.steps.iter().all(|s| s.mismatches.is_empty())
            && self.expectations.iter().all(|e| e.passed);
    }
}

struct Paint(bool);

impl Paint {
    fn wrap(&self, code: &str, s: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    fn green(&self, s: &str) -> String {
        self.wrap("32", s)
    }
    fn red(&self, s: &str) -> String {
        self.wrap("31;1", s)
    }
    fn dim(&self, s: &str) -> String {
        self.wrap("2", s)
    }
}

/// Indents the lines after the first of a multi-line message.
fn indented(s: &str, indent: &str) -> String {
    s.lines().collect::<Vec<_>>().join(&format!("\n{indent}"))
}

/// An expectation's line, and for a failed one its location and why.
fn expectation(p: &Paint, e: &ExpectOutcome) -> String {
    let mut s = String::new();
    let mark = if e.passed { p.green("ok  ") } else { p.red("FAIL") };
    let target = e.target.map(|t| format!(" ({t})")).unwrap_or_default();
    let actual = e.actual.as_deref().unwrap_or("error");
    let via = e.via.as_ref().map(|v| format!(" via {v}")).unwrap_or_default();
    let mut line = match &e.flow {
        // Where the flow's datagrams should arrive, and where they did.
        Some(flow) => {
            let target = e.target.map(|t| format!(" to {t}")).unwrap_or_default();
            let at = e.received_by.first().map(|n| format!(", arriving at {n}")).unwrap_or_default();
            format!(
                "  {mark} flow {flow} ({}{target} {}) at {}: expected {}, got {actual}{at}",
                e.from, e.probe, e.to, e.expected
            )
        }
        None => {
            let mut l = format!(
                "  {mark} {} -> {}{target} {}{via}: expected {}, got {actual}",
                e.from, e.to, e.probe, e.expected
            );
            if !e.received_by.is_empty() {
                let _ = write!(l, ", received by {}", e.received_by.join(", "));
            }
            l
        }
    };
    if let Some(src) = &e.source_expected {
        let seen = e.source_seen.map(|s| s.to_string()).unwrap_or_else(|| "?".into());
        let _ = write!(line, ", source {src} (saw {seen})");
    }
    let _ = writeln!(s, "{line}");
    if !e.passed {
        let _ = writeln!(s, "         {} {}", p.dim(&e.location), e.detail);
    }
    s
}

/// What [`RunningLab::check`](crate::RunningLab::check) found, as `bridgelab
/// run` prints it: the verdicts, then after each step what differed from its
/// plan, the step's error and its verdicts.
impl std::fmt::Display for Checked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = Paint(false);
        let passed = self.expectations.iter().filter(|e| e.passed).count();
        writeln!(
            f,
            "{}: {passed}/{} expectations met",
            if self.passed() { "PASS" } else { "FAIL" },
            self.expectations.len()
        )?;
        for e in self.expectations.iter().filter(|e| e.step.is_none()) {
            f.write_str(&expectation(&p, e))?;
        }
        for st in &self.steps {
            writeln!(f, "  after {}:", st.label)?;
            if let Some(fail) = self.failure.as_ref().filter(|x| x.step == st.label) {
                writeln!(f, "      failed: {}", indented(&fail.error.to_string(), "      "))?;
            }
            for m in &st.mismatches {
                writeln!(f, "      differs from plan: {m}")?;
            }
            for e in self.expectations.iter().filter(|e| e.step.as_deref() == Some(&st.label)) {
                f.write_str(&expectation(&p, e))?;
            }
        }
        Ok(())
    }
}

/// The human report.
pub fn text(reports: &[ScenarioReport], colour: bool) -> String {
    let p = Paint(colour);
    let mut s = String::new();
    for r in reports {
        let head = if r.passed { p.green("PASS") } else { p.red("FAIL") };
        let passed = r.expectations.iter().filter(|e| e.passed).count();
        if let Some(e) = r.not_loaded_error() {
            let _ = writeln!(s, "{head}  {} ({}): not loaded", r.scenario, r.file.display());
            let _ = writeln!(s, "      {}", p.red(&indented(&e.message, "      ")));
            continue;
        }
        let _ = writeln!(
            s,
            "{head}  {} ({}): {passed}/{} expectations met",
            r.scenario,
            r.file.display(),
            r.expectations.len()
        );
        let in_step = |e: &RunError| r.steps.iter().any(|st| st.label == e.stage);
        for e in r.errors.iter().filter(|e| !in_step(e)) {
            let _ = writeln!(s, "      {}", p.red(&indented(&format!("{}: {}", e.stage, e.message), "      ")));
        }
        for m in &r.mismatches {
            let _ = writeln!(s, "      {} {m}", p.red("differs from plan:"));
        }
        let expectations = |s: &mut String, step: Option<&str>| {
            for e in r.expectations.iter().filter(|e| e.step.as_deref() == step) {
                s.push_str(&expectation(&p, e));
            }
        };
        expectations(&mut s, None);
        for st in &r.steps {
            let _ = writeln!(s, "  after {}:", st.label);
            for e in r.errors.iter().filter(|e| e.stage == st.label) {
                let _ = writeln!(s, "      {}", p.red(&indented(&format!("failed: {}", e.message), "      ")));
            }
            for m in &st.mismatches {
                let _ = writeln!(s, "      {} {m}", p.red("differs from plan:"));
            }
            expectations(&mut s, Some(&st.label));
        }
    }
    let failed = reports.iter().filter(|r| !r.passed).count();
    let _ = writeln!(s, "{} passed, {} failed", reports.len() - failed, failed);
    s
}

/// One JUnit testcase.
struct Case {
    name: String,
    /// The case of a stage (the lab against its plan, a step), which that
    /// stage's error fails; not an expectation, whatever its name.
    stage: bool,
    ms: u64,
    /// `message` attribute and body of a failure.
    failure: Option<(String, String)>,
}

impl Case {
    fn error(e: &RunError) -> Case {
        let first = e.message.lines().next().unwrap_or_default().to_string();
        Case { name: e.stage.clone(), stage: true, ms: e.elapsed_ms, failure: Some((first, e.message.clone())) }
    }

    /// Adds an error to the failure this case already has, if any.
    fn fail_with(&mut self, e: &RunError) {
        self.ms = self.ms.max(e.elapsed_ms);
        match &mut self.failure {
            None => self.failure = Some((e.message.lines().next().unwrap_or_default().to_string(), e.message.clone())),
            Some((_, body)) => {
                body.push('\n');
                body.push_str(&e.message);
            }
        }
    }
}

fn mismatch_failure(ms: &[Mismatch]) -> Option<(String, String)> {
    let msg: Vec<String> = ms.iter().map(|m| m.to_string()).collect();
    (!msg.is_empty()).then(|| (msg[0].clone(), msg.join("\n")))
}

/// The testcases of one scenario, in the order things happened: the lab
/// against its plan, the top-level expectations, then each step and its
/// expectations, then errors of their own (load, build, teardown...).
fn cases(r: &ScenarioReport) -> Vec<Case> {
    let mut cases = Vec::new();
    let expectation = |e: &ExpectOutcome| {
        let name = match &e.step {
            Some(label) => format!("{label}: {}", e.name),
            None => e.name.clone(),
        };
        let failure = (!e.passed).then(|| {
            let msg = format!("expected {}, got {}: {}", e.expected, e.actual.as_deref().unwrap_or("error"), e.detail);
            let body = format!("{}\n{msg}", e.location);
            (msg, body)
        });
        Case { name, stage: false, ms: e.elapsed_ms, failure }
    };
    if let Some(ms) = r.build_ms {
        cases.push(Case { name: STAGE_MATCHES_PLAN.into(), stage: true, ms, failure: mismatch_failure(&r.mismatches) });
    }
    cases.extend(r.expectations.iter().filter(|e| e.step.is_none()).map(expectation));
    for st in &r.steps {
        cases.push(Case {
            name: st.label.clone(),
            stage: true,
            ms: st.elapsed_ms,
            failure: mismatch_failure(&st.mismatches),
        });
        cases.extend(r.expectations.iter().filter(|e| e.step.as_deref() == Some(&st.label)).map(expectation));
    }
    // An error fails the case of its stage where there is one (a step, the
    // lab against its plan), and is a case of its own otherwise.
    let fixed = cases.len();
    for e in &r.errors {
        match cases[..fixed].iter_mut().find(|c| c.stage && c.name == e.stage) {
            Some(c) => c.fail_with(e),
            None => cases.push(Case::error(e)),
        }
    }
    // Names are unique within a suite: a repeated one gets ` (2)`, ` (3)`...
    let mut seen = std::collections::HashMap::<String, usize>::new();
    for c in &mut cases {
        let n = seen.entry(c.name.clone()).or_insert(0);
        *n += 1;
        if *n > 1 {
            c.name = format!("{} ({n})", c.name);
        }
    }
    cases
}

/// One file run under several Docker versions (`run --versions`), side by
/// side: a row per expectation, a column per version, each cell the verdict
/// seen there. `*` marks a verdict the file does not expect under that
/// version; a version the file cannot be expressed in, or whose lab failed,
/// says why under the table.
pub fn by_version(file: &Path, runs: &[(String, &ScenarioReport)]) -> String {
    // Rows in the order the first run that got that far met them.
    let mut rows: Vec<(Option<String>, String, String)> = Vec::new();
    for (_, r) in runs {
        for e in &r.expectations {
            if !rows.iter().any(|(st, loc, _)| *st == e.step && *loc == e.location) {
                let label = match &e.step {
                    Some(st) => format!("after {st}: {}", e.name),
                    None => e.name.clone(),
                };
                rows.push((e.step.clone(), e.location.clone(), label));
            }
        }
    }
    let cell = |r: &ScenarioReport, step: &Option<String>, loc: &str| -> String {
        if r.not_loaded_error().is_some() {
            return "n/a".into();
        }
        match r.expectations.iter().find(|e| e.step == *step && e.location == loc) {
            None => "-".into(),
            Some(e) => {
                let seen = e.actual.clone().unwrap_or_else(|| "error".into());
                if e.passed {
                    seen
                } else {
                    format!("{seen} *")
                }
            }
        }
    };
    let mut table: Vec<Vec<String>> = Vec::new();
    let mut head = vec![file.display().to_string()];
    head.extend(runs.iter().map(|(v, _)| v.clone()));
    table.push(head);
    for (step, loc, label) in &rows {
        let mut line = vec![format!("  {label}")];
        line.extend(runs.iter().map(|(_, r)| cell(r, step, loc)));
        table.push(line);
    }
    let mut verdicts = vec!["  verdict".to_string()];
    verdicts.extend(runs.iter().map(|(_, r)| if r.passed { "PASS".to_string() } else { "FAIL".to_string() }));
    table.push(verdicts);
    let widths: Vec<usize> =
        (0..table[0].len()).map(|c| table.iter().map(|l| l[c].chars().count()).max().unwrap_or(0)).collect();
    let mut s = String::new();
    for line in &table {
        let cells: Vec<String> = line.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        let _ = writeln!(s, "{}", cells.join("  ").trim_end());
    }
    if runs.iter().any(|(_, r)| r.expectations.iter().any(|e| !e.passed)) {
        let _ = writeln!(s, "  * not the result the file expects under that version");
    }
    for (v, r) in runs {
        for e in &r.errors {
            let first = e.message.lines().next().unwrap_or("");
            let _ = writeln!(s, "  {v}: {}: {first}", e.stage);
        }
    }
    s
}

/// JUnit XML (quick-junit, nextest's writer): a testsuite per scenario
/// file (a file that did not load is a failed suite), a testcase per
/// expectation, per step and per error, plus one for the lab matching its
/// plan. Every testcase and suite has its time, every suite its start
/// (`timestamp`), properties (file, run id, Docker layout, bridgelab's
/// version) and its text report lines as `system-out`.
pub fn junit(reports: &[ScenarioReport]) -> String {
    use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};
    let mut report = Report::new("bridgelab");
    report.set_time(Duration::from_millis(reports.iter().map(|r| r.elapsed_ms).sum()));
    if let Some(first) = reports.iter().map(|r| r.started).min() {
        report.set_timestamp(chrono::DateTime::<chrono::Utc>::from(first).fixed_offset());
    }
    for r in reports {
        let mut suite = TestSuite::new(r.scenario.as_str());
        suite.set_time(Duration::from_millis(r.elapsed_ms));
        suite.set_timestamp(chrono::DateTime::<chrono::Utc>::from(r.started).fixed_offset());
        suite.extra.insert("file".into(), r.file.display().to_string().into());
        suite.add_property(Property::new("file", r.file.display().to_string()));
        if let Some(id) = &r.run_id {
            suite.add_property(Property::new("run_id", id));
        }
        if let Some(layout) = &r.layout {
            suite.add_property(Property::new("layout", layout));
        }
        suite.add_property(Property::new("bridgelab.version", env!("CARGO_PKG_VERSION")));
        // The scenario's lines of the text report, less the summary line.
        let lines = text(std::slice::from_ref(r), false);
        let lines = lines.trim_end().rsplit_once('\n').map(|(body, _)| body).unwrap_or("");
        suite.set_system_out(lines);
        for c in cases(r) {
            let status = match c.failure {
                None => TestCaseStatus::success(),
                Some((message, body)) => {
                    let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    st.set_message(message).set_description(body);
                    st
                }
            };
            let mut case = TestCase::new(c.name, status);
            case.set_classname(r.scenario.as_str()).set_time(Duration::from_millis(c.ms));
            suite.add_test_case(case);
        }
        report.add_test_suite(suite);
    }
    // Only a writer's I/O error can fail serializing, and a Vec has none.
    report.to_string().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn junit_stays_valid_xml_whatever_the_messages_hold() {
        let e = crate::Error::Environment("a <tool> & \"quotes\"\u{1}\u{1b}[31m said\nno".into());
        let r = ScenarioReport::not_loaded(Path::new("odd.toml"), &e, Duration::from_millis(3));
        let x = junit(&[r]);
        let doc = roxmltree::Document::parse(&x).unwrap_or_else(|e| panic!("{e}: {x}"));
        let failure = doc.descendants().find(|n| n.has_tag_name("failure")).unwrap();
        // Markup escaped; control characters and the colour escape dropped.
        assert_eq!(failure.attribute("message"), Some("a <tool> & \"quotes\" said"));
        assert_eq!(failure.text(), Some("a <tool> & \"quotes\" said\nno"));
        let suite = doc.descendants().find(|n| n.has_tag_name("testsuite")).unwrap();
        assert_eq!(suite.attribute("time"), Some("0.003"));
        assert_eq!(suite.attribute("failures"), Some("1"));
        assert_eq!(suite.attribute("file"), Some("odd.toml"));
    }

    /// What quick-junit adds over the hand-written XML: a start time,
    /// properties, and the text report as the suite's system-out.
    #[test]
    fn junit_suites_have_a_timestamp_properties_and_system_out() {
        let mut r = ScenarioReport::new("a/b.toml".into(), "b".into());
        r.run_id = Some("abc123".into());
        r.layout = Some("docker28".into());
        r.started = std::time::UNIX_EPOCH + Duration::from_secs(86_400);
        r.build_ms = Some(1500);
        r.mismatches.push(Mismatch { node: "host".into(), what: "no route 10.0.0.0/8".into() });
        r.elapsed_ms = 2250;
        r.conclude();
        let x = junit(&[r]);
        let doc = roxmltree::Document::parse(&x).unwrap_or_else(|e| panic!("{e}: {x}"));
        let suite = doc.descendants().find(|n| n.has_tag_name("testsuite")).unwrap();
        assert_eq!(suite.attribute("timestamp"), Some("1970-01-02T00:00:00.000+00:00"), "{x}");
        assert_eq!(suite.attribute("time"), Some("2.250"));
        let props: Vec<(&str, &str)> = suite
            .descendants()
            .filter(|n| n.has_tag_name("property"))
            .map(|p| (p.attribute("name").unwrap(), p.attribute("value").unwrap()))
            .collect();
        assert_eq!(
            props,
            [
                ("file", "a/b.toml"),
                ("run_id", "abc123"),
                ("layout", "docker28"),
                ("bridgelab.version", env!("CARGO_PKG_VERSION"))
            ]
        );
        let out = suite.children().find(|n| n.has_tag_name("system-out")).unwrap().text().unwrap();
        assert!(out.starts_with("FAIL  b (a/b.toml): 0/0 expectations met\n"), "{out}");
        assert!(out.contains("differs from plan:"), "{out}");
        assert!(!out.contains("passed,"), "no summary line: {out}");
        let case = suite.children().find(|n| n.has_tag_name("testcase")).unwrap();
        assert_eq!(case.attribute("name"), Some("lab matches plan"));
        assert_eq!(case.attribute("time"), Some("1.500"));
    }
}
