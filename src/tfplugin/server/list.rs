//! `terraform query` (Terraform 1.14+): a list resource finds existing objects and returns
//! each one's identity (and, when asked, its state); GenerateResourceConfig turns such a
//! state into the configuration a person would write, so that `-generate-config-out`
//! writes blocks that import with no changes.

use super::{decode, encode, lookup, validate, Dv, Entry, Server};
use crate::tfplugin::diagnostics::Diagnostics;
use crate::tfplugin::resource::ListResource;
use crate::tfplugin::schema::Schema;

/// One object found, encoded for the wire.
pub struct Listed {
    pub display_name: String,
    pub identity: Dv,
    /// Only when the query includes the resource.
    pub state: Option<Dv>,
}

impl Server {
    pub fn list_resource_schemas(&self) -> impl Iterator<Item = (&str, &Schema)> {
        self.lists.iter().map(|(k, e)| (k.as_str(), &e.schema))
    }

    pub fn validate_list_resource_config(
        &self,
        type_name: &str,
        config: Option<Dv>,
    ) -> Diagnostics {
        let mut diags = Diagnostics::default();
        if let Some(entry) = self.list(type_name, &mut diags) {
            validate(&entry.schema, &entry.ty, config, &mut diags, |c, d| {
                entry.imp.validate(c, d)
            });
        }
        diags
    }

    /// What the list resource finds, at most `limit` (Terraform's default is 100).
    pub async fn list_resource(
        &self,
        type_name: &str,
        config: Option<Dv>,
        include_resource: bool,
        limit: i64,
    ) -> (Vec<Listed>, Diagnostics) {
        let mut diags = Diagnostics::default();
        let (Some(entry), Some(identity), Some(resource)) = (
            self.list(type_name, &mut diags),
            self.identities.get(type_name),
            self.resources.get(type_name),
        ) else {
            if !diags.has_errors() {
                diags.error(
                    "Provider bug: a list resource without an identity",
                    format!("{type_name} is listed but has no resource identity."),
                );
            }
            return (Vec::new(), diags);
        };
        let Some(config) = decode(config, &entry.ty, "list configuration", &mut diags) else {
            return (Vec::new(), diags);
        };
        let limit = usize::try_from(limit).unwrap_or(0);
        let found = entry
            .imp
            .list(&self.ctx(), &config, limit, &mut diags)
            .await;
        let mut listed = Vec::new();
        for found in found.into_iter().take(limit) {
            let Some(id) = identity.from_state(&found.state) else {
                diags.error(
                    "Provider bug: an object found without its identity",
                    format!("{} has no complete identity.", found.display_name),
                );
                continue;
            };
            let (Some(identity), state) = (
                encode(&id, &identity.ty, &mut diags),
                include_resource
                    .then(|| encode(&found.state, &resource.ty, &mut diags))
                    .flatten(),
            ) else {
                continue;
            };
            listed.push(Listed {
                display_name: found.display_name,
                identity,
                state,
            });
        }
        (listed, diags)
    }

    /// The configuration a person would write for a state: the schema's settable
    /// attributes that are set, without their defaults.
    pub fn generate_resource_config(
        &self,
        type_name: &str,
        state: Option<Dv>,
    ) -> (Option<Dv>, Diagnostics) {
        let mut diags = Diagnostics::default();
        let Some(entry) = self.resource(type_name, &mut diags) else {
            return (None, diags);
        };
        let Some(state) = decode(state, &entry.ty, "state", &mut diags) else {
            return (None, diags);
        };
        let config = entry.schema.block.config_of(&state);
        (encode(&config, &entry.ty, &mut diags), diags)
    }

    fn list(&self, type_name: &str, diags: &mut Diagnostics) -> Option<&Entry<dyn ListResource>> {
        lookup(&self.lists, "list resource", type_name, diags)
    }
}
