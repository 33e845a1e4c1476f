//! The progress line of `run` over many scenarios: a bar with the scenario
//! being run and the pass/fail counts so far, on stderr, cleared at the end
//! so the report on stdout stands alone.
//!
//! Only on a terminal: a CI log or a test capturing stderr gets none of it,
//! not even the carriage returns (see [`wanted`]).

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Whether to show progress: stderr is a terminal that can redraw a line
/// (not `TERM=dumb`), there is more than one lab to run, and no lab is
/// held for a person to poke at (`--hold` talks to them on the terminal).
pub fn wanted(stderr_is_terminal: bool, term: Option<&str>, labs: usize, hold: bool) -> bool {
    stderr_is_terminal && term != Some("dumb") && labs > 1 && !hold
}

/// The bar, or nothing when not [`wanted`].
pub struct Progress {
    bar: Option<ProgressBar>,
    passed: usize,
    failed: usize,
}

impl Progress {
    /// A bar over `files` scenario files when `show`.
    pub fn new(show: bool, files: usize) -> Progress {
        let bar = show.then(|| {
            let bar = ProgressBar::with_draw_target(Some(files as u64), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{bar:24}] {pos}/{len} {elapsed:>4} {wide_msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            // `wide_msg` cuts the message to the terminal's width: a line
            // that wrapped could not be redrawn in place.
            // Building a lab takes seconds: the spinner shows it is alive.
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Progress { bar, passed: 0, failed: 0 }
    }

    /// Says which scenario runs now.
    pub fn running(&self, what: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!("{} passed, {} failed; running {what}", self.passed, self.failed));
            // Past indicatif's rate limit: a scenario is seconds at most a
            // few times per file, and each deserves its line.
            bar.force_draw();
        }
    }

    /// Counts one scenario's verdict.
    pub fn verdict(&mut self, passed: bool) {
        if passed {
            self.passed += 1;
        } else {
            self.failed += 1;
        }
    }

    /// One file done.
    pub fn file_done(&self) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }

    /// Runs `f` (which writes to the terminal) with the bar out of the way.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.bar {
            Some(bar) => bar.suspend(f),
            None => f(),
        }
    }

    /// Removes the bar from the terminal.
    pub fn clear(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    /// A run ended by a signal still leaves a clean line for its message.
    fn drop(&mut self) {
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::wanted;

    #[test]
    fn progress_only_on_a_terminal_for_many_labs_and_no_hold() {
        assert!(wanted(true, Some("xterm-256color"), 2, false));
        assert!(wanted(true, None, 30, false), "no TERM is still a terminal");
        assert!(!wanted(false, Some("xterm"), 30, false), "not a terminal: CI logs, tests");
        assert!(!wanted(true, Some("dumb"), 30, false), "a terminal that cannot redraw a line");
        assert!(!wanted(true, Some("xterm"), 1, false), "one lab: its report is enough");
        assert!(!wanted(true, Some("xterm"), 30, true), "--hold talks to the person instead");
    }

    #[test]
    fn a_hidden_progress_counts_and_runs_what_it_suspends() {
        let mut p = super::Progress::new(false, 3);
        p.running("a");
        p.verdict(true);
        p.verdict(false);
        p.file_done();
        assert_eq!((p.passed, p.failed), (1, 1));
        assert_eq!(p.suspend(|| 7), 7);
        assert!(p.bar.is_none());
    }
}
