//! The argument and attribute reference of a schema, in the markdown terraform-plugin-docs
//! (tfplugindocs) writes: `## Schema`, then `### Required`, `### Optional` and
//! `### Read-Only` lists, then one `### Nested Schema for ...` section per nested block
//! or object-typed attribute, linked by anchors.

use std::collections::{BTreeMap, BTreeSet};

use terraform_provider_immutable::tfplugin::schema::{Attribute, Block, NestedBlock, Nesting};
use terraform_provider_immutable::tfplugin::value::{Number, Type, Value};

/// The three lists an attribute or block is sorted into.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Group {
    Required,
    Optional,
    ReadOnly,
}

impl Group {
    const ALL: [Group; 3] = [Group::Required, Group::Optional, Group::ReadOnly];

    /// The heading at the top level of a schema.
    fn heading(self) -> &'static str {
        match self {
            Group::Required => "### Required",
            Group::Optional => "### Optional",
            Group::ReadOnly => "### Read-Only",
        }
    }

    /// The label inside a nested schema section.
    fn label(self) -> &'static str {
        match self {
            Group::Required => "Required:",
            Group::Optional => "Optional:",
            Group::ReadOnly => "Read-Only:",
        }
    }
}

/// A section written after the lists that refer to it.
enum Nested<'a> {
    Block {
        path: Vec<String>,
        block: &'a Block,
    },
    /// The attributes of a nested attribute's objects (`Attributes List`).
    Attributes {
        path: Vec<String>,
        attributes: &'a [Attribute],
    },
    /// The attributes of an object type, or of the objects of a collection.
    Object {
        path: Vec<String>,
        attrs: &'a BTreeMap<String, Type>,
        optional: &'a BTreeSet<String>,
        group: Group,
    },
}

/// The `## Schema` section of a resource, data source or provider.
pub fn render(block: &Block) -> Result<String, String> {
    let mut out = String::from("## Schema\n\n");
    write_children(&mut out, &[], &block.attributes, &block.blocks)?;
    Ok(out.trim_end().to_string() + "\n")
}

/// The anchor of a nested block's section, e.g. `nestedblock--timeouts`.
pub fn block_anchor(path: &[String]) -> String {
    format!("nestedblock--{}", path.join("--"))
}

fn attribute_anchor(path: &[String], root_attribute: bool) -> String {
    let kind = if root_attribute {
        "nestedatt"
    } else {
        "nestedobjatt"
    };
    format!("{kind}--{}", path.join("--"))
}

/// How tfplugindocs names a type: `String`, `Boolean`, `Map of String`, `List of Object`.
pub fn type_name(ty: &Type) -> String {
    match ty {
        Type::Bool => "Boolean".into(),
        Type::Number => "Number".into(),
        Type::String => "String".into(),
        Type::Dynamic => "Dynamic".into(),
        Type::List(e) => format!("List of {}", type_name(e)),
        Type::Set(e) => format!("Set of {}", type_name(e)),
        Type::Map(e) => format!("Map of {}", type_name(e)),
        Type::Object { .. } => "Object".into(),
        Type::Tuple(_) => "Tuple".into(),
    }
}

fn attribute_group(attribute: &Attribute) -> Result<Group, String> {
    if attribute.required {
        Ok(Group::Required)
    } else if attribute.optional {
        Ok(Group::Optional)
    } else if attribute.computed {
        Ok(Group::ReadOnly)
    } else {
        Err(format!(
            "attribute `{}` is neither required, optional nor computed",
            attribute.name
        ))
    }
}

/// A block is optional when anything in it can be set, read-only when nothing can.
/// (The schema has no minimum item count, so no block is required.)
fn block_group(block: &Block) -> Group {
    let settable = block.attributes.iter().any(|a| a.required || a.optional)
        || block
            .blocks
            .iter()
            .any(|b| block_group(&b.block) == Group::Optional);
    let empty = block.attributes.is_empty() && block.blocks.is_empty();
    if settable || empty {
        Group::Optional
    } else {
        Group::ReadOnly
    }
}

