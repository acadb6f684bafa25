//! Actions (Terraform 1.14+): validated like any configuration, planned as nothing more
//! than that (they change no state), and invoked as a stream of progress messages that
//! ends with exactly one completion.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::{decode, lookup, validate, Dv, Entry, Server};
use crate::tfplugin::diagnostics::Diagnostics;
use crate::tfplugin::resource::{Action, ActionEvent, Progress};
use crate::tfplugin::schema::Schema;

impl Server {
    pub fn action_schemas(&self) -> impl Iterator<Item = (&str, &Schema)> {
        self.actions.iter().map(|(k, e)| (k.as_str(), &e.schema))
    }

    /// ValidateActionConfig and PlanAction: an action has nothing to plan beyond its
    /// configuration being valid.
    pub fn validate_action_config(&self, type_name: &str, config: Option<Dv>) -> Diagnostics {
        let mut diags = Diagnostics::default();
        if let Some(entry) = self.action(type_name, &mut diags) {
            validate(&entry.schema, &entry.ty, config, &mut diags, |c, d| {
                entry.imp.validate(c, d)
            });
        }
        diags
    }

    /// Runs the action as an operation of its own, so that its progress streams while it
    /// runs and a shutdown waits for it. Terraform going away does not stop it: an action
    /// that moves traffic is safer finished than cut short.
    pub fn invoke_action(
        self: &Arc<Self>,
        type_name: &str,
        config: Option<Dv>,
        span: tracing::Span,
    ) -> mpsc::UnboundedReceiver<ActionEvent> {
        let (events, received) = mpsc::unbounded_channel();
        let server = Arc::clone(self);
        let type_name = type_name.to_string();
        let run = async move {
            let mut diags = Diagnostics::default();
            let entry = server.action(&type_name, &mut diags);
            let config =
                entry.and_then(|e| decode(config, &e.ty, "action configuration", &mut diags));
            if let (Some(entry), Some(config)) = (entry, config) {
                let progress = Progress::new(events.clone());
                entry
                    .imp
                    .invoke(&server.ctx(), &config, &progress, &mut diags)
                    .await;
            }
            let _ = events.send(ActionEvent::Completed(diags));
        };
        self.operations
            .spawn(tracing::Instrument::instrument(run, span));
        received
    }

    fn action(&self, type_name: &str, diags: &mut Diagnostics) -> Option<&Entry<dyn Action>> {
        lookup(&self.actions, "action", type_name, diags)
    }
}
