//! Schemas, declared beside each resource's logic: attributes with their types, flags,
//! descriptions, defaults, validators and plan modifiers, in the manner of
//! terraform-plugin-framework. The protocol layer turns them into Terraform's wire schema
//! and runs the validators and plan modifiers, so resources only hold what is their own.

use std::sync::Arc;

use super::diagnostics::{AttributePath, Diagnostics};
use super::value::{Type, Value};

/// One resource's, data source's or provider's schema.
#[derive(Clone)]
pub struct Schema {
    /// Bumped when the stored state's shape changes (see UpgradeResourceState).
    pub version: i64,
    pub block: Block,
}

#[derive(Clone, Default)]
pub struct Block {
    /// Markdown; also the source of the generated docs.
    pub description: String,
    pub attributes: Vec<Attribute>,
    pub blocks: Vec<NestedBlock>,
}

/// How a nested block repeats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nesting {
    /// At most one, an object (null when absent).
    Single,
    List,
}

#[derive(Clone)]
pub struct NestedBlock {
    pub name: String,
    pub nesting: Nesting,
    pub block: Block,
}

/// A reusable step of planning, run for one attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanModifier {
    /// A change of this attribute replaces the resource.
    RequiresReplace,
    /// A computed value that does not change once known keeps its prior value instead
    /// of being planned as unknown.
    UseStateForUnknown,
}

/// Checks one known, non-null value; the error says what would be valid.
pub type Check = Arc<dyn Fn(&Value) -> Result<(), String> + Send + Sync>;

#[derive(Clone)]
pub struct Attribute {
    pub name: String,
    pub ty: Type,
    pub description: String,
    pub required: bool,
    pub optional: bool,
    pub computed: bool,
    pub sensitive: bool,
    /// Set in the configuration and used by apply, but never in a plan or a state
    /// (Terraform 1.11+); see [`Block::write_only_set`] and [`Block::fill_write_only`].
    pub write_only: bool,
    /// Planned when the configuration leaves the attribute out.
    pub default: Option<Value>,
    pub plan_modifiers: Vec<PlanModifier>,
    pub validators: Vec<Check>,
    /// For a list of objects: the objects' attributes, so that protocol 6 declares it as
    /// a nested attribute whose optional fields may be left out (`[{ id = "a" }]`).
    pub nested: Option<Vec<Attribute>>,
}

impl Attribute {
    pub fn new(name: &str, ty: Type) -> Self {
        Self {
            name: name.to_string(),
            ty,
            description: String::new(),
            required: false,
            optional: false,
            computed: false,
            sensitive: false,
            write_only: false,
            default: None,
            plan_modifiers: Vec::new(),
            validators: Vec::new(),
            nested: None,
        }
    }

    pub fn string(name: &str) -> Self {
        Self::new(name, Type::String)
    }

    pub fn number(name: &str) -> Self {
        Self::new(name, Type::Number)
    }

    pub fn bool(name: &str) -> Self {
        Self::new(name, Type::Bool)
    }

    pub fn string_map(name: &str) -> Self {
        Self::new(name, Type::map(Type::String))
    }

    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }

    pub fn optional(mut self) -> Self {
        self.optional = true;
        self
    }

    pub fn computed(mut self) -> Self {
        self.computed = true;
        self
    }

    pub fn sensitive(mut self) -> Self {
        self.sensitive = true;
        self
    }

    /// A secret the provider uses but Terraform never stores (Terraform 1.11+): pair it
    /// with a stored `*_version` attribute whose change says the secret changed.
    pub fn write_only(mut self) -> Self {
        self.write_only = true;
        self
    }

    /// Markdown text shown in docs and by language servers.
    pub fn description(mut self, text: &str) -> Self {
        self.description = text.to_string();
        self
    }

    /// An optional attribute whose value, when left out, is planned as `value`.
    pub fn default(mut self, value: impl Into<Value>) -> Self {
        self.optional = true;
        self.computed = true;
        self.default = Some(value.into());
        self
    }

    /// Declares a `list(object)` attribute's objects attribute by attribute.
    pub fn nested_list(mut self, attributes: Vec<Attribute>) -> Self {
        self.nested = Some(attributes);
        self
    }

    pub fn requires_replace(mut self) -> Self {
        self.plan_modifiers.push(PlanModifier::RequiresReplace);
        self
    }

    pub fn use_state_for_unknown(mut self) -> Self {
        self.plan_modifiers.push(PlanModifier::UseStateForUnknown);
        self
    }

    pub fn validate(
        mut self,
        check: impl Fn(&Value) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        self.validators.push(Arc::new(check));
        self
    }

    pub fn has(&self, modifier: PlanModifier) -> bool {
        self.plan_modifiers.contains(&modifier)
    }
}

