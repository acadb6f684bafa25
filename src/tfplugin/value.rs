//! Terraform's type system (cty) and its two wire encodings, msgpack and JSON,
//! as carried by `DynamicValue` (see Terraform's
//! `docs/plugin-protocol/object-wire-format.md`).
//!
//! Decoding treats its input as untrusted: every length is checked against the
//! bytes that remain before anything is allocated, nesting is limited to
//! [`MAX_DEPTH`] containers, and malformed input yields a [`CodecError`] rather
//! than a panic.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Deepest container nesting accepted when decoding, so that hostile input
/// cannot exhaust the stack.
const MAX_DEPTH: usize = 64;

/// A Terraform type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Type {
    Bool,
    Number,
    String,
    /// The "any type" placeholder: values carry their real type on the wire.
    Dynamic,
    List(Box<Type>),
    Set(Box<Type>),
    Map(Box<Type>),
    /// `optional` names attributes that a type constraint lets callers omit;
    /// on the wire every attribute is still present.
    Object {
        attrs: BTreeMap<String, Type>,
        optional: BTreeSet<String>,
    },
    Tuple(Vec<Type>),
}

impl Type {
    /// An object type without optional attributes.
    pub fn object(attrs: impl IntoIterator<Item = (impl Into<String>, Type)>) -> Type {
        Type::Object {
            attrs: attrs.into_iter().map(|(k, t)| (k.into(), t)).collect(),
            optional: BTreeSet::new(),
        }
    }

    pub fn list(t: Type) -> Type {
        Type::List(Box::new(t))
    }

    pub fn set(t: Type) -> Type {
        Type::Set(Box::new(t))
    }

    pub fn map(t: Type) -> Type {
        Type::Map(Box::new(t))
    }

    /// cty's JSON type description, as used in `Schema.Attribute.type` and
    /// inside dynamic values.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            Type::Bool => json!("bool"),
            Type::Number => json!("number"),
            Type::String => json!("string"),
            Type::Dynamic => json!("dynamic"),
            Type::List(t) => json!(["list", t.to_json()]),
            Type::Set(t) => json!(["set", t.to_json()]),
            Type::Map(t) => json!(["map", t.to_json()]),
            Type::Object { attrs, optional } => {
                let attrs: serde_json::Map<_, _> = attrs
                    .iter()
                    .map(|(k, t)| (k.clone(), t.to_json()))
                    .collect();
                if optional.is_empty() {
                    json!(["object", attrs])
                } else {
                    json!(["object", attrs, optional])
                }
            }
            Type::Tuple(ts) => json!(["tuple", ts.iter().map(Type::to_json).collect::<Vec<_>>()]),
        }
    }

    /// Parses a cty JSON type description.
    pub fn from_json(v: &serde_json::Value) -> Result<Type, CodecError> {
        type_from_json(v, 0).map_err(|message| CodecError {
            path: Vec::new(),
            message,
        })
    }

    /// The word used for this type in error messages.
    fn name(&self) -> &'static str {
        match self {
            Type::Bool => "bool",
            Type::Number => "number",
            Type::String => "string",
            Type::Dynamic => "dynamic value",
            Type::List(_) => "list",
            Type::Set(_) => "set",
            Type::Map(_) => "map",
            Type::Object { .. } => "object",
            Type::Tuple(_) => "tuple",
        }
    }

    fn is_container(&self) -> bool {
        !matches!(self, Type::Bool | Type::Number | Type::String)
    }
}

fn type_from_json(v: &serde_json::Value, depth: usize) -> Result<Type, String> {
    use serde_json::Value as J;
    if depth >= MAX_DEPTH {
        return Err(format!("type nested deeper than {MAX_DEPTH} levels"));
    }
    let inner = |v: &J| type_from_json(v, depth + 1);
    let invalid = || format!("invalid type description {v}");
    match v {
        J::String(s) => match s.as_str() {
            "bool" => Ok(Type::Bool),
            "number" => Ok(Type::Number),
            "string" => Ok(Type::String),
            "dynamic" => Ok(Type::Dynamic),
            _ => Err(invalid()),
        },
        J::Array(items) => match (items.first().and_then(J::as_str), items.get(1..)) {
            (Some("list"), Some([t])) => Ok(Type::list(inner(t)?)),
            (Some("set"), Some([t])) => Ok(Type::set(inner(t)?)),
            (Some("map"), Some([t])) => Ok(Type::map(inner(t)?)),
            (Some("tuple"), Some([J::Array(ts)])) => {
                Ok(Type::Tuple(ts.iter().map(inner).collect::<Result<_, _>>()?))
            }
            (Some("object"), Some([J::Object(attrs), rest @ ..])) => {
                let attrs = attrs
                    .iter()
                    .map(|(k, t)| Ok((k.clone(), inner(t)?)))
                    .collect::<Result<BTreeMap<_, _>, String>>()?;
                let optional = match rest {
                    [] => BTreeSet::new(),
                    [J::Array(names)] => names
                        .iter()
                        .map(|n| match n.as_str() {
                            Some(n) if attrs.contains_key(n) => Ok(n.to_owned()),
                            _ => Err(format!("invalid optional attribute {n}")),
                        })
                        .collect::<Result<_, _>>()?,
                    _ => return Err(invalid()),
                };
                Ok(Type::Object { attrs, optional })
            }
            _ => Err(invalid()),
        },
        _ => Err(invalid()),
    }
}

/// A Terraform number: exact integers are kept exact; others are f64; values
/// too large for both are kept as their decimal text.
///
/// Decoders normalise: an integral f64 that fits i64 becomes `Int`, because
/// cty does not distinguish `3` from `3.0` and encodes both as an integer.
#[derive(Debug, Clone, PartialEq)]
pub enum Number {
    Int(i64),
    Float(f64),
    /// Canonical decimal text (no `+`, no redundant leading zeros), so that it
    /// is also a valid JSON number.
    Big(String),
}

impl Number {
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Number::Int(i) => Some(*i),
            Number::Float(f) => exact_i64(*f),
            Number::Big(text) => text.parse().ok(),
        }
    }

    /// The nearest f64; `None` only when the value overflows f64.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Number::Int(i) => Some(*i as f64),
            Number::Float(f) => Some(*f),
            Number::Big(text) => text.parse().ok().filter(|f: &f64| f.is_finite()),
        }
    }

    fn from_f64(f: f64) -> Number {
        exact_i64(f).map_or(Number::Float(f), Number::Int)
    }

    /// Parses decimal text as cty writes it for numbers that neither i64 nor
    /// f64 holds exactly.
    fn parse(text: &str) -> Option<Number> {
        let (canonical, integer) = canonical_decimal(text)?;
        if integer {
            return Some(
                canonical
                    .parse()
                    .map_or(Number::Big(canonical), Number::Int),
            );
        }
        let f: f64 = canonical.parse().ok()?;
        Some(if f.is_finite() {
            Number::from_f64(f)
        } else {
            Number::Big(canonical)
        })
    }
}

impl From<i64> for Number {
    fn from(i: i64) -> Number {
        Number::Int(i)
    }
}

fn exact_i64(f: f64) -> Option<i64> {
    // 2^63 is exactly representable; i64 covers [-2^63, 2^63).
    let bound = 9_223_372_036_854_775_808.0;
    (f.fract() == 0.0 && (-bound..bound).contains(&f)).then_some(f as i64)
}

/// Validates decimal text (`[+-]digits[.digits][(e|E)[+-]digits]`) and returns
/// it in canonical form, plus whether it is a plain integer.
fn canonical_decimal(text: &str) -> Option<(String, bool)> {
    let digits = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
    let (sign, unsigned) = match text.as_bytes().first()? {
        b'-' => ("-", &text[1..]),
        b'+' => ("", &text[1..]),
        _ => ("", text),
    };
    let (int, suffix) = unsigned.split_at(digits(unsigned));
    if int.is_empty() {
        return None;
    }
    let mut rest = suffix;
    if let Some(frac) = rest.strip_prefix('.') {
        let n = digits(frac);
        if n == 0 {
            return None;
        }
        rest = &frac[n..];
    }
    if let Some(exp) = rest.strip_prefix(['e', 'E']) {
        let exp = exp.strip_prefix(['+', '-']).unwrap_or(exp);
        let n = digits(exp);
        if n == 0 {
            return None;
        }
        rest = &exp[n..];
    }
    if !rest.is_empty() {
        return None;
    }
    let int = match int.trim_start_matches('0') {
        "" => "0",
        trimmed => trimmed,
    };
    Some((format!("{sign}{int}{suffix}"), suffix.is_empty()))
}

/// `Big` text must be canonical so both encodings can emit it verbatim.
fn check_big(text: &str) -> Result<(), String> {
    match canonical_decimal(text) {
        Some((canonical, _)) if canonical == text => Ok(()),
        _ => Err(format!("invalid number text {text:?}")),
    }
}

/// A Terraform value. `Null` and `Unknown` are untyped here: their type is
/// the one the schema gives for their position.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Unknown,
    Bool(bool),
    Number(Number),
    String(String),
    List(Vec<Value>),
    /// Element order is kept as received; no deduplication.
    Set(Vec<Value>),
    Tuple(Vec<Value>),
    Map(BTreeMap<String, Value>),
    Object(BTreeMap<String, Value>),
}

