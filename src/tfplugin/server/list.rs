//! `terraform query` (Terraform 1.14+): a list resource finds existing objects and streams
//! each one's identity (and, when asked, its state) as it finds it; GenerateResourceConfig
//! turns such a state into the configuration a person would write, so that
//! `-generate-config-out` writes blocks that import with no changes.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::{decode, encode, lookup, validate, Dv, Entry, Server};
use crate::tfplugin::diagnostics::Diagnostics;
use crate::tfplugin::identity::Identity;
use crate::tfplugin::resource::{Finds, Found, ListResource};
use crate::tfplugin::schema::Schema;
use crate::tfplugin::value::Type;

/// One object found, encoded for the wire.
pub struct Listed {
    pub display_name: String,
    pub identity: Dv,
    /// Only when the query includes the resource.
    pub state: Option<Dv>,
}

/// What a listing streams: each object as it is found, and diagnostics.
pub enum ListEvent {
    Found(Listed),
    Diagnostics(Diagnostics),
}

/// What ListResource asks for, besides the configuration.
struct Query<'a> {
    type_name: &'a str,
    include_resource: bool,
    /// Terraform's default is 100.
    limit: usize,
}

/// A found object for the wire: its identity, and its state when the query includes it.
fn listed(
    found: Found,
    identity: &Identity,
    resource: &Type,
    include_resource: bool,
    diags: &mut Diagnostics,
) -> Option<Listed> {
    let Some(id) = identity.from_state(&found.state) else {
        diags.error(
            "Provider bug: an object found without its identity",
            format!("{} has no complete identity.", found.display_name),
        );
        return None;
    };
    let identity = encode(&id, &identity.ty, diags)?;
    let state = if include_resource {
        Some(encode(&found.state, resource, diags)?)
    } else {
        None
    };
    Some(Listed {
        display_name: found.display_name,
        identity,
        state,
    })
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

    /// Runs the list resource in its own task, so that each object streams to Terraform as
    /// it is found; the stream ends with the search, after its diagnostics, if any.
    pub fn list_resource(
        self: &Arc<Self>,
        type_name: &str,
        config: Option<Dv>,
        include_resource: bool,
        limit: i64,
        span: tracing::Span,
    ) -> mpsc::UnboundedReceiver<ListEvent> {
        let (events, received) = mpsc::unbounded_channel();
        let server = Arc::clone(self);
        let type_name = type_name.to_string();
        let run = async move {
            let mut diags = Diagnostics::default();
            let query = Query {
                type_name: &type_name,
                include_resource,
                limit: usize::try_from(limit).unwrap_or(0),
            };
            server.search(query, config, &events, &mut diags).await;
            if !diags.0.is_empty() {
                let _ = events.send(ListEvent::Diagnostics(diags));
            }
        };
        tokio::spawn(tracing::Instrument::instrument(run, span));
        received
    }

    /// The search itself: each object found goes to `events` as soon as it is encoded.
    async fn search(
        &self,
        query: Query<'_>,
        config: Option<Dv>,
        events: &mpsc::UnboundedSender<ListEvent>,
        diags: &mut Diagnostics,
    ) {
        let type_name = query.type_name;
        let (Some(entry), Some(identity), Some(resource)) = (
            self.list(type_name, diags),
            self.identities.get(type_name),
            self.resources.get(type_name),
        ) else {
            if !diags.has_errors() {
                diags.error(
                    "Provider bug: a list resource without an identity",
                    format!("{type_name} is listed but has no resource identity."),
                );
            }
            return;
        };
        let Some(config) = decode(config, &entry.ty, "list configuration", diags) else {
            return;
        };
        let mut found = Finds::new(query.limit, |found: Found| {
            let mut problems = Diagnostics::default();
            let event = match listed(
                found,
                identity,
                &resource.ty,
                query.include_resource,
                &mut problems,
            ) {
                Some(listed) => ListEvent::Found(listed),
                None => ListEvent::Diagnostics(problems),
            };
            events.send(event).is_ok()
        });
        entry
            .imp
            .list(&self.ctx(), &config, &mut found, diags)
            .await;
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