enum Child<'a> {
    Attribute(&'a Attribute),
    Block(&'a NestedBlock),
}

/// The lists of a block's (or a nested attribute's) attributes and blocks, then the
/// sections they link to.
fn write_children<'a>(
    out: &mut String,
    parents: &[String],
    attributes: &'a [Attribute],
    blocks: &'a [NestedBlock],
) -> Result<(), String> {
    let root = parents.is_empty();
    let mut groups: BTreeMap<Group, Vec<(&str, Child<'a>)>> = BTreeMap::new();
    for attribute in attributes {
        let group = attribute_group(attribute)?;
        groups
            .entry(group)
            .or_default()
            .push((&attribute.name, Child::Attribute(attribute)));
    }
    for nested in blocks {
        groups
            .entry(block_group(&nested.block))
            .or_default()
            .push((&nested.name, Child::Block(nested)));
    }

    let mut sections = Vec::new();
    for group in Group::ALL {
        let Some(children) = groups.get_mut(&group) else {
            continue;
        };
        children.sort_by(|a, b| a.0.cmp(b.0));
        out.push_str(if root { group.heading() } else { group.label() });
        out.push_str("\n\n");
        for (name, child) in children.iter() {
            let path: Vec<String> = parents.iter().cloned().chain([name.to_string()]).collect();
            match child {
                Child::Attribute(attribute) => {
                    write_attribute(out, path, attribute, group, root, &mut sections)
                }
                Child::Block(nested) => write_block(out, path, nested, group, &mut sections),
            }
        }
        out.push('\n');
    }
    write_sections(out, sections)
}

fn write_attribute<'a>(
    out: &mut String,
    path: Vec<String>,
    attribute: &'a Attribute,
    group: Group,
    root: bool,
    sections: &mut Vec<Nested<'a>>,
) {
    let mut flags = match attribute.nested {
        Some(_) => "Attributes List".to_string(),
        None => type_name(&attribute.ty),
    };
    if attribute.sensitive {
        flags.push_str(", Sensitive");
    }
    let mut description = description_with_default(attribute);
    if description.is_empty() && root && attribute.name == "id" && group == Group::ReadOnly {
        description = "The ID of this resource.".into();
    }
    let anchor = attribute_anchor(&path, true);
    let link = if let Some(attributes) = &attribute.nested {
        sections.push(Nested::Attributes {
            path: path.clone(),
            attributes,
        });
        Some(anchor)
    } else if let Some((attrs, optional)) = object_of(&attribute.ty) {
        sections.push(Nested::Object {
            path: path.clone(),
            attrs,
            optional,
            group,
        });
        Some(anchor)
    } else {
        None
    };
    write_item(out, path.last().unwrap(), &flags, &description, link);
}

fn write_block<'a>(
    out: &mut String,
    path: Vec<String>,
    nested: &'a NestedBlock,
    group: Group,
    sections: &mut Vec<Nested<'a>>,
) {
    let flags = match (nested.nesting, group) {
        (Nesting::Single, Group::ReadOnly) => "Block, Read-only",
        (Nesting::Single, _) => "Block, Optional",
        (Nesting::List, _) => "Block List",
    };
    let anchor = block_anchor(&path);
    write_item(
        out,
        &nested.name,
        flags,
        nested.block.description.trim(),
        Some(anchor),
    );
    sections.push(Nested::Block {
        path,
        block: &nested.block,
    });
}

/// One list item: ``- `name` (flags) description (see below)``. Lines after the first
/// are indented so that a multi-line description stays inside the item.
fn write_item(out: &mut String, name: &str, flags: &str, description: &str, link: Option<String>) {
    out.push_str(&format!("- `{name}` ({flags})"));
    if !description.is_empty() {
        out.push(' ');
        out.push_str(&indent_continuation(description));
    }
    if let Some(anchor) = link {
        out.push_str(&format!(" (see [below for nested schema](#{anchor}))"));
    }
    out.push('\n');
}

