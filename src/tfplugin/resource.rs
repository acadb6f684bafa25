//! What a provider, a resource and a data source are to the protocol layer: plain Rust
//! traits over decoded values, testable without gRPC.

use std::sync::Arc;
use std::time::SystemTime;

use tokio_util::sync::CancellationToken;

use super::diagnostics::Diagnostics;
use super::schema::Schema;
use super::value::Value;

/// What every operation gets besides its values.
#[derive(Clone)]
pub struct Ctx {
    /// Cancelled when Terraform sends StopProvider (Ctrl-C): long waits must end soon
    /// after, leaving things in a safe state and saying they were interrupted.
    pub stop: CancellationToken,
}

#[tonic::async_trait]
pub trait Provider: Send + Sync {
    /// The provider's type name, the prefix of its resource type names.
    fn type_name(&self) -> &'static str;
    fn schema(&self) -> Schema;
    /// Checks across the provider block's attributes, beyond each attribute's validators.
    fn validate(&self, _config: &Value, _diags: &mut Diagnostics) {}
    async fn configure(&self, ctx: &Ctx, config: &Value, diags: &mut Diagnostics);
    fn resources(&self) -> Vec<Arc<dyn Resource>>;
    fn data_sources(&self) -> Vec<Arc<dyn DataSource>>;
    /// List resources for `terraform query` (Terraform 1.14+), each named after a managed
    /// resource type that has an identity.
    fn list_resources(&self) -> Vec<Arc<dyn ListResource>> {
        Vec::new()
    }
    /// Actions (Terraform 1.14+): operations invoked outside the create/update cycle.
    fn actions(&self) -> Vec<Arc<dyn Action>> {
        Vec::new()
    }
    /// Ephemeral resources (Terraform 1.10+): held open for one Terraform run.
    fn ephemeral_resources(&self) -> Vec<Arc<dyn EphemeralResource>> {
        Vec::new()
    }
}

/// A managed resource. States are objects of the schema's type; `Value::Null` means
/// "does not exist".
#[tonic::async_trait]
pub trait Resource: Send + Sync {
    fn type_name(&self) -> &'static str;
    fn schema(&self) -> Schema;

    /// Checks across attributes, beyond each attribute's own validators. Values may be
    /// unknown at this point.
    fn validate(&self, _config: &Value, _diags: &mut Diagnostics) {}

    /// Adjusts a create or update plan after the schema's defaults and plan modifiers.
    /// `prior` is null on create.
    async fn modify_plan(
        &self,
        _ctx: &Ctx,
        _prior: &Value,
        _config: &Value,
        _planned: &mut Value,
        _diags: &mut Diagnostics,
    ) {
    }

    /// Creates the object; returns its state, or null when nothing was created.
    async fn create(&self, ctx: &Ctx, planned: &Value, diags: &mut Diagnostics) -> Value;

    /// Refreshes a state; null when the object is gone.
    async fn read(&self, ctx: &Ctx, state: &Value, diags: &mut Diagnostics) -> Value;

    /// Updates in place; returns the new state, which must tell the truth even when the
    /// update failed part way.
    async fn update(
        &self,
        ctx: &Ctx,
        prior: &Value,
        planned: &Value,
        diags: &mut Diagnostics,
    ) -> Value;

    async fn delete(&self, ctx: &Ctx, prior: &Value, diags: &mut Diagnostics);

    /// Builds a state from an import ID; `None` when the resource offers no import.
    async fn import(&self, _ctx: &Ctx, _id: &str, _diags: &mut Diagnostics) -> Option<Value> {
        None
    }

    /// The attributes that identify the object (Terraform 1.12+ resource identity): names
    /// of string attributes of the schema, all set once the object exists. None by default.
    fn identity(&self) -> &'static [&'static str] {
        &[]
    }

    /// The import ID an identity stands for, for `import { identity = { ... } }`.
    fn import_id(&self, _identity: &Value) -> Option<String> {
        None
    }
}

#[tonic::async_trait]
pub trait DataSource: Send + Sync {
    fn type_name(&self) -> &'static str;
    fn schema(&self) -> Schema;
    fn validate(&self, _config: &Value, _diags: &mut Diagnostics) {}
    async fn read(&self, ctx: &Ctx, config: &Value, diags: &mut Diagnostics) -> Value;
}

/// One object a list resource found.
pub struct Found {
    /// How `terraform query` shows it.
    pub display_name: String,
    /// Its state, as the managed resource's import would give it: its identity is read off
    /// it, and it is sent whole when the query asks for the resource.
    pub state: Value,
}

