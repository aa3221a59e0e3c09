//! The YAML source of one file as a tree of positioned nodes.
//!
//! serde-saphyr parses the text; every node keeps its line and column and a
//! dotted key path (`groups[0].checks[1].http.url`), so that every later error
//! can point at the place it is about. `${VAR}` interpolation happens here, on
//! scalar values after parsing: a value cannot inject YAML and positions stay
//! right. Values that came from the environment are remembered as secrets.

use crate::diagnostic::{Diagnostic, Mark};
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;
use std::borrow::Cow;
use std::fmt;
use std::path::Path;

/// An index into [`Document::nodes`].
pub(crate) type NodeId = usize;

/// One YAML value with its position.
#[derive(Debug)]
pub(crate) struct Node {
    pub mark: Mark,
    /// The key path from the document root, for messages.
    pub path: String,
    pub value: Value,
    /// Values of the environment variables interpolated into this scalar.
    pub secrets: Vec<String>,
    /// Interpolation failed here; that error is the only one about this node.
    pub broken: bool,
    /// The text as written, before interpolation, when it held `${VAR}`:
    /// what hashes see, so a hash never depends on (or leaks) a secret.
    pub template: Option<String>,
}

impl Node {
    /// True when any part of this scalar came from `${VAR}`.
    pub fn is_secret(&self) -> bool {
        !self.secrets.is_empty()
    }

    /// What this node is, for "found ..." in messages. A secret is never shown.
    pub fn describe(&self) -> String {
        match &self.value {
            Value::Null => "nothing (null)".into(),
            Value::Bool(b) => format!("boolean `{b}`"),
            Value::Int(i) if self.is_secret() => {
                format!("integer {}", redact_value(&i.to_string()))
            }
            Value::Int(i) => format!("integer `{i}`"),
            Value::Float(x) => format!("number `{x}`"),
            Value::Str(_) if self.is_secret() => "a string from an environment variable".into(),
            Value::Str(s) => format!("string `{}`", clip(s, 60)),
            Value::Seq(_) => "a sequence".into(),
            Value::Map(_) => "a mapping".into(),
        }
    }
}

fn redact_value(_: &str) -> &'static str {
    "[redacted]"
}

/// Shortens `s` to `max` characters for a message, marking the cut.
pub(crate) fn clip(s: &str, max: usize) -> Cow<'_, str> {
    if s.chars().count() <= max {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(format!("{}…", s.chars().take(max).collect::<String>()))
    }
}

/// A YAML value.
#[derive(Debug)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<NodeId>),
    Map(Vec<Entry>),
}

/// One key of a mapping.
#[derive(Debug)]
pub(crate) struct Entry {
    pub key: String,
    pub key_mark: Mark,
    pub value: NodeId,
}

/// A parsed file: its nodes, with the root at [`Document::root`].
#[derive(Debug)]
pub(crate) struct Document {
    pub file: std::sync::Arc<Path>,
    pub nodes: Vec<Node>,
    pub root: NodeId,
}

/// What [`Document::add`] interpolates with, and where it does not.
struct Scope<'a> {
    env: &'a dyn Fn(&str) -> Option<String>,
    skipped: &'a [&'a str],
}

impl Scope<'_> {
    fn skips(&self, path: &str) -> bool {
        self.skipped.iter().any(|k| {
            path.strip_prefix(k).is_some_and(|rest| {
                rest.is_empty() || rest.starts_with('.') || rest.starts_with('[')
            })
        })
    }
}

