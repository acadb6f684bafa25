//! The configuration fragment kept in step with the runtime servers, so that a reload of
//! HAProxy keeps the deployment. HAProxy cannot reopen a section in a second file, so the
//! fragment is the backend's own file: the user writes the backend's settings (`backend
//! web`, `balance`, checks), and the provider keeps, after a marker line at its end, the
//! servers as they are at runtime (address, check, weight, maintenance) and the colours'
//! records as `set-var` lines of a `global` section.

use std::path::{Path, PathBuf};

use super::runtime::ServerStat;
use crate::router::RouterError;

/// Everything after this line is the provider's.
pub const MARKER: &str =
    "# --- kept in step by terraform-provider-immutable: do not edit below ---";

/// A backend's file, e.g. `/etc/haproxy/conf.d/web.cfg`, loaded with `-f` beside the main
/// configuration.
#[derive(Clone, Debug)]
pub struct Fragment {
    pub path: PathBuf,
}

impl Fragment {
    /// Rewrites the provider's part of the file: `servers` with `check` settings, and the
    /// process variables as `(name, value expression)`. Written to a temporary file beside
    /// it, checked with `haproxy -c` when HAProxy is installed here, then renamed over it.
    pub async fn write(
        &self,
        servers: &[ServerStat],
        check: &str,
        variables: &[(String, String)],
    ) -> Result<(), RouterError> {
        let failed = |what: &str, e: std::io::Error| {
            RouterError::Failed(format!(
                "cannot {what} the config fragment {}: {e}",
                self.path.display()
            ))
        };
        let current = tokio::fs::read_to_string(&self.path)
            .await
            .map_err(|e| failed("read", e))?;
        let text = render(&current, servers, check, variables);
        let temporary = self.path.with_extension("cfg.immutable-tmp");
        tokio::fs::write(&temporary, text)
            .await
            .map_err(|e| failed("write", e))?;
        if let Err(e) = check_config(&temporary).await {
            let _ = tokio::fs::remove_file(&temporary).await;
            return Err(e);
        }
        tokio::fs::rename(&temporary, &self.path)
            .await
            .map_err(|e| failed("replace", e))
    }
}

/// The user's part of `current` (up to the marker), then ours.
pub fn render(
    current: &str,
    servers: &[ServerStat],
    check: &str,
    variables: &[(String, String)],
) -> String {
    let user = current
        .split_once(MARKER)
        .map_or(current, |(before, _)| before)
        .trim_end();
    let mut text = format!("{user}\n{MARKER}\n");
    for s in servers {
        let address = if s.addr.contains(':') {
            format!("[{}]:{}", s.addr, s.port)
        } else {
            format!("{}:{}", s.addr, s.port)
        };
        let disabled = if s.status == "MAINT" { " disabled" } else { "" };
        text.push_str(&format!(
            "    server {} {address} check {check} weight {}{disabled}\n",
            s.name, s.weight
        ));
    }
    if !variables.is_empty() {
        text.push_str("\nglobal\n");
        for (name, value) in variables {
            text.push_str(&format!("    set-var {name} {value}\n"));
        }
    }
    text
}

/// `haproxy -c -f <file>`: a fragment HAProxy would refuse at its next reload is never
/// put in place. Skipped when no `haproxy` binary is on this host (the fragment is then
/// checked at the reload).
async fn check_config(path: &Path) -> Result<(), RouterError> {
    let binary = ["/usr/sbin/haproxy", "/usr/local/sbin/haproxy"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    let Some(binary) = binary else {
        return Ok(());
    };
    let out = tokio::process::Command::new(binary)
        .arg("-c")
        .arg("-f")
        .arg(path)
        .output()
        .await
        .map_err(|e| RouterError::Failed(format!("cannot run haproxy -c: {e}")))?;
    // 2: valid, but no listener (a fragment has none); 1: errors.
    if matches!(out.status.code(), Some(0 | 2)) {
        return Ok(());
    }
    Err(RouterError::Failed(format!(
        "HAProxy refuses the config fragment it would load at its next reload (haproxy -c): {}",
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| l.contains("[ALERT]"))
            .collect::<Vec<_>>()
            .join("; ")
    )))
}
