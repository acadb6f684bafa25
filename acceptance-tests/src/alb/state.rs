//! What the emulator keeps besides moto: the registered targets and their health per target
//! group, the model of every listener it knows, and the data plane's counters. One mutex
//! guards it all; nothing awaits while holding it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use tokio::task::AbortHandle;

use super::checks::CheckSettings;
use super::health::TargetHealth;
use super::model::ListenerModel;

/// A target: its id (an IP address here) and port.
pub type TargetKey = (String, u16);

#[derive(Debug, Default)]
pub struct Group {
    /// The group's settings as last read from moto; `None` to read them again.
    pub settings: Option<CheckSettings>,
    pub targets: BTreeMap<TargetKey, TargetHealth>,
    /// Whether a listener action uses it (so it is health-checked).
    pub in_use: bool,
    /// The task that checks it while it is in use.
    pub checker: Option<AbortHandle>,
    /// The round robin's position.
    pub next: usize,
}

impl Group {
    /// Forgets the targets whose deregistration delay is over.
    pub fn prune(&mut self, now: Instant) {
        self.targets.retain(|_, t| !t.gone(now));
    }
}

/// A listener's data plane: the loopback port it serves on and its task.
#[derive(Debug)]
pub struct Plane {
    pub port: u16,
    pub task: AbortHandle,
}

#[derive(Debug, Default)]
pub struct State {
    pub listeners: BTreeMap<String, ListenerModel>,
    /// Load balancers whose listeners have all been read from moto.
    pub known_load_balancers: BTreeSet<String>,
    /// Load balancers moto does not have (any more): ARNs are never reused, so they are not
    /// asked about again (moto keeps deleted ones in a group's `LoadBalancerArns`).
    pub gone_load_balancers: BTreeSet<String>,
    pub groups: BTreeMap<String, Group>,
    pub planes: BTreeMap<String, Plane>,
    /// Requests routed per (target group, target).
    pub served: BTreeMap<(String, TargetKey), u64>,
    /// Requests routed and not finished yet per (target group, target).
    pub in_flight: BTreeMap<(String, TargetKey), u64>,
}

impl State {
    /// The load balancers whose listeners use each target group now (control plane view).
    pub fn users(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut users: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for listener in self.listeners.values() {
            for group in listener.groups() {
                users
                    .entry(group)
                    .or_default()
                    .insert(listener.load_balancer.clone());
            }
        }
        users
    }
}
