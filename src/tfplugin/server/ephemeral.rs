//! Ephemeral resources (Terraform 1.10+): validated like any configuration, opened with
//! it, then renewed and closed with only the private bytes the open returned.

use std::time::SystemTime;

use super::{decode, encode_result, lookup, validate, Dv, Entry, Server};
use crate::tfplugin::diagnostics::Diagnostics;
use crate::tfplugin::resource::EphemeralResource;
use crate::tfplugin::schema::Schema;

/// The outcome of OpenEphemeralResource.
#[derive(Default)]
pub struct Open {
    pub result: Option<Dv>,
    pub private: Vec<u8>,
    pub renew_at: Option<SystemTime>,
    pub diags: Diagnostics,
}

impl Server {
    pub fn ephemeral_schemas(&self) -> impl Iterator<Item = (&str, &Schema)> {
        self.ephemerals.iter().map(|(k, e)| (k.as_str(), &e.schema))
    }

    pub fn validate_ephemeral_config(&self, type_name: &str, config: Option<Dv>) -> Diagnostics {
        let mut diags = Diagnostics::default();
        if let Some(entry) = self.ephemeral(type_name, &mut diags) {
            validate(&entry.schema, &entry.ty, config, &mut diags, |c, d| {
                entry.imp.validate(c, d)
            });
        }
        diags
    }

    pub async fn open_ephemeral(&self, type_name: &str, config: Option<Dv>) -> Open {
        let mut open = Open::default();
        let diags = &mut open.diags;
        let Some(entry) = self.ephemeral(type_name, diags) else {
            return open;
        };
        let Some(config) = decode(config, &entry.ty, "configuration", diags) else {
            return open;
        };
        if let Some(opened) = entry.imp.open(&self.ctx(), &config, diags).await {
            open.result = encode_result(&opened.result, &entry.ty, diags);
            open.private = opened.private;
            open.renew_at = opened.renew_at;
        }
        open
    }

    pub async fn renew_ephemeral(
        &self,
        type_name: &str,
        private: &[u8],
    ) -> (Option<SystemTime>, Diagnostics) {
        let mut diags = Diagnostics::default();
        let Some(entry) = self.ephemeral(type_name, &mut diags) else {
            return (None, diags);
        };
        let renew_at = entry.imp.renew(&self.ctx(), private, &mut diags).await;
        (renew_at, diags)
    }

    pub async fn close_ephemeral(&self, type_name: &str, private: &[u8]) -> Diagnostics {
        let mut diags = Diagnostics::default();
        if let Some(entry) = self.ephemeral(type_name, &mut diags) {
            entry.imp.close(&self.ctx(), private, &mut diags).await;
        }
        diags
    }

    fn ephemeral(
        &self,
        type_name: &str,
        diags: &mut Diagnostics,
    ) -> Option<&Entry<dyn EphemeralResource>> {
        lookup(&self.ephemerals, "ephemeral resource", type_name, diags)
    }
}