/// Sets one attribute of an object value.
fn set_attr(object: &mut Value, name: &str, value: Value) {
    if let Some(slot) = object.get_mut(name) {
        *slot = value;
    }
}

impl Block {
    pub fn new(description: &str) -> Self {
        Self {
            description: description.to_string(),
            ..Self::default()
        }
    }

    pub fn attribute(mut self, attribute: Attribute) -> Self {
        self.attributes.push(attribute);
        self
    }

    pub fn attributes(mut self, attributes: impl IntoIterator<Item = Attribute>) -> Self {
        self.attributes.extend(attributes);
        self
    }

    pub fn block(mut self, name: &str, nesting: Nesting, block: Block) -> Self {
        self.blocks.push(NestedBlock {
            name: name.to_string(),
            nesting,
            block,
        });
        self
    }

    /// The type of the object a block's values form, as Terraform implies it.
    pub fn value_type(&self) -> Type {
        let attrs = self
            .attributes
            .iter()
            .map(|a| (a.name.clone(), a.ty.clone()));
        let blocks = self.blocks.iter().map(|b| {
            let object = b.block.value_type();
            let ty = match b.nesting {
                Nesting::Single => object,
                Nesting::List => Type::list(object),
            };
            (b.name.clone(), ty)
        });
        Type::object(attrs.chain(blocks))
    }

    /// An object of this block's type with every attribute null and no nested blocks.
    pub fn empty_value(&self) -> Value {
        let attrs = self
            .attributes
            .iter()
            .map(|a| (a.name.clone(), Value::Null));
        let blocks = self.blocks.iter().map(|b| {
            let empty = match b.nesting {
                Nesting::Single => Value::Null,
                Nesting::List => Value::List(Vec::new()),
            };
            (b.name.clone(), empty)
        });
        Value::Object(attrs.chain(blocks).collect())
    }

    /// The configuration a person would write for a state (GenerateResourceConfig): what
    /// they can set and did, without computed-only attributes, nulls, defaults, sensitive
    /// or write-only values, and without nested blocks left with nothing in them.
    pub fn config_of(&self, state: &Value) -> Value {
        let mut config = self.empty_value();
        let Value::Object(_) = state else {
            return config;
        };
        for a in &self.attributes {
            let settable = a.required || a.optional;
            let Some(value) = state.get(&a.name).filter(|v| !v.is_null()) else {
                continue;
            };
            if settable && !a.sensitive && !a.write_only && a.default.as_ref() != Some(value) {
                set_attr(&mut config, &a.name, value.clone());
            }
        }
        for nested in &self.blocks {
            let written = match (nested.nesting, state.get(&nested.name)) {
                (Nesting::Single, Some(v @ Value::Object(_))) => {
                    let inner = nested.block.config_of(v);
                    (inner != nested.block.empty_value()).then_some(inner)
                }
                (Nesting::List, Some(Value::List(items))) => Some(Value::List(
                    items.iter().map(|i| nested.block.config_of(i)).collect(),
                )),
                _ => None,
            };
            if let Some(value) = written {
                set_attr(&mut config, &nested.name, value);
            }
        }
        config
    }

    /// Where a configuration sets a write-only attribute: refused by Terraform older than
    /// 1.11, which would store it.
    pub fn write_only_set(&self, config: &Value, path: &AttributePath) -> Vec<AttributePath> {
        let mut found: Vec<AttributePath> = self
            .attributes
            .iter()
            .filter(|a| a.write_only && config.get(&a.name).is_some_and(|v| !v.is_null()))
            .map(|a| path.then_attr(&a.name))
            .collect();
        for nested in &self.blocks {
            let at = path.then_attr(&nested.name);
            match (nested.nesting, config.get(&nested.name)) {
                (Nesting::Single, Some(v @ Value::Object(_))) => {
                    found.extend(nested.block.write_only_set(v, &at))
                }
                (Nesting::List, Some(Value::List(items))) => {
                    for (i, item) in items.iter().enumerate() {
                        found.extend(nested.block.write_only_set(item, &at.then_index(i)));
                    }
                }
                _ => {}
            }
        }
        found
    }

