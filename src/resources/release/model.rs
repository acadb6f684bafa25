//! The typed models of a deployment resource's values: the arguments both deployment
//! resources share ([`Args`]), decoded once from the plan, and the computed attributes
//! ([`Status`]), decoded from the state and written back as a whole.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use super::blocks;
use crate::analysis;
use crate::duration;
use crate::resources::common;
use crate::rollout::{Health, Observed, Strategy};
use crate::router::{Color, Record, Split, Target};
use crate::tfplugin::value::Value;

/// The computed attributes every deployment resource has.
pub const COMPUTED: [&str; 9] = [
    "active_color",
    "standby_color",
    "active_release",
    "previous_release",
    "blue_release",
    "green_release",
    "generation",
    "traffic_weights",
    "deployed_at",
];

const DEFAULT_TIMEOUT: &str = "30m";

/// The arguments of a release, as planned.
#[derive(Clone, Debug)]
pub struct Args {
    pub release: String,
    pub targets: Option<Vec<Target>>,
    pub auto_rollback: bool,
    pub retain_previous: bool,
    pub rollback_window: Option<Duration>,
    pub health: Health,
    pub strategy: Strategy,
    pub bake_time: Duration,
    pub analysis: Option<analysis::Settings>,
}

impl Args {
    pub fn decode(planned: &Value) -> Result<Args, String> {
        let (strategy, bake_time) = blocks::traffic(planned)?;
        Ok(Args {
            release: text(planned, "release").unwrap_or_default(),
            targets: targets(planned),
            // Both are planned with their schema default when left out.
            auto_rollback: flag(planned, "auto_rollback"),
            retain_previous: flag(planned, "retain_previous"),
            rollback_window: text(planned, "rollback_window")
                .map(|w| duration::parse(&w))
                .transpose()?,
            health: blocks::health(planned)?,
            strategy,
            bake_time,
            analysis: super::analysis::settings(planned)?,
        })
    }
}

/// The deadline of an apply, from the `timeouts` block.
pub fn timeout(planned: &Value, creating: bool) -> Duration {
    let operation = if creating { "create" } else { "update" };
    common::timeout(planned, operation, DEFAULT_TIMEOUT).unwrap_or(Duration::from_secs(1800))
}

/// The `timeouts` block of a deployment.
pub fn timeouts_block() -> crate::tfplugin::schema::Block {
    common::timeouts_block(&[("create", DEFAULT_TIMEOUT), ("update", DEFAULT_TIMEOUT)])
}

/// `targets` as given; `None` when left out (the fleet adds itself).
pub fn targets(config: &Value) -> Option<Vec<Target>> {
    let Some(Value::List(items)) = config.get("targets") else {
        return None;
    };
    Some(
        items
            .iter()
            .map(|t| Target {
                id: text(t, "id").unwrap_or_default(),
                port: t.get("port").and_then(Value::as_i64).map(|p| p as u16),
                availability_zone: text(t, "availability_zone"),
            })
            .collect(),
    )
}

/// `targets` as a comparable set: order carries no meaning.
pub fn sorted_targets(config: &Value) -> Option<Vec<Target>> {
    targets(config).map(|mut t| {
        t.sort();
        t
    })
}

fn text(v: &Value, name: &str) -> Option<String> {
    v.get(name).and_then(Value::as_str).map(str::to_string)
}

fn flag(v: &Value, name: &str) -> bool {
    v.get(name).and_then(Value::as_bool).unwrap_or(true)
}

/// The computed attributes: where traffic is and what each colour holds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Status {
    pub active: Option<Color>,
    pub active_release: Option<String>,
    pub previous_release: Option<String>,
    pub blue_release: Option<String>,
    pub green_release: Option<String>,
    pub generation: i64,
    pub weights: Split,
    /// `None` with `deployed_at_unknown` in a plan whose cut-over time is set at apply.
    pub deployed_at: Option<String>,
}

impl Status {
    pub fn decode(state: &Value) -> Status {
        let weight = |c: &str| {
            state
                .get("traffic_weights")
                .and_then(|w| w.get(c))
                .and_then(Value::as_i64)
                .unwrap_or(0) as u32
        };
        Status {
            active: text(state, "active_color").and_then(|c| Color::parse(&c)),
            active_release: text(state, "active_release"),
            previous_release: text(state, "previous_release"),
            blue_release: text(state, "blue_release"),
            green_release: text(state, "green_release"),
            generation: state.get("generation").and_then(Value::as_i64).unwrap_or(0),
            weights: Split {
                blue: weight("blue"),
                green: weight("green"),
            },
            deployed_at: text(state, "deployed_at"),
        }
    }

