//! Finding the Terraform CLIs to test with and the provider build under test, and choosing
//! which CLIs each test runs on: [`clis`], with what the test [`Needs`] and the policy
//! ([`On`]) for which of the CLIs that meet it.

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
    /// (major, minor), for steps that need a newer CLI (e.g. `import` blocks from 1.5);
    /// a whole test declares its minimum with [`clis`] instead.
    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        let (ma, mi, _) = self.numbers();
        (ma, mi) >= (major, minor)
    }

    /// (major, minor, patch); a pre-release suffix ("1.16.0-beta1") is ignored.
    fn numbers(&self) -> (u32, u32, u32) {
        let mut parts = self.version.split('.').map(|p| {
            let digits = p.find(|c: char| !c.is_ascii_digit()).unwrap_or(p.len());
            p[..digits].parse::<u32>().unwrap_or(0)
        });
        let mut next = || parts.next().unwrap_or(0);
        (next(), next(), next())
    }
}

/// The workspace root (the parent of this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("acceptance-tests lives in the workspace")
        .to_path_buf()
}

/// The Terraform CLIs found, newest first, each version once (the first path listed for it):
/// `TF_ACC_TERRAFORM` (one path) pins one; `TF_ACC_TERRAFORM_PATHS` (colon-separated, as
/// `scripts/tools.sh env` prints it) lists them; otherwise `terraform` on PATH, then those
/// under `.tools/`.
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
    found.sort_by_key(|tf| std::cmp::Reverse(tf.numbers()));
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

/// What a test needs of the Terraform CLI, by minor version. Declared by every test, so that
/// the suite can run against old and new CLIs alike and say, instead of failing, what it
/// skipped where (as terraform-plugin-testing's `tfversion.SkipBelow` does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Any CLI the provider supports (Terraform 1.0 and later: protocol 6).
    Any,
    /// This version or later, e.g. `Since(1, 11)` for write-only attributes.
    Since(u32, u32),
    /// Older than this version: for tests of how older CLIs refuse a newer feature.
    Before(u32, u32),
}

impl Needs {
    fn admits(self, tf: &Terraform) -> bool {
        match self {
            Needs::Any => true,
            Needs::Since(major, minor) => tf.at_least(major, minor),
            Needs::Before(major, minor) => !tf.at_least(major, minor),
        }
    }

    fn describe(self) -> String {
        match self {
            Needs::Any => "any Terraform".to_string(),
            Needs::Since(major, minor) => format!("Terraform {major}.{minor} or later"),
            Needs::Before(major, minor) => format!("Terraform older than {major}.{minor}"),
        }
    }
}

/// Which of the CLIs a test's [`Needs`] admit it runs on. Each CLI costs the suite the
/// test's whole duration again, on CI's 2 cores and 90 minutes: the policy says what a
/// second CLI could catch that the first could not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum On {
    /// Every admitted CLI: short tests of what differs between Terraform versions (schema
    /// and protocol handling, validation, plan rendering, the newer features).
    Each,
    /// The newest and the oldest admitted: journeys (several applies each), where the
    /// two ends of the range are where a CLI difference would show.
    NewestAndOldest,
    /// The newest admitted only: slow tests of the provider's own behaviour (under load,
    /// faults, analysis), which no CLI version changes.
    Newest,
}

/// The CLIs `test` runs on, newest first: none without `TF_ACC` (said once, as
/// [`acceptance_enabled`] does), none when no CLI found meets `needs` (said once, with
/// the versions found), and those below `needs` named once as skipped. `TF_ACC_TERRAFORM`
/// pins one CLI, whatever `on` says. Fails when `TF_ACC` is set but no CLI is found.
pub fn clis(test: &str, needs: Needs, on: On) -> Vec<Terraform> {
    if !acceptance_enabled(test) {
        return Vec::new();
    }
    let found = terraforms();
    assert!(
        !found.is_empty(),
        "TF_ACC is set but no Terraform CLI was found: run `scripts/tools.sh` or put terraform on PATH"
    );
    let (mut admitted, skipped): (Vec<Terraform>, Vec<Terraform>) =
        found.into_iter().partition(|tf| needs.admits(tf));
    let versions = |list: &[Terraform]| {
        list.iter()
            .map(|tf| tf.version.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if admitted.is_empty() {
        eprintln!(
            "{test}: skipped: it needs {}; the CLIs found are {}",
            needs.describe(),
            versions(&skipped)
        );
    } else if !skipped.is_empty() {
        eprintln!(
            "{test}: skipped on Terraform {}: it needs {}",
            versions(&skipped),
            needs.describe()
        );
    }
    match on {
        On::Each => {}
        On::NewestAndOldest => {
            if admitted.len() > 2 {
                admitted.drain(1..admitted.len() - 1);
            }
        }
        On::Newest => admitted.truncate(1),
    }
    admitted
}

/// The `terraform` block every test configuration starts with.
pub const REQUIRED_PROVIDERS: &str = r#"terraform {
  required_providers {
    immutable = { source = "immutable-infra/immutable" }
  }
}
"#;
