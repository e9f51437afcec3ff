//! The text a configuration came from, and turning byte offsets and key paths
//! into `file:line:column` for error messages.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use multiagents_core::{Error, ErrorKind};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// One step of a key path: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

/// A key path such as `workflows[0].steps[2].worker`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct KeyPath(pub(crate) Vec<Seg>);

impl KeyPath {
    pub(crate) fn key(mut self, k: impl Into<String>) -> Self {
        self.0.push(Seg::Key(k.into()));
        self
    }

    pub(crate) fn index(mut self, i: usize) -> Self {
        self.0.push(Seg::Index(i));
        self
    }

    pub(crate) fn of(keys: &[&str]) -> Self {
        KeyPath(keys.iter().map(|k| Seg::Key((*k).to_string())).collect())
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// A configuration problem before it is placed in a file: the key path it
/// concerns and the error (kind `Config`, message naming the key).
#[derive(Debug)]
pub(crate) struct Invalid {
    pub(crate) path: KeyPath,
    pub(crate) error: Error,
}

/// Every problem one check found (at least one), reported together.
pub(crate) struct Problems(pub(crate) Vec<Invalid>);

impl Problems {
    /// The error without file positions (configs built in code).
    pub(crate) fn into_error(self) -> Error {
        listing(self.0.into_iter().map(Invalid::into_error).collect())
    }
}

impl Invalid {
    pub(crate) fn new(path: KeyPath, message: impl Into<String>) -> Self {
        let error = Error::new(ErrorKind::Config, message.into());
        Invalid::wrap(path, error)
    }

    pub(crate) fn wrap(path: KeyPath, error: Error) -> Self {
        Invalid { path, error }
    }

    /// The error without a file position (configs built in code).
    pub(crate) fn into_error(self) -> Error {
        let key = self.path.to_string();
        let mut e = Error::new(self.error.kind(), self.error.message().to_string()).with_operation("config");
        for (k, v) in self.error.context() {
            if *k != "key" {
                e = e.with_context(k, v);
            }
        }
        if !key.is_empty() {
            e = e.with_context("key", key);
        }
        e
    }
}

/// One problem as it is; several as "N problems:" and each message on a
/// line of its own (the context is the first's, and `problems`: N).
fn listing(all: Vec<Error>) -> Error {
    let mut all = all.into_iter();
    let Some(first) = all.next() else {
        return Error::new(ErrorKind::Unexpected, "a config check failed without saying why")
            .with_operation("config");
    };
    let more: Vec<Error> = all.collect();
    if more.is_empty() {
        return first;
    }
    let mut message = format!("{} problems:", more.len() + 1);
    for m in std::iter::once(&first).chain(&more) {
        message.push_str("\n  ");
        message.push_str(m.message());
    }
    let mut e = Error::new(first.kind(), message).with_operation(first.operation());
    for (k, v) in first.context() {
        e = e.with_context(k, v);
    }
    e.with_context("problems", more.len() + 1)
}

/// The file (if any) and text a configuration was parsed from.
#[derive(Debug, Clone)]
pub(crate) struct Source<'a> {
    pub(crate) file: Option<&'a Path>,
    pub(crate) text: &'a str,
}

impl Source<'_> {
    /// 1-based line and column (in characters) of a byte offset.
    pub(crate) fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = self.text.get(..offset).unwrap_or(self.text);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
        (line, column)
    }

    fn file_name(&self) -> String {
        self.file
            .map_or_else(|| "<config>".to_string(), |p| p.display().to_string())
    }

    /// An error at `span` (or at the file only), kind `Config`, with the
    /// message prefixed by `file:line:column:`.
    pub(crate) fn error_at(&self, span: Option<Range<usize>>, key: &str, message: &str) -> Error {
        let file = self.file_name();
        let (location, line_col) = match span {
            Some(span) => {
                let (line, column) = self.position(span.start);
                (format!("{file}:{line}:{column}"), Some((line, column)))
            }
            None => (file.clone(), None),
        };
        let mut e = Error::new(ErrorKind::Config, format!("{location}: {message}"))
            .with_operation("config.load")
            .with_context("file", &file);
        if let Some((line, column)) = line_col {
            e = e.with_context("line", line).with_context("column", column);
        }
        if !key.is_empty() {
            e = e.with_context("key", key);
        }
        e
    }

    /// Places every problem of a check in the file: one error listing them.
    pub(crate) fn place_all(&self, problems: Problems) -> Error {
        listing(problems.0.into_iter().map(|p| self.place(p)).collect())
    }

    /// Places a validation problem in the file.
    pub(crate) fn place(&self, invalid: Invalid) -> Error {
        let span = self.span_of(&invalid.path);
        let key = invalid.path.to_string();
        let message = invalid.error.message().to_string();
        let mut e = self.error_at(span, &key, &message);
        for (k, v) in invalid.error.context() {
            if *k != "key" {
                e = e.with_context(k, v);
            }
        }
        e
    }

    /// A `toml` parse or type error, with its key path.
    pub(crate) fn toml_error(&self, err: &toml::de::Error) -> Error {
        let span = err.span();
        let key = span
            .as_ref()
            .and_then(|s| self.key_at(s.start))
            .map(|p| p.to_string())
            .unwrap_or_default();
        let message = if key.is_empty() {
            err.message().to_string()
        } else {
            format!("{key}: {}", err.message())
        };
        self.error_at(span, &key, &message)
    }

    fn parse(&self) -> Option<Spanned<DeTable<'_>>> {
        DeTable::parse(self.text).ok()
    }

    /// Where the value (or, failing that, the nearest key) at `path` is
    /// written.
    pub(crate) fn span_of(&self, path: &KeyPath) -> Option<Range<usize>> {
        enum Node<'t, 'i> {
            Table(&'t DeTable<'i>),
            Array(&'t [Spanned<DeValue<'i>>]),
        }
        let root = self.parse()?;
        let mut best = None;
        let mut node = Node::Table(root.get_ref());
        for (n, seg) in path.0.iter().enumerate() {
            let value = match (seg, node) {
                (Seg::Key(k), Node::Table(t)) => {
                    let Some((key, value)) = t.iter().find(|(key, _)| key.get_ref().as_ref() == k.as_str())
                    else {
                        return best;
                    };
                    best = Some(key.span());
                    value
                }
                (Seg::Index(i), Node::Array(a)) => {
                    let Some(value) = a.get(*i) else { return best };
                    if !value.span().is_empty() {
                        best = Some(value.span());
                    }
                    value
                }
                _ => return best,
            };
            node = match value.get_ref() {
                DeValue::Table(t) => Node::Table(t),
                DeValue::Array(a) => Node::Array(a),
                _ if n + 1 == path.0.len() && !value.span().is_empty() => return Some(value.span()),
                _ => return best,
            };
        }
        best
    }

    /// The key path whose key or value covers `offset` (the deepest one).
    pub(crate) fn key_at(&self, offset: usize) -> Option<KeyPath> {
        let root = self.parse()?;
        let mut best = None;
        search_table(root.get_ref(), &KeyPath::default(), offset, &mut best);
        best
    }
}

