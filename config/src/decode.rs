//! Typed decoding of a [`Document`] through serde, without stopping at the
//! first problem.
//!
//! Raw config types hold their leaves as [`Field<T>`]: decoding a struct only
//! records where each value sits, and each value is decoded on its own later,
//! so one wrong value never hides the next. Unknown keys are found before
//! serde sees a mapping, each reported with a "did you mean" when a known key
//! is close.

use crate::diagnostic::Diagnostic;
use crate::source::{Document, NodeId, Value};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Deserialize;
use serde::de::{
    self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Visitor,
};
use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;
use std::marker::PhantomData;

/// The newtype name by which [`Field`] asks our decoder for a node id.
const FIELD_MARKER: &str = "__statuspage_field";

/// A value in the YAML that is decoded later, on its own, with its position kept.
pub(crate) struct Field<T> {
    pub id: NodeId,
    _type: PhantomData<fn() -> T>,
}

impl<T> Clone for Field<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Field<T> {}

impl<T> fmt::Debug for Field<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Field(#{})", self.id)
    }
}

impl<'de, T> Deserialize<'de> for Field<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<fn() -> T>);
        impl<T> Visitor<'_> for V<T> {
            type Value = Field<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a node of a statuspage config document")
            }
            fn visit_u64<E>(self, id: u64) -> Result<Field<T>, E> {
                Ok(Field {
                    id: id as NodeId,
                    _type: PhantomData,
                })
            }
        }
        d.deserialize_newtype_struct(FIELD_MARKER, V(PhantomData))
    }
}

impl<T: JsonSchema> JsonSchema for Field<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }
    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }
    fn schema_id() -> Cow<'static, str> {
        T::schema_id()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        T::json_schema(generator)
    }
}

/// The decoding context of one file: the document and the problems found so far.
pub(crate) struct Cx<'a> {
    pub doc: &'a Document,
    pub problems: RefCell<Vec<Diagnostic>>,
}

impl<'a> Cx<'a> {
    pub fn new(doc: &'a Document) -> Self {
        Self {
            doc,
            problems: RefCell::new(Vec::new()),
        }
    }

    /// Decodes node `id` as a `T`; a problem is recorded and gives `None`.
    pub fn decode<T: for<'de> Deserialize<'de>>(&self, id: NodeId) -> Option<T> {
        match T::deserialize(Decoder { cx: self, id }) {
            Ok(v) => Some(v),
            Err(e) => {
                self.record(e);
                None
            }
        }
    }

    /// Decodes a field's value.
    pub fn get<T: for<'de> Deserialize<'de>>(&self, field: Field<T>) -> Option<T> {
        self.decode(field.id)
    }

    /// Decodes an optional field: `None` when absent, or when wrong (recorded).
    pub fn opt<T: for<'de> Deserialize<'de>>(&self, field: Option<Field<T>>) -> Option<T> {
        field.and_then(|f| self.get(f))
    }

    /// Records `message` about node `id`.
    pub fn error(&self, id: NodeId, message: impl AsRef<str>) {
        if self.doc.node(id).broken {
            return;
        }
        self.problems
            .borrow_mut()
            .push(self.doc.error_at(id, message.as_ref()));
    }

    fn record(&self, e: DecodeError) {
        let id = e.at.unwrap_or(self.doc.root);
        let message = match e.kind {
            ErrorKind::Message(m) => m,
            ErrorKind::InvalidType(expected) => {
                format!(
                    "expected {expected}, found {}",
                    self.doc.node(id).describe()
                )
            }
        };
        self.error(id, message);
    }

    pub fn into_problems(self) -> Vec<Diagnostic> {
        self.problems.into_inner()
    }
}

/// A decoding failure, positioned at the innermost node that knew about it.
#[derive(Debug)]
pub(crate) struct DecodeError {
    at: Option<NodeId>,
    kind: ErrorKind,
}

#[derive(Debug)]
enum ErrorKind {
    Message(String),
    /// Rendered against the node, so a secret value is never shown.
    InvalidType(String),
}

impl DecodeError {
    fn at(mut self, id: NodeId) -> Self {
        self.at.get_or_insert(id);
        self
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ErrorKind::Message(m) => f.write_str(m),
            ErrorKind::InvalidType(e) => write!(f, "expected {e}"),
        }
    }
}

impl std::error::Error for DecodeError {}

