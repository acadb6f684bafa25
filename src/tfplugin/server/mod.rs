//! The protocol-neutral provider server: decodes Terraform's values with the schemas,
//! runs validation and schema-driven planning, and calls the resources. The gRPC
//! services for protocols 5 and 6 are thin translations over these functions.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

mod actions;
mod ephemeral;
mod list;

pub use list::{ListEvent, Listed};

use super::diagnostics::{AttributePath, Diagnostics};
use super::identity::Identity;
use super::plan::plan_from_schema;
use super::resource::{
    Action, Ctx, DataSource, EphemeralResource, ListResource, Provider, Resource,
};
use super::schema::Schema;
use super::value::{self, Type, Value};

/// A value as Terraform sends it: msgpack, or JSON from older callers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dv {
    pub msgpack: Vec<u8>,
    pub json: Vec<u8>,
}

/// The outcome of PlanResourceChange.
pub struct Planned {
    pub planned: Option<Dv>,
    pub requires_replace: Vec<AttributePath>,
    pub private: Vec<u8>,
    pub diags: Diagnostics,
}

/// A registered resource or data source with its schema, computed once.
struct Entry<T: ?Sized> {
    imp: Arc<T>,
    schema: Schema,
    ty: Type,
}

impl<T: ?Sized> Entry<T> {
    fn new(imp: Arc<T>, schema: Schema) -> Self {
        let ty = schema.block.value_type();
        Self { imp, schema, ty }
    }
}

pub struct Server {
    provider: Entry<dyn Provider>,
    resources: BTreeMap<String, Entry<dyn Resource>>,
    /// The resource types that have an identity (Terraform 1.12+).
    identities: BTreeMap<String, Identity>,
    data_sources: BTreeMap<String, Entry<dyn DataSource>>,
    /// List resources (Terraform 1.14+), by the managed resource type they list.
    lists: BTreeMap<String, Entry<dyn ListResource>>,
    actions: BTreeMap<String, Entry<dyn Action>>,
    /// Ephemeral resources (Terraform 1.10+).
    ephemerals: BTreeMap<String, Entry<dyn EphemeralResource>>,
    stop: CancellationToken,
    /// Applies and actions in flight, each in a task of its own: an RPC dropped because
    /// Terraform died does not drop the work with it, which backs out instead, and
    /// [`Server::drain`] waits for it before the process ends.
    operations: TaskTracker,
}

impl Server {
    pub fn new(provider: Arc<dyn Provider>) -> Self {
        let data_sources = provider
            .data_sources()
            .into_iter()
            .map(|d| (d.type_name().to_string(), Entry::new(d.clone(), d.schema())))
            .collect();
        let resources: BTreeMap<String, Entry<dyn Resource>> = provider
            .resources()
            .into_iter()
            .map(|r| (r.type_name().to_string(), Entry::new(r.clone(), r.schema())))
            .collect();
        let identities = resources
            .iter()
            .filter_map(|(name, entry)| {
                Some((
                    name.clone(),
                    Identity::of(&entry.schema, entry.imp.identity())?,
                ))
            })
            .collect();
        let lists = provider
            .list_resources()
            .into_iter()
            .map(|l| (l.type_name().to_string(), Entry::new(l.clone(), l.schema())))
            .collect();
        let actions = provider
            .actions()
            .into_iter()
            .map(|a| (a.type_name().to_string(), Entry::new(a.clone(), a.schema())))
            .collect();
        let ephemerals = provider
            .ephemeral_resources()
            .into_iter()
            .map(|e| (e.type_name().to_string(), Entry::new(e.clone(), e.schema())))
            .collect();
        let schema = provider.schema();
        Self {
            provider: Entry::new(provider, schema),
            resources,
            identities,
            data_sources,
            lists,
            actions,
            ephemerals,
            stop: CancellationToken::new(),
            operations: TaskTracker::new(),
        }
    }

    fn ctx(&self) -> Ctx {
        Ctx {
            stop: self.stop.clone(),
        }
    }

    pub fn provider_schema(&self) -> &Schema {
        &self.provider.schema
    }

    pub fn resource_schemas(&self) -> impl Iterator<Item = (&str, &Schema)> {
        self.resources.iter().map(|(k, e)| (k.as_str(), &e.schema))
    }

