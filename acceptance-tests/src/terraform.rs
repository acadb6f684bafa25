//! Finding the Terraform CLIs to test with, and running them the way CI does: no input,
//! no colour, no update checks, and this workspace's provider build through
//! `dev_overrides`.

use std::path::{Path, PathBuf};
use std::process::Stdio;

/// One Terraform CLI the suite runs against.
#[derive(Debug, Clone)]
pub struct Terraform {
    pub path: PathBuf,
    /// e.g. "1.15.5"
    pub version: String,
}

impl Terraform {
    /// (major, minor), for steps that need a newer CLI (e.g. `import` blocks from 1.5).
    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        let mut parts = self
            .version
            .split('.')
            .map(|p| p.parse::<u32>().unwrap_or(0));
        let (ma, mi) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        (ma, mi) >= (major, minor)
    }
}

/// The workspace root (the parent of this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("acceptance-tests lives in the workspace")
        .to_path_buf()
}

/// The Terraform CLIs to run against, each version once: `TF_ACC_TERRAFORM` (one path)
/// pins one; `TF_ACC_TERRAFORM_PATHS` (colon-separated, as `scripts/tools.sh env` prints
/// it) lists them; otherwise `terraform` on PATH, then those under `.tools/`.
pub fn terraforms() -> Vec<Terraform> {
    let listed = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(|v| std::env::split_paths(&v).collect::<Vec<PathBuf>>())
    };
    let candidates: Vec<PathBuf> =
        match listed("TF_ACC_TERRAFORM").or_else(|| listed("TF_ACC_TERRAFORM_PATHS")) {
            Some(list) => list,
            None => {
                let mut list: Vec<PathBuf> = std::env::var_os("PATH")
                    .map(|p| {
                        std::env::split_paths(&p)
                            .map(|d| d.join("terraform"))
                            .collect()
                    })
                    .unwrap_or_default();
                list.truncate(list.iter().position(|p| p.is_file()).map_or(0, |i| i + 1));
                list.retain(|p| p.is_file());
                let tools = workspace_root().join(".tools");
                let mut installed: Vec<PathBuf> = std::fs::read_dir(&tools)
                    .map(|entries| {
                        entries
                            .filter_map(|e| e.ok())
                            .map(|e| e.path().join("terraform"))
                            .filter(|p| p.is_file())
                            .collect()
                    })
                    .unwrap_or_default();
                installed.sort();
                installed.reverse();
                list.extend(installed);
                list
            }
        };
    let mut found: Vec<Terraform> = Vec::new();
    for path in candidates {
        if let Some(version) = version_of(&path) {
            if !found.iter().any(|t| t.version == version) {
                found.push(Terraform { path, version });
            }
        }
    }
    found
}

fn version_of(path: &Path) -> Option<String> {
    let out = std::process::Command::new(path)
        .arg("version")
        .env("CHECKPOINT_DISABLE", "1")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next()?;
    first
        .strip_prefix("Terraform v")
        .map(|v| v.trim().to_string())
}

/// The directory holding the provider binary under test: `TF_ACC_PROVIDER_DIR`, else the
/// cargo target directory this test binary was built in.
pub fn provider_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("TF_ACC_PROVIDER_DIR") {
        return PathBuf::from(dir);
    }
    // target/<profile>/deps/<test binary>
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps")
        .to_path_buf();
    let binary = dir.join("terraform-provider-immutable");
    assert!(
        binary.is_file(),
        "{} is missing: build the provider first (`cargo build`; `make test` does it)",
        binary.display()
    );
    dir
}

/// True when acceptance tests should run; otherwise says why they are skipped, as
/// terraform-plugin-testing does.
pub fn acceptance_enabled(test: &str) -> bool {
    if std::env::var_os("TF_ACC").is_some_and(|v| !v.is_empty()) {
        return true;
    }
    eprintln!("{test}: skipped: acceptance tests run only with TF_ACC=1 (make test sets it)");
    false
}

/// The CLIs an acceptance test runs against: none (skipped) without `TF_ACC`, and a
/// failure when `TF_ACC` is set but no Terraform can be found.
pub fn acceptance_terraforms(test: &str) -> Vec<Terraform> {
    if !acceptance_enabled(test) {
        return Vec::new();
    }
    let found = terraforms();
    assert!(
        !found.is_empty(),
        "TF_ACC is set but no Terraform CLI was found: run `scripts/tools.sh` or put terraform on PATH"
    );
    found
}

/// The `terraform` block every test configuration starts with.
pub const REQUIRED_PROVIDERS: &str = r#"terraform {
  required_providers {
    immutable = { source = "immutable-infra/immutable" }
  }
}
"#;
