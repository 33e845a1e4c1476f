//! Verdicts for people (text, coloured on a terminal) and for CI (JSON,
//! JUnit XML: one testcase per expectation, the reason on failure).

use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;

use crate::apply::Mismatch;
use crate::probe::ExpectOutcome;

/// Everything a run found out about one scenario file.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioReport {
    pub file: PathBuf,
    pub scenario: String,
    pub run_id: Option<String>,
    /// Where the built lab differs from its plan.
    pub mismatches: Vec<Mismatch>,
    pub expectations: Vec<ExpectOutcome>,
    /// A failure that stopped the run (bad input, environment).
    pub error: Option<String>,
    /// The all-pairs table, when asked for (`--matrix`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub matrix: Vec<crate::probe::matrix::Cell>,
    pub passed: bool,
}

impl ScenarioReport {
    pub fn new(file: PathBuf, scenario: String) -> ScenarioReport {
        ScenarioReport {
            file,
            scenario,
            run_id: None,
            mismatches: vec![],
            expectations: vec![],
            error: None,
            matrix: vec![],
            passed: false,
        }
    }

    /// Sets `passed` from what was found.
    pub fn conclude(&mut self) {
        self.passed = self.error.is_none() && self.mismatches.is_empty() && self.expectations.iter().all(|e| e.passed);
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

/// The human report.
pub fn text(reports: &[ScenarioReport], colour: bool) -> String {
    let p = Paint(colour);
    let mut s = String::new();
    for r in reports {
        let head = if r.passed { p.green("PASS") } else { p.red("FAIL") };
        let passed = r.expectations.iter().filter(|e| e.passed).count();
        let _ = writeln!(
            s,
            "{head}  {} ({}): {passed}/{} expectations met",
            r.scenario,
            r.file.display(),
            r.expectations.len()
        );
        if let Some(e) = &r.error {
            let _ = writeln!(s, "      {}", p.red(e));
        }
        for m in &r.mismatches {
            let _ = writeln!(s, "      {} {m}", p.red("differs from plan:"));
        }
        let mut step: Option<&str> = None;
        for e in &r.expectations {
            if e.step.as_deref() != step {
                step = e.step.as_deref();
                if let Some(label) = step {
                    let _ = writeln!(s, "  after {label}:");
                }
            }
            let mark = if e.passed { p.green("ok  ") } else { p.red("FAIL") };
            let target = e.target.map(|t| format!(" ({t})")).unwrap_or_default();
            let actual = e.actual.as_deref().unwrap_or("error");
            let mut line =
                format!("  {mark} {} -> {}{target} {}: expected {}, got {actual}", e.from, e.to, e.probe, e.expected);
            if let Some(src) = &e.source_expected {
                let seen = e.source_seen.map(|s| s.to_string()).unwrap_or_else(|| "?".into());
                let _ = write!(line, ", source {src} (saw {seen})");
            }
            let _ = writeln!(s, "{line}");
            if !e.passed {
                let _ = writeln!(s, "         {} {}", p.dim(&e.location), e.detail);
            }
        }
    }
    let failed = reports.iter().filter(|r| !r.passed).count();
    let _ = writeln!(s, "{} passed, {} failed", reports.len() - failed, failed);
    s
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// JUnit XML: a testsuite per scenario, a testcase per expectation (plus one
/// for the lab matching its plan).
pub fn junit(reports: &[ScenarioReport]) -> String {
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"bridgelab\">\n");
    for r in reports {
        let cases = r.expectations.len() + 1;
        let failures = r.expectations.iter().filter(|e| !e.passed).count()
            + usize::from(!r.mismatches.is_empty() || r.error.is_some());
        let _ = writeln!(s, "  <testsuite name=\"{}\" tests=\"{cases}\" failures=\"{failures}\">", xml(&r.scenario));
        let _ = write!(s, "    <testcase classname=\"{}\" name=\"lab matches plan\"", xml(&r.scenario));
        match (&r.error, r.mismatches.is_empty()) {
            (None, true) => s.push_str("/>\n"),
            (err, _) => {
                let mut msg: Vec<String> = r.mismatches.iter().map(|m| m.to_string()).collect();
                msg.extend(err.iter().cloned());
                let _ = writeln!(
                    s,
                    ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>",
                    xml(&msg[0]),
                    xml(&msg.join("\n"))
                );
            }
        }
        for e in &r.expectations {
            let _ = write!(
                s,
                "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
                xml(&r.scenario),
                xml(&e.name),
                e.elapsed_ms as f64 / 1000.0
            );
            if e.passed {
                s.push_str("/>\n");
            } else {
                let msg =
                    format!("expected {}, got {}: {}", e.expected, e.actual.as_deref().unwrap_or("error"), e.detail);
                let _ = writeln!(
                    s,
                    ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>",
                    xml(&msg),
                    xml(&format!("{}\n{msg}", e.location))
                );
            }
        }
        s.push_str("  </testsuite>\n");
    }
    s.push_str("</testsuites>\n");
    s
}
