//! Scenario mistakes as `path:line:col: message`.

use std::borrow::Cow;
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
        self.line_cols(&[offset])[0]
    }

    /// [`line_col`](Self::line_col) of many offsets in one pass over the
    /// text, so a file with thousands of mistakes is not rescanned for each.
    pub fn line_cols(&self, offsets: &[usize]) -> Vec<(usize, usize)> {
        let text = self.text();
        let mut order: Vec<usize> = (0..offsets.len()).collect();
        order.sort_by_key(|&i| offsets[i]);
        let mut out = vec![(1, 1); offsets.len()];
        // Walk forward once: (byte position, line, column) so far.
        let (mut pos, mut line, mut col) = (0usize, 1usize, 1usize);
        for i in order {
            let target = text.floor_char_boundary(offsets[i].min(text.len()));
            for ch in text[pos..target].chars() {
                if ch == '\n' {
                    line += 1;
                    col = 1;
                } else {
                    col += 1;
                }
            }
            pos = target;
            out[i] = (line, col);
        }
        out
    }
}

/// How many characters of a long value a message keeps.
pub const SHORT_VALUE: usize = 60;
/// Values up to this long are quoted whole.
const LONG_VALUE: usize = SHORT_VALUE + 20;
/// A message longer than this is cut in the middle, whatever it quotes.
const LONG_MESSAGE: usize = 400;

/// A user's value for a message: the first [`SHORT_VALUE`] characters of a
/// long one, and how long it was, so a 1 MB name does not make a 1 MB line.
pub fn short(value: &str) -> Cow<'_, str> {
    if value.chars().nth(LONG_VALUE).is_none() {
        return Cow::Borrowed(value);
    }
    let cut = value.char_indices().nth(SHORT_VALUE).map(|(i, _)| i).unwrap_or(value.len());
    Cow::Owned(format!("{}… ({} characters)", &value[..cut], value.chars().count()))
}

/// A word of a message, [`short`]ened if long, keeping the punctuation
/// around it (`"name",` stays quoted and followed by its comma).
fn short_word(word: &str) -> Cow<'_, str> {
    if word.chars().nth(LONG_VALUE).is_none() {
        return Cow::Borrowed(word);
    }
    let punct = |c: char| "\"'`(),:;.".contains(c);
    let body = word.trim_end_matches(punct);
    let tail = &word[body.len()..];
    let core = body.trim_start_matches(punct);
    let head = &body[..body.len() - core.len()];
    match short(core) {
        Cow::Owned(cut) => Cow::Owned(format!("{head}{cut}{tail}")),
        // All punctuation: left to the cut of the whole message.
        Cow::Borrowed(_) => Cow::Borrowed(word),
    }
}

/// Bounds a whole message, whoever wrote it (Docker's words in `plan`, the
/// TOML parser quoting a value): long words are [`short`]ened, and a message
/// still too long (a value full of spaces) keeps its head and tail.
fn bound_message(message: String) -> String {
    // One mistake, one line: a value with a newline (or another control
    // character) shows it escaped.
    if message.contains(char::is_control) {
        let escaped =
            message.chars().map(|c| if c.is_control() { c.escape_default().collect() } else { c.to_string() });
        return bound_message(escaped.collect());
    }
    if message.split(' ').any(|w| matches!(short_word(w), Cow::Owned(_))) {
        return bound_message(message.split(' ').map(short_word).collect::<Vec<_>>().join(" "));
    }
    let chars = message.chars().count();
    if chars <= LONG_MESSAGE {
        return message;
    }
    let (keep_head, keep_tail) = (LONG_MESSAGE / 2, LONG_MESSAGE / 4);
    let head: String = message.chars().take(keep_head).collect();
    let tail: String = message.chars().skip(chars - keep_tail).collect();
    format!("{head}… ({} characters cut) …{tail}", chars - keep_head - keep_tail)
}

/// One mistake: where and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub span: Range<usize>,
    pub message: String,
}

impl Diagnostic {
    pub fn new(span: Range<usize>, message: impl Into<String>) -> Diagnostic {
        Diagnostic { span, message: bound_message(message.into()) }
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
        Diagnostics::new(source, vec![Diagnostic::new(span, message)])
    }
    /// The file the mistakes are in.
    pub fn source(&self) -> &Source {
        &self.file
    }
    pub fn items(&self) -> &[Diagnostic] {
        &self.items
    }
    /// `(line, col, message)` of each mistake, for tests and JSON output.
    pub fn located(&self) -> Vec<(usize, usize, &str)> {
        let starts: Vec<usize> = self.items.iter().map(|d| d.span.start).collect();
        let at = self.file.line_cols(&starts);
        self.items.iter().zip(at).map(|(d, (l, c))| (l, c, d.message.as_str())).collect()
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

    #[test]
    fn many_offsets_in_any_order_locate_as_one_does() {
        let text = "a = 1\nbé = \"x\"\n\nc = [1,\n 2]\n";
        let s = Source::new("x.toml".into(), text.into());
        let offsets = [20, 0, 11, 6, 999, 11, 13];
        let each: Vec<(usize, usize)> = offsets
            .iter()
            .map(|&o| {
                let before = &text[..o.min(text.len())];
                let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
                (before.matches('\n').count() + 1, before[line_start..].chars().count() + 1)
            })
            .collect();
        assert_eq!(s.line_cols(&offsets), each);
    }

    #[test]
    fn long_values_are_cut_and_their_length_said() {
        assert_eq!(short("web"), "web");
        assert_eq!(short(&"b".repeat(80)), "b".repeat(80));
        let name = "a".repeat(1 << 20);
        let cut = short(&name);
        assert_eq!(cut, format!("{}… (1048576 characters)", "a".repeat(60)));
        // Whoever wrote the message, a long word is cut and keeps its punctuation.
        let d = Diagnostic::new(0..0, format!("Cannot start container {name}: all ports are allocated"));
        assert_eq!(
            d.message,
            format!("Cannot start container {}… (1048576 characters): all ports are allocated", "a".repeat(60))
        );
        let d = Diagnostic::new(0..0, format!("invalid type: string \"{name}\", expected a boolean"));
        assert!(d.message.ends_with("… (1048576 characters)\", expected a boolean"), "{}", d.message);
        // A value full of spaces still gives a bounded line, head and tail kept.
        let d =
            Diagnostic::new(0..0, format!("Invalid container name ({}), only [a-z] are allowed", "a ".repeat(1 << 19)));
        assert!(d.message.chars().count() < 500, "{}", d.message.len());
        assert!(d.message.starts_with("Invalid container name (a a "), "{}", d.message);
        assert!(d.message.ends_with("a ), only [a-z] are allowed"), "{}", d.message);
        assert!(d.message.contains("(1048325 characters cut)"), "{}", d.message);
        // A value with a line break stays on one line.
        let d = Diagnostic::new(0..0, "Invalid container name (a\nb\u{7}), only [a-z]");
        assert_eq!(d.message, "Invalid container name (a\\nb\\u{7}), only [a-z]");
        // Punctuation alone is not a value: the line is still bounded.
        let d = Diagnostic::new(0..0, "(".repeat(10_000));
        assert!(d.message.chars().count() < 500);
    }
}
