//! Blue/green colour slots behind a load balancer listener: the deployment resource, the
//! slots data source, and what both read from the router (which colour is live, which
//! release each colour holds).

pub mod deployment;
mod rollout;
pub mod slots;

use std::collections::BTreeMap;
use std::fmt;

use crate::router::{RouterError, TrafficRouter, Weights};
use crate::tfplugin::value::Value;

/// Tag on a colour's target group naming the release it holds.
pub const RELEASE_TAG: &str = "immutable:release";
/// Tag on a colour's target group: the generation (count of cut-overs) it went, or is
/// about to go, live as.
pub const GENERATION_TAG: &str = "immutable:generation";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Color {
    Blue,
    Green,
}

impl Color {
    pub fn name(self) -> &'static str {
        match self {
            Color::Blue => "blue",
            Color::Green => "green",
        }
    }

    pub fn other(self) -> Color {
        match self {
            Color::Blue => Color::Green,
            Color::Green => Color::Blue,
        }
    }

    pub fn parse(name: &str) -> Option<Color> {
        match name {
            "blue" => Some(Color::Blue),
            "green" => Some(Color::Green),
            _ => None,
        }
    }
}

impl fmt::Display for Color {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The listener and its two colour target groups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slots {
    pub listener: String,
    pub blue: String,
    pub green: String,
}

impl Slots {
    /// From a configuration with `listener_arn`, `blue_target_group_arn` and
    /// `green_target_group_arn`; `None` while any is unknown.
    pub fn from_config(config: &Value) -> Option<Slots> {
        let arn = |name: &str| config.get(name).and_then(Value::as_str).map(str::to_string);
        Some(Slots {
            listener: arn("listener_arn")?,
            blue: arn("blue_target_group_arn")?,
            green: arn("green_target_group_arn")?,
        })
    }

    pub fn target_group(&self, color: Color) -> &str {
        match color {
            Color::Blue => &self.blue,
            Color::Green => &self.green,
        }
    }

    /// All traffic on one colour, the other kept on the listener at weight 0 so that the
    /// load balancer keeps health-checking it.
    pub fn all_on(&self, color: Color) -> Weights {
        self.split(color, 100)
    }

    /// `percent` of traffic on `color`, the rest on the other colour.
    pub fn split(&self, color: Color, percent: u32) -> Weights {
        Weights(vec![
            (self.target_group(color).to_string(), percent),
            (self.target_group(color.other()).to_string(), 100 - percent),
        ])
    }

    /// The `traffic_weights` attribute: each colour's weight as the listener has it.
    pub fn weights_value(&self, weights: &Weights) -> Value {
        Value::Map(BTreeMap::from([
            ("blue".to_string(), i64::from(weights.of(&self.blue)).into()),
            (
                "green".to_string(),
                i64::from(weights.of(&self.green)).into(),
            ),
        ]))
    }
}

/// What the load balancer says about the slots right now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    pub weights: Weights,
    /// The colour with most of the traffic; `None` when the listener forwards to neither.
    pub live: Option<Color>,
    pub blue_release: Option<String>,
    pub green_release: Option<String>,
    /// The live colour's generation tag (the higher of the two when neither is live; 0
    /// when untagged).
    pub generation: i64,
}

impl Observed {
    pub fn release(&self, color: Color) -> Option<&str> {
        match color {
            Color::Blue => self.blue_release.as_deref(),
            Color::Green => self.green_release.as_deref(),
        }
    }
}

/// Reads the listener's weights and both target groups' tags: two calls.
pub async fn observe(router: &dyn TrafficRouter, slots: &Slots) -> Result<Observed, RouterError> {
    let weights = router.weights(&slots.listener).await?;
    let mut tags = router.tags(&[&slots.blue, &slots.green]).await?.into_iter();
    let (blue_tags, green_tags) = (
        tags.next().unwrap_or_default(),
        tags.next().unwrap_or_default(),
    );
    let (b, g) = (weights.of(&slots.blue), weights.of(&slots.green));
    let live = match (b, g) {
        (0, 0) => None,
        (b, g) if b >= g => Some(Color::Blue),
        _ => Some(Color::Green),
    };
    let generation = |tags: &BTreeMap<String, String>| {
        tags.get(GENERATION_TAG)
            .and_then(|g| g.parse::<i64>().ok())
            .unwrap_or(0)
    };
    // A colour is tagged with its generation before its gate, so only the live colour's
    // tag counts (the standby's may be from a release that failed its gate).
    let generation = match live {
        Some(Color::Blue) => generation(&blue_tags),
        Some(Color::Green) => generation(&green_tags),
        None => generation(&blue_tags).max(generation(&green_tags)),
    };
    Ok(Observed {
        live,
        generation,
        blue_release: blue_tags.get(RELEASE_TAG).cloned(),
        green_release: green_tags.get(RELEASE_TAG).cloned(),
        weights,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_keep_the_standby_on_the_listener() {
        let slots = Slots {
            listener: "l".into(),
            blue: "b".into(),
            green: "g".into(),
        };
        assert_eq!(
            slots.all_on(Color::Green).0,
            vec![("g".to_string(), 100), ("b".to_string(), 0)]
        );
        let value = slots.weights_value(&slots.split(Color::Blue, 90));
        assert_eq!(value.get("blue").and_then(Value::as_i64), Some(90));
        assert_eq!(value.get("green").and_then(Value::as_i64), Some(10));
    }
}
