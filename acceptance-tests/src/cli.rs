//! Terraform and the project's scripts run as a user runs them, for the tests of installing
//! the provider (`make install`, `make release`): unlike the harness's
//! [`Workspace`](crate::workspace::Workspace), whose CLI configuration points at this build
//! through `dev_overrides`, which would skip the very installation under test.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use tokio::process::Command;

use crate::terraform::{workspace_root, Terraform};

/// How long a script (which may build the provider) may take.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(20 * 60);
/// How long a Terraform command may take.
const TERRAFORM_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// The provider crate's version, from the workspace's `Cargo.toml` `[package]` table.
pub fn provider_version() -> String {
    let manifest = std::fs::read_to_string(workspace_root().join("Cargo.toml")).unwrap();
    let package = &manifest[manifest
        .find("\n[package]")
        .expect("Cargo.toml has a [package]")..];
    let re = regex::Regex::new(r#"(?m)^version\s*=\s*"([^"]+)""#).unwrap();
    re.captures(package).expect("[package] has a version")[1].to_string()
}

/// Terraform's name for this machine's platform: `linux_amd64`, `darwin_arm64`, ...
pub fn platform() -> String {
    format!(
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
    )
}

/// Runs `command` with stdin closed, within `timeout` (then kills it and panics).
pub async fn output_within(command: &mut Command, timeout: Duration) -> Output {
    let what = format!("{:?}", command.as_std());
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{what} took longer than {timeout:?}"))
        .unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// `bash scripts/NAME` in the workspace root with `env` added.
pub async fn run_script(name: &str, env: &[(&str, &OsStr)]) -> Output {
    output_within(
        Command::new("bash")
            .arg(workspace_root().join("scripts").join(name))
            .current_dir(workspace_root())
            .envs(env.iter().copied()),
        SCRIPT_TIMEOUT,
    )
    .await
}

/// [`run_script`], which must succeed; returns what it said.
pub async fn script(name: &str, env: &[(&str, &OsStr)]) -> String {
    let out = run_script(name, env).await;
    let text = text(&out);
    assert!(out.status.success(), "scripts/{name} failed:\n{text}");
    text
}

/// `terraform ARGS` in `dir`, as a user without dev_overrides runs it: `cli_config` is the CLI
/// configuration, `home` the home directory (so ~/.terraform.d/plugins is `home`'s), and
/// `env` added.
pub async fn terraform(
    tf: &Terraform,
    dir: &Path,
    home: &Path,
    cli_config: &Path,
    args: &[&str],
    env: &[(&str, &OsStr)],
) -> Output {
    output_within(
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
            .envs(env.iter().copied()),
        TERRAFORM_TIMEOUT,
    )
    .await
}

/// A command's stdout then stderr, as text.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A temporary directory, removed on drop unless the test failed or `TF_ACC_KEEP` is set.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
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

/// What `terraform init` said, and the lock file it wrote.
pub struct Init {
    pub log: String,
    pub lock: String,
}

/// `terraform init` then `terraform providers schema -json` in `dir` succeed with a provider
/// installed from where `cli_config` says (not dev_overrides), and the lock file names it at
/// `version`.
pub async fn init_installs_the_provider(
    tf: &Terraform,
    dir: &Path,
    home: &Path,
    cli_config: &Path,
    version: &str,
    env: &[(&str, &OsStr)],
) -> Init {
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
        env,
    )
    .await;
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
        env,
    )
    .await;
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
    Init { log, lock }
}