fn search_table(table: &DeTable<'_>, path: &KeyPath, offset: usize, best: &mut Option<KeyPath>) {
    for (key, value) in table.iter() {
        let here = path.clone().key(key.get_ref().as_ref());
        if key.span().contains(&offset) || value.span().contains(&offset) {
            update(best, &here);
        }
        search_value(value, &here, offset, best);
    }
}

fn search_value(value: &Spanned<DeValue<'_>>, path: &KeyPath, offset: usize, best: &mut Option<KeyPath>) {
    match value.get_ref() {
        DeValue::Table(t) => search_table(t, path, offset, best),
        DeValue::Array(a) => {
            for (i, item) in a.iter().enumerate() {
                let here = path.clone().index(i);
                if item.span().contains(&offset) {
                    update(best, &here);
                }
                search_value(item, &here, offset, best);
            }
        }
        _ => {}
    }
}

fn update(best: &mut Option<KeyPath>, candidate: &KeyPath) {
    if best.as_ref().is_none_or(|b| candidate.0.len() >= b.0.len()) {
        *best = Some(candidate.clone());
    }
}

/// Resolves a relative `path` against `base` (the config file's
/// directory), dropping `.` and folding `dir/..` lexically.
pub(crate) fn resolve(base: Option<&Path>, path: &Path) -> PathBuf {
    use std::path::Component;
    let joined = match base {
        Some(base) if path.is_relative() => base.join(path),
        _ => return path.to_path_buf(),
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.components().next_back(), Some(Component::Normal(_))) => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    if out.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "[runtime]\nprefix = \"ma\"\n\n[[workflows]]\nname = \"w\"\n  [[workflows.steps]]\n  name = \"a\"\n  worker = \"x\"\n";

    #[test]
    fn positions_and_paths() {
        let src = Source {
            file: None,
            text: TEXT,
        };
        assert_eq!(src.position(0), (1, 1));
        assert_eq!(src.position(TEXT.find("prefix").expect("in text")), (2, 1));
        let worker = KeyPath::of(&["workflows"])
            .index(0)
            .key("steps")
            .index(0)
            .key("worker");
        assert_eq!(worker.to_string(), "workflows[0].steps[0].worker");
        let span = src.span_of(&worker).expect("found");
        assert_eq!(src.position(span.start), (8, 12));
        let at = src.key_at(TEXT.find("\"x\"").expect("in text")).expect("found");
        assert_eq!(at, worker);
        assert_eq!(
            src.key_at(TEXT.find("\"ma\"").expect("in text")),
            Some(KeyPath::of(&["runtime", "prefix"]))
        );
    }

    #[test]
    fn relative_paths_resolve_against_the_config_dir() {
        let base = Path::new("examples");
        assert_eq!(
            resolve(Some(base), Path::new("../target/x.wasm")),
            PathBuf::from("target/x.wasm")
        );
        assert_eq!(
            resolve(Some(Path::new("/etc/ma")), Path::new("./w.wasm")),
            PathBuf::from("/etc/ma/w.wasm")
        );
        assert_eq!(
            resolve(Some(base), Path::new("/abs.wasm")),
            PathBuf::from("/abs.wasm")
        );
        assert_eq!(
            resolve(Some(Path::new(".")), Path::new("../w.wasm")),
            PathBuf::from("../w.wasm")
        );
    }
}