static NULL: Value = Value::Null;

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    pub fn is_unknown(&self) -> bool {
        matches!(self, Value::Unknown)
    }

    /// true when this value or anything inside it is unknown
    pub fn contains_unknown(&self) -> bool {
        match self {
            Value::Unknown => true,
            Value::List(items) | Value::Set(items) | Value::Tuple(items) => {
                items.iter().any(Value::contains_unknown)
            }
            Value::Map(m) | Value::Object(m) => m.values().any(Value::contains_unknown),
            _ => false,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Number(n) => n.as_i64(),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(n) => n.as_f64(),
            _ => None,
        }
    }

    /// Object attribute (or map key).
    pub fn get(&self, attr: &str) -> Option<&Value> {
        match self {
            Value::Object(m) | Value::Map(m) => m.get(attr),
            _ => None,
        }
    }

    pub fn get_mut(&mut self, attr: &str) -> Option<&mut Value> {
        match self {
            Value::Object(m) | Value::Map(m) => m.get_mut(attr),
            _ => None,
        }
    }

    /// Best-effort type of a known value, used to encode values whose schema
    /// type is Dynamic; empty collections get element type Dynamic.
    ///
    /// A collection's element type unifies its elements' types (a null or
    /// unknown element fits any type), so that e.g. objects with some null
    /// attributes still share one type, as Terraform requires of list
    /// elements. When the elements cannot share a type the element type is
    /// Dynamic and each element carries its own.
    pub fn infer_type(&self) -> Type {
        match self {
            Value::Null | Value::Unknown => Type::Dynamic,
            Value::Bool(_) => Type::Bool,
            Value::Number(_) => Type::Number,
            Value::String(_) => Type::String,
            Value::List(items) => Type::list(common_type(items.iter())),
            Value::Set(items) => Type::set(common_type(items.iter())),
            Value::Map(m) => Type::map(common_type(m.values())),
            Value::Tuple(items) => Type::Tuple(items.iter().map(Value::infer_type).collect()),
            Value::Object(m) => Type::object(m.iter().map(|(k, v)| (k.clone(), v.infer_type()))),
        }
    }

    /// The word used for this value in error messages.
    fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Unknown => "unknown",
            Value::Bool(_) => "bool",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::List(_) => "list",
            Value::Set(_) => "set",
            Value::Tuple(_) => "tuple",
            Value::Map(_) => "map",
            Value::Object(_) => "object",
        }
    }
}

fn common_type<'a>(items: impl Iterator<Item = &'a Value> + Clone) -> Type {
    let candidate = items
        .clone()
        .map(Value::infer_type)
        .fold(Type::Dynamic, unify);
    // Unification treats Dynamic as "anything", which a conflict deeper down
    // also produces; checking every element catches the types it got wrong.
    if items.into_iter().all(|v| fits(v, &candidate)) {
        candidate
    } else {
        Type::Dynamic
    }
}

fn unify(a: Type, b: Type) -> Type {
    match (a, b) {
        (Type::Dynamic, t) | (t, Type::Dynamic) => t,
        (Type::List(a), Type::List(b)) => Type::list(unify(*a, *b)),
        (Type::Set(a), Type::Set(b)) => Type::set(unify(*a, *b)),
        (Type::Map(a), Type::Map(b)) => Type::map(unify(*a, *b)),
        (Type::Tuple(a), Type::Tuple(b)) if a.len() == b.len() => {
            Type::Tuple(a.into_iter().zip(b).map(|(a, b)| unify(a, b)).collect())
        }
        (Type::Object { attrs: a, .. }, Type::Object { attrs: b, .. }) if a.keys().eq(b.keys()) => {
            Type::object(
                a.into_iter()
                    .zip(b)
                    .map(|((k, a), (_, b))| (k, unify(a, b))),
            )
        }
        (a, b) if a == b => a,
        _ => Type::Dynamic,
    }
}

/// Whether `v` encodes under `ty` and decodes back to the same value kinds.
fn fits(v: &Value, ty: &Type) -> bool {
    match (v, ty) {
        (Value::Null | Value::Unknown, _) | (_, Type::Dynamic) => true,
        (Value::Bool(_), Type::Bool)
        | (Value::Number(_), Type::Number)
        | (Value::String(_), Type::String) => true,
        (Value::List(items), Type::List(t)) | (Value::Set(items), Type::Set(t)) => {
            items.iter().all(|v| fits(v, t))
        }
        (Value::Tuple(items), Type::Tuple(ts)) => {
            items.len() == ts.len() && items.iter().zip(ts).all(|(v, t)| fits(v, t))
        }
        (Value::Map(m), Type::Map(t)) => m.values().all(|v| fits(v, t)),
        (Value::Object(m), Type::Object { attrs, .. }) => {
            m.keys().eq(attrs.keys()) && m.values().zip(attrs.values()).all(|(v, t)| fits(v, t))
        }
        _ => false,
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::String(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::String(s)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Value {
        Value::Number(Number::Int(i))
    }
}

/// Where and why encoding or decoding failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecError {
    pub path: Vec<PathStep>,
    pub message: String,
}

/// One step into a value: object attribute, map key, or list/set/tuple index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathStep {
    Attr(String),
    Key(String),
    Index(i64),
}

impl fmt::Display for PathStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathStep::Attr(name) => write!(f, ".{name}"),
            PathStep::Key(key) => write!(f, "[{}]", serde_json::Value::from(key.as_str())),
            PathStep::Index(i) => write!(f, "[{i}]"),
        }
    }
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.path.is_empty() {
            f.write_str("at ")?;
            for step in &self.path {
                write!(f, "{step}")?;
            }
            f.write_str(": ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for CodecError {}

fn error_at(path: &[PathStep], message: impl Into<String>) -> CodecError {
    CodecError {
        path: path.to_vec(),
        message: message.into(),
    }
}

/// Decodes a msgpack `DynamicValue`. Any extension value is Unknown whatever
/// its code and payload (refinements are ignored). As in cty, an object must
/// carry exactly the attributes of its type.
pub fn decode_msgpack(bytes: &[u8], ty: &Type) -> Result<Value, CodecError> {
    let mut reader = MsgpackReader {
        input: bytes,
        pos: 0,
        path: Vec::new(),
    };
    let value = reader.value(ty, 0)?;
    match bytes.len() - reader.pos {
        0 => Ok(value),
        n => Err(reader.error(format!("{n} trailing bytes after the value"))),
    }
}

/// Encodes as msgpack the way cty does: smallest integer forms, object
/// attributes in sorted order, unknown as `d4 00 00`. An attribute missing
/// from an object value is written as null; list, set and tuple values (and
/// map and object values) are interchangeable where the wire form is the same.
pub fn encode_msgpack(value: &Value, ty: &Type) -> Result<Vec<u8>, CodecError> {
    let mut sink = MsgpackSink(Vec::new());
    encode_value(&mut sink, value, ty, &mut Vec::new())?;
    Ok(sink.0)
}

/// Decodes cty JSON. Numbers keep their exact text when i64 and f64 cannot
/// hold them. Like cty, attributes of an object type that the JSON omits
/// become Null (raw state may omit them), an attribute the type lacks is an
/// error, and primitives convert leniently (`"5"` as a number, `5` or `true`
/// as a string, `"true"`/`"1"`/`"false"`/`"0"` as a bool).
pub fn decode_json(bytes: &[u8], ty: &Type) -> Result<Value, CodecError> {
    let src = std::str::from_utf8(bytes)
        .map_err(|e| error_at(&[], format!("JSON is not valid UTF-8: {e}")))?;
    let mut reader = JsonReader {
        src,
        pos: 0,
        path: Vec::new(),
    };
    let value = reader.value(ty, 0)?;
    reader.skip_whitespace();
    if reader.pos != src.len() {
        return Err(reader.error("trailing data after the JSON value"));
    }
    Ok(value)
}

/// Encodes as cty JSON; unknown values cannot be JSON-encoded: error.
pub fn encode_json(value: &Value, ty: &Type) -> Result<Vec<u8>, CodecError> {
    let mut sink = JsonSink(Vec::new());
    encode_value(&mut sink, value, ty, &mut Vec::new())?;
    Ok(sink.0)
}

/// The output side of an encoding, so that both share one type-directed walk.
trait Sink {
    fn null(&mut self);
    fn unknown(&mut self) -> Result<(), String>;
    fn bool(&mut self, b: bool);
    fn number(&mut self, n: &Number) -> Result<(), String>;
    fn string(&mut self, s: &str) -> Result<(), String>;
    fn begin_seq(&mut self, len: usize) -> Result<(), String>;
    fn element(&mut self, index: usize);
    fn end_seq(&mut self);
    fn begin_map(&mut self, len: usize) -> Result<(), String>;
    fn key(&mut self, index: usize, key: &str) -> Result<(), String>;
    fn end_map(&mut self);
    /// Wraps a value of type Dynamic together with its actual type.
    fn begin_dynamic(&mut self, ty: &Type) -> Result<(), String>;
    fn end_dynamic(&mut self, ty: &Type) -> Result<(), String>;
}

fn encode_value<S: Sink>(
    sink: &mut S,
    value: &Value,
    ty: &Type,
    path: &mut Vec<PathStep>,
) -> Result<(), CodecError> {
    match (value, ty) {
        (Value::Unknown, _) => sink.unknown().map_err(at(path)),
        (Value::Null, _) => {
            sink.null();
            Ok(())
        }
        (_, Type::Dynamic) => {
            let actual = value.infer_type();
            sink.begin_dynamic(&actual).map_err(at(path))?;
            encode_value(sink, value, &actual, path)?;
            sink.end_dynamic(&actual).map_err(at(path))
        }
        (Value::Bool(b), Type::Bool) => {
            sink.bool(*b);
            Ok(())
        }
        (Value::Number(n), Type::Number) => sink.number(n).map_err(at(path)),
        (Value::String(s), Type::String) => sink.string(s).map_err(at(path)),
        (
            Value::List(items) | Value::Set(items) | Value::Tuple(items),
            Type::List(t) | Type::Set(t),
        ) => encode_seq(sink, items, std::iter::repeat(&**t), path),
        (Value::List(items) | Value::Set(items) | Value::Tuple(items), Type::Tuple(ts)) => {
            if items.len() != ts.len() {
                return Err(error_at(
                    path,
                    format!(
                        "expected tuple of {} elements, found {}",
                        ts.len(),
                        items.len()
                    ),
                ));
            }
            encode_seq(sink, items, ts.iter(), path)
        }
        (Value::Map(m) | Value::Object(m), Type::Map(t)) => {
            sink.begin_map(m.len()).map_err(at(path))?;
            for (i, (k, v)) in m.iter().enumerate() {
                sink.key(i, k).map_err(at(path))?;
                path.push(PathStep::Key(k.clone()));
                encode_value(sink, v, t, path)?;
                path.pop();
            }
            sink.end_map();
            Ok(())
        }
        (Value::Map(m) | Value::Object(m), Type::Object { attrs, .. }) => {
            if let Some(extra) = m.keys().find(|k| !attrs.contains_key(*k)) {
                return Err(error_at(path, format!("unsupported attribute {extra:?}")));
            }
            sink.begin_map(attrs.len()).map_err(at(path))?;
            for (i, (k, t)) in attrs.iter().enumerate() {
                sink.key(i, k).map_err(at(path))?;
                path.push(PathStep::Attr(k.clone()));
                encode_value(sink, m.get(k).unwrap_or(&NULL), t, path)?;
                path.pop();
            }
            sink.end_map();
            Ok(())
        }
        _ => Err(error_at(
            path,
            format!("expected {}, found {}", ty.name(), value.kind()),
        )),
    }
}

/// Adapts a sink's error message into a [`CodecError`] at `path`.
fn at(path: &[PathStep]) -> impl Fn(String) -> CodecError + '_ {
    move |message| error_at(path, message)
}

fn encode_seq<'t, S: Sink>(
    sink: &mut S,
    items: &[Value],
    types: impl Iterator<Item = &'t Type>,
    path: &mut Vec<PathStep>,
) -> Result<(), CodecError> {
    sink.begin_seq(items.len()).map_err(at(path))?;
    for (i, (item, t)) in items.iter().zip(types).enumerate() {
        sink.element(i);
        path.push(PathStep::Index(i as i64));
        encode_value(sink, item, t, path)?;
        path.pop();
    }
    sink.end_seq();
    Ok(())
}

