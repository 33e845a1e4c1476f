//! Pictures of a lab: the topology as a Graphviz graph (`bridgelab graph`,
//! `bridgelab run --graph`) and the all-pairs matrix as an HTML truth table
//! (`bridgelab run --matrix … --html`).
//!
//! This sits beside [`crate::report`], above the pipeline: it reads a
//! [`Plan`](crate::plan::Plan), its [`Scenario`](crate::scenario::Scenario)
//! and, for a real run, the [`ExpectOutcome`](crate::probe::ExpectOutcome)s
//! and matrix cells, and writes text. Nothing here needs privileges.
//!
//! Dot and HTML are written as text, with one escaping function each,
//! rather than through a crate: both formats are small, the few Rust dot
//! writers either leave quoting to the caller (dot-writer) or bring a
//! parser along (graphviz-rust), and hand-written text keeps the output
//! byte-stable for snapshot tests. SVG is Graphviz's own `dot -Tsvg`.

mod dot;
mod html;

pub use dot::{arrows_expected, arrows_seen, topology, Arrow, Seen, Title};
pub use html::matrix_html;

use std::io::Write as _;
use std::process::{Command, Stdio};

use crate::{Error, Result};

/// Renders dot text to SVG with Graphviz's `dot -Tsvg`. A missing `dot`
/// is an [`Error::Environment`] that says how to install it.
pub fn svg(dot: &str) -> Result<String> {
    let mut child = Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::Environment(
                "cannot write SVG: Graphviz's `dot` is not installed (apt-get install graphviz); \
                 --format dot writes the graph for rendering elsewhere"
                    .into(),
            ),
            _ => Error::Environment(format!("cannot run dot: {e}")),
        })?;
    // Fed from a thread while this one reads, so that neither side can
    // block the other on a full pipe (warnings on stderr, say).
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let text = dot.to_string();
    let feeder = std::thread::spawn(move || stdin.write_all(text.as_bytes()));
    let out = child.wait_with_output().map_err(|e| Error::Environment(format!("dot: {e}")))?;
    if let Ok(Err(e)) = feeder.join() {
        // A dot that failed says why on stderr (below); a broken pipe alone
        // is no news then.
        if out.status.success() {
            return Err(Error::Environment(format!("cannot feed dot: {e}")));
        }
    }
    if !out.status.success() {
        return Err(Error::Environment(format!(
            "dot -Tsvg failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    String::from_utf8(out.stdout).map_err(|_| Error::Environment("dot -Tsvg wrote something not UTF-8".into()))
}