    pub fn identity_schemas(&self) -> impl Iterator<Item = (&str, &Identity)> {
        self.identities.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The identity of a state this server returned for `type_name`, when the type has
    /// one and the object exists.
    pub fn identity_of(&self, type_name: &str, state: Option<&Dv>) -> Option<Dv> {
        let identity = self.identities.get(type_name)?;
        let ty = &self.resources.get(type_name)?.ty;
        let state = value::decode_msgpack(&state?.msgpack, ty).ok()?;
        let value = identity.from_state(&state)?;
        Some(Dv {
            msgpack: value::encode_msgpack(&value, &identity.ty).ok()?,
            json: Vec::new(),
        })
    }

    /// The import ID of `import { identity = { ... } }`.
    pub fn import_id(&self, type_name: &str, identity: Option<Dv>) -> Result<String, Diagnostics> {
        let mut diags = Diagnostics::default();
        let (Some(entry), Some(schema)) = (
            self.resource(type_name, &mut diags),
            self.identities.get(type_name),
        ) else {
            diags.error(
                "Import by identity not supported",
                format!("{type_name} has no resource identity: import it by ID."),
            );
            return Err(diags);
        };
        let Some(identity) = decode(identity, &schema.ty, "identity", &mut diags) else {
            return Err(diags);
        };
        match entry.imp.import_id(&identity) {
            Some(id) => Ok(id),
            None => {
                diags.error(
                    "Incomplete identity",
                    format!(
                        "Give every attribute of the identity: {}.",
                        schema
                            .attributes
                            .iter()
                            .map(|(n, _)| *n)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
                Err(diags)
            }
        }
    }

    /// An identity stored by Terraform, at the only version there is (0).
    pub fn upgrade_identity(&self, type_name: &str, json: &[u8]) -> (Option<Dv>, Diagnostics) {
        let mut diags = Diagnostics::default();
        let Some(identity) = self.identities.get(type_name) else {
            diags.error(
                "No resource identity",
                format!("{type_name} has no resource identity."),
            );
            return (None, diags);
        };
        match value::decode_json(json, &identity.ty) {
            Ok(v) => (encode(&v, &identity.ty, &mut diags), diags),
            Err(e) => {
                diags.error(
                    "Stored identity could not be read",
                    format!("The {type_name} identity is not valid: {e}"),
                );
                (None, diags)
            }
        }
    }

    pub fn data_source_schemas(&self) -> impl Iterator<Item = (&str, &Schema)> {
        self.data_sources
            .iter()
            .map(|(k, e)| (k.as_str(), &e.schema))
    }

    /// StopProvider: every operation in flight sees its `Ctx::stop` cancelled.
    pub fn stop(&self) {
        tracing::info!("Terraform asked the provider to stop (interrupt)");
        self.stop.cancel();
    }

    /// Before the process ends (Terraform gone, SIGTERM, SIGHUP, Shutdown): every
    /// operation in flight is stopped as Ctrl-C stops it, and given up to `within` to back
    /// out. Returns whether all of them finished.
    pub async fn drain(&self, within: Duration) -> bool {
        self.stop.cancel();
        self.operations.close();
        let finished = tokio::time::timeout(within, self.operations.wait())
            .await
            .is_ok();
        if !finished {
            tracing::error!(
                in_flight = self.operations.len(),
                "operations still running at exit; the next apply reads what they left"
            );
        }
        finished
    }

    /// Runs `work` as an operation of its own (see `operations`), with a stop token that
    /// is also cancelled when the caller stops waiting for it: a dropped RPC is Terraform
    /// gone, and the work then ends as on Ctrl-C.
    async fn run_operation<T, F>(&self, work: impl FnOnce(Ctx) -> F) -> Result<T, String>
    where
        F: std::future::Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let stop = self.stop.child_token();
        let task = self.operations.spawn(tracing::Instrument::instrument(
            work(Ctx { stop: stop.clone() }),
            tracing::Span::current(),
        ));
        let _stop_when_dropped = stop.drop_guard();
        task.await.map_err(|e| {
            tracing::error!(error = %e, "an operation panicked");
            format!("The operation ended unexpectedly ({e}); this is a bug in the provider.")
        })
    }

    pub fn validate_provider_config(&self, config: Option<Dv>) -> Diagnostics {
        let mut diags = Diagnostics::default();
        let provider = &self.provider;
        validate(
            &provider.schema,
            &provider.ty,
            config,
            &mut diags,
            |c, d| provider.imp.validate(c, d),
        );
        diags
    }

    pub async fn configure_provider(&self, config: Option<Dv>) -> Diagnostics {
        let mut diags = Diagnostics::default();
        if let Some(config) = decode(
            config,
            &self.provider.ty,
            "provider configuration",
            &mut diags,
        ) {
            self.provider
                .imp
                .configure(&self.ctx(), &config, &mut diags)
                .await;
        }
        diags
    }

    /// `write_only_allowed`: Terraform said it keeps write-only attributes out of plans
    /// and states (1.11+); an older one would store them, so they are refused.
    pub fn validate_resource_config(
        &self,
        type_name: &str,
        config: Option<Dv>,
        write_only_allowed: bool,
    ) -> Diagnostics {
        let mut diags = Diagnostics::default();
        let Some(entry) = self.resource(type_name, &mut diags) else {
            return diags;
        };
        validate(&entry.schema, &entry.ty, config, &mut diags, |c, d| {
            if !write_only_allowed {
                for at in entry
                    .schema
                    .block
                    .write_only_set(c, &AttributePath::default())
                {
                    d.attribute_error(
                        at.clone(),
                        format!("{at} needs Terraform 1.11 or later"),
                        format!("{at} is write-only: Terraform 1.11 and later use it without storing it in plans or state. This Terraform would store it, so the provider refuses it. Upgrade Terraform, or use the sensitive attribute beside it (stored in state)."),
                    );
                }
            }
            entry.imp.validate(c, d)
        });
        diags
    }

    pub fn validate_data_resource_config(
        &self,
        type_name: &str,
        config: Option<Dv>,
    ) -> Diagnostics {
        let mut diags = Diagnostics::default();
        let Some(entry) = self.data_source(type_name, &mut diags) else {
            return diags;
        };
        validate(&entry.schema, &entry.ty, config, &mut diags, |c, d| {
            entry.imp.validate(c, d)
        });
        diags
    }

    /// Reads a stored state written by this or an earlier version of the provider.
    /// Attributes that no longer exist are dropped; new ones start as null.
    pub fn upgrade_resource_state(
        &self,
        type_name: &str,
        version: i64,
        json: &[u8],
    ) -> (Option<Dv>, Diagnostics) {
        let mut diags = Diagnostics::default();
        let Some(entry) = self.resource(type_name, &mut diags) else {
            return (None, diags);
        };
        if version > entry.schema.version {
            diags.error(
                "State written by a newer provider",
                format!(
                    "The state of this {type_name} has schema version {version}, but this provider \
                     knows only up to version {}. Upgrade the provider.",
                    entry.schema.version
                ),
            );
            return (None, diags);
        }
        let state = serde_json::from_slice::<serde_json::Value>(json)
            .map_err(|e| e.to_string())
            .and_then(|mut raw| {
                prune_unknown_attributes(&mut raw, &entry.ty);
                value::decode_json(raw.to_string().as_bytes(), &entry.ty).map_err(|e| e.to_string())
            });
        match state {
            Ok(state) => (encode(&state, &entry.ty, &mut diags), diags),
            Err(e) => {
                diags.error(
                    "Stored state could not be read",
                    format!("The {type_name} state is not valid: {e}"),
                );
                (None, diags)
            }
        }
    }

    pub async fn read_resource(
        &self,
        type_name: &str,
        current: Option<Dv>,
        private: Vec<u8>,
    ) -> (Option<Dv>, Vec<u8>, Diagnostics) {
        let mut diags = Diagnostics::default();
        let Some(entry) = self.resource(type_name, &mut diags) else {
            return (None, private, diags);
        };
        let Some(state) = decode(current, &entry.ty, "current state", &mut diags) else {
            return (None, private, diags);
        };
        let new_state = if state.is_null() {
            Value::Null
        } else {
            entry.imp.read(&self.ctx(), &state, &mut diags).await
        };
        (
            encode_result(&new_state, &entry.ty, &mut diags),
            private,
            diags,
        )
    }

    pub async fn plan_resource_change(
        &self,
        type_name: &str,
        prior: Option<Dv>,
        proposed: Option<Dv>,
        config: Option<Dv>,
        private: Vec<u8>,
    ) -> Planned {
        let mut diags = Diagnostics::default();
        let mut planned = Planned {
            planned: None,
            requires_replace: Vec::new(),
            private,
            diags: Diagnostics::default(),
        };
        let Some(entry) = self.resource(type_name, &mut diags) else {
            planned.diags = diags;
            return planned;
        };
        let (Some(prior), Some(proposed), Some(config)) = (
            decode(prior, &entry.ty, "prior state", &mut diags),
            decode(proposed, &entry.ty, "proposed new state", &mut diags),
            decode(config, &entry.ty, "configuration", &mut diags),
        ) else {
            planned.diags = diags;
            return planned;
        };
        // Destroy plans have nothing to decide.
        if proposed.is_null() {
            planned.planned = encode(&Value::Null, &entry.ty, &mut diags);
            planned.diags = diags;
            return planned;
        }
        // Write-only values are never compared (the prior state cannot hold them): a plan
        // is made as if they were left out.
        let block = &entry.schema.block;
        let (mut config, mut proposed) = (config, proposed);
        block.fill_write_only(None, &mut config);
        block.fill_write_only(None, &mut proposed);
        let mut plan = plan_from_schema(block, &prior, &config, proposed);
        entry
            .imp
            .modify_plan(&self.ctx(), &prior, &config, &mut plan.planned, &mut diags)
            .await;
        block.fill_write_only(None, &mut plan.planned);
        planned.planned = encode(&plan.planned, &entry.ty, &mut diags);
        planned.requires_replace = plan.requires_replace;
        planned.diags = diags;
        planned
    }

    /// `config` gives the write-only attributes, which the planned state never holds: the
    /// resource reads them in `planned`, and they are cleared from the new state. Runs as
    /// an operation of its own, which backs out when Terraform goes away mid-apply.
    pub async fn apply_resource_change(
        self: &Arc<Self>,
        type_name: &str,
        prior: Option<Dv>,
        planned: Option<Dv>,
        config: Option<Dv>,
        private: Vec<u8>,
    ) -> (Option<Dv>, Vec<u8>, Diagnostics) {
        let server = Arc::clone(self);
        let type_name = type_name.to_string();
        let outcome = self
            .run_operation(|ctx| async move {
                server
                    .apply(&type_name, &ctx, prior, planned, config, private)
                    .await
            })
            .await;
        outcome.unwrap_or_else(|e| {
            let mut diags = Diagnostics::default();
            diags.error("Apply failed", e);
            (None, Vec::new(), diags)
        })
    }

    async fn apply(
        &self,
        type_name: &str,
        ctx: &Ctx,
        prior: Option<Dv>,
        planned: Option<Dv>,
        config: Option<Dv>,
        private: Vec<u8>,
    ) -> (Option<Dv>, Vec<u8>, Diagnostics) {
        let mut diags = Diagnostics::default();
        let Some(entry) = self.resource(type_name, &mut diags) else {
            return (None, private, diags);
        };
        let (Some(prior), Some(mut planned), Some(config)) = (
            decode(prior, &entry.ty, "prior state", &mut diags),
            decode(planned, &entry.ty, "planned state", &mut diags),
            decode(config, &entry.ty, "configuration", &mut diags),
        ) else {
            return (None, private, diags);
        };
        let block = &entry.schema.block;
        if !config.is_null() {
            block.fill_write_only(Some(&config), &mut planned);
        }
        let new_state = match (prior.is_null(), planned.is_null()) {
            (_, true) => {
                entry.imp.delete(ctx, &prior, &mut diags).await;
                // A failed delete keeps the object in state, as it still exists.
                if diags.has_errors() {
                    prior
                } else {
                    Value::Null
                }
            }
            (true, false) => entry.imp.create(ctx, &planned, &mut diags).await,
            (false, false) => entry.imp.update(ctx, &prior, &planned, &mut diags).await,
        };
        let mut new_state = new_state;
        block.fill_write_only(None, &mut new_state);
        (
            encode_result(&new_state, &entry.ty, &mut diags),
            private,
            diags,
        )
    }

    pub async fn import_resource_state(
        &self,
        type_name: &str,
        id: &str,
    ) -> (Option<Dv>, Diagnostics) {
        let mut diags = Diagnostics::default();
        let Some(entry) = self.resource(type_name, &mut diags) else {
            return (None, diags);
        };
        match entry.imp.import(&self.ctx(), id, &mut diags).await {
            Some(state) => (encode_result(&state, &entry.ty, &mut diags), diags),
            None if diags.has_errors() => (None, diags),
            None => {
                diags.error(
                    "Import not supported",
                    format!("{type_name} cannot be imported; see its documentation for why."),
                );
                (None, diags)
            }
        }
    }

    pub async fn read_data_source(
        &self,
        type_name: &str,
        config: Option<Dv>,
    ) -> (Option<Dv>, Diagnostics) {
        let mut diags = Diagnostics::default();
        let Some(entry) = self.data_source(type_name, &mut diags) else {
            return (None, diags);
        };
        let Some(config) = decode(config, &entry.ty, "configuration", &mut diags) else {
            return (None, diags);
        };
        let state = entry.imp.read(&self.ctx(), &config, &mut diags).await;
        (encode_result(&state, &entry.ty, &mut diags), diags)
    }

    fn resource(&self, type_name: &str, diags: &mut Diagnostics) -> Option<&Entry<dyn Resource>> {
        lookup(&self.resources, "resource type", type_name, diags)
    }

    fn data_source(
        &self,
        type_name: &str,
        diags: &mut Diagnostics,
    ) -> Option<&Entry<dyn DataSource>> {
        lookup(&self.data_sources, "data source", type_name, diags)
    }
}

/// The registered `noun` named `type_name`; an error when the provider has none.
fn lookup<'a, T: ?Sized>(
    entries: &'a BTreeMap<String, Entry<T>>,
    noun: &str,
    type_name: &str,
    diags: &mut Diagnostics,
) -> Option<&'a Entry<T>> {
    let entry = entries.get(type_name);
    if entry.is_none() {
        diags.error(
            format!("Unknown {noun}"),
            format!("This provider has no {noun} {type_name:?}."),
        );
    }
    entry
}