struct MsgpackSink(Vec<u8>);

impl MsgpackSink {
    /// Writes a length-prefixed header in its most compact form: `fix` is an
    /// optional (marker base, exclusive limit) for the fix* forms.
    fn header(
        &mut self,
        len: usize,
        fix: Option<(u8, usize)>,
        m8: Option<u8>,
        m16: u8,
        m32: u8,
    ) -> Result<(), String> {
        match (fix, m8) {
            (Some((base, limit)), _) if len < limit => self.0.push(base | len as u8),
            (_, Some(m8)) if len <= 0xff => self.0.extend([m8, len as u8]),
            _ if len <= 0xffff => {
                self.0.push(m16);
                self.0.extend((len as u16).to_be_bytes());
            }
            _ => {
                let len = u32::try_from(len).map_err(|_| "value too long for msgpack")?;
                self.0.push(m32);
                self.0.extend(len.to_be_bytes());
            }
        }
        Ok(())
    }

    fn int(&mut self, i: i64) {
        let out = &mut self.0;
        match i {
            -32..=0x7f => out.push(i as u8),
            0x80..=0xff => out.extend([0xcc, i as u8]),
            0x100..=0xffff => {
                out.push(0xcd);
                out.extend((i as u16).to_be_bytes());
            }
            0x1_0000..=0xffff_ffff => {
                out.push(0xce);
                out.extend((i as u32).to_be_bytes());
            }
            0x1_0000_0000.. => {
                out.push(0xcf);
                out.extend((i as u64).to_be_bytes());
            }
            -0x80..=-33 => out.extend([0xd0, i as u8]),
            -0x8000..=-0x81 => {
                out.push(0xd1);
                out.extend((i as i16).to_be_bytes());
            }
            -0x8000_0000..=-0x8001 => {
                out.push(0xd2);
                out.extend((i as i32).to_be_bytes());
            }
            _ => {
                out.push(0xd3);
                out.extend(i.to_be_bytes());
            }
        }
    }
}

impl Sink for MsgpackSink {
    fn null(&mut self) {
        self.0.push(0xc0);
    }

    fn unknown(&mut self) -> Result<(), String> {
        // fixext1, extension code 0, one ignored payload byte: what cty emits
        // for an unknown value without refinements.
        self.0.extend([0xd4, 0, 0]);
        Ok(())
    }

    fn bool(&mut self, b: bool) {
        self.0.push(if b { 0xc3 } else { 0xc2 });
    }

    fn number(&mut self, n: &Number) -> Result<(), String> {
        match n {
            Number::Int(i) => self.int(*i),
            Number::Float(f) if f.is_nan() => return Err("NaN is not a number".into()),
            Number::Float(f) => match exact_i64(*f) {
                Some(i) => self.int(i),
                None => {
                    self.0.push(0xcb);
                    self.0.extend(f.to_bits().to_be_bytes());
                }
            },
            Number::Big(text) => {
                check_big(text)?;
                self.string(text)?;
            }
        }
        Ok(())
    }

    fn string(&mut self, s: &str) -> Result<(), String> {
        self.header(s.len(), Some((0xa0, 32)), Some(0xd9), 0xda, 0xdb)?;
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }

    fn begin_seq(&mut self, len: usize) -> Result<(), String> {
        self.header(len, Some((0x90, 16)), None, 0xdc, 0xdd)
    }

    fn element(&mut self, _index: usize) {}

    fn end_seq(&mut self) {}

    fn begin_map(&mut self, len: usize) -> Result<(), String> {
        self.header(len, Some((0x80, 16)), None, 0xde, 0xdf)
    }

    fn key(&mut self, _index: usize, key: &str) -> Result<(), String> {
        self.string(key)
    }

    fn end_map(&mut self) {}

    fn begin_dynamic(&mut self, ty: &Type) -> Result<(), String> {
        let json = serde_json::to_vec(&ty.to_json()).map_err(|e| e.to_string())?;
        self.0.push(0x92);
        self.header(json.len(), None, Some(0xc4), 0xc5, 0xc6)?;
        self.0.extend(json);
        Ok(())
    }

    fn end_dynamic(&mut self, _ty: &Type) -> Result<(), String> {
        Ok(())
    }
}

struct JsonSink(Vec<u8>);

impl Sink for JsonSink {
    fn null(&mut self) {
        self.0.extend_from_slice(b"null");
    }

    fn unknown(&mut self) -> Result<(), String> {
        Err("unknown values cannot be represented in JSON".into())
    }

    fn bool(&mut self, b: bool) {
        self.0.extend_from_slice(if b { b"true" } else { b"false" });
    }

    fn number(&mut self, n: &Number) -> Result<(), String> {
        let int = match n {
            Number::Int(i) => *i,
            Number::Float(f) if !f.is_finite() => {
                return Err(format!("{f} cannot be represented in JSON"))
            }
            Number::Float(f) => match exact_i64(*f) {
                Some(i) => i,
                None => return serde_json::to_writer(&mut self.0, f).map_err(|e| e.to_string()),
            },
            Number::Big(text) => {
                check_big(text)?;
                self.0.extend_from_slice(text.as_bytes());
                return Ok(());
            }
        };
        self.0.extend_from_slice(int.to_string().as_bytes());
        Ok(())
    }

    fn string(&mut self, s: &str) -> Result<(), String> {
        serde_json::to_writer(&mut self.0, s).map_err(|e| e.to_string())
    }

    fn begin_seq(&mut self, _len: usize) -> Result<(), String> {
        self.0.push(b'[');
        Ok(())
    }

    fn element(&mut self, index: usize) {
        if index > 0 {
            self.0.push(b',');
        }
    }

    fn end_seq(&mut self) {
        self.0.push(b']');
    }

    fn begin_map(&mut self, _len: usize) -> Result<(), String> {
        self.0.push(b'{');
        Ok(())
    }

    fn key(&mut self, index: usize, key: &str) -> Result<(), String> {
        self.element(index);
        self.string(key)?;
        self.0.push(b':');
        Ok(())
    }

    fn end_map(&mut self) {
        self.0.push(b'}');
    }

    fn begin_dynamic(&mut self, _ty: &Type) -> Result<(), String> {
        self.0.extend_from_slice(br#"{"value":"#);
        Ok(())
    }

    fn end_dynamic(&mut self, ty: &Type) -> Result<(), String> {
        self.0.extend_from_slice(br#","type":"#);
        serde_json::to_writer(&mut self.0, &ty.to_json()).map_err(|e| e.to_string())?;
        self.0.push(b'}');
        Ok(())
    }
}

/// One msgpack item header (with the payload of scalars).
enum Token<'a> {
    Nil,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Str(&'a [u8]),
    Bin(&'a [u8]),
    Array(usize),
    Map(usize),
    Ext,
}

impl Token<'_> {
    fn describe(&self) -> &'static str {
        match self {
            Token::Nil => "null",
            Token::Bool(_) => "bool",
            Token::Int(_) | Token::Uint(_) => "integer",
            Token::Float(_) => "float",
            Token::Str(_) => "string",
            Token::Bin(_) => "binary",
            Token::Array(_) => "array",
            Token::Map(_) => "map",
            Token::Ext => "extension",
        }
    }
}

struct MsgpackReader<'a> {
    input: &'a [u8],
    pos: usize,
    path: Vec<PathStep>,
}

