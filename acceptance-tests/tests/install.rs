//! `make install` (scripts/install.sh) through the real CLI: the installed provider is found
//! by `terraform init` in Terraform's implied local mirrors, with a CLI configuration that has
//! no `dev_overrides` (nor any provider_installation block), and the lock file records it.
//!
//! Terraform runs here without the harness's `Workspace`, whose CLI configuration points at
//! this build through `dev_overrides`: that would skip the very installation under test.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use acceptance_tests::terraform::{acceptance_terraforms, workspace_root, Terraform};

/// The provider crate's version, from the workspace's `Cargo.toml` `[package]` table.
fn provider_version() -> String {
    let manifest = std::fs::read_to_string(workspace_root().join("Cargo.toml")).unwrap();
    let package = &manifest[manifest
        .find("\n[package]")
        .expect("Cargo.toml has a [package]")..];
    let re = regex::Regex::new(r#"(?m)^version\s*=\s*"([^"]+)""#).unwrap();
    re.captures(package).expect("[package] has a version")[1].to_string()
}

/// `scripts/install.sh` with a debug build, into `plugin_dir`.
fn install(plugin_dir: &Path) -> String {
    let out = Command::new("bash")
        .arg(workspace_root().join("scripts/install.sh"))
        .current_dir(workspace_root())
        .env("PROFILE", "debug")
        .env("PLUGIN_DIR", plugin_dir)
        .stdin(Stdio::null())
        .output()
        .expect("running bash scripts/install.sh");
    let text = text(&out);
    assert!(out.status.success(), "scripts/install.sh failed:\n{text}");
    text
}

/// `terraform ARGS` in `dir`, as a user without dev_overrides runs it: `cli_config` is the CLI
/// configuration and `home` the home directory (so ~/.terraform.d/plugins is `home`'s).
fn terraform(tf: &Terraform, dir: &Path, home: &Path, cli_config: &Path, args: &[&str]) -> Output {
    Command::new(&tf.path)
        .args(args)
        .current_dir(dir)
        .env("HOME", home)
        .env("TF_CLI_CONFIG_FILE", cli_config)
        .env("CHECKPOINT_DISABLE", "1")
        .env("TF_IN_AUTOMATION", "1")
        .env("TF_INPUT", "0")
        .env_remove("TF_PLUGIN_CACHE_DIR")
        .env_remove("TF_DATA_DIR")
        .env_remove("TF_LOG")
        .env_remove("TF_LOG_PROVIDER")
        .env_remove("XDG_DATA_HOME")
        .env_remove("XDG_DATA_DIRS")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", tf.path.display()))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A temporary directory, removed on drop unless the test failed or `TF_ACC_KEEP` is set.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "tfacc-{name}-{}-{:06x}",
            std::process::id(),
            fastrand::u32(..0x100_0000)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("TF_ACC_KEEP").is_some() {
            eprintln!("kept for inspection: {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// `terraform init` then `terraform providers schema -json` in `dir` succeed with the installed
/// provider, and the lock file names it at `version`.
fn init_finds_the_installed_provider(
    tf: &Terraform,
    dir: &Path,
    home: &Path,
    cli_config: &Path,
    version: &str,
) {
    std::fs::write(
        dir.join("main.tf"),
        format!(
            r#"terraform {{
  required_providers {{
    immutable = {{
      source  = "immutable-infra/immutable"
      version = "{version}"
    }}
  }}
}}
"#
        ),
    )
    .unwrap();
    let init = terraform(
        tf,
        dir,
        home,
        cli_config,
        &["init", "-no-color", "-input=false"],
    );
    let log = text(&init);
    assert!(
        init.status.success(),
        "[terraform {}] init failed in {}:\n{log}",
        tf.version,
        dir.display()
    );
    assert!(
        log.contains(&format!("Installed immutable-infra/immutable v{version}")),
        "[terraform {}] init did not install the provider:\n{log}",
        tf.version
    );
    assert!(
        !log.contains("dev_overrides") && !log.contains("development overrides"),
        "[terraform {}] init used dev_overrides:\n{log}",
        tf.version
    );

    let lock = std::fs::read_to_string(dir.join(".terraform.lock.hcl"))
        .unwrap_or_else(|e| panic!("[terraform {}] no .terraform.lock.hcl: {e}", tf.version));
    let locked = regex::Regex::new(&format!(
        r#"provider "registry\.terraform\.io/immutable-infra/immutable" \{{\s*version\s*=\s*"{}""#,
        regex::escape(version)
    ))
    .unwrap();
    assert!(
        locked.is_match(&lock),
        "[terraform {}] the lock file does not name immutable-infra/immutable {version}:\n{lock}",
        tf.version
    );

    // The installed binary is a working provider: Terraform starts it for its schema.
    let schema = terraform(
        tf,
        dir,
        home,
        cli_config,
        &["providers", "schema", "-json", "-no-color"],
    );
    assert!(
        schema.status.success(),
        "[terraform {}] providers schema failed:\n{}",
        tf.version,
        text(&schema)
    );
    let schema: serde_json::Value = serde_json::from_slice(&schema.stdout).unwrap();
    assert!(
        schema["provider_schemas"]["registry.terraform.io/immutable-infra/immutable"]
            ["resource_schemas"]["immutable_bluegreen_deployment"]
            .is_object(),
        "[terraform {}] the installed provider's schema lacks immutable_bluegreen_deployment",
        tf.version
    );
}

#[test]
fn make_install_is_found_by_terraform_init_without_dev_overrides() {
    for tf in acceptance_terraforms("install") {
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
        let said = install(&plugins);
        let platform = format!(
            "{}_{}",
            match std::env::consts::OS {
                "macos" => "darwin",
                os => os,
            },
            match std::env::consts::ARCH {
                "x86_64" => "amd64",
                "aarch64" => "arm64",
                "x86" => "386",
                arch => arch,
            }
        );
        let binary = plugins.join(format!(
            "registry.terraform.io/immutable-infra/immutable/{version}/{platform}/terraform-provider-immutable_v{version}"
        ));
        assert!(
            binary.is_file(),
            "{} is missing; install.sh said:\n{said}",
            binary.display()
        );
        init_finds_the_installed_provider(&tf, &work, &home, &cli_config, &version);

        // ~/.terraform.d/plugins, where `make install` puts it by default.
        let elsewhere = tmp.0.join("elsewhere");
        std::fs::create_dir_all(&elsewhere).unwrap();
        install(&home.join(".terraform.d/plugins"));
        init_finds_the_installed_provider(&tf, &elsewhere, &home, &cli_config, &version);
    }
}