/// Decodes a configuration and runs the schema's validators, then (when they found
/// nothing) the object's own cross-attribute checks.
fn validate(
    schema: &Schema,
    ty: &Type,
    config: Option<Dv>,
    diags: &mut Diagnostics,
    own_checks: impl FnOnce(&Value, &mut Diagnostics),
) {
    if let Some(config) = decode(config, ty, "configuration", diags) {
        schema
            .block
            .run_validators(&config, &AttributePath::default(), diags);
        if !diags.has_errors() {
            own_checks(&config, diags);
        }
    }
}

/// Decodes a value Terraform sent; an absent value is null. Errors become diagnostics.
fn decode(dv: Option<Dv>, ty: &Type, what: &str, diags: &mut Diagnostics) -> Option<Value> {
    let Some(dv) = dv else {
        return Some(Value::Null);
    };
    let decoded = if !dv.msgpack.is_empty() {
        value::decode_msgpack(&dv.msgpack, ty)
    } else if !dv.json.is_empty() {
        value::decode_json(&dv.json, ty)
    } else {
        Ok(Value::Null)
    };
    match decoded {
        Ok(value) => Some(value),
        Err(e) => {
            diags.attribute_error(
                AttributePath(e.path.clone()),
                format!("Malformed {what}"),
                format!("Terraform sent a {what} this provider cannot decode: {e}"),
            );
            None
        }
    }
}

