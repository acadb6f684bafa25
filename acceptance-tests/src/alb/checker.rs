//! The health checker of one target group in use: each target that is past its registration
//! time is probed once per (scaled) interval, on a schedule of its own as on ALB, with the
//! group's settings as moto has them (read again after ModifyTargetGroup).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use super::checks::{self, CheckSettings};
use super::health::Failure;
use super::state::TargetKey;
use super::Core;

/// How often the checker looks for due targets, at most and at least.
const TICK_MAX: Duration = Duration::from_millis(50);
const TICK_MIN: Duration = Duration::from_millis(5);
/// How long to wait before reading the group's settings again after moto failed to answer.
const RETRY: Duration = Duration::from_millis(100);

/// Runs until aborted (when the group goes out of use or is deleted).
pub async fn run(core: Arc<Core>, group: String) {
    let mut next_check: BTreeMap<TargetKey, Instant> = BTreeMap::new();
    let mut running: BTreeSet<TargetKey> = BTreeSet::new();
    let mut probes: JoinSet<(TargetKey, Result<(), Failure>)> = JoinSet::new();
    loop {
        let Ok(settings) = core.group_settings(&group).await else {
            tokio::time::sleep(RETRY).await;
            continue;
        };
        let emulator = core.settings();
        let interval = emulator.scaled(settings.interval);
        let tick = (interval / 4).clamp(TICK_MIN, TICK_MAX);
        let now = Instant::now();
        for key in core.due_targets(&group, now, emulator.timing().registration) {
            let due = next_check.get(&key).is_none_or(|at| *at <= now);
            if !due || running.contains(&key) {
                continue;
            }
            next_check.insert(key.clone(), now + interval);
            running.insert(key.clone());
            let client = core.probes.clone();
            let settings = settings.clone();
            let timeout = emulator.scaled(settings.timeout);
            probes.spawn(async move {
                let result = checks::probe(&client, &settings, &key.0, key.1, timeout).await;
                (key, result)
            });
        }
        let deadline = tokio::time::sleep(tick);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => break,
                Some(done) = probes.join_next() => {
                    if let Ok((key, result)) = done {
                        running.remove(&key);
                        core.record(&group, &key, result, &settings);
                    }
                }
            }
        }
    }
}

impl Core {
    /// The targets of a group whose checks count now.
    fn due_targets(&self, group: &str, now: Instant, registration: Duration) -> Vec<TargetKey> {
        self.state()
            .groups
            .get(group)
            .map(|g| {
                g.targets
                    .iter()
                    .filter(|(_, t)| t.checkable(now, registration))
                    .map(|(k, _)| k.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A check's result, unless the target was deregistered meanwhile.
    fn record(
        &self,
        group: &str,
        key: &TargetKey,
        result: Result<(), Failure>,
        settings: &CheckSettings,
    ) {
        let mut state = self.state();
        let target = state
            .groups
            .get_mut(group)
            .and_then(|g| g.targets.get_mut(key));
        if let Some(target) = target.filter(|t| !t.draining()) {
            target.record(result, settings.thresholds);
        }
    }
}