/// Where a list resource puts each object it finds: Terraform shows it at once, so a long
/// search shows its progress, and an interrupted one keeps what it found.
pub struct Finds<'a> {
    send: Box<dyn FnMut(Found) -> bool + Send + 'a>,
    left: usize,
}

impl<'a> Finds<'a> {
    /// At most `limit` objects, each given to `send`, which says whether Terraform still
    /// listens.
    pub fn new(limit: usize, send: impl FnMut(Found) -> bool + Send + 'a) -> Finds<'a> {
        Finds {
            send: Box::new(send),
            left: limit,
        }
    }

    /// Sends one object. False once the limit is reached or Terraform stopped listening:
    /// the search should end.
    pub fn send(&mut self, found: Found) -> bool {
        if self.is_done() {
            return false;
        }
        if (self.send)(found) {
            self.left -= 1;
        } else {
            self.left = 0;
        }
        !self.is_done()
    }

    /// Whether nothing more will be sent.
    pub fn is_done(&self) -> bool {
        self.left == 0
    }
}

/// Finds existing objects of a managed resource type, for `terraform query`.
#[tonic::async_trait]
pub trait ListResource: Send + Sync {
    /// The managed resource type the objects are.
    fn type_name(&self) -> &'static str;
    /// The `config` block of a `list` block.
    fn schema(&self) -> Schema;
    fn validate(&self, _config: &Value, _diags: &mut Diagnostics) {}
    /// Sends the objects matching `config` (null when the block is left out) to `found`,
    /// as they are found, until it is done.
    async fn list(&self, ctx: &Ctx, config: &Value, found: &mut Finds<'_>, diags: &mut Diagnostics);
}

/// What an invoked action reports, in order: any number of progress messages, then its
/// completion.
pub enum ActionEvent {
    Progress(String),
    Completed(Diagnostics),
}

/// Where an action reports what it is doing, as it does it.
pub struct Progress(tokio::sync::mpsc::UnboundedSender<ActionEvent>);

impl Progress {
    pub fn new(sink: tokio::sync::mpsc::UnboundedSender<ActionEvent>) -> Progress {
        Progress(sink)
    }

    /// Shown by Terraform as the action's progress; also logged.
    pub fn say(&self, message: impl Into<String>) {
        let message = message.into();
        tracing::info!(progress = %message, "action progress");
        // Terraform may have stopped listening (interrupted): the action goes on to a
        // safe end regardless.
        let _ = self.0.send(ActionEvent::Progress(message));
    }
}

/// An operation a user invokes outside the create/update cycle
/// (`terraform apply -invoke=action.TYPE.NAME`). It changes no state.
#[tonic::async_trait]
pub trait Action: Send + Sync {
    fn type_name(&self) -> &'static str;
    /// The action's `config` block.
    fn schema(&self) -> Schema;
    fn validate(&self, _config: &Value, _diags: &mut Diagnostics) {}
    /// Runs the action; its failure is an error diagnostic.
    async fn invoke(&self, ctx: &Ctx, config: &Value, progress: &Progress, diags: &mut Diagnostics);
}

/// What opening an ephemeral resource gives Terraform.
pub struct Opened {
    /// The configuration with its computed attributes set.
    pub result: Value,
    /// Sent back with each renew and with the close, which have no configuration: how the
    /// resource finds what it opened. Terraform keeps it in memory only.
    pub private: Vec<u8>,
    /// When Terraform is to call renew; never when `None`.
    pub renew_at: Option<SystemTime>,
}

/// An ephemeral resource (Terraform 1.10+): opened for one Terraform run, renewed while the
/// run goes on, closed at its end, and never stored in a plan or state.
#[tonic::async_trait]
pub trait EphemeralResource: Send + Sync {
    fn type_name(&self) -> &'static str;
    fn schema(&self) -> Schema;
    fn validate(&self, _config: &Value, _diags: &mut Diagnostics) {}
    /// Opens it; `None`, with an error diagnostic, when it could not be.
    async fn open(&self, ctx: &Ctx, config: &Value, diags: &mut Diagnostics) -> Option<Opened>;
    /// Renews what `private` names; returns when to renew next.
    async fn renew(&self, ctx: &Ctx, private: &[u8], diags: &mut Diagnostics)
        -> Option<SystemTime>;
    /// Closes what `private` names.
    async fn close(&self, ctx: &Ctx, private: &[u8], diags: &mut Diagnostics);
}
