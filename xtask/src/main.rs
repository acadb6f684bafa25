//! Project tasks, run with `cargo run -p xtask -- TASK`.
//!
//! - `docs`: regenerates docs/ (registry layout: the provider, resources, data sources,
//!   actions, list resources and ephemeral resources) from the provider's schemas, read in-process, and the
//!   templates in templates/.
//! - `docs --check`: fails, naming the stale files, when docs/ is not what `docs` would
//!   write. CI runs it (`make lint`).

mod docs;
mod schema_md;
mod template;
#[cfg(test)]
mod test_support;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use terraform_provider_immutable::provider::ImmutableProvider;
use terraform_provider_immutable::tfplugin::resource::Provider;
use terraform_provider_immutable::tfplugin::schema::Schema;
use terraform_provider_immutable::tfplugin::server::Server;

const USAGE: &str = "usage: cargo run -p xtask -- docs [--check]

  docs          regenerate docs/ from templates/, examples/ and the provider's schemas
  docs --check  exit 1, naming the stale files, when docs/ differs from what docs would write";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["docs"] => docs(false),
        ["docs", "--check"] => docs(true),
        [] | ["help" | "--help" | "-h"] => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => Err(format!("unknown arguments: {}\n{USAGE}", args.join(" "))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

/// The repository root: the parent of this crate's folder.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the repository root")
        .to_path_buf()
}

/// The provider's schemas, as the plugin server gives them to Terraform.
fn provider_docs() -> docs::ProviderDocs {
    let provider = Arc::new(ImmutableProvider::default());
    let name = provider.type_name().to_string();
    let server = Server::new(provider);
    let owned = |(name, schema): (&str, &Schema)| (name.to_string(), schema.clone());
    docs::ProviderDocs {
        name,
        schema: server.provider_schema().clone(),
        resources: server.resource_schemas().map(owned).collect(),
        data_sources: server.data_source_schemas().map(owned).collect(),
        actions: server.action_schemas().map(owned).collect(),
        list_resources: server.list_resource_schemas().map(owned).collect(),
        ephemeral_resources: server.ephemeral_schemas().map(owned).collect(),
    }
}

fn docs(check: bool) -> Result<(), String> {
    let root = root();
    let pages = docs::generate(&root, &provider_docs()).map_err(|e| format!("docs: {e}"))?;
    if check {
        let stale = docs::stale(&root, &pages)?;
        if !stale.is_empty() {
            return Err(format!(
                "docs/ is out of date, run `make docs` (cargo run -p xtask -- docs): {}",
                stale.join(", ")
            ));
        }
        return Ok(());
    }
    let done = docs::write(&root, &pages)?;
    if done.is_empty() {
        println!("docs/ is up to date ({} pages)", pages.len());
    }
    for line in done {
        println!("{line}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The real provider's schemas render, with the project's own templates.
    #[test]
    fn the_provider_documents_itself() {
        let pages = docs::generate(&root(), &provider_docs()).unwrap();
        let gate = &pages["docs/resources/health_gate.md"];
        assert!(gate.contains("page_title: \"immutable_health_gate Resource - immutable\""));
        assert!(gate.contains("- `headers` (Map of String, Sensitive)"));
        assert!(gate.contains(
            "- `method` (String) HTTP method: `GET`, `HEAD` or `POST`. Defaults to `GET`."
        ));
        assert!(
            gate.contains("<a id=\"nestedblock--timeouts\"></a>\n### Nested Schema for `timeouts`")
        );
        let index = &pages["docs/index.md"];
        assert!(index.contains("<a id=\"nestedblock--assume_role\"></a>"));
        let rollback = &pages["docs/actions/rollback.md"];
        assert!(rollback.contains("page_title: \"immutable_rollback Action - immutable\""));
        assert!(rollback.contains("- `listener_arn` (String) The deployment's listener."));
        assert!(rollback.contains("action \"immutable_rollback\" \"web\""));
        let list = &pages["docs/list-resources/bluegreen_deployment.md"];
        assert!(list
            .contains("page_title: \"immutable_bluegreen_deployment List Resource - immutable\""));
        assert!(list.contains("- `tags` (Map of String)"));
        assert!(list.contains("list \"immutable_bluegreen_deployment\" \"web\""));
        let lease = &pages["docs/ephemeral-resources/lease.md"];
        assert!(lease.contains("page_title: \"immutable_lease Ephemeral Resource - immutable\""));
        assert!(lease.contains("- `holder` (String) Who holds it"));
        assert!(lease.contains("ephemeral \"immutable_lease\" \"web\""));
    }
}