fn indent_continuation(text: &str) -> String {
    let mut lines = text.lines();
    let mut out = lines.next().unwrap_or_default().to_string();
    for line in lines {
        out.push('\n');
        if !line.trim().is_empty() {
            out.push_str("  ");
            out.push_str(line);
        }
    }
    out
}

fn write_sections(out: &mut String, sections: Vec<Nested>) -> Result<(), String> {
    for section in sections {
        let (path, anchor) = match &section {
            Nested::Block { path, .. } => (path, block_anchor(path)),
            Nested::Attributes { path, .. } => (path, attribute_anchor(path, true)),
            Nested::Object { path, .. } => (path, attribute_anchor(path, path.len() == 1)),
        };
        out.push_str(&format!(
            "<a id=\"{anchor}\"></a>\n### Nested Schema for `{}`\n\n",
            path.join(".")
        ));
        match section {
            Nested::Block { path, block } => {
                write_children(out, &path, &block.attributes, &block.blocks)?
            }
            Nested::Attributes { path, attributes } => write_children(out, &path, attributes, &[])?,
            Nested::Object {
                path,
                attrs,
                optional,
                group,
            } => write_object_children(out, &path, attrs, optional, group)?,
        }
    }
    Ok(())
}

/// The attributes of an object type. In an argument, attributes the type marks
/// `optional(...)` are listed as optional and the others as required; in a read-only
/// attribute, all are read-only. Object types carry no descriptions.
fn write_object_children(
    out: &mut String,
    parents: &[String],
    attrs: &BTreeMap<String, Type>,
    optional: &BTreeSet<String>,
    group: Group,
) -> Result<(), String> {
    let group_of = |name: &String| match group {
        Group::ReadOnly => Group::ReadOnly,
        _ if optional.contains(name) => Group::Optional,
        _ => Group::Required,
    };
    let mut sections = Vec::new();
    for g in Group::ALL {
        let names: Vec<&String> = attrs.keys().filter(|n| group_of(n) == g).collect();
        if names.is_empty() {
            continue;
        }
        out.push_str(g.label());
        out.push_str("\n\n");
        for name in names {
            let path: Vec<String> = parents.iter().cloned().chain([name.clone()]).collect();
            let ty = &attrs[name];
            let link = object_of(ty).map(|(attrs, optional)| {
                let anchor = attribute_anchor(&path, false);
                sections.push(Nested::Object {
                    path: path.clone(),
                    attrs,
                    optional,
                    group: g,
                });
                anchor
            });
            write_item(out, name, &type_name(ty), "", link);
        }
        out.push('\n');
    }
    write_sections(out, sections)
}

/// The object type of an object-typed attribute or of the elements of a collection.
#[allow(clippy::type_complexity)]
fn object_of(ty: &Type) -> Option<(&BTreeMap<String, Type>, &BTreeSet<String>)> {
    match ty {
        Type::Object { attrs, optional } => Some((attrs, optional)),
        Type::List(e) | Type::Set(e) | Type::Map(e) => match e.as_ref() {
            Type::Object { attrs, optional } => Some((attrs, optional)),
            _ => None,
        },
        _ => None,
    }
}

/// The description, with "Defaults to `X`." appended for an attribute with a default
/// that the text does not already state ("defaults to", in any case).
pub fn description_with_default(attribute: &Attribute) -> String {
    let description = attribute.description.trim();
    let Some(default) = attribute.default.as_ref().filter(|v| !v.is_null()) else {
        return description.to_string();
    };
    if description.to_lowercase().contains("defaults to") {
        return description.to_string();
    }
    // Strings unquoted, as the hand-written descriptions state them ("Defaults to `5m`.").
    let shown = match default {
        Value::String(s) if !s.is_empty() && !s.contains('`') => s.clone(),
        other => hcl_literal(other),
    };
    let sentence = format!("Defaults to `{shown}`.");
    if description.is_empty() {
        sentence
    } else if description.ends_with(['.', '!', '?']) {
        format!("{description} {sentence}")
    } else {
        format!("{description}. {sentence}")
    }
}

