//! Fuzzes the Terraform value codec (`src/tfplugin/value.rs`).
//!
//! Input layout: a Terraform type written in the little byte code below, then
//! the payload. The payload is decoded as msgpack and as JSON under that type,
//! and parsed as a cty JSON type description. Nothing may panic, overflow the
//! stack or allocate without bound, and whatever decodes must survive a round
//! trip unchanged:
//!
//! * msgpack: decode → encode → decode is the identity, and re-encoding the
//!   result gives the same bytes; a value without unknowns also goes through
//!   JSON unchanged (unless it holds an infinite float, which JSON cannot
//!   carry).
//! * JSON: decode → encode → decode is the identity (a JSON value never holds
//!   an unknown), re-encoding gives the same text, and the value also goes
//!   through msgpack unchanged.
//! * `Type::from_json`: a parsed type survives `to_json` → `from_json`.
//!
//! Type byte code (one byte per node, taken modulo 9, modulo 4 at the depth
//! limit; missing bytes mean `string`):
//!
//! | byte | type                                                            |
//! |------|-----------------------------------------------------------------|
//! | 0    | bool                                                            |
//! | 1    | number                                                          |
//! | 2    | string                                                          |
//! | 3    | dynamic                                                         |
//! | 4 T  | list(T)                                                         |
//! | 5 T  | set(T)                                                          |
//! | 6 T  | map(T)                                                          |
//! | 7 n T₁…Tₙ          | tuple of n % 5 elements                           |
//! | 8 n (k₁ T₁)…(kₙ Tₙ) | object of n % 5 attributes: kᵢ & 7 picks the name from [`NAMES`], kᵢ & 0x80 makes it optional |
//!
//! `fuzz/seed-corpus.sh` writes seeds in this layout.

#![no_main]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use terraform_provider_immutable::tfplugin::value::{
    decode_json, decode_msgpack, encode_json, encode_msgpack, Number, Type, Value,
};

/// Deepest type the byte code builds; values nest deeper through Dynamic.
const MAX_TYPE_DEPTH: usize = 6;

/// Attribute names an object type can have: short so that payloads can
/// match them, plus an empty name, a space and a non-ASCII one.
const NAMES: [&str; 8] = ["a", "b", "c", "id", "name", "", "with space", "é"];

struct TypeReader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl TypeReader<'_> {
    fn byte(&mut self) -> Option<u8> {
        let b = self.bytes.get(self.pos).copied()?;
        self.pos += 1;
        Some(b)
    }

    fn count(&mut self) -> usize {
        usize::from(self.byte().unwrap_or(0) % 5)
    }

    fn ty(&mut self, depth: usize) -> Type {
        let Some(b) = self.byte() else {
            return Type::String;
        };
        let kind = if depth >= MAX_TYPE_DEPTH {
            b % 4
        } else {
            b % 9
        };
        match kind {
            0 => Type::Bool,
            1 => Type::Number,
            2 => Type::String,
            3 => Type::Dynamic,
            4 => Type::list(self.ty(depth + 1)),
            5 => Type::set(self.ty(depth + 1)),
            6 => Type::map(self.ty(depth + 1)),
            7 => {
                let n = self.count();
                Type::Tuple((0..n).map(|_| self.ty(depth + 1)).collect())
            }
            _ => {
                let n = self.count();
                let mut attrs = BTreeMap::new();
                let mut optional = BTreeSet::new();
                for _ in 0..n {
                    let k = self.byte().unwrap_or(0);
                    let name = NAMES[usize::from(k & 7)].to_owned();
                    let t = self.ty(depth + 1);
                    if k & 0x80 != 0 {
                        optional.insert(name.clone());
                    } else {
                        optional.remove(&name);
                    }
                    attrs.insert(name, t);
                }
                Type::Object { attrs, optional }
            }
        }
    }
}

/// Whether `v` holds a float that JSON cannot carry.
fn has_non_finite(v: &Value) -> bool {
    match v {
        Value::Number(Number::Float(f)) => !f.is_finite(),
        Value::List(items) | Value::Set(items) | Value::Tuple(items) => {
            items.iter().any(has_non_finite)
        }
        Value::Map(m) | Value::Object(m) => m.values().any(has_non_finite),
        _ => false,
    }
}