    /// Sets every write-only attribute of `value` from `config` (an apply, which reads its
    /// secrets there), or to null without one (what every plan and state must hold).
    pub fn fill_write_only(&self, config: Option<&Value>, value: &mut Value) {
        if !matches!(value, Value::Object(_)) {
            return;
        }
        for attribute in self.attributes.iter().filter(|a| a.write_only) {
            let from = config.and_then(|c| c.get(&attribute.name)).cloned();
            if let Some(slot) = value.get_mut(&attribute.name) {
                *slot = from.unwrap_or(Value::Null);
            }
        }
        for nested in &self.blocks {
            let config = config.and_then(|c| c.get(&nested.name));
            let Some(slot) = value.get_mut(&nested.name) else {
                continue;
            };
            match (nested.nesting, slot) {
                (Nesting::Single, slot) => nested.block.fill_write_only(config, slot),
                (Nesting::List, Value::List(items)) => {
                    for (i, item) in items.iter_mut().enumerate() {
                        let config = match config {
                            Some(Value::List(c)) => c.get(i),
                            _ => None,
                        };
                        nested.block.fill_write_only(config, item);
                    }
                }
                _ => {}
            }
        }
    }

    /// Runs every attribute's validators over a configuration, skipping values that are
    /// null or not yet known (they are checked again once known, at apply).
    pub fn run_validators(&self, config: &Value, path: &AttributePath, diags: &mut Diagnostics) {
        for attribute in &self.attributes {
            let Some(value) = config.get(&attribute.name) else {
                continue;
            };
            if value.is_null() || value.is_unknown() {
                continue;
            }
            let at = path.then_attr(&attribute.name);
            if let (Some(nested), Value::List(items)) = (&attribute.nested, value) {
                let item_block = Block {
                    attributes: nested.clone(),
                    ..Block::default()
                };
                for (i, item) in items.iter().enumerate() {
                    item_block.run_validators(item, &at.then_index(i), diags);
                }
            }
            if value.contains_unknown() {
                continue;
            }
            for check in &attribute.validators {
                if let Err(message) = check(value) {
                    diags.attribute_error(at.clone(), format!("Invalid value for {at}"), message);
                }
            }
        }
        for nested in &self.blocks {
            let Some(value) = config.get(&nested.name) else {
                continue;
            };
            let at = path.then_attr(&nested.name);
            match (nested.nesting, value) {
                (Nesting::Single, Value::Object(_)) => {
                    nested.block.run_validators(value, &at, diags)
                }
                (Nesting::List, Value::List(items)) => {
                    for (i, item) in items.iter().enumerate() {
                        nested.block.run_validators(item, &at.then_index(i), diags);
                    }
                }
                _ => {}
            }
        }
    }
}