impl<'a> MsgpackReader<'a> {
    fn error(&self, message: impl Into<String>) -> CodecError {
        error_at(&self.path, message)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.input.len())
            .ok_or_else(|| self.error("unexpected end of msgpack input"))?;
        let bytes = &self.input[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    /// Reads a big-endian unsigned integer of `n` (at most 8) bytes.
    fn uint(&mut self, n: usize) -> Result<u64, CodecError> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0, |acc, &b| acc << 8 | u64::from(b)))
    }

    fn take_len(&mut self, len: u64) -> Result<&'a [u8], CodecError> {
        let len = usize::try_from(len).map_err(|_| self.error("msgpack length too large"))?;
        self.take(len)
    }

    /// Rejects element counts that the remaining input could not possibly
    /// hold (each element takes at least one byte) before anything allocates.
    fn count(&self, count: u64, bytes_per_item: u64) -> Result<usize, CodecError> {
        let remaining = (self.input.len() - self.pos) as u64;
        match count.checked_mul(bytes_per_item) {
            Some(needed) if needed <= remaining => Ok(count as usize),
            _ => Err(self.error(format!(
                "msgpack length {count} exceeds the remaining input"
            ))),
        }
    }

    fn token(&mut self) -> Result<Token<'a>, CodecError> {
        let marker = self.take(1)?[0];
        Ok(match marker {
            0x00..=0x7f => Token::Int(i64::from(marker)),
            0x80..=0x8f => Token::Map(self.count(u64::from(marker & 0x0f), 2)?),
            0x90..=0x9f => Token::Array(self.count(u64::from(marker & 0x0f), 1)?),
            0xa0..=0xbf => Token::Str(self.take(usize::from(marker & 0x1f))?),
            0xc0 => Token::Nil,
            0xc1 => return Err(self.error("invalid msgpack marker 0xc1")),
            0xc2 => Token::Bool(false),
            0xc3 => Token::Bool(true),
            0xc4..=0xc6 => {
                let len = self.uint(1 << (marker - 0xc4))?;
                Token::Bin(self.take_len(len)?)
            }
            0xc7..=0xc9 => {
                let len = self.uint(1 << (marker - 0xc7))?;
                self.take_len(len.saturating_add(1))?; // type code, then payload
                Token::Ext
            }
            0xca => Token::Float(f64::from(f32::from_bits(self.uint(4)? as u32))),
            0xcb => Token::Float(f64::from_bits(self.uint(8)?)),
            0xcc..=0xcf => Token::Uint(self.uint(1 << (marker - 0xcc))?),
            0xd0 => Token::Int(i64::from(self.uint(1)? as u8 as i8)),
            0xd1 => Token::Int(i64::from(self.uint(2)? as u16 as i16)),
            0xd2 => Token::Int(i64::from(self.uint(4)? as u32 as i32)),
            0xd3 => Token::Int(self.uint(8)? as i64),
            0xd4..=0xd8 => {
                self.take(1 + (1 << (marker - 0xd4)))?; // type code, then payload
                Token::Ext
            }
            0xd9..=0xdb => {
                let len = self.uint(1 << (marker - 0xd9))?;
                Token::Str(self.take_len(len)?)
            }
            0xdc | 0xdd => {
                let count = self.uint(2 << (marker - 0xdc))?;
                Token::Array(self.count(count, 1)?)
            }
            0xde | 0xdf => {
                let count = self.uint(2 << (marker - 0xde))?;
                Token::Map(self.count(count, 2)?)
            }
            0xe0..=0xff => Token::Int(i64::from(marker as i8)),
        })
    }

    fn utf8(&self, bytes: &'a [u8]) -> Result<&'a str, CodecError> {
        std::str::from_utf8(bytes).map_err(|_| self.error("string is not valid UTF-8"))
    }

    fn key(&mut self) -> Result<String, CodecError> {
        match self.token()? {
            Token::Str(b) | Token::Bin(b) => Ok(self.utf8(b)?.to_owned()),
            other => Err(self.error(format!(
                "map key must be a string, found {}",
                other.describe()
            ))),
        }
    }

    fn value(&mut self, ty: &Type, depth: usize) -> Result<Value, CodecError> {
        let token = self.token()?;
        match token {
            Token::Ext => return Ok(Value::Unknown),
            Token::Nil => return Ok(Value::Null),
            _ if ty.is_container() && depth >= MAX_DEPTH => {
                return Err(self.error(format!("value nested deeper than {MAX_DEPTH} levels")))
            }
            _ => {}
        }
        Ok(match (ty, token) {
            (Type::Bool, Token::Bool(b)) => Value::Bool(b),
            (Type::Number, Token::Int(i)) => Value::Number(Number::Int(i)),
            (Type::Number, Token::Uint(u)) => Value::Number(
                i64::try_from(u).map_or_else(|_| Number::Big(u.to_string()), Number::Int),
            ),
            (Type::Number, Token::Float(f)) if f.is_nan() => {
                return Err(self.error("NaN is not a valid number"))
            }
            (Type::Number, Token::Float(f)) => Value::Number(Number::from_f64(f)),
            (Type::Number, Token::Str(b) | Token::Bin(b)) => {
                let number = std::str::from_utf8(b).ok().and_then(Number::parse);
                Value::Number(number.ok_or_else(|| {
                    self.error("expected number, found a string that is not a number")
                })?)
            }
            (Type::String, Token::Str(b) | Token::Bin(b)) => {
                Value::String(self.utf8(b)?.to_owned())
            }
            (Type::List(t), Token::Array(n)) => {
                Value::List(self.elements(std::iter::repeat_n(&**t, n), depth)?)
            }
            (Type::Set(t), Token::Array(n)) => {
                Value::Set(self.elements(std::iter::repeat_n(&**t, n), depth)?)
            }
            (Type::Tuple(ts), Token::Array(n)) if n == ts.len() => {
                Value::Tuple(self.elements(ts.iter(), depth)?)
            }
            (Type::Tuple(ts), Token::Array(n)) => {
                return Err(self.error(format!(
                    "expected tuple of {} elements, found {n}",
                    ts.len()
                )))
            }
            (Type::Map(t), Token::Map(n)) => {
                let mut map = BTreeMap::new();
                for _ in 0..n {
                    let key = self.key()?;
                    self.path.push(PathStep::Key(key.clone()));
                    if map.contains_key(&key) {
                        return Err(self.error("duplicate map key"));
                    }
                    let v = self.value(t, depth + 1)?;
                    self.path.pop();
                    map.insert(key, v);
                }
                Value::Map(map)
            }
            (Type::Object { attrs, .. }, Token::Map(n)) => {
                let mut map = BTreeMap::new();
                for _ in 0..n {
                    let key = self.key()?;
                    self.path.push(PathStep::Attr(key.clone()));
                    let t = attrs
                        .get(&key)
                        .ok_or_else(|| self.error("unsupported attribute"))?;
                    if map.contains_key(&key) {
                        return Err(self.error("duplicate attribute"));
                    }
                    let v = self.value(t, depth + 1)?;
                    self.path.pop();
                    map.insert(key, v);
                }
                if let Some(missing) = attrs.keys().find(|k| !map.contains_key(*k)) {
                    return Err(self.error(format!("missing attribute {missing:?}")));
                }
                Value::Object(map)
            }
            (Type::Dynamic, Token::Array(2)) => {
                let json = match self.token()? {
                    Token::Str(b) | Token::Bin(b) => b,
                    other => {
                        return Err(self.error(format!(
                            "expected a type description, found {}",
                            other.describe()
                        )))
                    }
                };
                let actual = serde_json::from_slice(json)
                    .map_err(|e| e.to_string())
                    .and_then(|j| type_from_json(&j, 0))
                    .map_err(|m| self.error(format!("invalid type of dynamic value: {m}")))?;
                self.value(&actual, depth + 1)?
            }
            (ty, token) => {
                return Err(self.error(format!(
                    "expected {}, found {}",
                    ty.name(),
                    token.describe()
                )))
            }
        })
    }

    fn elements<'t>(
        &mut self,
        types: impl Iterator<Item = &'t Type>,
        depth: usize,
    ) -> Result<Vec<Value>, CodecError> {
        types
            .enumerate()
            .map(|(i, t)| {
                self.path.push(PathStep::Index(i as i64));
                let v = self.value(t, depth + 1)?;
                self.path.pop();
                Ok(v)
            })
            .collect()
    }
}

struct JsonReader<'a> {
    src: &'a str,
    pos: usize,
    path: Vec<PathStep>,
}

impl<'a> JsonReader<'a> {
    fn error(&self, message: impl Into<String>) -> CodecError {
        error_at(&self.path, message)
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.src.as_bytes().get(self.pos) {
            self.pos += 1;
        }
    }

    /// The next non-whitespace byte, not consumed.
    fn peek(&mut self) -> Result<u8, CodecError> {
        self.skip_whitespace();
        self.src
            .as_bytes()
            .get(self.pos)
            .copied()
            .ok_or_else(|| self.error("unexpected end of JSON input"))
    }

    fn next_byte(&mut self) -> Result<u8, CodecError> {
        let b = self.peek_raw()?;
        self.pos += 1;
        Ok(b)
    }

    fn peek_raw(&self) -> Result<u8, CodecError> {
        self.src
            .as_bytes()
            .get(self.pos)
            .copied()
            .ok_or_else(|| self.error("unexpected end of JSON input"))
    }