    /// What the router says serves now: the live colour, each colour's release and the
    /// live generation (an import, or a failure that leaves only what serves to record).
    pub fn observed(observed: &Observed) -> Status {
        let release = |c: Color| observed.release(c).map(str::to_string);
        Status {
            active: observed.live,
            active_release: observed.live.and_then(release),
            previous_release: observed.live.and_then(|live| release(live.other())),
            blue_release: release(Color::Blue),
            green_release: release(Color::Green),
            generation: observed.generation,
            weights: observed.split,
            deployed_at: None,
        }
    }

    pub fn release(&self, color: Color) -> Option<&str> {
        match color {
            Color::Blue => self.blue_release.as_deref(),
            Color::Green => self.green_release.as_deref(),
        }
    }

    pub fn set_release(&mut self, color: Color, release: Option<String>) {
        match color {
            Color::Blue => self.blue_release = release,
            Color::Green => self.green_release = release,
        }
    }

    /// The status a cut-over from `from` (the live colour) to the other colour leads to.
    pub fn flipped(&self, from: Color, from_release: Option<String>, release: &str) -> Status {
        let to = from.other();
        let mut next = Status {
            active: Some(to),
            active_release: Some(release.to_string()),
            previous_release: from_release.clone(),
            generation: self.generation + 1,
            weights: Split::all_on(to),
            deployed_at: None,
            ..Status::default()
        };
        next.set_release(to, Some(release.to_string()));
        next.set_release(from, from_release);
        next
    }

    /// Marks the cut-over done now.
    /// The status after the rollback action moved traffic away from this status's live
    /// colour: `None` unless that colour's record says so and the other colour now takes
    /// the traffic. The rollback's time stands as the cut-over's.
    pub fn after_rollback(&self, records: &[Record; 2], split: Split) -> Option<Status> {
        let from = self.active?;
        let record = |c: Color| &records[c.index()];
        let at = record(from).rolled_back_at.clone()?;
        let to = from.other();
        if split.live() != Some(to) {
            return None;
        }
        Some(Status {
            active: Some(to),
            active_release: record(to).release.clone(),
            previous_release: record(from).release.clone(),
            blue_release: record(Color::Blue).release.clone(),
            green_release: record(Color::Green).release.clone(),
            generation: record(to).generation.unwrap_or(self.generation + 1),
            weights: split,
            deployed_at: Some(at),
        })
    }

    /// The release `release` was rolled back from by the rollback action: the
    /// configuration still names it, but another serves.
    pub fn rolled_back_from<'a>(&self, release: &'a str) -> Option<&'a str> {
        (self.previous_release.as_deref() == Some(release)
            && self.active_release.as_deref() != Some(release))
        .then_some(release)
    }

    pub fn deployed_now(&mut self) {
        self.deployed_at = Some(common::rfc3339(SystemTime::now()));
    }

    /// Whether this apply rolls back, within `rollback_window`, to the colour that served
    /// until the last cut-over: the release is the previous one, and the last cut-over
    /// (when that colour stopped serving) is recent enough.
    pub fn within_rollback_window(&self, args: &Args) -> bool {
        let Some(window) = args.rollback_window else {
            return false;
        };
        let since_cut_over = self
            .deployed_at
            .as_deref()
            .and_then(|at| humantime::parse_rfc3339(at).ok())
            .and_then(|at| at.elapsed().ok());
        self.previous_release.as_deref() == Some(args.release.as_str())
            && since_cut_over.is_some_and(|elapsed| elapsed <= window)
    }

    /// Writes every computed attribute into `state`; `deployed_at` stays unknown when
    /// `deployed_at_unknown` (a plan).
    pub fn write(&self, state: &mut Value, deployed_at_unknown: bool) {
        let text = |v: &Option<String>| v.as_deref().map_or(Value::Null, Value::from);
        let percent = self.weights.in_percent();
        let weights = Value::Map(BTreeMap::from([
            ("blue".to_string(), i64::from(percent.blue).into()),
            ("green".to_string(), i64::from(percent.green).into()),
        ]));
        let deployed_at = if deployed_at_unknown {
            Value::Unknown
        } else {
            text(&self.deployed_at)
        };
        for (name, value) in [
            (
                "active_color",
                self.active.map_or(Value::Null, |c| c.name().into()),
            ),
            (
                "standby_color",
                self.active.map_or(Value::Null, |c| c.other().name().into()),
            ),
            ("active_release", text(&self.active_release)),
            ("previous_release", text(&self.previous_release)),
            ("blue_release", text(&self.blue_release)),
            ("green_release", text(&self.green_release)),
            ("generation", self.generation.into()),
            ("traffic_weights", weights),
            ("deployed_at", deployed_at),
        ] {
            set(state, name, value);
        }
    }
}