fn encode(value: &Value, ty: &Type, diags: &mut Diagnostics) -> Option<Dv> {
    match value::encode_msgpack(value, ty) {
        Ok(msgpack) => Some(Dv {
            msgpack,
            json: Vec::new(),
        }),
        Err(e) => {
            diags.error(
                "Provider bug: value does not match its schema",
                e.to_string(),
            );
            None
        }
    }
}

/// Encodes the result of an apply, read or import, which must be wholly known.
fn encode_result(value: &Value, ty: &Type, diags: &mut Diagnostics) -> Option<Dv> {
    if value.contains_unknown() {
        diags.error(
            "Provider bug: unknown value after apply",
            "The provider returned a state with unknown values. Please report this.",
        );
        return None;
    }
    encode(value, ty, diags)
}

/// Drops object attributes the type does not have, recursively, so that states written
/// with an attribute that has since been removed still load.
fn prune_unknown_attributes(raw: &mut serde_json::Value, ty: &Type) {
    match (raw, ty) {
        (serde_json::Value::Object(map), Type::Object { attrs, .. }) => {
            map.retain(|k, _| attrs.contains_key(k));
            for (k, v) in map.iter_mut() {
                prune_unknown_attributes(v, &attrs[k]);
            }
        }
        (serde_json::Value::Array(items), Type::List(elem) | Type::Set(elem)) => {
            items
                .iter_mut()
                .for_each(|v| prune_unknown_attributes(v, elem));
        }
        (serde_json::Value::Object(map), Type::Map(elem)) => {
            map.values_mut()
                .for_each(|v| prune_unknown_attributes(v, elem));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tfplugin::resource::{ActionEvent, Finds, Found, Opened, Progress};
    use crate::tfplugin::schema::{Attribute, Block};

    /// A resource whose apply echoes the plan, for exercising the server alone.
    struct Echo;

    /// The slow echoes that saw their apply stopped, by name.
    static STOPPED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

    fn stopped(name: &str) -> bool {
        STOPPED.lock().unwrap().iter().any(|n| n == name)
    }

    #[tonic::async_trait]
    impl Resource for Echo {
        fn type_name(&self) -> &'static str {
            "test_echo"
        }
        fn schema(&self) -> Schema {
            Schema::new(
                Block::new("")
                    .attribute(Attribute::string("name").required().requires_replace())
                    .attribute(Attribute::string("id").computed()),
            )
        }
        /// A name starting with "slow" waits until the apply is stopped, as a rollout does.
        async fn create(&self, ctx: &Ctx, planned: &Value, _: &mut Diagnostics) -> Value {
            if let Some(name) = planned
                .get("name")
                .and_then(Value::as_str)
                .filter(|n| n.starts_with("slow"))
            {
                ctx.stop.cancelled().await;
                STOPPED.lock().unwrap().push(name.to_string());
            }
            let mut state = planned.clone();
            *state.get_mut("id").unwrap() = "x".into();
            state
        }
        async fn read(&self, _: &Ctx, state: &Value, _: &mut Diagnostics) -> Value {
            state.clone()
        }
        async fn update(&self, _: &Ctx, _: &Value, planned: &Value, _: &mut Diagnostics) -> Value {
            // A buggy update that leaves a value unknown.
            planned.clone()
        }
        async fn delete(&self, _: &Ctx, _: &Value, diags: &mut Diagnostics) {
            diags.error("cannot delete", "");
        }
        fn identity(&self) -> &'static [&'static str] {
            &["name"]
        }
    }

    /// Finds two echoes.
    struct Finder;

    #[tonic::async_trait]
    impl ListResource for Finder {
        fn type_name(&self) -> &'static str {
            "test_echo"
        }
        fn schema(&self) -> Schema {
            Schema::new(Block::new("").attribute(Attribute::string("prefix").optional()))
        }
        /// Finds "a", "b" and "c", unless told to stop first.
        async fn list(&self, _: &Ctx, _: &Value, found: &mut Finds<'_>, _: &mut Diagnostics) {
            for name in ["a", "b", "c"] {
                let state = object(name, "x".into());
                let display_name = format!("echo {name}");
                if !found.send(Found {
                    display_name,
                    state,
                }) {
                    return;
                }
            }
        }
    }

    /// Counts down, then fails when told to.
    struct Countdown;

    #[tonic::async_trait]
    impl Action for Countdown {
        fn type_name(&self) -> &'static str {
            "test_countdown"
        }
        fn schema(&self) -> Schema {
            Schema::new(Block::new("").attribute(Attribute::bool("fail").optional()))
        }
        async fn invoke(
            &self,
            _: &Ctx,
            config: &Value,
            progress: &Progress,
            diags: &mut Diagnostics,
        ) {
            for n in ["3", "2", "1"] {
                progress.say(n);
                tokio::task::yield_now().await;
            }
            if config.get("fail").and_then(Value::as_bool) == Some(true) {
                diags.error("lift-off failed", "");
            }
        }
    }

    /// Opens tickets: the private bytes name the ticket; closes are recorded.
    struct Ticket;

    static CLOSED: std::sync::Mutex<Vec<Vec<u8>>> = std::sync::Mutex::new(Vec::new());

    #[tonic::async_trait]
    impl EphemeralResource for Ticket {
        fn type_name(&self) -> &'static str {
            "test_ticket"
        }
        fn schema(&self) -> Schema {
            Echo.schema()
        }
        async fn open(&self, _: &Ctx, config: &Value, _: &mut Diagnostics) -> Option<Opened> {
            let name = config.get("name")?.as_str()?;
            Some(Opened {
                result: object(name, format!("ticket-{name}").into()),
                private: name.as_bytes().to_vec(),
                renew_at: Some(std::time::UNIX_EPOCH + Duration::from_secs(60)),
            })
        }
        async fn renew(
            &self,
            _: &Ctx,
            private: &[u8],
            _: &mut Diagnostics,
        ) -> Option<std::time::SystemTime> {
            Some(std::time::UNIX_EPOCH + Duration::from_secs(60 * private.len() as u64))
        }
        async fn close(&self, _: &Ctx, private: &[u8], _: &mut Diagnostics) {
            CLOSED.lock().unwrap().push(private.to_vec());
        }
    }

    struct TestProvider;

    #[tonic::async_trait]
    impl Provider for TestProvider {
        fn type_name(&self) -> &'static str {
            "test"
        }
        fn schema(&self) -> Schema {
            Schema::new(Block::new(""))
        }
        async fn configure(&self, _: &Ctx, _: &Value, _: &mut Diagnostics) {}
        fn resources(&self) -> Vec<Arc<dyn Resource>> {
            vec![Arc::new(Echo)]
        }
        fn data_sources(&self) -> Vec<Arc<dyn DataSource>> {
            Vec::new()
        }
        fn list_resources(&self) -> Vec<Arc<dyn ListResource>> {
            vec![Arc::new(Finder)]
        }
        fn actions(&self) -> Vec<Arc<dyn Action>> {
            vec![Arc::new(Countdown)]
        }
        fn ephemeral_resources(&self) -> Vec<Arc<dyn EphemeralResource>> {
            vec![Arc::new(Ticket)]
        }
    }

    fn server() -> Arc<Server> {
        Arc::new(Server::new(Arc::new(TestProvider)))
    }

    fn dv(value: &Value) -> Option<Dv> {
        let ty = Echo.schema().block.value_type();
        Some(Dv {
            msgpack: value::encode_msgpack(value, &ty).unwrap(),
            json: Vec::new(),
        })
    }

    fn object(name: &str, id: Value) -> Value {
        Value::Object([("name".to_string(), name.into()), ("id".to_string(), id)].into())
    }

    fn decoded(dv: &Dv, ty: &Type) -> Value {
        value::decode_msgpack(&dv.msgpack, ty).unwrap()
    }

    /// What a listing streamed: the objects, and the number of diagnostics.
    async fn listed(
        server: &Arc<Server>,
        include_resource: bool,
        limit: i64,
    ) -> (Vec<Listed>, usize) {
        let mut events = server.list_resource(
            "test_echo",
            None,
            include_resource,
            limit,
            tracing::Span::none(),
        );
        let (mut found, mut diags) = (Vec::new(), 0);
        while let Some(event) = events.recv().await {
            match event {
                ListEvent::Found(listed) => found.push(listed),
                ListEvent::Diagnostics(d) => diags += d.0.len(),
            }
        }
        (found, diags)
    }

    #[tokio::test]
    async fn listing_streams_identities_up_to_the_limit_and_states_when_asked() {
        let server = Arc::new(server());
        let identity = Type::object([("name", Type::String)]);
        let (found, diags) = listed(&server, false, 1).await;
        assert_eq!(diags, 0);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].display_name, "echo a");
        assert_eq!(
            decoded(&found[0].identity, &identity),
            Value::Object([("name".to_string(), "a".into())].into())
        );
        assert!(found[0].state.is_none());
        let (found, _) = listed(&server, true, 100).await;
        assert_eq!(found.len(), 3);
        let ty = Echo.schema().block.value_type();
        assert_eq!(
            decoded(found[1].state.as_ref().unwrap(), &ty),
            object("b", "x".into())
        );
    }

    #[test]
    fn a_search_ends_at_its_limit_or_when_terraform_stops_listening() {
        let one = || Found {
            display_name: String::new(),
            state: Value::Null,
        };
        let mut sent = 0;
        let mut found = Finds::new(2, |_| {
            sent += 1;
            true
        });
        assert!(found.send(one()));
        assert!(!found.send(one()), "the second is the last");
        assert!(found.is_done() && !found.send(one()));
        drop(found);
        assert_eq!(sent, 2);
        let mut deaf = Finds::new(100, |_| false);
        assert!(!deaf.send(one()));
        assert!(deaf.is_done());
    }

    #[test]
    fn generated_config_leaves_computed_attributes_out() {
        let (config, diags) =
            server().generate_resource_config("test_echo", dv(&object("web", "x".into())));
        assert!(diags.0.is_empty());
        let ty = Echo.schema().block.value_type();
        assert_eq!(decoded(&config.unwrap(), &ty), object("web", Value::Null));
    }

    #[tokio::test]
    async fn an_ephemeral_resource_opens_with_its_config_then_renews_and_closes_with_its_private_bytes(
    ) {
        let server = server();
        assert_eq!(
            server
                .ephemeral_schemas()
                .map(|(n, _)| n)
                .collect::<Vec<_>>(),
            ["test_ticket"]
        );
        let config = dv(&object("web", Value::Null));
        assert!(server
            .validate_ephemeral_config("test_ticket", config.clone())
            .0
            .is_empty());
        let open = server.open_ephemeral("test_ticket", config).await;
        assert!(open.diags.0.is_empty());
        let ty = Echo.schema().block.value_type();
        assert_eq!(
            decoded(&open.result.unwrap(), &ty),
            object("web", "ticket-web".into())
        );
        assert_eq!(
            open.renew_at,
            Some(std::time::UNIX_EPOCH + Duration::from_secs(60))
        );
        let (renew_at, diags) = server.renew_ephemeral("test_ticket", &open.private).await;
        assert!(diags.0.is_empty());
        assert_eq!(
            renew_at,
            Some(std::time::UNIX_EPOCH + Duration::from_secs(180))
        );
        assert!(server
            .close_ephemeral("test_ticket", &open.private)
            .await
            .0
            .is_empty());
        assert_eq!(*CLOSED.lock().unwrap(), [b"web".to_vec()]);
        let unknown = server.close_ephemeral("test_nothing", b"web").await;
        assert!(
            unknown.has_errors(),
            "an unknown type is an error, not a panic"
        );
    }

    #[tokio::test]
    async fn an_action_streams_its_progress_then_completes_once() {
        let server = Arc::new(server());
        for (fail, errors) in [(false, 0), (true, 1)] {
            let ty = Countdown.schema().block.value_type();
            let config = Value::Object([("fail".to_string(), fail.into())].into());
            let config = Dv {
                msgpack: value::encode_msgpack(&config, &ty).unwrap(),
                json: Vec::new(),
            };
            let mut events =
                server.invoke_action("test_countdown", Some(config), tracing::Span::none());
            let mut seen = Vec::new();
            while let Some(event) = events.recv().await {
                seen.push(match event {
                    ActionEvent::Progress(m) => m,
                    ActionEvent::Completed(d) => format!("done, {} errors", d.0.len()),
                });
            }
            assert_eq!(seen, ["3", "2", "1", &format!("done, {errors} errors")]);
        }
    }

    #[tokio::test]
    async fn plan_then_apply_creates_with_known_values() {
        let s = server();
        let config = object("a", Value::Null);
        let plan = s
            .plan_resource_change(
                "test_echo",
                dv(&Value::Null),
                dv(&config),
                dv(&config),
                Vec::new(),
            )
            .await;
        assert!(plan.diags.0.is_empty(), "{:?}", plan.diags);
        let (state, _, diags) = s
            .apply_resource_change(
                "test_echo",
                dv(&Value::Null),
                plan.planned,
                None,
                Vec::new(),
            )
            .await;
        assert!(diags.0.is_empty());
        assert_eq!(state, dv(&object("a", "x".into())));
    }

    /// Terraform gone: the RPC's future is dropped, and the apply, in a task of its own,
    /// is stopped as on Ctrl-C and runs to its end.
    #[tokio::test]
    async fn an_apply_whose_rpc_is_dropped_is_stopped_and_finishes() {
        let s = server();
        let planned = object("slow-dropped", Value::Null);
        let rpc = s.apply_resource_change(
            "test_echo",
            dv(&Value::Null),
            dv(&planned),
            None,
            Vec::new(),
        );
        assert!(tokio::time::timeout(Duration::from_millis(50), rpc)
            .await
            .is_err());
        assert!(s.drain(Duration::from_secs(2)).await, "the apply finished");
        assert!(stopped("slow-dropped"));
    }

    /// SIGTERM, SIGHUP, Shutdown, or the parent gone: what is in flight is stopped and
    /// waited for, and its result still reaches the caller.
    #[tokio::test]
    async fn drain_stops_what_is_in_flight_and_waits_for_it() {
        let s = server();
        let planned = object("slow-drained", Value::Null);
        let rpc = {
            let s = Arc::clone(&s);
            tokio::spawn(async move {
                s.apply_resource_change(
                    "test_echo",
                    dv(&Value::Null),
                    dv(&planned),
                    None,
                    Vec::new(),
                )
                .await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!stopped("slow-drained"));
        assert!(s.drain(Duration::from_secs(2)).await);
        assert!(stopped("slow-drained"));
        let (state, _, diags) = rpc.await.unwrap();
        assert!(state.is_some() && !diags.has_errors());
    }

    #[tokio::test]
    async fn a_changed_name_requires_replacement() {
        let s = server();
        let prior = object("a", "x".into());
        let proposed = object("b", "x".into());
        let plan = s
            .plan_resource_change(
                "test_echo",
                dv(&prior),
                dv(&proposed),
                dv(&object("b", Value::Null)),
                Vec::new(),
            )
            .await;
        assert_eq!(plan.requires_replace, vec![AttributePath::attr("name")]);
    }

    #[tokio::test]
    async fn unknown_values_after_apply_are_a_reported_bug_not_a_crash() {
        let s = server();
        let planned = object("a", Value::Unknown);
        let (state, _, diags) = s
            .apply_resource_change(
                "test_echo",
                dv(&object("a", "x".into())),
                dv(&planned),
                None,
                Vec::new(),
            )
            .await;
        assert!(state.is_none());
        assert!(diags.0[0].summary.contains("unknown value after apply"));
    }

    #[tokio::test]
    async fn a_failed_delete_keeps_the_object_in_state() {
        let s = server();
        let prior = object("a", "x".into());
        let (state, _, diags) = s
            .apply_resource_change("test_echo", dv(&prior), dv(&Value::Null), None, Vec::new())
            .await;
        assert!(diags.has_errors());
        assert_eq!(state, dv(&prior));
    }

    #[tokio::test]
    async fn malformed_values_and_unknown_types_become_diagnostics() {
        let s = server();
        let garbage = Some(Dv {
            msgpack: vec![0x82, 0xa4],
            json: Vec::new(),
        });
        let (_, _, diags) = s.read_resource("test_echo", garbage, Vec::new()).await;
        assert!(diags.0[0].summary.contains("Malformed"));
        let diags = s.validate_resource_config("test_nope", None, true);
        assert!(diags.0[0].detail.contains("test_nope"));
    }

    #[test]
    fn upgrade_drops_removed_attributes_and_refuses_newer_versions() {
        let s = server();
        let (state, diags) =
            s.upgrade_resource_state("test_echo", 0, br#"{"name":"a","id":"x","old":1}"#);
        assert!(diags.0.is_empty(), "{diags:?}");
        assert_eq!(state, dv(&object("a", "x".into())));
        let (state, diags) = s.upgrade_resource_state("test_echo", 7, b"{}");
        assert!(state.is_none());
        assert!(diags.0[0].summary.contains("newer provider"));
    }

    #[test]
    fn pruning_drops_removed_attributes_at_every_level() {
        let ty = Type::object([
            ("a", Type::String),
            ("nested", Type::list(Type::object([("b", Type::Number)]))),
        ]);
        let mut raw = serde_json::json!({"a": "x", "gone": 1, "nested": [{"b": 1, "old": true}]});
        prune_unknown_attributes(&mut raw, &ty);
        assert_eq!(raw, serde_json::json!({"a": "x", "nested": [{"b": 1}]}));
    }
}