/// A value as it would be written in HCL: `"GET"`, `3`, `false`, `{}`.
pub fn hcl_literal(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Unknown => "(known after apply)".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match n {
            Number::Int(i) => i.to_string(),
            Number::Float(f) => f.to_string(),
            Number::Big(text) => text.clone(),
        },
        Value::String(s) => quote(s),
        Value::List(items) | Value::Set(items) | Value::Tuple(items) => {
            let items: Vec<String> = items.iter().map(hcl_literal).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Map(entries) | Value::Object(entries) => {
            if entries.is_empty() {
                return "{}".into();
            }
            let entries: Vec<String> = entries
                .iter()
                .map(|(k, v)| format!("{k} = {}", hcl_literal(v)))
                .collect();
            format!("{{ {} }}", entries.join(", "))
        }
    }
}

fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use terraform_provider_immutable::tfplugin::schema::Attribute;

    #[test]
    fn type_names_follow_tfplugindocs() {
        let object = Type::object([("id", Type::String)]);
        assert_eq!(type_name(&Type::String), "String");
        assert_eq!(type_name(&Type::Number), "Number");
        assert_eq!(type_name(&Type::Bool), "Boolean");
        assert_eq!(type_name(&Type::Dynamic), "Dynamic");
        assert_eq!(type_name(&Type::map(Type::String)), "Map of String");
        assert_eq!(type_name(&Type::list(object.clone())), "List of Object");
        assert_eq!(
            type_name(&Type::set(Type::list(Type::Number))),
            "Set of List of Number"
        );
        assert_eq!(type_name(&object), "Object");
    }

    #[test]
    fn defaults_are_appended_unless_the_description_states_them() {
        let method = Attribute::string("method")
            .default("GET")
            .description("HTTP method.");
        assert_eq!(
            description_with_default(&method),
            "HTTP method. Defaults to `GET`."
        );
        let no_period = Attribute::number("n").default(3).description("How many");
        assert_eq!(
            description_with_default(&no_period),
            "How many. Defaults to `3`."
        );
        let code = Attribute::bool("b").default(false).description("Uses `x`");
        assert_eq!(
            description_with_default(&code),
            "Uses `x`. Defaults to `false`."
        );
        let stated = Attribute::string("s")
            .default("5m")
            .description("Deadline. Defaults to `5m`.");
        assert_eq!(
            description_with_default(&stated),
            "Deadline. Defaults to `5m`."
        );
        let empty_map = Attribute::string_map("headers").default(Value::Map(Default::default()));
        assert_eq!(description_with_default(&empty_map), "Defaults to `{}`.");
        let empty = Attribute::string("prefix").default("");
        assert_eq!(description_with_default(&empty), "Defaults to `\"\"`.");
        let none = Attribute::string("url").required().description("The URL.");
        assert_eq!(description_with_default(&none), "The URL.");
    }

    fn sample() -> Block {
        Block::new("A sample.")
            .attribute(
                Attribute::string("url")
                    .required()
                    .description("The URL to check."),
            )
            .attribute(
                Attribute::string_map("headers")
                    .optional()
                    .sensitive()
                    .description("Request headers."),
            )
            .attribute(
                Attribute::number("healthy_threshold")
                    .default(3)
                    .description("Passes needed."),
            )
            .attribute(Attribute::string("id").computed())
            .attribute(
                Attribute::new(
                    "fleet",
                    Type::list(Type::object([("id", Type::String), ("port", Type::Number)])),
                )
                .optional()
                .nested_list(vec![
                    Attribute::string("id")
                        .required()
                        .description("Instance ID."),
                    Attribute::number("port").default(80).description("Port."),
                ])
                .description("The fleet, attribute by attribute."),
            )
            .attribute(
                Attribute::new(
                    "targets",
                    Type::List(Box::new(Type::Object {
                        attrs: [
                            ("id".to_string(), Type::String),
                            ("port".to_string(), Type::Number),
                        ]
                        .into(),
                        optional: ["port".to_string()].into(),
                    })),
                )
                .optional()
                .description("The fleet."),
            )
            .block(
                "timeouts",
                Nesting::Single,
                Block::new("Deadlines.").attribute(
                    Attribute::string("create")
                        .optional()
                        .description("Deadline of create."),
                ),
            )
            .block(
                "check",
                Nesting::List,
                Block::new("").block(
                    "tls",
                    Nesting::Single,
                    Block::new("TLS settings.")
                        .attribute(Attribute::bool("verify").optional().description("Verify.")),
                ),
            )
    }

    #[test]
    fn schema_sections_groups_and_nested_anchors() {
        let md = render(&sample()).unwrap();
        let expected = "\
## Schema

### Required

- `url` (String) The URL to check.

### Optional

- `check` (Block List) (see [below for nested schema](#nestedblock--check))
- `fleet` (Attributes List) The fleet, attribute by attribute. (see [below for nested schema](#nestedatt--fleet))
- `headers` (Map of String, Sensitive) Request headers.
- `healthy_threshold` (Number) Passes needed. Defaults to `3`.
- `targets` (List of Object) The fleet. (see [below for nested schema](#nestedatt--targets))
- `timeouts` (Block, Optional) Deadlines. (see [below for nested schema](#nestedblock--timeouts))

### Read-Only

- `id` (String) The ID of this resource.

<a id=\"nestedblock--check\"></a>
### Nested Schema for `check`

Optional:

- `tls` (Block, Optional) TLS settings. (see [below for nested schema](#nestedblock--check--tls))

<a id=\"nestedblock--check--tls\"></a>
### Nested Schema for `check.tls`

Optional:

- `verify` (Boolean) Verify.

<a id=\"nestedatt--fleet\"></a>
### Nested Schema for `fleet`

Required:

- `id` (String) Instance ID.

Optional:

- `port` (Number) Port. Defaults to `80`.

<a id=\"nestedatt--targets\"></a>
### Nested Schema for `targets`

Required:

- `id` (String)

Optional:

- `port` (Number)

<a id=\"nestedblock--timeouts\"></a>
### Nested Schema for `timeouts`

Optional:

- `create` (String) Deadline of create.
";
        assert_eq!(md, expected);
    }

    #[test]
    fn every_link_has_its_anchor() {
        let md = render(&sample()).unwrap();
        for part in md.split("](#").skip(1) {
            let anchor = &part[..part.find(')').unwrap()];
            assert!(
                md.contains(&format!("<a id=\"{anchor}\"></a>")),
                "no anchor for {anchor}"
            );
        }
    }

    #[test]
    fn read_only_blocks_and_multiline_descriptions() {
        let block = Block::new("").block(
            "status",
            Nesting::Single,
            Block::new("").attribute(
                Attribute::string("state")
                    .computed()
                    .description("First line.\n\nSecond paragraph."),
            ),
        );
        let md = render(&block).unwrap();
        assert!(md.contains(
            "### Read-Only\n\n- `status` (Block, Read-only) (see [below for nested schema](#nestedblock--status))"
        ));
        assert!(md.contains("- `state` (String) First line.\n\n  Second paragraph.\n"));
    }

    #[test]
    fn an_attribute_that_is_nothing_is_an_error() {
        let block = Block::new("").attribute(Attribute::string("x"));
        assert!(render(&block).unwrap_err().contains("`x`"));
    }
}
