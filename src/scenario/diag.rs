//! Scenario mistakes as `path:line:col: message`.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A scenario file's path and text, shared by everything that points into it.
#[derive(Debug, Clone, Default)]
pub struct Source(Arc<(PathBuf, String)>);

impl Source {
    pub fn new(path: PathBuf, text: String) -> Source {
        Source(Arc::new((path, text)))
    }
    pub fn path(&self) -> &Path {
        &self.0 .0
    }
    pub fn text(&self) -> &str {
        &self.0 .1
    }
    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let text = self.text();
        let offset = offset.min(text.len());
        let before = &text[..text.floor_char_boundary(offset)];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        (line, before[line_start..].chars().count() + 1)
    }
}

/// One mistake: where and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub span: Range<usize>,
    pub message: String,
}

impl Diagnostic {
    pub fn new(span: Range<usize>, message: impl Into<String>) -> Diagnostic {
        Diagnostic { span, message: message.into() }
    }
}

/// All mistakes found in one file; rendered one per line as
/// `path:line:col: message`.
#[derive(Debug, Clone, thiserror::Error)]
pub struct Diagnostics {
    file: Source,
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn new(source: Source, items: Vec<Diagnostic>) -> Diagnostics {
        Diagnostics { file: source, items }
    }
    pub fn single(source: Source, span: Range<usize>, message: String) -> Diagnostics {
        Diagnostics::new(source, vec![Diagnostic { span, message }])
    }
    pub fn items(&self) -> &[Diagnostic] {
        &self.items
    }
    /// `(line, col, message)` of each mistake, for tests and JSON output.
    pub fn located(&self) -> Vec<(usize, usize, &str)> {
        self.items
            .iter()
            .map(|d| {
                let (l, c) = self.file.line_col(d.span.start);
                (l, c, d.message.as_str())
            })
            .collect()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.file.path().display();
        for (i, (line, col, msg)) in self.located().into_iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{path}:{line}:{col}: {msg}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based_and_count_characters() {
        let s = Source::new("x.toml".into(), "a = 1\nbé = \"x\"\n".into());
        assert_eq!(s.line_col(0), (1, 1));
        assert_eq!(s.line_col(6), (2, 1));
        // 'é' is two bytes but one column.
        assert_eq!(s.line_col(11), (2, 5));
        assert_eq!(s.line_col(999), (3, 1));
    }
}