impl de::Error for DecodeError {
    fn custom<M: fmt::Display>(msg: M) -> Self {
        DecodeError {
            at: None,
            kind: ErrorKind::Message(msg.to_string()),
        }
    }
    fn invalid_type(_: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        DecodeError {
            at: None,
            kind: ErrorKind::InvalidType(friendly_expected(&exp.to_string())),
        }
    }
    fn invalid_value(_: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        Self::invalid_type(de::Unexpected::Other(""), exp)
    }
    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        Self::custom(one_of_message("value", variant, expected))
    }
    fn missing_field(field: &'static str) -> Self {
        Self::custom(format!("missing key `{field}`"))
    }
}

/// serde's names for primitive types, in words a config author knows.
fn friendly_expected(exp: &str) -> String {
    match exp {
        "u8" | "u16" | "u32" | "u64" | "usize" => "a whole number (0 or more)".into(),
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number".into(),
        "f32" | "f64" => "a number".into(),
        "a string" | "a borrowed string" => "a string".into(),
        "a boolean" => "`true` or `false`".into(),
        e if e.starts_with("struct ") => "a mapping".into(),
        e if e.starts_with("enum ") => "a string".into(),
        e if e.starts_with("a map") => "a mapping".into(),
        e => e.to_string(),
    }
}

/// "unknown key `x`, did you mean `y`?" or "... expected one of: ...".
pub(crate) fn one_of_message(what: &str, found: &str, expected: &[&str]) -> String {
    if let Some(close) = did_you_mean(found, expected) {
        format!("unknown {what} `{found}`, did you mean `{close}`?")
    } else {
        let list = expected
            .iter()
            .map(|e| format!("`{e}`"))
            .collect::<Vec<_>>()
            .join(", ");
        format!("unknown {what} `{found}`, expected one of: {list}")
    }
}

/// The closest candidate, when it is close enough to be a typo.
pub(crate) fn did_you_mean<'a>(found: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let found_lower = found.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| {
            (
                strsim::damerau_levenshtein(&found_lower, &c.to_ascii_lowercase()),
                *c,
            )
        })
        .filter(|(d, c)| *d <= (c.len().max(found.len()) / 3).max(1))
        .min()
        .map(|(_, c)| c)
}

/// The serde `Deserializer` over one node.
struct Decoder<'c, 'a> {
    cx: &'c Cx<'a>,
    id: NodeId,
}

impl<'c, 'a> Decoder<'c, 'a> {
    fn value(&self) -> &'c Value {
        &self.cx.doc.node(self.id).value
    }

    /// An error saying what was expected here; the node says what was found.
    fn wrong<T>(&self, expected: &str) -> Result<T, DecodeError> {
        Err(DecodeError {
            at: Some(self.id),
            kind: ErrorKind::InvalidType(expected.to_string()),
        })
    }

    /// An integer, also from an interpolated string (`port: ${PORT}`).
    fn integer(&self) -> Result<i128, DecodeError> {
        let node = self.cx.doc.node(self.id);
        match &node.value {
            Value::Int(i) => Ok(*i),
            Value::Str(s) if node.is_secret() => {
                s.trim().parse().or_else(|_| self.wrong("a whole number"))
            }
            _ => self.wrong("a whole number"),
        }
    }
}

macro_rules! integer_methods {
    ($($method:ident => $visit:ident: $ty:ty),*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
            let id = self.id;
            let i = self.integer()?;
            match <$ty>::try_from(i) {
                Ok(v) => visitor.$visit(v).map_err(|e: DecodeError| e.at(id)),
                Err(_) => Err(DecodeError {
                    at: Some(id),
                    kind: ErrorKind::Message(format!(
                        "expected a whole number from {} to {}, found {}",
                        <$ty>::MIN, <$ty>::MAX, self.cx.doc.node(id).describe()
                    )),
                }),
            }
        }
    )*};
}