fn check_msgpack(payload: &[u8], ty: &Type) {
    let Ok(v) = decode_msgpack(payload, ty) else {
        return;
    };
    let bytes = encode_msgpack(&v, ty)
        .unwrap_or_else(|e| panic!("msgpack re-encode failed: {e}\ntype {ty:?}\nvalue {v:?}"));
    let again = decode_msgpack(&bytes, ty).unwrap_or_else(|e| {
        panic!("msgpack re-decode failed: {e}\ntype {ty:?}\nvalue {v:?}\nbytes {bytes:02x?}")
    });
    assert_eq!(
        again, v,
        "msgpack round trip changed the value\ntype {ty:?}"
    );
    let bytes2 = encode_msgpack(&again, ty).expect("second msgpack encode");
    assert_eq!(bytes2, bytes, "msgpack encoding is not stable\ntype {ty:?}");

    // The same value through JSON (state upgrades move values between them).
    if v.contains_unknown() {
        assert!(
            encode_json(&v, ty).is_err(),
            "an unknown was JSON-encoded\ntype {ty:?}\nvalue {v:?}"
        );
        return;
    }
    match encode_json(&v, ty) {
        Ok(json) => {
            let back = decode_json(&json, ty).unwrap_or_else(|e| {
                panic!(
                    "JSON decode of msgpack value failed: {e}\ntype {ty:?}\nvalue {v:?}\njson {}",
                    String::from_utf8_lossy(&json)
                )
            });
            assert_eq!(back, v, "msgpack value changed through JSON\ntype {ty:?}");
        }
        Err(e) => assert!(
            has_non_finite(&v),
            "JSON encode of msgpack value failed: {e}\ntype {ty:?}\nvalue {v:?}"
        ),
    }
}

fn check_json(payload: &[u8], ty: &Type) {
    let Ok(v) = decode_json(payload, ty) else {
        return;
    };
    assert!(!v.contains_unknown(), "JSON decoded an unknown: {v:?}");
    let json = encode_json(&v, ty)
        .unwrap_or_else(|e| panic!("JSON re-encode failed: {e}\ntype {ty:?}\nvalue {v:?}"));
    let again = decode_json(&json, ty).unwrap_or_else(|e| {
        panic!(
            "JSON re-decode failed: {e}\ntype {ty:?}\nvalue {v:?}\njson {}",
            String::from_utf8_lossy(&json)
        )
    });
    assert_eq!(again, v, "JSON round trip changed the value\ntype {ty:?}");
    let json2 = encode_json(&again, ty).expect("second JSON encode");
    assert_eq!(json2, json, "JSON encoding is not stable\ntype {ty:?}");

    let bytes = encode_msgpack(&v, ty).unwrap_or_else(|e| {
        panic!("msgpack encode of JSON value failed: {e}\ntype {ty:?}\nvalue {v:?}")
    });
    let back = decode_msgpack(&bytes, ty).unwrap_or_else(|e| {
        panic!("msgpack decode of JSON value failed: {e}\ntype {ty:?}\nvalue {v:?}\nbytes {bytes:02x?}")
    });
    assert_eq!(back, v, "JSON value changed through msgpack\ntype {ty:?}");
}

fn check_type_json(payload: &[u8]) {
    let Ok(j) = serde_json::from_slice::<serde_json::Value>(payload) else {
        return;
    };
    let Ok(t) = Type::from_json(&j) else {
        return;
    };
    let back = Type::from_json(&t.to_json())
        .unwrap_or_else(|e| panic!("type from its own JSON failed: {e}\ntype {t:?}"));
    assert_eq!(back, t, "type changed through JSON");
}

/// With `VALUE_CODEC_DEBUG` set, each input's type and decode results are
/// printed (for checking seeds and reading crash inputs).
fn debug() -> bool {
    static DEBUG: OnceLock<bool> = OnceLock::new();
    *DEBUG.get_or_init(|| std::env::var_os("VALUE_CODEC_DEBUG").is_some())
}

fuzz_target!(|data: &[u8]| {
    let mut reader = TypeReader {
        bytes: data,
        pos: 0,
    };
    let ty = reader.ty(0);
    let payload = &data[reader.pos..];
    if debug() {
        eprintln!("type: {ty:?}");
        eprintln!("msgpack: {:?}", decode_msgpack(payload, &ty));
        eprintln!("json: {:?}", decode_json(payload, &ty));
        let parsed = serde_json::from_slice::<serde_json::Value>(payload);
        eprintln!("type JSON: {:?}", parsed.map(|j| Type::from_json(&j)));
    }
    check_msgpack(payload, &ty);
    check_json(payload, &ty);
    check_type_json(payload);
});
