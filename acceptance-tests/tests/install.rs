//! `make install` (scripts/install.sh) through the real CLI: the installed provider is found
//! by `terraform init` in Terraform's implied local mirrors, with a CLI configuration that has
//! no `dev_overrides` (nor any provider_installation block), and the lock file records it.

use std::path::Path;

use acceptance_tests::cli::{
    init_installs_the_provider, platform, provider_version, script, TempDir,
};
use acceptance_tests::terraform::{clis, Needs, On};

/// `scripts/install.sh` with a debug build, into `plugin_dir`.
async fn install(plugin_dir: &Path) -> String {
    script(
        "install.sh",
        &[
            ("PROFILE", "debug".as_ref()),
            ("PLUGIN_DIR", plugin_dir.as_ref()),
        ],
    )
    .await
}

#[tokio::test]
async fn make_install_is_found_by_terraform_init_without_dev_overrides() {
    for tf in clis("install", Needs::Any, On::Each) {
        let version = provider_version();
        let tmp = TempDir::new(&format!("install-{}", tf.version));
        // An empty CLI configuration: no provider_installation block, so Terraform uses its
        // implied local mirrors (then the registry, for anything not found there).
        let cli_config = tmp.0.join("empty.tfrc");
        std::fs::write(&cli_config, "").unwrap();
        let home = tmp.0.join("home");
        std::fs::create_dir_all(&home).unwrap();

        // ./terraform.d/plugins, relative to the working directory.
        let work = tmp.0.join("work");
        let plugins = work.join("terraform.d/plugins");
        let said = install(&plugins).await;
        let binary = plugins.join(format!(
            "registry.terraform.io/immutable-infra/immutable/{version}/{}/terraform-provider-immutable_v{version}",
            platform()
        ));
        assert!(
            binary.is_file(),
            "{} is missing; install.sh said:\n{said}",
            binary.display()
        );
        init_installs_the_provider(&tf, &work, &home, &cli_config, &version, &[]).await;

        // ~/.terraform.d/plugins, where `make install` puts it by default.
        let elsewhere = tmp.0.join("elsewhere");
        std::fs::create_dir_all(&elsewhere).unwrap();
        install(&home.join(".terraform.d/plugins")).await;
        init_installs_the_provider(&tf, &elsewhere, &home, &cli_config, &version, &[]).await;
    }
}