impl Document {
    /// Parses `text` and interpolates `${VAR}` through `env`, except the
    /// scalars under the top-level keys `skipped`, left as written: a role
    /// that never reads a section never needs (nor sees) the variables it
    /// uses. Problems are pushed to `out`; a file that is not YAML at all
    /// yields `None`.
    pub fn parse(
        file: &Path,
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
        skipped: &[&str],
        out: &mut Vec<Diagnostic>,
    ) -> Option<Document> {
        if text.trim().is_empty() {
            out.push(Diagnostic::new(
                file,
                Mark::START,
                "the file is empty: expected a mapping with `groups` (and optionally `defaults` and `maintenance`)",
            ));
            return None;
        }
        let parsed: Spanned<RawNode> = match serde_saphyr::from_str(text) {
            Ok(parsed) => parsed,
            Err(err) => {
                let mark = err
                    .location()
                    .map(|l| Mark {
                        line: l.line() as u32,
                        column: l.column() as u32,
                    })
                    .unwrap_or(Mark::START);
                let (mark, message) = match tab_column(text, mark) {
                    Some(column) => (
                        Mark { column, ..mark },
                        "invalid YAML: a tab indents this line; YAML indents with spaces only"
                            .to_string(),
                    ),
                    None => (mark, yaml_message(&err)),
                };
                out.push(Diagnostic::new(file, mark, message));
                return None;
            }
        };
        let mut doc = Document {
            file: file.into(),
            nodes: Vec::new(),
            root: 0,
        };
        doc.root = doc.add(parsed, String::new(), &Scope { env, skipped }, out);
        Some(doc)
    }

    fn add(
        &mut self,
        raw: Spanned<RawNode>,
        path: String,
        scope: &Scope<'_>,
        out: &mut Vec<Diagnostic>,
    ) -> NodeId {
        let mark = mark_of(&raw);
        let mut secrets = Vec::new();
        let mut broken = false;
        let mut template = None;
        let value = match raw.value {
            RawNode::Null => Value::Null,
            RawNode::Bool(b) => Value::Bool(b),
            RawNode::Int(i) => Value::Int(i),
            RawNode::Float(x) => Value::Float(x),
            RawNode::Str(s) if scope.skips(&path) => Value::Str(s),
            RawNode::Str(s) => match interpolate(&s, scope.env) {
                Ok((expanded, used)) => {
                    if !used.is_empty() {
                        template = Some(s);
                    }
                    secrets = used;
                    Value::Str(expanded)
                }
                Err(message) => {
                    out.push(Diagnostic::new(
                        &self.file,
                        mark,
                        key_message(&path, &message),
                    ));
                    broken = true;
                    Value::Str(s)
                }
            },
            RawNode::Seq(items) => Value::Seq(
                items
                    .into_iter()
                    .enumerate()
                    .map(|(i, item)| self.add(item, format!("{path}[{i}]"), scope, out))
                    .collect(),
            ),
            RawNode::Map(entries) => Value::Map(
                entries
                    .into_iter()
                    .map(|(key, value)| {
                        let key_mark = mark_of(&key);
                        let child = if path.is_empty() {
                            key.value.clone()
                        } else {
                            format!("{path}.{}", key.value)
                        };
                        Entry {
                            value: self.add(value, child, scope, out),
                            key: key.value,
                            key_mark,
                        }
                    })
                    .collect(),
            ),
        };
        self.nodes.push(Node {
            mark,
            path,
            value,
            secrets,
            broken,
            template,
        });
        self.nodes.len() - 1
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id]
    }

    /// A diagnostic at node `id`, prefixed with its key path.
    pub fn error_at(&self, id: NodeId, message: &str) -> Diagnostic {
        let node = self.node(id);
        Diagnostic::new(&self.file, node.mark, key_message(&node.path, message))
    }

    /// All secret values used anywhere below `id`, longest first.
    pub fn secrets_below(&self, id: NodeId) -> Vec<String> {
        let mut acc = Vec::new();
        self.collect_secrets(id, &mut acc);
        acc.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
        acc.dedup();
        acc
    }

    fn collect_secrets(&self, id: NodeId, acc: &mut Vec<String>) {
        let node = self.node(id);
        acc.extend(node.secrets.iter().cloned());
        match &node.value {
            Value::Seq(items) => items.iter().for_each(|i| self.collect_secrets(*i, acc)),
            Value::Map(entries) => entries
                .iter()
                .for_each(|e| self.collect_secrets(e.value, acc)),
            _ => {}
        }
    }

    /// The paths of the secret scalars below `id`.
    pub fn secret_paths_below(&self, id: NodeId) -> Vec<String> {
        let node = self.node(id);
        let mut acc = Vec::new();
        if node.is_secret() {
            acc.push(node.path.clone());
        }
        match &node.value {
            Value::Seq(items) => items
                .iter()
                .for_each(|i| acc.extend(self.secret_paths_below(*i))),
            Value::Map(entries) => entries
                .iter()
                .for_each(|e| acc.extend(self.secret_paths_below(e.value))),
            _ => {}
        }
        acc
    }

    /// A canonical JSON rendering of the subtree at `id` (keys sorted), for
    /// hashing: interpolated scalars as written, never their secret values.
    pub fn canonical(&self, id: NodeId) -> serde_json::Value {
        let node = self.node(id);
        if let Some(template) = &node.template {
            return template.clone().into();
        }
        match &node.value {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => (*b).into(),
            Value::Int(i) => serde_json::Value::String(i.to_string()),
            Value::Float(x) => serde_json::Value::String(x.to_string()),
            Value::Str(s) => s.clone().into(),
            Value::Seq(items) => items.iter().map(|i| self.canonical(*i)).collect(),
            Value::Map(entries) => serde_json::Value::Object(
                entries
                    .iter()
                    .map(|e| (e.key.clone(), self.canonical(e.value)))
                    .collect(),
            ),
        }
    }
}