/// Sets one attribute of an object value.
pub fn set(state: &mut Value, name: &str, value: impl Into<Value>) {
    if let Some(slot) = state.get_mut(name) {
        *slot = value.into();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(release: &str, generation: i64, rolled_back_at: Option<&str>) -> Record {
        Record {
            release: Some(release.into()),
            generation: Some(generation),
            rolled_back_at: rolled_back_at.map(str::to_string),
        }
    }

    #[test]
    fn a_marked_rollback_is_taken_as_it_is_and_unmarked_traffic_is_drift() {
        // v2 live on blue (generation 2), v1 warm on green.
        let v2_live = Status::default().flipped(Color::Green, Some("v1".into()), "v2");
        let on_green = Split::all_on(Color::Green);
        let marked = [
            record("v2", 2, Some("2026-12-02T06:00:00Z")),
            record("v1", 3, None),
        ];
        let after = v2_live.after_rollback(&marked, on_green).unwrap();
        assert_eq!(after.active, Some(Color::Green));
        assert_eq!(after.active_release.as_deref(), Some("v1"));
        assert_eq!(after.previous_release.as_deref(), Some("v2"));
        assert_eq!(after.generation, 3);
        assert_eq!(after.deployed_at.as_deref(), Some("2026-12-02T06:00:00Z"));
        assert_eq!(after.rolled_back_from("v2"), Some("v2"));
        assert_eq!(after.rolled_back_from("v1"), None);
        // No mark: drift. A mark but traffic still on blue: nothing happened.
        let unmarked = [record("v2", 2, None), record("v1", 1, None)];
        assert_eq!(v2_live.after_rollback(&unmarked, on_green), None);
        assert_eq!(
            v2_live.after_rollback(&marked, Split::all_on(Color::Blue)),
            None
        );
        assert_eq!(v2_live.rolled_back_from("v2"), None);
    }

    /// Args holds the health check and analysis settings, each with its own `Debug`.
    #[test]
    fn debug_of_the_arguments_never_shows_a_secret() {
        let token = || vec![("Authorization".to_string(), "Bearer s3cret".to_string())];
        let args = Args {
            release: "v2".into(),
            targets: None,
            auto_rollback: true,
            retain_previous: true,
            rollback_window: None,
            health: Health {
                endpoint: Some(crate::rollout::Endpoint::Url(
                    "https://ops:pa55word@{color}.example.com/health?token=t0k".into(),
                )),
                method: crate::probe::Method::Get,
                headers: token(),
                expected_status: crate::probe::StatusMatcher::parse("200").unwrap(),
                body_regex: None,
                healthy_threshold: 1,
                unhealthy_threshold: 0,
                interval: Duration::from_secs(1),
                request_timeout: Duration::from_secs(1),
                insecure_skip_verify: false,
                min_healthy_targets: 1,
            },
            strategy: Strategy::AllAtOnce,
            bake_time: Duration::ZERO,
            analysis: Some(analysis::Settings {
                prometheus: Some(analysis::PrometheusSettings {
                    address: "http://prom:pr0m-pass@prometheus:9090".into(),
                    headers: token(),
                    tls: Default::default(),
                }),
                ..Default::default()
            }),
        };
        let shown = format!("{args:?}");
        assert!(shown.contains("\"Authorization\": <sensitive>"), "{shown}");
        assert!(
            shown.contains("http://REDACTED@prometheus:9090/"),
            "{shown}"
        );
        for secret in ["s3cret", "pa55word", "t0k", "pr0m-pass"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }
}