    fn expect(&mut self, c: u8) -> Result<(), CodecError> {
        if self.peek()? == c {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(format!("expected '{}' in JSON", c as char)))
        }
    }

    fn literal(&mut self, word: &str) -> Result<(), CodecError> {
        if self.src.as_bytes()[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(self.error("invalid JSON literal"))
        }
    }

    fn number_text(&mut self) -> Result<&'a str, CodecError> {
        let src = self.src;
        let start = self.pos;
        while let Some(b'0'..=b'9' | b'+' | b'-' | b'.' | b'e' | b'E') =
            src.as_bytes().get(self.pos)
        {
            self.pos += 1;
        }
        let text = &src[start..self.pos];
        match canonical_decimal(text) {
            Some(_) => Ok(text),
            None => Err(self.error(format!("invalid JSON number {text:?}"))),
        }
    }

    fn number(&mut self) -> Result<Number, CodecError> {
        let text = self.number_text()?;
        Number::parse(text).ok_or_else(|| self.error(format!("invalid JSON number {text:?}")))
    }

    fn string(&mut self) -> Result<String, CodecError> {
        self.expect(b'"')?;
        let mut out = String::new();
        loop {
            let rest = &self.src[self.pos..];
            let run = rest
                .find(|c: char| c == '"' || c == '\\' || c < ' ')
                .ok_or_else(|| self.error("unterminated JSON string"))?;
            out.push_str(&rest[..run]);
            self.pos += run;
            match self.next_byte()? {
                b'"' => return Ok(out),
                b'\\' => out.push(self.escape()?),
                _ => return Err(self.error("control character in JSON string")),
            }
        }
    }

    fn escape(&mut self) -> Result<char, CodecError> {
        Ok(match self.next_byte()? {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let high = self.hex4()?;
                let code = if (0xd800..0xdc00).contains(&high) {
                    if self.next_byte()? != b'\\' || self.next_byte()? != b'u' {
                        return Err(self.error("unpaired surrogate in JSON string"));
                    }
                    let low = self.hex4()?;
                    if !(0xdc00..0xe000).contains(&low) {
                        return Err(self.error("unpaired surrogate in JSON string"));
                    }
                    0x10000 + ((high - 0xd800) << 10) + (low - 0xdc00)
                } else {
                    high
                };
                char::from_u32(code)
                    .ok_or_else(|| self.error("unpaired surrogate in JSON string"))?
            }
            _ => return Err(self.error("invalid escape in JSON string")),
        })
    }

    fn hex4(&mut self) -> Result<u32, CodecError> {
        let digits = self
            .src
            .get(self.pos..self.pos + 4)
            .filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| self.error("invalid \\u escape in JSON string"))?;
        self.pos += 4;
        u32::from_str_radix(digits, 16).map_err(|_| self.error("invalid \\u escape in JSON string"))
    }

    fn array(
        &mut self,
        depth: usize,
        mut item: impl FnMut(&mut Self, usize) -> Result<(), CodecError>,
    ) -> Result<(), CodecError> {
        self.check_depth(depth)?;
        self.expect(b'[')?;
        if self.peek()? == b']' {
            self.pos += 1;
            return Ok(());
        }
        let mut index = 0;
        loop {
            item(self, index)?;
            index += 1;
            match self.next_nonspace()? {
                b',' => {}
                b']' => return Ok(()),
                _ => return Err(self.error("expected ',' or ']' in JSON array")),
            }
        }
    }

    fn object(
        &mut self,
        depth: usize,
        mut member: impl FnMut(&mut Self, String) -> Result<(), CodecError>,
    ) -> Result<(), CodecError> {
        self.check_depth(depth)?;
        self.expect(b'{')?;
        if self.peek()? == b'}' {
            self.pos += 1;
            return Ok(());
        }
        loop {
            let key = self.string()?;
            self.expect(b':')?;
            self.skip_whitespace();
            member(self, key)?;
            match self.next_nonspace()? {
                b',' => {}
                b'}' => return Ok(()),
                _ => return Err(self.error("expected ',' or '}' in JSON object")),
            }
        }
    }

    fn next_nonspace(&mut self) -> Result<u8, CodecError> {
        self.skip_whitespace();
        self.next_byte()
    }

    fn check_depth(&self, depth: usize) -> Result<(), CodecError> {
        if depth >= MAX_DEPTH {
            return Err(self.error(format!("value nested deeper than {MAX_DEPTH} levels")));
        }
        Ok(())
    }

    fn value(&mut self, ty: &Type, depth: usize) -> Result<Value, CodecError> {
        let c = self.peek()?;
        if c == b'n' {
            self.literal("null")?;
            return Ok(Value::Null);
        }
        match (ty, c) {
            (Type::Bool, b't') => self.literal("true").map(|()| Value::Bool(true)),
            (Type::Bool, b'f') => self.literal("false").map(|()| Value::Bool(false)),
            (Type::Bool, b'"') => match self.string()?.as_str() {
                "true" | "1" => Ok(Value::Bool(true)),
                "false" | "0" => Ok(Value::Bool(false)),
                _ => Err(self.error("expected bool, found string")),
            },
            (Type::Number, b'-' | b'0'..=b'9') => self.number().map(Value::Number),
            (Type::Number, b'"') => {
                let text = self.string()?;
                Number::parse(&text).map(Value::Number).ok_or_else(|| {
                    self.error("expected number, found a string that is not a number")
                })
            }
            (Type::String, b'"') => self.string().map(Value::String),
            (Type::String, b'-' | b'0'..=b'9') => {
                self.number_text().map(|t| Value::String(t.to_owned()))
            }
            (Type::String, b't') => self.literal("true").map(|()| Value::from("true")),
            (Type::String, b'f') => self.literal("false").map(|()| Value::from("false")),
            (Type::List(t), b'[') => self.elements(depth, |_| Some(t)).map(Value::List),
            (Type::Set(t), b'[') => self.elements(depth, |_| Some(t)).map(Value::Set),
            (Type::Tuple(ts), b'[') => {
                let items = self.elements(depth, |i| ts.get(i))?;
                if items.len() != ts.len() {
                    return Err(self.error(format!(
                        "expected tuple of {} elements, found {}",
                        ts.len(),
                        items.len()
                    )));
                }
                Ok(Value::Tuple(items))
            }
            (Type::Map(t), b'{') => {
                let mut map = BTreeMap::new();
                self.object(depth, |r, key| {
                    r.path.push(PathStep::Key(key.clone()));
                    let v = r.value(t, depth + 1)?;
                    r.path.pop();
                    map.insert(key, v);
                    Ok(())
                })?;
                Ok(Value::Map(map))
            }
            (Type::Object { attrs, .. }, b'{') => {
                let mut map = BTreeMap::new();
                self.object(depth, |r, key| {
                    r.path.push(PathStep::Attr(key.clone()));
                    let t = attrs
                        .get(&key)
                        .ok_or_else(|| r.error("unsupported attribute"))?;
                    let v = r.value(t, depth + 1)?;
                    r.path.pop();
                    map.insert(key, v);
                    Ok(())
                })?;
                for k in attrs.keys() {
                    map.entry(k.clone()).or_insert(Value::Null);
                }
                Ok(Value::Object(map))
            }
            (Type::Dynamic, b'{') => self.dynamic(depth),
            (ty, c) => {
                let found = match c {
                    b'"' => "string",
                    b'[' => "array",
                    b'{' => "object",
                    b't' | b'f' => "bool",
                    b'-' | b'0'..=b'9' => "number",
                    _ => "invalid JSON",
                };
                Err(self.error(format!("expected {}, found {found}", ty.name())))
            }
        }
    }

    fn elements<'t>(
        &mut self,
        depth: usize,
        type_at: impl Fn(usize) -> Option<&'t Type>,
    ) -> Result<Vec<Value>, CodecError> {
        let mut items = Vec::new();
        self.array(depth, |r, i| {
            let t = type_at(i).ok_or_else(|| r.error("too many tuple elements"))?;
            r.path.push(PathStep::Index(i as i64));
            items.push(r.value(t, depth + 1)?);
            r.path.pop();
            Ok(())
        })?;
        Ok(items)
    }

    /// `{"value": ..., "type": ...}` in either order: the value can only be
    /// decoded once the type is known, so it is skipped and then revisited.
    fn dynamic(&mut self, depth: usize) -> Result<Value, CodecError> {
        let (mut type_text, mut value_start) = (None, None);
        self.object(depth, |r, key| {
            let start = r.pos;
            r.skip(depth + 1)?;
            match key.as_str() {
                "type" => type_text = Some(&r.src[start..r.pos]),
                "value" => value_start = Some(start),
                _ => return Err(r.error(format!("unexpected key {key:?} in dynamic value"))),
            }
            Ok(())
        })?;
        let (Some(type_text), Some(value_start)) = (type_text, value_start) else {
            return Err(self.error("dynamic value needs both \"value\" and \"type\""));
        };
        let actual = serde_json::from_str(type_text)
            .map_err(|e| e.to_string())
            .and_then(|j| type_from_json(&j, 0))
            .map_err(|m| self.error(format!("invalid type of dynamic value: {m}")))?;
        let end = self.pos;
        self.pos = value_start;
        let value = self.value(&actual, depth + 1)?;
        self.pos = end;
        Ok(value)
    }

    /// Validates and steps over one JSON value of any shape.
    fn skip(&mut self, depth: usize) -> Result<(), CodecError> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'-' | b'0'..=b'9' => self.number_text().map(drop),
            b't' => self.literal("true"),
            b'f' => self.literal("false"),
            b'n' => self.literal("null"),
            b'[' => self.array(depth, |r, _| r.skip(depth + 1)),
            b'{' => self.object(depth, |r, _| r.skip(depth + 1)),
            _ => Err(self.error("invalid JSON")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Bytes from a hex string such as "92 a1 61".
    fn hex(s: &str) -> Vec<u8> {
        let digits: String = s.split_whitespace().collect();
        (0..digits.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Asserts that `value` encodes to exactly `bytes` and decodes back.
    fn wire(ty: &Type, value: Value, bytes: &str) {
        assert_eq!(
            encode_msgpack(&value, ty).unwrap(),
            hex(bytes),
            "encoding {value:?}"
        );
        assert_eq!(
            decode_msgpack(&hex(bytes), ty).unwrap(),
            value,
            "decoding {bytes}"
        );
    }

    fn decodes(ty: &Type, bytes: &str) -> Value {
        decode_msgpack(&hex(bytes), ty).unwrap()
    }

    fn decode_err(ty: &Type, bytes: &[u8]) -> String {
        decode_msgpack(bytes, ty).unwrap_err().to_string()
    }

    fn num(n: Number) -> Value {
        Value::Number(n)
    }

    fn obj<const N: usize>(kv: [(&str, Value); N]) -> Value {
        Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    }

    fn json(ty: &Type, text: &str) -> Result<Value, CodecError> {
        decode_json(text.as_bytes(), ty)
    }

    fn to_json_text(value: &Value, ty: &Type) -> String {
        String::from_utf8(encode_json(value, ty).unwrap()).unwrap()
    }

    #[test]
    fn msgpack_bool() {
        wire(&Type::Bool, Value::Bool(true), "c3");
        wire(&Type::Bool, Value::Bool(false), "c2");
    }

    #[test]
    fn msgpack_int() {
        let n = Type::Number;
        wire(&n, 0.into(), "00");
        wire(&n, 127.into(), "7f");
        wire(&n, 128.into(), "cc 80");
        wire(&n, 255.into(), "cc ff");
        wire(&n, 256.into(), "cd 01 00");
        wire(&n, 65536.into(), "ce 00 01 00 00");
        wire(&n, 4_294_967_296.into(), "cf 00 00 00 01 00 00 00 00");
        wire(&n, i64::MAX.into(), "cf 7f ff ff ff ff ff ff ff");
        // Wider-than-needed forms are accepted too.
        assert_eq!(decodes(&n, "d3 00 00 00 00 00 00 00 05"), 5.into());
        assert_eq!(decodes(&n, "cd 00 07"), 7.into());
        // u64 beyond i64 stays exact as text.
        assert_eq!(
            decodes(&n, "cf ff ff ff ff ff ff ff ff"),
            num(Number::Big("18446744073709551615".into()))
        );
    }

    #[test]
    fn msgpack_negative() {
        let n = Type::Number;
        wire(&n, (-1).into(), "ff");
        wire(&n, (-32).into(), "e0");
        wire(&n, (-33).into(), "d0 df");
        wire(&n, (-128).into(), "d0 80");
        wire(&n, (-129).into(), "d1 ff 7f");
        wire(&n, (-32768).into(), "d1 80 00");
        wire(&n, (-32769).into(), "d2 ff ff 7f ff");
        wire(&n, (-2_147_483_649).into(), "d3 ff ff ff ff 7f ff ff ff");
        wire(&n, i64::MIN.into(), "d3 80 00 00 00 00 00 00 00");
        assert_eq!(decodes(&n, "d1 ff fe"), (-2).into());
    }

    #[test]
    fn msgpack_float() {
        let n = Type::Number;
        wire(&n, num(Number::Float(1.5)), "cb 3f f8 00 00 00 00 00 00");
        wire(&n, num(Number::Float(-0.25)), "cb bf d0 00 00 00 00 00 00");
        wire(&n, num(Number::Float(0.1)), "cb 3f b9 99 99 99 99 99 9a");
        wire(
            &n,
            num(Number::Float(f64::INFINITY)),
            "cb 7f f0 00 00 00 00 00 00",
        );
        assert_eq!(decodes(&n, "ca 3f c0 00 00"), num(Number::Float(1.5)));
        // Integral floats are integers, as in cty.
        assert_eq!(
            encode_msgpack(&num(Number::Float(3.0)), &n).unwrap(),
            hex("03")
        );
        assert_eq!(decodes(&n, "cb 40 08 00 00 00 00 00 00"), 3.into());
        assert!(decode_err(&n, &hex("cb 7f f8 00 00 00 00 00 00")).contains("NaN"));
    }

    #[test]
    fn msgpack_big_number() {
        let n = Type::Number;
        let digits = "123456789012345678901234567890";
        wire(
            &n,
            num(Number::Big(digits.into())),
            "be 31 32 33 34 35 36 37 38 39 30 31 32 33 34 35 36 37 38 39 30 31 32 33 34 35 36 37 38 39 30",
        );
        wire(&n, num(Number::Big("1e400".into())), "a5 31 65 34 30 30");
        // cty sends decimals that f64 cannot hold exactly as strings.
        assert_eq!(decodes(&n, "a3 30 2e 31"), num(Number::Float(0.1)));
        assert_eq!(decodes(&n, "a2 34 32"), 42.into());
        assert_eq!(decodes(&n, "a4 2d 30 30 37"), (-7).into());
        assert!(decode_err(&n, &hex("a3 61 62 63")).contains("expected number"));
        assert!(encode_msgpack(&num(Number::Big("12x".into())), &n).is_err());
    }

    #[test]
    fn msgpack_string() {
        let s = Type::String;
        wire(&s, "hi".into(), "a2 68 69");
        wire(&s, "".into(), "a0");
        wire(&s, "é".into(), "a2 c3 a9");
        wire(
            &s,
            "a".repeat(31).into(),
            &format!("bf{}", " 61".repeat(31)),
        );
        wire(
            &s,
            "a".repeat(32).into(),
            &format!("d9 20{}", " 61".repeat(32)),
        );
        wire(
            &s,
            "a".repeat(256).into(),
            &format!("da 01 00{}", " 61".repeat(256)),
        );
        for bytes in [
            "d9 02 68 69",
            "da 00 02 68 69",
            "db 00 00 00 02 68 69",
            "c4 02 68 69",
        ] {
            assert_eq!(decodes(&s, bytes), "hi".into(), "{bytes}");
        }
        assert!(decode_err(&s, &hex("a1 ff")).contains("UTF-8"));
    }

    #[test]
    fn msgpack_list() {
        let ty = Type::list(Type::String);
        wire(
            &ty,
            Value::List(vec!["a".into(), "b".into()]),
            "92 a1 61 a1 62",
        );
        wire(&ty, Value::List(vec![]), "90");
        wire(
            &ty,
            Value::List(vec![Value::Null, Value::Unknown]),
            "92 c0 d4 00 00",
        );
        assert_eq!(
            decodes(&ty, "dc 00 01 a1 61"),
            Value::List(vec!["a".into()])
        );
        assert_eq!(
            decodes(&ty, "dd 00 00 00 01 a1 61"),
            Value::List(vec!["a".into()])
        );
    }

    #[test]
    fn msgpack_set() {
        let ty = Type::set(Type::Number);
        wire(&ty, Value::Set(vec![2.into(), 1.into()]), "92 02 01");
    }

    #[test]
    fn msgpack_map() {
        let ty = Type::map(Type::Number);
        let value = Value::Map([("x".into(), 1.into()), ("y".into(), (-1).into())].into());
        wire(&ty, value, "82 a1 78 01 a1 79 ff");
        assert_eq!(
            decodes(&ty, "de 00 01 a1 78 01"),
            Value::Map([("x".into(), 1.into())].into())
        );
        assert!(decode_err(&ty, &hex("82 a1 78 01 a1 78 02")).contains("duplicate"));
        assert!(decode_err(&ty, &hex("81 01 01")).contains("key must be a string"));
    }

    fn service_type() -> Type {
        Type::Object {
            attrs: [("name".into(), Type::String), ("port".into(), Type::Number)].into(),
            optional: ["port".into()].into(),
        }
    }

    #[test]
    fn msgpack_object_with_optional_attr() {
        let ty = service_type();
        assert_eq!(
            ty.to_json(),
            serde_json::json!(["object", {"name": "string", "port": "number"}, ["port"]])
        );
        // Attributes go out in sorted order, the optional one as nil.
        wire(
            &ty,
            obj([("name", "web".into()), ("port", Value::Null)]),
            "82 a4 6e 61 6d 65 a3 77 65 62 a4 70 6f 72 74 c0",
        );
        // Order on the wire does not matter.
        assert_eq!(
            decodes(&ty, "82 a4 70 6f 72 74 cd 1f 90 a4 6e 61 6d 65 a3 77 65 62"),
            obj([("name", "web".into()), ("port", 8080.into())])
        );
        // Encoding a value that omits an attribute writes nil for it.
        assert_eq!(
            encode_msgpack(&obj([("name", "web".into())]), &ty).unwrap(),
            hex("82 a4 6e 61 6d 65 a3 77 65 62 a4 70 6f 72 74 c0")
        );
    }

    #[test]
    fn msgpack_object_errors() {
        let ty = service_type();
        let missing = decode_err(&ty, &hex("81 a4 6e 61 6d 65 a3 77 65 62"));
        assert!(missing.contains("missing attribute \"port\""), "{missing}");
        let extra = decode_err(
            &ty,
            &hex("83 a4 6e 61 6d 65 a3 77 65 62 a4 70 6f 72 74 c0 a1 78 c0"),
        );
        assert_eq!(extra, "at .x: unsupported attribute");
        let dup = decode_err(&ty, &hex("82 a4 6e 61 6d 65 c0 a4 6e 61 6d 65 c0"));
        assert!(dup.contains("duplicate"), "{dup}");
        let err = encode_msgpack(&obj([("other", Value::Null)]), &ty).unwrap_err();
        assert!(err.message.contains("unsupported attribute"));
    }

    #[test]
    fn msgpack_tuple() {
        let ty = Type::Tuple(vec![Type::String, Type::Bool]);
        wire(
            &ty,
            Value::Tuple(vec!["a".into(), true.into()]),
            "92 a1 61 c3",
        );
        assert!(decode_err(&ty, &hex("91 a1 61")).contains("tuple of 2 elements"));
        assert!(encode_msgpack(&Value::Tuple(vec!["a".into()]), &ty).is_err());
    }

    #[test]
    fn msgpack_dynamic() {
        let d = Type::Dynamic;
        // [`"string"` as bin8, "hi"]
        wire(&d, "hi".into(), "92 c4 08 22 73 74 72 69 6e 67 22 a2 68 69");
        // The type may also arrive as a msgpack string.
        assert_eq!(
            decodes(&d, "92 a8 22 73 74 72 69 6e 67 22 a2 68 69"),
            "hi".into()
        );
        // [`["list","number"]`, [1, 2]]
        wire(
            &d,
            Value::List(vec![1.into(), 2.into()]),
            "92 c4 11 5b 22 6c 69 73 74 22 2c 22 6e 75 6d 62 65 72 22 5d 92 01 02",
        );
        wire(&d, Value::Null, "c0");
        wire(&d, Value::Unknown, "d4 00 00");
        // Inside an object: {"v": [`"bool"`, true]}
        let ty = Type::object([("v", Type::Dynamic)]);
        wire(
            &ty,
            obj([("v", true.into())]),
            "81 a1 76 92 c4 06 22 62 6f 6f 6c 22 c3",
        );
        assert!(decode_err(&d, &hex("93 c0 c0 c0")).contains("expected dynamic value"));
        assert!(decode_err(&d, &hex("92 c4 03 22 78 22 c0")).contains("invalid type"));
        assert!(decode_err(&d, &hex("92 01 c0")).contains("type description"));
    }

    #[test]
    fn msgpack_null() {
        for ty in [
            Type::String,
            Type::Number,
            Type::list(Type::Bool),
            service_type(),
            Type::Tuple(vec![]),
        ] {
            wire(&ty, Value::Null, "c0");
        }
    }

    #[test]
    fn msgpack_unknown() {
        for ty in [
            Type::String,
            Type::map(Type::Number),
            service_type(),
            Type::Dynamic,
        ] {
            wire(&ty, Value::Unknown, "d4 00 00");
        }
    }

    #[test]
    fn msgpack_refined_unknown() {
        // Extension 12 with refinements {1: false (not null), 2: "ab" (prefix)}.
        let refined = "c7 07 0c 82 01 c2 02 a2 61 62";
        assert_eq!(decodes(&Type::String, refined), Value::Unknown);
        let ty = Type::object([("a", Type::String), ("b", Type::String)]);
        assert_eq!(
            decodes(&ty, &format!("82 a1 61 {refined} a1 62 a1 78")),
            obj([("a", Value::Unknown), ("b", "x".into())])
        );
        // Any other extension code and size is unknown as well.
        for bytes in [
            "d5 05 aa bb",
            "d6 0c 81 01 c2 00",
            "d8 01 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f",
            "c7 00 0c",
            "c8 00 02 07 aa bb",
            "c9 00 00 00 01 0c 00",
        ] {
            assert_eq!(decodes(&Type::Number, bytes), Value::Unknown, "{bytes}");
        }
        assert!(decode_msgpack(&hex("c7 05 0c 81 01"), &Type::String).is_err());
    }

    #[test]
    fn msgpack_truncated() {
        let cases = [
            (Type::String, ""),
            (Type::String, "a5 68 69"),
            (Type::String, "d4 00"),
            (Type::String, "db 00 00"),
            (Type::Number, "cd 01"),
            (Type::Number, "cb 3f f8"),
            (Type::list(Type::Number), "92 01"),
            (Type::map(Type::Number), "81 a1 78"),
        ];
        for (ty, bytes) in cases {
            let err = decode_err(&ty, &hex(bytes));
            assert!(
                err.contains("end of msgpack input") || err.contains("exceeds the remaining input"),
                "{bytes}: {err}"
            );
        }
    }

    #[test]
    fn msgpack_wrong_type() {
        assert_eq!(
            decode_err(&Type::String, &hex("01")),
            "expected string, found integer"
        );
        assert_eq!(
            decode_err(&Type::Bool, &hex("a1 61")),
            "expected bool, found string"
        );
        assert_eq!(
            decode_err(&Type::list(Type::Bool), &hex("80")),
            "expected list, found map"
        );
        let ty = Type::object([("headers", Type::map(Type::String))]);
        let bytes = hex("81 a7 68 65 61 64 65 72 73 81 a1 78 01");
        let err = decode_msgpack(&bytes, &ty).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"at .headers["x"]: expected string, found integer"#
        );
        assert_eq!(
            err.path,
            vec![PathStep::Attr("headers".into()), PathStep::Key("x".into())]
        );
        assert!(decode_err(&Type::String, &hex("c1")).contains("0xc1"));
    }

    #[test]
    fn msgpack_trailing_bytes() {
        assert!(decode_err(&Type::Bool, &hex("c3 c3")).contains("trailing"));
        assert!(decode_err(&Type::list(Type::Bool), &hex("91 c3 c0")).contains("trailing"));
    }

    #[test]
    fn msgpack_absurd_lengths() {
        let cases = [
            (Type::list(Type::String), "dd ff ff ff ff"),
            (Type::map(Type::String), "df ff ff ff ff"),
            (Type::map(Type::String), "8f a1 61"),
            (Type::String, "db ff ff ff ff"),
            (Type::String, "c6 ff ff ff ff 00"),
            (Type::String, "c9 ff ff ff ff 00"),
        ];
        for (ty, bytes) in cases {
            assert!(decode_msgpack(&hex(bytes), &ty).is_err(), "{bytes}");
        }
    }

    #[test]
    fn msgpack_deep_nesting() {
        let mut ty = Type::Bool;
        for _ in 0..100 {
            ty = Type::list(ty);
        }
        let mut bytes = vec![0x91; 100];
        bytes.push(0xc3);
        assert!(decode_err(&ty, &bytes).contains("nested deeper"));
        // Nesting below the limit is fine.
        let mut ok_ty = Type::Bool;
        for _ in 0..MAX_DEPTH {
            ok_ty = Type::list(ok_ty);
        }
        let mut ok = vec![0x91; MAX_DEPTH];
        ok.push(0xc3);
        assert!(decode_msgpack(&ok, &ok_ty).is_ok());
        // Dynamic values that keep declaring themselves dynamic.
        let mut bytes = hex("92 a9 22 64 79 6e 61 6d 69 63 22").repeat(10_000);
        bytes.push(0xc0);
        assert!(decode_err(&Type::Dynamic, &bytes).contains("nested deeper"));
    }

    #[test]
    fn type_json() {
        let ty = Type::object([
            ("l", Type::list(Type::String)),
            ("s", Type::set(Type::Number)),
            ("m", Type::map(Type::Bool)),
            ("t", Type::Tuple(vec![Type::Dynamic, Type::String])),
        ]);
        let expected = serde_json::json!(["object", {
            "l": ["list", "string"],
            "s": ["set", "number"],
            "m": ["map", "bool"],
            "t": ["tuple", ["dynamic", "string"]],
        }]);
        assert_eq!(ty.to_json(), expected);
        assert_eq!(Type::from_json(&expected).unwrap(), ty);
        let opt = service_type();
        assert_eq!(Type::from_json(&opt.to_json()).unwrap(), opt);
        for bad in [
            serde_json::json!("strin"),
            serde_json::json!(["list"]),
            serde_json::json!(["list", "string", "x"]),
            serde_json::json!(["object", {"a": "string"}, ["b"]]),
            serde_json::json!(["tuple", "string"]),
            serde_json::json!(42),
        ] {
            assert!(Type::from_json(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn value_accessors() {
        let mut v = obj([("a", "x".into()), ("b", Value::List(vec![Value::Unknown]))]);
        assert_eq!(v.get("a").and_then(Value::as_str), Some("x"));
        assert!(v.get("zz").is_none());
        assert!(v.contains_unknown());
        *v.get_mut("b").unwrap() = Value::Null;
        assert!(!v.contains_unknown());
        assert_eq!(Value::from(7).as_i64(), Some(7));
        assert_eq!(Value::from(true).as_bool(), Some(true));
        assert_eq!(Number::Big("1e400".into()).as_f64(), None);
        assert_eq!(
            Number::Big("18446744073709551615".into()).as_f64(),
            Some(18446744073709551615.0)
        );
        assert_eq!(Number::Float(2.5).as_i64(), None);
    }

    #[test]
    fn infer_type_unifies_elements() {
        let list = Value::List(vec![
            obj([("a", Value::Null), ("b", 1.into())]),
            obj([("a", "x".into()), ("b", Value::Unknown)]),
        ]);
        assert_eq!(
            list.infer_type(),
            Type::list(Type::object([("a", Type::String), ("b", Type::Number)]))
        );
        assert_eq!(
            Value::Map(BTreeMap::new()).infer_type(),
            Type::map(Type::Dynamic)
        );
        let mixed = Value::List(vec![1.into(), "a".into()]);
        assert_eq!(mixed.infer_type(), Type::list(Type::Dynamic));
        // A conflict hidden behind an earlier one still falls back to Dynamic.
        let tricky = Value::List(vec![
            Value::List(vec![1.into()]),
            Value::Set(vec![1.into()]),
            Value::Set(vec![2.into()]),
        ]);
        assert_eq!(tricky.infer_type(), Type::list(Type::Dynamic));
        let bytes = encode_msgpack(&tricky, &Type::Dynamic).unwrap();
        assert_eq!(decode_msgpack(&bytes, &Type::Dynamic).unwrap(), tricky);
    }

    #[test]
    fn json_object() {
        let ty = Type::object([
            ("b", Type::Bool),
            ("l", Type::list(Type::String)),
            ("m", Type::map(Type::Number)),
            ("n", Type::Number),
            ("s", Type::String),
            ("t", Type::Tuple(vec![Type::Number, Type::String])),
        ]);
        let value = obj([
            ("b", true.into()),
            ("l", Value::List(vec!["x".into(), "y\"z".into()])),
            (
                "m",
                Value::Map([("k".into(), num(Number::Float(1.5)))].into()),
            ),
            ("n", (-3).into()),
            ("s", Value::Null),
            ("t", Value::Tuple(vec![7.into(), "é\n".into()])),
        ]);
        let text = r#"{"b":true,"l":["x","y\"z"],"m":{"k":1.5},"n":-3,"s":null,"t":[7,"é\n"]}"#;
        assert_eq!(to_json_text(&value, &ty), text);
        assert_eq!(json(&ty, text).unwrap(), value);
        let spaced = " {\n \"n\" : -3 , \"b\":true,\"t\":[7, \"\\u00e9\\n\"], \"m\":{\"k\":15e-1},\"l\":[\"x\",\"y\\\"z\"]} ";
        assert_eq!(json(&ty, spaced).unwrap(), value);
    }

    #[test]
    fn json_missing_attributes_are_null() {
        let ty = service_type();
        assert_eq!(
            json(&ty, r#"{"name":"web"}"#).unwrap(),
            obj([("name", "web".into()), ("port", Value::Null)])
        );
        assert_eq!(
            json(&ty, r#"{"name":"web","x":1}"#)
                .unwrap_err()
                .to_string(),
            "at .x: unsupported attribute"
        );
    }

    #[test]
    fn json_numbers() {
        let n = Type::Number;
        let big = "123456789012345678901234567890";
        assert_eq!(json(&n, big).unwrap(), num(Number::Big(big.into())));
        assert_eq!(to_json_text(&num(Number::Big(big.into())), &n), big);
        assert_eq!(
            json(&n, "-1e400").unwrap(),
            num(Number::Big("-1e400".into()))
        );
        assert_eq!(json(&n, "0.1").unwrap(), num(Number::Float(0.1)));
        assert_eq!(json(&n, "2.0").unwrap(), 2.into());
        assert_eq!(json(&n, "-9223372036854775808").unwrap(), i64::MIN.into());
        assert_eq!(to_json_text(&num(Number::Float(1.5)), &n), "1.5");
        assert_eq!(to_json_text(&num(Number::Float(4.0)), &n), "4");
        assert!(encode_json(&num(Number::Float(f64::INFINITY)), &n).is_err());
        // cty's lenient primitive conversions.
        assert_eq!(json(&n, r#""5""#).unwrap(), 5.into());
        assert_eq!(json(&Type::String, "5.50").unwrap(), "5.50".into());
        assert_eq!(json(&Type::String, "true").unwrap(), "true".into());
        assert_eq!(json(&Type::Bool, r#""false""#).unwrap(), false.into());
        assert!(json(&n, "1.").is_err());
        assert!(json(&n, "--1").is_err());
    }

    #[test]
    fn json_dynamic() {
        let d = Type::Dynamic;
        let list = Value::List(vec!["a".into()]);
        let text = r#"{"value":["a"],"type":["list","string"]}"#;
        assert_eq!(to_json_text(&list, &d), text);
        assert_eq!(json(&d, text).unwrap(), list);
        assert_eq!(
            json(&d, r#"{ "type" : ["list","string"], "value" : ["a"] }"#).unwrap(),
            list
        );
        assert_eq!(json(&d, "null").unwrap(), Value::Null);
        assert_eq!(to_json_text(&Value::Null, &d), "null");
        let ty = Type::object([("v", Type::Dynamic)]);
        let nested = obj([("v", obj([("n", 1.into())]))]);
        let text = r#"{"v":{"value":{"n":1},"type":["object",{"n":"number"}]}}"#;
        assert_eq!(to_json_text(&nested, &ty), text);
        assert_eq!(json(&ty, text).unwrap(), nested);
        assert!(json(&d, r#"{"value":1}"#).is_err());
        assert!(json(&d, r#"{"value":1,"type":"number","x":2}"#).is_err());
        let err = json(&d, r#"{"value":"a","type":"number"}"#).unwrap_err();
        assert!(err.message.contains("expected number"), "{err}");
    }

    #[test]
    fn json_unknown_cannot_be_encoded() {
        assert!(encode_json(&Value::Unknown, &Type::String).is_err());
        let ty = Type::object([("a", Type::list(Type::String))]);
        let err = encode_json(&obj([("a", Value::List(vec![Value::Unknown]))]), &ty).unwrap_err();
        assert_eq!(
            err.to_string(),
            "at .a[0]: unknown values cannot be represented in JSON"
        );
    }

    #[test]
    fn json_strings() {
        let s = Type::String;
        assert_eq!(
            json(&s, r#""a\u00e9\ud83d\ude00\/\t""#).unwrap(),
            "aé😀/\t".into()
        );
        for bad in [
            r#""\ud83d""#,
            r#""\ude00""#,
            r#""\x""#,
            "\"a\nb\"",
            r#""abc"#,
            r#""\u12""#,
        ] {
            assert!(json(&s, bad).is_err(), "{bad}");
        }
        assert_eq!(to_json_text(&"\u{1}\"".into(), &s), r#""\u0001\"""#);
    }

    #[test]
    fn json_errors() {
        let ty = Type::list(Type::Number);
        assert!(json(&ty, "[1,")
            .unwrap_err()
            .message
            .contains("end of JSON"));
        assert!(json(&ty, "[1] x").unwrap_err().message.contains("trailing"));
        assert!(json(&ty, "[1 2]").is_err());
        assert!(json(&ty, "").is_err());
        assert_eq!(
            json(&ty, r#"[1,"x"]"#).unwrap_err().to_string(),
            "at [1]: expected number, found a string that is not a number"
        );
        assert_eq!(
            json(&Type::String, "[]").unwrap_err().to_string(),
            "expected string, found array"
        );
        assert!(json(&Type::Tuple(vec![Type::Number]), "[1,2]").is_err());
        assert!(json(&Type::Tuple(vec![Type::Number]), "[]").is_err());
        assert!(decode_json(b"\"\xff\"", &Type::String).is_err());
        let mut deep = Type::Number;
        for _ in 0..100 {
            deep = Type::list(deep);
        }
        let text = format!("{}1{}", "[".repeat(100), "]".repeat(100));
        assert!(json(&deep, &text)
            .unwrap_err()
            .message
            .contains("nested deeper"));
        let dynamic = format!(
            "{}{}",
            r#"{"type":"dynamic","value":"#.repeat(1000),
            "}".repeat(1000)
        );
        assert!(json(&Type::Dynamic, &dynamic).is_err());
    }

    fn arb_type() -> impl Strategy<Value = Type> {
        let leaf = prop_oneof![
            Just(Type::Bool),
            Just(Type::Number),
            Just(Type::String),
            Just(Type::Dynamic),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                inner.clone().prop_map(Type::list),
                inner.clone().prop_map(Type::set),
                inner.clone().prop_map(Type::map),
                prop::collection::vec(inner.clone(), 0..4).prop_map(Type::Tuple),
                prop::collection::btree_map("[a-z_]{1,5}", (inner, any::<bool>()), 0..4).prop_map(
                    |attrs| Type::Object {
                        optional: attrs
                            .iter()
                            .filter(|(_, (_, o))| *o)
                            .map(|(k, _)| k.clone())
                            .collect(),
                        attrs: attrs.into_iter().map(|(k, (t, _))| (k, t)).collect(),
                    }
                ),
            ]
        })
    }

    fn arb_number() -> impl Strategy<Value = Number> {
        prop_oneof![
            any::<i64>().prop_map(Number::Int),
            any::<f64>()
                .prop_filter("finite and not an i64", |f| f.is_finite()
                    && exact_i64(*f).is_none())
                .prop_map(Number::Float),
            "-?[1-9][0-9]{19,30}".prop_map(Number::Big),
        ]
    }

    /// A value conforming to `ty`; `budget` bounds how often Dynamic may pick
    /// a fresh composite type.
    fn arb_value(ty: &Type, budget: u32) -> BoxedStrategy<Value> {
        let known = match ty {
            Type::Bool => any::<bool>().prop_map(Value::Bool).boxed(),
            Type::Number => arb_number().prop_map(Value::Number).boxed(),
            Type::String => any::<String>().prop_map(Value::String).boxed(),
            Type::List(t) => prop::collection::vec(arb_value(t, budget), 0..4)
                .prop_map(Value::List)
                .boxed(),
            Type::Set(t) => prop::collection::vec(arb_value(t, budget), 0..4)
                .prop_map(Value::Set)
                .boxed(),
            Type::Map(t) => prop::collection::btree_map("\\PC{0,6}", arb_value(t, budget), 0..4)
                .prop_map(Value::Map)
                .boxed(),
            Type::Tuple(ts) => ts
                .iter()
                .map(|t| arb_value(t, budget))
                .collect::<Vec<_>>()
                .prop_map(Value::Tuple)
                .boxed(),
            Type::Object { attrs, .. } => attrs
                .iter()
                .map(|(k, t)| (Just(k.clone()), arb_value(t, budget)))
                .collect::<Vec<_>>()
                .prop_map(|kv| Value::Object(kv.into_iter().collect()))
                .boxed(),
            Type::Dynamic if budget == 0 => {
                prop_oneof![Just(Type::Bool), Just(Type::Number), Just(Type::String)]
                    .prop_flat_map(|t| arb_value(&t, 0))
                    .boxed()
            }
            Type::Dynamic => arb_type()
                .prop_flat_map(move |t| arb_value(&t, budget - 1))
                .boxed(),
        };
        prop_oneof![1 => Just(Value::Null), 1 => Just(Value::Unknown), 6 => known].boxed()
    }

    fn typed_value() -> impl Strategy<Value = (Type, Value)> {
        arb_type().prop_flat_map(|t| {
            let v = arb_value(&t, 2);
            (Just(t), v)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn roundtrip((ty, value) in typed_value()) {
            let bytes = encode_msgpack(&value, &ty)?;
            prop_assert_eq!(&decode_msgpack(&bytes, &ty)?, &value);
            if !value.contains_unknown() {
                let text = encode_json(&value, &ty)?;
                prop_assert_eq!(&decode_json(&text, &ty)?, &value);
            }
        }

        #[test]
        fn decoding_damaged_input_never_panics(
            (ty, value) in typed_value(),
            cut in any::<prop::sample::Index>(),
            flip in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            for mut bytes in [encode_msgpack(&value, &ty)?, encode_json(&value, &ty).unwrap_or_default()] {
                let _ = decode_msgpack(&bytes[..cut.index(bytes.len() + 1)], &ty);
                let _ = decode_json(&bytes[..cut.index(bytes.len() + 1)], &ty);
                if !bytes.is_empty() {
                    let at = flip.index(bytes.len());
                    bytes[at] = byte;
                    let _ = decode_msgpack(&bytes, &ty);
                    let _ = decode_json(&bytes, &ty);
                }
            }
        }

        #[test]
        fn decoding_garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64), ty in arb_type()) {
            let _ = decode_msgpack(&bytes, &ty);
            let _ = decode_json(&bytes, &ty);
        }
    }
}