/// `path: message`, or the message alone at the document root.
pub(crate) fn key_message(path: &str, message: &str) -> String {
    if path.is_empty() {
        message.to_string()
    } else {
        format!("{path}: {message}")
    }
}

fn mark_of<T>(s: &Spanned<T>) -> Mark {
    Mark {
        line: s.referenced.line() as u32,
        column: s.referenced.column() as u32,
    }
}

/// The column of a tab in the indentation of the error's line, if there is one.
fn tab_column(text: &str, mark: Mark) -> Option<u32> {
    let line = text.lines().nth(mark.line.checked_sub(1)? as usize)?;
    let indent: String = line.chars().take_while(|c| c.is_whitespace()).collect();
    indent.chars().position(|c| c == '\t').map(|i| i as u32 + 1)
}

/// A plain-language message for a YAML syntax error, without the position.
fn yaml_message(err: &serde_saphyr::Error) -> String {
    use serde_saphyr::Error as E;
    match err.without_snippet() {
        E::DuplicateMappingKey { key: Some(key), .. } => {
            format!("invalid YAML: the key `{key}` appears twice in the same mapping")
        }
        E::MultipleDocuments { .. } => {
            "invalid YAML: a file holds one YAML document, found a second one after `---`".into()
        }
        other => {
            let text = other.to_string();
            // serde-saphyr appends "at line L, column C"; our prefix already says where.
            let text = match text.rfind(" at line ") {
                Some(cut) => text[..cut].to_string(),
                None => text,
            };
            format!("invalid YAML: {text}")
        }
    }
}

/// Expands `${NAME}` and `${NAME:-default}`; `$${` is a literal `${`.
/// Returns the text and the values taken from the environment.
pub(crate) fn interpolate(
    s: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(String, Vec<String>), String> {
    if !s.contains('$') {
        return Ok((s.to_string(), Vec::new()));
    }
    let mut out = String::with_capacity(s.len());
    let mut used = Vec::new();
    let mut rest = s;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(body) = tail.strip_prefix("${") {
            let Some(end) = body.find('}') else {
                return Err(
                    "`${` is not closed: write `${NAME}`, or `$${` for a literal `${`".into(),
                );
            };
            let (name, default) = match body[..end].split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (&body[..end], None),
            };
            if !is_var_name(name) {
                return Err(format!(
                    "`${{{}}}` is not a valid variable name: expected letters, digits and `_`, not starting with a digit",
                    clip(name, 40)
                ));
            }
            match (env(name), default) {
                (Some(value), _) => {
                    out.push_str(&value);
                    if !value.is_empty() {
                        used.push(value);
                    }
                }
                // A default is written in the file, so it is no secret.
                (None, Some(default)) => out.push_str(default),
                (None, None) => {
                    return Err(format!(
                        "environment variable `{name}` is not set (write `${{{name}:-default}}` for a default)"
                    ));
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok((out, used))
}

fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The shape serde-saphyr hands us, before it becomes a [`Document`].
enum RawNode {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<RawNode>>),
    Map(Vec<(Spanned<String>, Spanned<RawNode>)>),
}

impl<'de> Deserialize<'de> for RawNode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RawNodeVisitor)
    }
}

