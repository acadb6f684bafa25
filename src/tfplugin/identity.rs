//! Resource identity (Terraform 1.12+): the few attributes that say which real object a
//! resource instance is, kept by Terraform beside the state and accepted by
//! `import { identity = { ... } }`. Here an identity is always a subset of the state's own
//! attributes, so it is read off the state rather than kept apart.

use super::schema::Schema;
use super::value::{Type, Value};

pub struct Identity {
    /// Each name with its type in the resource schema.
    pub attributes: Vec<(&'static str, Type)>,
    /// The object type of the identity.
    pub ty: Type,
}

impl Identity {
    /// `None` for a resource without an identity; names absent from the schema are a
    /// provider bug, caught by the unit tests of each resource.
    pub fn of(schema: &Schema, names: &'static [&'static str]) -> Option<Identity> {
        if names.is_empty() {
            return None;
        }
        let attributes: Vec<(&'static str, Type)> = names
            .iter()
            .map(|name| {
                let attribute = schema.block.attributes.iter().find(|a| a.name == *name);
                (*name, attribute.map_or(Type::String, |a| a.ty.clone()))
            })
            .collect();
        Some(Identity {
            ty: Type::object(attributes.iter().map(|(n, t)| (*n, t.clone()))),
            attributes,
        })
    }

    /// The identity of a state: `None` while the object does not exist, or any part of
    /// it is unknown or null (Terraform requires an identity to be wholly known).
    pub fn from_state(&self, state: &Value) -> Option<Value> {
        let parts = self
            .attributes
            .iter()
            .map(|(name, _)| {
                let value = state
                    .get(name)
                    .filter(|v| !v.is_null() && !v.is_unknown())?;
                Some((name.to_string(), value.clone()))
            })
            .collect::<Option<_>>()?;
        Some(Value::Object(parts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tfplugin::schema::{Attribute, Block};

    #[test]
    fn an_identity_is_read_off_a_wholly_known_state() {
        let schema = Schema::new(
            Block::new("")
                .attribute(Attribute::string("a").required())
                .attribute(Attribute::string("b").optional())
                .attribute(Attribute::string("c").computed()),
        );
        let identity = Identity::of(&schema, &["a", "b"]).unwrap();
        assert_eq!(
            identity.ty,
            Type::object([("a", Type::String), ("b", Type::String)])
        );
        let state = |b: Value| {
            Value::Object(
                [
                    ("a".to_string(), "x".into()),
                    ("b".to_string(), b),
                    ("c".to_string(), "z".into()),
                ]
                .into(),
            )
        };
        assert_eq!(
            identity.from_state(&state("y".into())),
            Some(Value::Object(
                [("a".to_string(), "x".into()), ("b".to_string(), "y".into())].into()
            ))
        );
        assert_eq!(identity.from_state(&state(Value::Unknown)), None);
        assert_eq!(identity.from_state(&Value::Null), None);
        assert!(Identity::of(&schema, &[]).is_none());
    }
}
