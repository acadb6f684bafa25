//! The attributes and blocks every deployment resource has, declared once: `release`,
//! `auto_rollback`, `retain_previous`, `rollback_window`, the computed status, and the
//! `health_check`, `traffic` and `timeouts` blocks. Each resource adds what is its own.

use super::{analysis, blocks, model};
use crate::tfplugin::schema::{Attribute, Block, Nesting};
use crate::tfplugin::value::Type;
use crate::validators::{self, DurationAttribute};

/// Words for the router in descriptions.
pub struct Words {
    /// What checks the members, mid-sentence: "the load balancer", "HAProxy".
    pub checker: &'static str,
    /// What splits traffic: "the listener", "the backend".
    pub splitter: &'static str,
    /// What the `analysis` block's queries may name, and whether it watches alarms.
    pub analysis: analysis::Terms,
}

/// `block` with the shared attributes and blocks added.
pub fn with_release_model(block: Block, words: &Words) -> Block {
    let computed = |name: &str, ty: Type, description: &str| {
        Attribute::new(name, ty).computed().description(description)
    };
    let Words {
        checker,
        splitter,
        analysis: terms,
    } = words;
    block
        .attribute(
            Attribute::string("release")
                .required()
                .description("The immutable artifact being released: an image tag, AMI ID or commit. A change lands on the standby colour; setting it back to the previous release is a rollback to the still-warm colour.")
                .validate(validators::non_empty),
        )
        .attribute(
            Attribute::bool("auto_rollback")
                .default(true)
                .description("When a check fails after all traffic moved (during `bake_time`), move it back to the previous colour. A partial shift (canary or linear) is always moved back."),
        )
        .attribute(
            Attribute::bool("retain_previous")
                .default(true)
                .description("Keep the previous colour's `targets` (at weight 0, still health-checked) for an instant rollback. When false they are removed after a successful cut-over."),
        )
        .attribute(
            Attribute::string("rollback_window")
                .optional()
                .description(&format!("A rollback to the colour that served until less than this long ago (`release` set back to `previous_release`, its fleet unchanged) skips the traffic steps and the HTTP threshold: {} must still report the colour healthy, and one HTTP check must pass. E.g. `\"1h\"`. Unset: a rollback is gated like any release.", checker))
                .duration_within(crate::duration::SPAN),
        )
        .attribute(computed("active_color", Type::String, "The colour serving traffic: `blue` or `green`."))
        .attribute(computed("standby_color", Type::String, "The colour at weight 0, where the next release lands."))
        .attribute(computed("active_release", Type::String, "The release serving traffic."))
        .attribute(computed("previous_release", Type::String, "The release that served before the current one: setting `release` back to it is a rollback."))
        .attribute(computed("blue_release", Type::String, "The release the blue colour holds."))
        .attribute(computed("green_release", Type::String, "The release the green colour holds."))
        .attribute(computed("generation", Type::Number, "Cut-overs so far; +1 per release or rollback."))
        .attribute(computed("traffic_weights", Type::map(Type::Number), &format!("The share of traffic per colour in percent, as read from {splitter} (its weights scaled to add up to 100), e.g. `{{ blue = 0, green = 100 }}`.")))
        .attribute(computed("deployed_at", Type::String, "When the last cut-over finished (RFC 3339)."))
        .block("health_check", Nesting::Single, blocks::health_check_block(checker))
        .block("traffic", Nesting::Single, blocks::traffic_block())
        .block("analysis", Nesting::Single, analysis::analysis_block(terms))
        .block("timeouts", Nesting::Single, model::timeouts_block())
}