impl Schema {
    pub fn new(block: Block) -> Self {
        Self { version: 0, block }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Block {
        let positive = |v: &Value| match v.as_i64() {
            Some(n) if n > 0 => Ok(()),
            _ => Err("must be a whole number greater than 0".to_string()),
        };
        Block::new("root")
            .attribute(Attribute::number("count").optional().validate(positive))
            .block(
                "check",
                Nesting::List,
                Block::new("a check")
                    .attribute(Attribute::number("threshold").optional().validate(positive)),
            )
    }

    #[test]
    fn implied_type_covers_attributes_and_blocks() {
        let ty = schema().value_type();
        let expected = Type::object([
            ("count", Type::Number),
            (
                "check",
                Type::list(Type::object([("threshold", Type::Number)])),
            ),
        ]);
        assert_eq!(ty, expected);
    }

    #[test]
    fn generated_config_keeps_only_what_a_person_sets() {
        let block = Block::new("root")
            .attribute(Attribute::string("name").required())
            .attribute(Attribute::string("id").computed())
            .attribute(Attribute::bool("enabled").default(true))
            .attribute(Attribute::string("note").optional())
            .attribute(Attribute::string("token").optional().sensitive())
            .block(
                "check",
                Nesting::Single,
                Block::new("").attribute(Attribute::string("path").default("/")),
            );
        let state = Value::Object(
            [
                ("name".to_string(), Value::from("web")),
                ("id".to_string(), Value::from("i-1")),
                ("enabled".to_string(), Value::from(true)),
                ("note".to_string(), Value::from("kept")),
                ("token".to_string(), Value::from("secret")),
                (
                    "check".to_string(),
                    Value::Object([("path".to_string(), Value::from("/"))].into()),
                ),
            ]
            .into(),
        );
        let mut expected = block.empty_value();
        set_attr(&mut expected, "name", "web".into());
        set_attr(&mut expected, "note", "kept".into());
        assert_eq!(block.config_of(&state), expected);
        let mut changed = state.clone();
        set_attr(&mut changed, "enabled", false.into());
        assert_eq!(
            block.config_of(&changed).get("enabled"),
            Some(&Value::from(false))
        );
    }

    #[test]
    fn validators_report_the_attribute_path_and_skip_unknowns() {
        let config = Value::Object(
            [
                ("count".to_string(), Value::from(0i64)),
                (
                    "check".to_string(),
                    Value::List(vec![
                        Value::Object([("threshold".to_string(), Value::Unknown)].into()),
                        Value::Object([("threshold".to_string(), Value::from(-1i64))].into()),
                    ]),
                ),
            ]
            .into(),
        );
        let mut diags = Diagnostics::default();
        schema().run_validators(&config, &AttributePath::default(), &mut diags);
        let paths: Vec<String> = diags
            .0
            .iter()
            .map(|d| d.attribute.clone().unwrap().to_string())
            .collect();
        assert_eq!(paths, ["count", "check[1].threshold"]);
        assert!(diags.0[0].detail.contains("greater than 0"));
    }

    #[test]
    fn validators_reach_into_lists_of_objects() {
        let port = |v: &Value| match v.as_i64() {
            Some(1..=65535) => Ok(()),
            _ => Err("must be 1-65535".to_string()),
        };
        let block = Block::new("root").attribute(
            Attribute::new(
                "targets",
                Type::list(Type::object([("port", Type::Number)])),
            )
            .optional()
            .nested_list(vec![Attribute::number("port").optional().validate(port)]),
        );
        let item = |v: Value| Value::Object([("port".to_string(), v)].into());
        let config = Value::Object(
            [(
                "targets".to_string(),
                Value::List(vec![
                    item(Value::from(80i64)),
                    item(Value::Unknown),
                    item(Value::from(70000i64)),
                ]),
            )]
            .into(),
        );
        let mut diags = Diagnostics::default();
        block.run_validators(&config, &AttributePath::default(), &mut diags);
        let paths: Vec<String> = diags
            .0
            .iter()
            .map(|d| d.attribute.clone().unwrap().to_string())
            .collect();
        assert_eq!(paths, ["targets[2].port"]);
    }

    #[test]
    fn write_only_attributes_are_found_filled_from_config_and_cleared() {
        let block = Block::new("root")
            .attribute(Attribute::string_map("token_wo").optional().write_only())
            .attribute(Attribute::string("name").optional())
            .block(
                "check",
                Nesting::Single,
                Block::new("").attribute(Attribute::string("secret_wo").optional().write_only()),
            );
        let obj = |pairs: Vec<(&str, Value)>| {
            Value::Object(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
        };
        let config = obj(vec![
            ("token_wo", Value::Null),
            ("name", "a".into()),
            ("check", obj(vec![("secret_wo", "s3cret".into())])),
        ]);
        let at = block.write_only_set(&config, &AttributePath::default());
        assert_eq!(
            at,
            vec![AttributePath::attr("check").then_attr("secret_wo")]
        );
        let mut planned = obj(vec![
            ("token_wo", Value::Null),
            ("name", "a".into()),
            ("check", obj(vec![("secret_wo", Value::Null)])),
        ]);
        block.fill_write_only(Some(&config), &mut planned);
        assert_eq!(planned, config);
        block.fill_write_only(None, &mut planned);
        assert_eq!(
            planned.get("check").unwrap().get("secret_wo"),
            Some(&Value::Null)
        );
        assert_eq!(planned.get("name"), Some(&Value::from("a")));
    }
}
