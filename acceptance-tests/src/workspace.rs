//! A Terraform working directory for one test and one CLI, with steps in the manner of
//! terraform-plugin-testing: write a config, plan, check the plan, apply, check the
//! state, and check that a second plan is empty.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use crate::checks::{PlanCheck, StateCheck};
use crate::terraform::{provider_dir, Terraform};

/// How long any single Terraform command may take before the test fails.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);

/// What one Terraform command did.
#[derive(Debug, Clone)]
pub struct Output {
    pub success: bool,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// One step of a test case. Only `config` is required.
#[derive(Default)]
pub struct Step {
    pub config: String,
    /// Plan and check the plan, but do not apply.
    pub plan_only: bool,
    /// Apply with `-refresh-only` (accepting drift into state) instead of a normal apply.
    pub refresh_only: bool,
    /// The plan or apply must fail with output matching this regex.
    pub expect_error: Option<&'static str>,
    /// Run against the saved plan before it is applied.
    pub plan_checks: Vec<PlanCheck>,
    /// The plan that follows the apply may have changes (otherwise it must be empty).
    pub expect_non_empty_plan: bool,
    /// Run against `terraform show -json` after the apply.
    pub state_checks: Vec<StateCheck>,
    /// Extra environment for this step's commands (e.g. `TF_LOG`).
    pub env: Vec<(String, String)>,
}

/// What a step saw, for tests that check more than the declarative checks do.
#[derive(Debug, Default)]
pub struct StepResult {
    /// The output of every command the step ran, in order.
    pub log: String,
    /// `terraform show -json` of the saved plan, when planning succeeded.
    pub plan: Option<Value>,
}

pub struct Workspace {
    pub tf: Terraform,
    dir: PathBuf,
    env: Vec<(String, String)>,
    keep: bool,
}

impl Workspace {
    /// A fresh directory with a CLI config whose `dev_overrides` points Terraform at the
    /// provider build under test.
    pub fn new(tf: &Terraform, name: &str) -> Workspace {
        let dir =
            std::env::temp_dir().join(format!("tfacc-{name}-{}-{:08x}", tf.version, rand_u32()));
        std::fs::create_dir_all(&dir).expect("create workspace dir");
        let cli_config = dir.join("cli.tfrc");
        std::fs::write(
            &cli_config,
            format!(
                "provider_installation {{\n  dev_overrides {{\n    \"immutable-infra/immutable\" = \"{}\"\n  }}\n  direct {{}}\n}}\n",
                provider_dir().display()
            ),
        )
        .expect("write CLI config");
        let missing = dir.join("no-such-file");
        let env = vec![
            (
                "TF_CLI_CONFIG_FILE".into(),
                cli_config.display().to_string(),
            ),
            ("CHECKPOINT_DISABLE".into(), "1".into()),
            ("TF_IN_AUTOMATION".into(), "1".into()),
            ("TF_INPUT".into(), "0".into()),
            // AWS: fake credentials for moto, and never the instance metadata service or
            // the developer's own profiles.
            ("AWS_ACCESS_KEY_ID".into(), "test".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "test".into()),
            ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
            ("AWS_CONFIG_FILE".into(), missing.display().to_string()),
            (
                "AWS_SHARED_CREDENTIALS_FILE".into(),
                missing.display().to_string(),
            ),
        ];
        Workspace {
            tf: tf.clone(),
            dir,
            env,
            keep: std::env::var_os("TF_ACC_KEEP").is_some(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn write_config(&self, hcl: &str) {
        std::fs::write(self.dir.join("main.tf"), hcl).expect("write main.tf");
    }

    /// Copies a module as it is on disk (e.g. one under `examples/`), subdirectories such as
    /// `tests/` included, into the workspace.
    pub fn copy_module(&self, module: &Path) {
        copy_dir(module, &self.dir);
    }

    /// Runs `terraform ARGS` in the workspace with stdin closed.
    pub async fn terraform(&self, args: &[&str], extra_env: &[(String, String)]) -> Output {
        let child = self.spawn_with(args, extra_env);
        let out = tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("terraform {args:?} took longer than {COMMAND_TIMEOUT:?}"))
            .expect("terraform output");
        // The provider validates every write before sending it: a request the emulated load
        // balancer refused is a provider bug, whatever the test expected of the apply.
        let refused = crate::alb::provider_refusals();
        assert!(
            refused.is_empty(),
            "terraform {args:?}: the ALB emulator refused requests of the provider (AWS would have too): {refused:#?}\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Output {
            success: out.status.success(),
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `terraform validate` of each configuration fails, its output (line wrapping undone)
    /// matching the case's regular expression.
    pub async fn assert_refused_at_validate(&self, cases: &[(String, &str)]) {
        for (config, expected) in cases {
            self.write_config(config);
            let out = self.terraform(&["validate", "-no-color"], &[]).await;
            let text = out.text();
            assert!(!out.success, "{text}");
            let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
            assert!(
                regex::Regex::new(expected).unwrap().is_match(&flat),
                "{expected}: {text}"
            );
        }
    }

    /// Starts `terraform ARGS` without waiting, for tests that signal it mid-run.
    pub fn spawn(&self, args: &[&str]) -> tokio::process::Child {
        self.spawn_with(args, &[])
    }

    fn spawn_with(&self, args: &[&str], extra_env: &[(String, String)]) -> tokio::process::Child {
        let mut cmd = tokio::process::Command::new(&self.tf.path);
        cmd.args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env_remove("TF_LOG")
            .env_remove("TF_LOG_PROVIDER")
            .envs(self.env.iter().chain(extra_env).map(|(k, v)| (k, v)))
            .kill_on_drop(true);
        // Its own process group, as a shell job has, so that `interrupt` can signal
        // Terraform and its providers together the way a terminal's Ctrl-C does.
        #[cfg(unix)]
        cmd.process_group(0);
        cmd.spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.tf.path.display()))
    }

    /// Ctrl-C: SIGINT to the process group of a command started with `spawn`.
    #[cfg(unix)]
    pub fn interrupt(child: &tokio::process::Child) {
        let pid = child.id().expect("the command is still running") as i32;
        // SAFETY: kill(2) on the process group of our own child.
        unsafe { libc::kill(-pid, libc::SIGINT) };
    }

    /// `terraform show -json` of the current state.
    pub async fn state(&self) -> Value {
        let out = self.terraform(&["show", "-json", "-no-color"], &[]).await;
        assert!(out.success, "terraform show failed:\n{}", out.text());
        serde_json::from_str(&out.stdout).expect("state JSON")
    }

    /// Runs one step, panicking with Terraform's own output when anything is off.
    pub async fn step(&self, step: Step) -> StepResult {
        let mut result = StepResult::default();
        self.write_config(&step.config);
        let env = &step.env;
        let mut plan_args = vec!["plan", "-no-color", "-input=false", "-out=tfplan"];
        if step.refresh_only {
            plan_args.push("-refresh-only");
        }
        let plan = self.terraform(&plan_args, env).await;
        result.log.push_str(&plan.text());
        if !plan.success {
            self.expect_failure(&step, &result.log, "plan");
            return result;
        }
        let shown = self
            .terraform(&["show", "-json", "-no-color", "tfplan"], env)
            .await;
        assert!(
            shown.success,
            "terraform show tfplan failed:\n{}",
            shown.text()
        );
        let plan_json: Value = serde_json::from_str(&shown.stdout).expect("plan JSON");
        for check in &step.plan_checks {
            if let Err(e) = check.check(&plan_json, &plan.stdout) {
                panic!(
                    "[terraform {}] plan check failed: {e}\n--- terraform output ---\n{}",
                    self.tf.version, result.log
                );
            }
        }
        result.plan = Some(plan_json);
        if step.plan_only {
            let changes = has_changes(result.plan.as_ref().unwrap());
            assert!(
                step.expect_non_empty_plan || !changes,
                "[terraform {}] plan-only step expected an empty plan:\n{}",
                self.tf.version,
                result.log
            );
            assert!(
                step.expect_error.is_none(),
                "step expected an error, but the plan succeeded:\n{}",
                result.log
            );
            return result;
        }
        let apply = self
            .terraform(
                &[
                    "apply",
                    "-no-color",
                    "-input=false",
                    "-auto-approve",
                    "tfplan",
                ],
                env,
            )
            .await;
        result.log.push_str(&apply.text());
        if !apply.success {
            self.expect_failure(&step, &result.log, "apply");
            return result;
        }
        assert!(
            step.expect_error.is_none(),
            "[terraform {}] step expected an error matching {:?}, but apply succeeded:\n{}",
            self.tf.version,
            step.expect_error,
            result.log
        );
        let state = self.state().await;
        for check in &step.state_checks {
            if let Err(e) = check.check(&state) {
                panic!(
                    "[terraform {}] state check failed: {e}\n--- state ---\n{}\n--- terraform output ---\n{}",
                    self.tf.version,
                    serde_json::to_string_pretty(&state).unwrap_or_default(),
                    result.log
                );
            }
        }
        if !step.refresh_only {
            let again = self
                .terraform(
                    &["plan", "-no-color", "-input=false", "-detailed-exitcode"],
                    env,
                )
                .await;
            result.log.push_str(&again.text());
            match again.code {
                Some(0) => {}
                Some(2) if step.expect_non_empty_plan => {}
                Some(2) => panic!(
                    "[terraform {}] after applying this step, the plan was not empty:\n{}",
                    self.tf.version, again.stdout
                ),
                _ => panic!(
                    "[terraform {}] the plan after apply failed:\n{}",
                    self.tf.version,
                    again.text()
                ),
            }
        }
        result
    }

    fn expect_failure(&self, step: &Step, log: &str, stage: &str) {
        let Some(pattern) = step.expect_error else {
            panic!("[terraform {}] {stage} failed:\n{log}", self.tf.version);
        };
        let re = regex::Regex::new(pattern).expect("expect_error is a valid regex");
        // Terraform wraps long error lines; match against the text with wrapping undone.
        let flat = flatten(log);
        assert!(
            re.is_match(log) || re.is_match(&flat),
            "[terraform {}] {stage} failed, but not with an error matching {pattern:?}:\n{log}",
            self.tf.version
        );
    }

    /// Imports `address` by `id` into an empty state and checks that the imported state
    /// equals the state before, except for `ignore`d attributes.
    pub async fn import_verify(&self, address: &str, id: &str, ignore: &[&str]) {
        let before = self.state().await;
        let before = crate::checks::resource_values(&before, address)
            .unwrap_or_else(|| panic!("{address} is not in state before import"))
            .clone();
        let rm = self
            .terraform(&["state", "rm", "-no-color", address], &[])
            .await;
        assert!(rm.success, "terraform state rm failed:\n{}", rm.text());
        let import = self
            .terraform(&["import", "-no-color", "-input=false", address, id], &[])
            .await;
        assert!(
            import.success,
            "[terraform {}] terraform import failed:\n{}",
            self.tf.version,
            import.text()
        );
        let after = self.state().await;
        let after = crate::checks::resource_values(&after, address)
            .unwrap_or_else(|| panic!("{address} is not in state after import"))
            .clone();
        let differences = crate::checks::diff_objects(&before, &after, ignore);
        assert!(
            differences.is_empty(),
            "[terraform {}] imported state differs from the applied state: {differences:#?}",
            self.tf.version
        );
    }

    /// `terraform destroy`, which must succeed.
    pub async fn destroy(&self) -> Output {
        let out = self
            .terraform(
                &["destroy", "-no-color", "-input=false", "-auto-approve"],
                &[],
            )
            .await;
        assert!(
            out.success,
            "[terraform {}] destroy failed:\n{}",
            self.tf.version,
            out.text()
        );
        out
    }
}

impl Drop for Workspace {
    /// Fails the test when a provider it started outlives it: the provider must exit
    /// within 10 s of its Terraform's end, whatever the end was.
    fn drop(&mut self) {
        let left = providers_left_in(&self.dir, Duration::from_secs(10));
        for pid in &left {
            // SAFETY: kill(2) of a process found running in this test's own workspace.
            unsafe { libc::kill(*pid, libc::SIGKILL) };
        }
        if self.keep || std::thread::panicking() {
            eprintln!("workspace kept for inspection: {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
        if !left.is_empty() && !std::thread::panicking() {
            panic!(
                "provider processes {left:?} still ran in {} 10 s after the test's last Terraform command",
                self.dir.display()
            );
        }
    }
}

/// The provider processes whose working directory is `dir` (Terraform starts its providers
/// there), once none is left or `within` has passed.
fn providers_left_in(dir: &Path, within: Duration) -> Vec<i32> {
    let find = || -> Vec<i32> {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| {
                let proc = PathBuf::from(format!("/proc/{pid}"));
                std::fs::read_link(proc.join("cwd")).is_ok_and(|cwd| cwd == dir)
                    && std::fs::read(proc.join("cmdline")).is_ok_and(|cmd| {
                        String::from_utf8_lossy(&cmd).contains("terraform-provider-immutable")
                    })
            })
            .collect()
    };
    let deadline = std::time::Instant::now() + within;
    loop {
        let left = find();
        if left.is_empty() || std::time::Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// True when a `terraform show -json` plan has any change other than no-op or read.
pub fn has_changes(plan: &Value) -> bool {
    plan["resource_changes"].as_array().is_some_and(|changes| {
        changes.iter().any(|c| {
            c["change"]["actions"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x != "no-op" && x != "read"))
        })
    })
}

/// Copies `from` into `to`, leaving out what `terraform init` or a run left in a checkout
/// (`.terraform/`, the lock file, state).
fn copy_dir(from: &Path, to: &Path) {
    let entries =
        std::fs::read_dir(from).unwrap_or_else(|e| panic!("read {}: {e}", from.display()));
    for entry in entries {
        let entry = entry.expect("directory entry");
        let name = entry.file_name();
        let name_text = name.to_string_lossy();
        if name_text.starts_with(".terraform") || name_text.contains(".tfstate") {
            continue;
        }
        let target = to.join(&name);
        if entry.file_type().expect("file type").is_dir() {
            std::fs::create_dir_all(&target).expect("create module subdirectory");
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target)
                .unwrap_or_else(|e| panic!("copy {}: {e}", entry.path().display()));
        }
    }
}

/// Undoes Terraform's wrapping of diagnostic text (`│ ` margins and line breaks).
fn flatten(text: &str) -> String {
    text.lines()
        .map(|l| l.trim_start_matches(['│', '╷', '╵', ' ']).trim_end())
        .collect::<Vec<_>>()
        .join(" ")
}

fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.finish() as u32
}