impl<'de> Deserializer<'de> for Decoder<'_, '_> {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        let id = self.id;
        let result = match self.value() {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Int(i) => match u64::try_from(*i) {
                Ok(u) => visitor.visit_u64(u),
                Err(_) => visitor.visit_i64(*i as i64),
            },
            Value::Float(x) => visitor.visit_f64(*x),
            Value::Str(s) => visitor.visit_str(s),
            Value::Seq(items) => visitor.visit_seq(Items {
                cx: self.cx,
                items: items.iter(),
            }),
            Value::Map(_) => visitor.visit_map(Entries::all(self.cx, id)),
        };
        result.map_err(|e: DecodeError| e.at(id))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.value() {
            Value::Bool(b) => visitor
                .visit_bool(*b)
                .map_err(|e: DecodeError| e.at(self.id)),
            _ => self.deserialize_any(visitor),
        }
    }

    integer_methods!(
        deserialize_u8 => visit_u8: u8, deserialize_u16 => visit_u16: u16,
        deserialize_u32 => visit_u32: u32, deserialize_u64 => visit_u64: u64,
        deserialize_i8 => visit_i8: i8, deserialize_i16 => visit_i16: i16,
        deserialize_i32 => visit_i32: i32, deserialize_i64 => visit_i64: i64
    );

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.value() {
            Value::Float(x) => visitor.visit_f64(*x),
            Value::Int(i) => visitor.visit_f64(*i as f64),
            _ => return self.deserialize_any(visitor),
        }
        .map_err(|e: DecodeError| e.at(self.id))
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.value() {
            Value::Str(s) => visitor.visit_str(s).map_err(|e: DecodeError| e.at(self.id)),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.value() {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        if name == FIELD_MARKER {
            visitor.visit_u64(self.id as u64)
        } else {
            visitor.visit_newtype_struct(self)
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.value() {
            Value::Seq(items) => visitor
                .visit_seq(Items {
                    cx: self.cx,
                    items: items.iter(),
                })
                .map_err(|e: DecodeError| e.at(self.id)),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.value() {
            Value::Map(_) => visitor
                .visit_map(Entries::all(self.cx, self.id))
                .map_err(|e: DecodeError| e.at(self.id)),
            Value::Null => visitor
                .visit_map(Entries::empty(self.cx))
                .map_err(|e: DecodeError| e.at(self.id)),
            _ => self.wrong("a mapping"),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        match self.value() {
            Value::Map(_) => visitor
                .visit_map(Entries::known(self.cx, self.id, fields))
                .map_err(|e: DecodeError| e.at(self.id)),
            // `expect:` with nothing under it is an empty mapping.
            Value::Null => visitor
                .visit_map(Entries::empty(self.cx))
                .map_err(|e: DecodeError| e.at(self.id)),
            // Not through the visitor: serde's struct visitors accept sequences.
            _ => self.wrong("a mapping"),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        match self.value() {
            Value::Str(s) => visitor
                .visit_enum(s.as_str().into_deserializer())
                .map_err(|e: DecodeError| e.at(self.id)),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        i128 u128 char bytes byte_buf unit unit_struct tuple tuple_struct identifier
    }
}

struct Items<'c, 'a, I> {
    cx: &'c Cx<'a>,
    items: I,
}

impl<'de, 'c, 'a, I: Iterator<Item = &'c NodeId>> SeqAccess<'de> for Items<'c, 'a, I> {
    type Error = DecodeError;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DecodeError> {
        match self.items.next() {
            Some(id) => seed
                .deserialize(Decoder {
                    cx: self.cx,
                    id: *id,
                })
                .map(Some),
            None => Ok(None),
        }
    }
}

/// The entries of a mapping that a visitor is shown.
struct Entries<'c, 'a> {
    cx: &'c Cx<'a>,
    entries: Vec<(&'c str, NodeId)>,
    next: usize,
}

impl<'c, 'a> Entries<'c, 'a> {
    fn empty(cx: &'c Cx<'a>) -> Self {
        Self {
            cx,
            entries: Vec::new(),
            next: 0,
        }
    }

    fn all(cx: &'c Cx<'a>, id: NodeId) -> Self {
        let entries = match &cx.doc.node(id).value {
            Value::Map(entries) => entries.iter().map(|e| (e.key.as_str(), e.value)).collect(),
            _ => Vec::new(),
        };
        Self {
            cx,
            entries,
            next: 0,
        }
    }

    /// Only the known keys; each unknown one is reported here, with a suggestion.
    fn known(cx: &'c Cx<'a>, id: NodeId, fields: &'static [&'static str]) -> Self {
        let node = cx.doc.node(id);
        let mut entries = Vec::new();
        if let Value::Map(all) = &node.value {
            for e in all {
                if fields.contains(&e.key.as_str()) {
                    entries.push((e.key.as_str(), e.value));
                } else {
                    let mut d = cx.doc.error_at(id, &one_of_message("key", &e.key, fields));
                    d.origin.mark = e.key_mark;
                    cx.problems.borrow_mut().push(d);
                }
            }
        }
        Self {
            cx,
            entries,
            next: 0,
        }
    }
}

impl<'de> MapAccess<'de> for Entries<'_, '_> {
    type Error = DecodeError;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DecodeError> {
        match self.entries.get(self.next) {
            Some((key, _)) => seed
                .deserialize(de::value::StrDeserializer::<DecodeError>::new(key))
                .map(Some),
            None => Ok(None),
        }
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, DecodeError> {
        let (_, id) = self.entries[self.next];
        self.next += 1;
        seed.deserialize(Decoder { cx: self.cx, id })
    }
}