struct RawNodeVisitor;

impl<'de> Visitor<'de> for RawNodeVisitor {
    type Value = RawNode;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<RawNode, E> {
        Ok(RawNode::Null)
    }
    fn visit_none<E>(self) -> Result<RawNode, E> {
        Ok(RawNode::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<RawNode, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_bool<E>(self, v: bool) -> Result<RawNode, E> {
        Ok(RawNode::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<RawNode, E> {
        Ok(RawNode::Int(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<RawNode, E> {
        Ok(RawNode::Int(v.into()))
    }
    fn visit_i128<E>(self, v: i128) -> Result<RawNode, E> {
        Ok(RawNode::Int(v))
    }
    fn visit_u128<E: serde::de::Error>(self, v: u128) -> Result<RawNode, E> {
        i128::try_from(v)
            .map(RawNode::Int)
            .map_err(|_| E::custom("integer too large"))
    }
    fn visit_f64<E>(self, v: f64) -> Result<RawNode, E> {
        Ok(RawNode::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<RawNode, E> {
        Ok(RawNode::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<RawNode, E> {
        Ok(RawNode::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawNode, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(RawNode::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawNode, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<KeyText>>()? {
            let value = map.next_value()?;
            let key = Spanned {
                value: key.value.0,
                referenced: key.referenced,
                defined: key.defined,
            };
            entries.push((key, value));
        }
        Ok(RawNode::Map(entries))
    }
}

/// A mapping key: any scalar, as text.
struct KeyText(String);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = KeyText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a scalar mapping key")
            }
            fn visit_str<E>(self, v: &str) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_bool<E>(self, v: bool) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_unit<E>(self) -> Result<KeyText, E> {
                Ok(KeyText("null".into()))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "TOKEN" => Some("s3cret-value".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn interpolation_expands_escapes_and_reports_missing_variables() {
        assert_eq!(
            interpolate("Bearer ${TOKEN}", &env).unwrap(),
            ("Bearer s3cret-value".into(), vec!["s3cret-value".into()])
        );
        assert_eq!(interpolate("$${TOKEN} $5", &env).unwrap().0, "${TOKEN} $5");
        assert_eq!(
            interpolate("a${EMPTY}b", &env).unwrap(),
            ("ab".into(), vec![])
        );
        assert_eq!(
            interpolate("${NOPE}", &env).unwrap_err(),
            "environment variable `NOPE` is not set (write `${NOPE:-default}` for a default)"
        );
        assert_eq!(
            interpolate("${NOPE:-x:y}", &env).unwrap(),
            ("x:y".into(), vec![])
        );
        assert_eq!(
            interpolate("${TOKEN:-x}", &env).unwrap().1,
            vec!["s3cret-value".to_string()]
        );
        assert!(
            interpolate("${TOKEN", &env)
                .unwrap_err()
                .contains("not closed")
        );
        assert!(
            interpolate("${1X}", &env)
                .unwrap_err()
                .contains("not a valid variable name")
        );
    }

    #[test]
    fn nodes_keep_positions_paths_and_secrets() {
        let mut out = Vec::new();
        let doc = Document::parse(
            Path::new("t.yaml"),
            "a:\n  - x\n  - ${TOKEN}\n",
            &env,
            &[],
            &mut out,
        )
        .unwrap();
        assert!(out.is_empty());
        let secret = doc.nodes.iter().find(|n| n.is_secret()).unwrap();
        assert_eq!(secret.path, "a[1]");
        assert_eq!(secret.mark, Mark { line: 3, column: 5 });
        assert_eq!(
            doc.secrets_below(doc.root),
            vec!["s3cret-value".to_string()]
        );
        assert!(!secret.describe().contains("s3cret"));
    }
}
