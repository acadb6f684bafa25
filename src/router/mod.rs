//! Traffic routers: what a blue/green release needs from whatever splits traffic between
//! two colours, behind one trait that knows only colours, weights, members and a small
//! record per colour. An ELBv2 listener with two target groups ([`elbv2`]) and an HAProxy
//! backend with two sets of servers ([`haproxy`]) implement it; the rollout engine
//! ([`crate::rollout`]) is written once against it.

pub mod elbv2;
#[cfg(test)]
pub mod fake;
pub mod haproxy;
pub mod pace;

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// One of the two slots a release can land in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Color {
    Blue,
    Green,
}

impl Color {
    pub const BOTH: [Color; 2] = [Color::Blue, Color::Green];

    pub fn name(self) -> &'static str {
        match self {
            Color::Blue => "blue",
            Color::Green => "green",
        }
    }

    /// Where the colour is in pairs kept blue first, such as [`TrafficRouter::records`].
    pub fn index(self) -> usize {
        match self {
            Color::Blue => 0,
            Color::Green => 1,
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

/// How traffic is split between the colours, as relative weights (a router reports what
/// it has; the provider writes percentages, so the two add up to 100).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Split {
    pub blue: u32,
    pub green: u32,
}

impl Split {
    /// All traffic on `color`; the other colour stays attached at weight 0, so that it
    /// keeps being health-checked.
    pub fn all_on(color: Color) -> Split {
        Split::percent(color, 100)
    }

    /// `percent` of traffic on `color`, the rest on the other colour.
    pub fn percent(color: Color, percent: u32) -> Split {
        let mut split = Split::default();
        *split.weight_mut(color) = percent;
        *split.weight_mut(color.other()) = 100 - percent;
        split
    }

    pub fn of(&self, color: Color) -> u32 {
        match color {
            Color::Blue => self.blue,
            Color::Green => self.green,
        }
    }

    fn weight_mut(&mut self, color: Color) -> &mut u32 {
        match color {
            Color::Blue => &mut self.blue,
            Color::Green => &mut self.green,
        }
    }

    /// The colour with most of the traffic; `None` when neither has any.
    pub fn live(&self) -> Option<Color> {
        match (self.blue, self.green) {
            (0, 0) => None,
            (b, g) if b >= g => Some(Color::Blue),
            _ => Some(Color::Green),
        }
    }

    /// The colour that takes all the traffic, when one does (not while it is split).
    pub fn alone(&self) -> Option<Color> {
        Color::BOTH
            .into_iter()
            .find(|c| self.of(*c) > 0 && self.of(c.other()) == 0)
    }

    /// Whether both split traffic in the same proportions (900/100 is 90/10), to within
    /// one percentage point: a router whose weights are per member (HAProxy) can only
    /// approach a split when the colours have different numbers of members.
    pub fn same_shares(&self, other: &Split) -> bool {
        match (self.share_of_blue(), other.share_of_blue()) {
            (Some(a), Some(b)) => (a - b).abs() <= 0.01,
            (a, b) => a.is_none() && b.is_none(),
        }
    }

    /// The same shares in percent, adding up to 100 (0/0 stays 0/0), as the state shows
    /// them: a listener forwarding to one group (weight 1) or at 999/0 reads 100/0. A
    /// colour with any weight keeps at least 1%, so a trickle is never hidden.
    pub fn in_percent(&self) -> Split {
        let Some(blue) = self.share_of_blue() else {
            return Split::default();
        };
        let mut blue = (blue * 100.0).round() as u32;
        if self.blue > 0 {
            blue = blue.max(1);
        }
        if self.green > 0 {
            blue = blue.min(99);
        }
        Split {
            blue,
            green: 100 - blue,
        }
    }

    fn share_of_blue(&self) -> Option<f64> {
        let total = f64::from(self.blue) + f64::from(self.green);
        (total > 0.0).then(|| f64::from(self.blue) / total)
    }
}

/// A member of a colour: an instance ID, IP address or host name, and its port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Target {
    pub id: String,
    pub port: Option<u16>,
    pub availability_zone: Option<String>,
}

impl Target {
    /// Targets match on ID and port; a target given without a port matches any port.
    pub fn matches(&self, other: &Target) -> bool {
        self.id == other.id
            && (self.port.is_none() || other.port.is_none() || self.port == other.port)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.port, self.id.contains(':')) {
            (Some(port), true) => write!(f, "[{}]:{port}", self.id),
            (Some(port), false) => write!(f, "{}:{port}", self.id),
            (None, _) => f.write_str(&self.id),
        }
    }
}

/// What the router's own health checks say of a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    Healthy,
    /// Registered, checks not passed yet.
    Initial,
    Unhealthy,
    /// Not checked at all (e.g. a target group no listener action uses).
    Unchecked,
    /// Leaving the colour.
    Draining,
    Unknown,
}

/// A member and its health as the router reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberHealth {
    pub target: Target,
    pub state: MemberState,
    /// The router's reason, in words, when not healthy: e.g. "Health checks failed with
    /// these codes: [503] (Target.ResponseCodeMismatch)".
    pub detail: Option<String>,
}

impl MemberHealth {
    pub fn is_healthy(&self) -> bool {
        self.state == MemberState::Healthy
    }
}

/// What a colour is known to hold, kept by the router beside the colour (tags on a target
/// group, variables in HAProxy) so that a plan, an import or the slots data source can
/// read it without the state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    pub release: Option<String>,
    /// The generation (count of cut-overs) the colour went, or is about to go, live as.
    pub generation: Option<i64>,
    /// When traffic was moved away from this colour's release by the rollback action
    /// (RFC 3339), until a release or the configuration takes it up. Kept by ELBv2 only.
    pub rolled_back_at: Option<String>,
}

/// How the router routed before a release, to put back exactly when a release fails after
/// it moved traffic away from something that is not the other colour: a first release
/// from a listener's fixed response, redirect or forward to another group, or from an
/// HAProxy backend with no colour in service.
#[derive(Clone)]
pub struct Routing {
    pub split: Split,
    /// What it was, in words: "a fixed response (503)", "blue 0 / green 0".
    pub described: String,
    /// The router's own copy of it (the listener's default actions, say).
    saved: Arc<dyn Any + Send + Sync>,
}

impl Routing {
    pub fn new(split: Split, described: String, saved: impl Any + Send + Sync) -> Routing {
        Routing {
            split,
            described,
            saved: Arc::new(saved),
        }
    }

    /// Routing that is nothing but the colours' weights.
    pub fn weights(split: Split) -> Routing {
        Routing::new(
            split,
            format!("blue {} / green {}", split.blue, split.green),
            (),
        )
    }

    /// The router's own copy, as it saved it.
    pub fn saved<T: 'static>(&self) -> Option<&T> {
        self.saved.downcast_ref()
    }
}

impl fmt::Debug for Routing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Routing")
            .field("split", &self.split)
            .field("described", &self.described)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouterError {
    /// What the router routes (a listener, a backend) does not exist (any more).
    NotFound(String),
    /// Anything else, already phrased for the user: the operation, the service's error
    /// code and message, or why the router could not be reached.
    Failed(String),
}

impl fmt::Display for RouterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouterError::NotFound(what) => write!(f, "{what} not found"),
            RouterError::Failed(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for RouterError {}

/// What a release asks of the thing that splits traffic between two colours.
#[tonic::async_trait]
pub trait TrafficRouter: Send + Sync {
    /// What splits the traffic, in reports, e.g. "the listener arn:...".
    fn name(&self) -> String;

    /// What health-checks the members, mid-sentence: "the load balancer", "HAProxy".
    fn checker(&self) -> &'static str;

    /// The colour's name in reports, e.g. "the blue target group (arn:...)".
    fn describe(&self, color: Color) -> String;

    /// Why the provider never moves traffic to a colour with no healthy member, in this
    /// router's terms (ALB fails open, HAProxy fails closed).
    fn none_healthy_means(&self) -> &'static str;

    /// The colour in the router's own terms, as placeholders of analysis queries beside
    /// `{color}` and `{release}`: name and value.
    fn placeholders(&self, color: Color) -> Vec<(&'static str, String)>;

    /// The split in force. `NotFound` when what the router routes is gone.
    async fn weights(&self) -> Result<Split, RouterError>;

    async fn set_weights(&self, split: Split) -> Result<(), RouterError>;

    /// The routing in force, as [`Self::restore`] puts it back. By default the colours'
    /// weights alone.
    async fn routing(&self) -> Result<Routing, RouterError> {
        Ok(Routing::weights(self.weights().await?))
    }

    /// Puts back routing read by [`Self::routing`].
    async fn restore(&self, routing: &Routing) -> Result<(), RouterError> {
        self.set_weights(routing.split).await
    }

    async fn members(&self, color: Color) -> Result<Vec<MemberHealth>, RouterError>;

    async fn add_members(&self, color: Color, targets: &[Target]) -> Result<(), RouterError>;

    async fn remove_members(&self, color: Color, targets: &[Target]) -> Result<(), RouterError>;

    /// Both colours' records, blue first.
    async fn records(&self) -> Result<[Record; 2], RouterError>;

    /// Replaces the colour's record: a field that is `None` is removed.
    async fn set_record(&self, color: Color, record: &Record) -> Result<(), RouterError>;

    /// The lease on what the router routes, as [`crate::lease`] wrote it; `None` when none.
    async fn lease(&self) -> Result<Option<String>, RouterError>;

    /// Writes the lease, or removes it (`None`). The last write wins.
    async fn set_lease(&self, lease: Option<&str>) -> Result<(), RouterError>;

    /// The lease and both records, read together where the router can (one call), for the
    /// fence before each write.
    async fn lease_and_records(&self) -> Result<(Option<String>, [Record; 2]), RouterError> {
        Ok((self.lease().await?, self.records().await?))
    }

    /// How long a lease taker waits between writing its lease and reading it back: longer
    /// than a rival takes from reading the lease free to writing its own (each call is
    /// bounded), plus however long the router takes to show every reader a write.
    fn lease_settle(&self) -> Duration;

    /// The command, in the router's own tools, that breaks a lease by hand.
    fn break_lease_command(&self) -> String;

    /// Makes the router health-check `color` while it still takes no request, when it
    /// would not otherwise (ELBv2 checks only target groups that a listener action uses).
    /// Returns what [`Self::end_warm_up`] undoes; `None` when nothing was needed.
    async fn warm_up(&self, color: Color) -> Result<Option<String>, RouterError>;

    async fn end_warm_up(&self, handle: &str) -> Result<(), RouterError>;

    /// What stands in the way of routing to the colours, checked once before anything is
    /// written: each problem with the colour it is about (`None`: the router as a whole).
    async fn preflight(&self) -> Result<Vec<(Option<Color>, String)>, RouterError>;
}

/// Sets the split and reads it back: the write is done only when the router says so.
/// Two calls, the least a verified cut-over can take.
pub async fn shift(router: &dyn TrafficRouter, split: Split) -> Result<Split, RouterError> {
    router.set_weights(split).await?;
    verify(router, split).await
}

/// Reads the split back and checks it is the one written.
pub async fn verify(router: &dyn TrafficRouter, split: Split) -> Result<Split, RouterError> {
    let actual = router.weights().await?;
    if actual.same_shares(&split) {
        Ok(actual)
    } else {
        Err(RouterError::Failed(format!(
            "{} did not take the new weights: set blue {} / green {}, read back blue {} / green {}",
            router.name(),
            split.blue,
            split.green,
            actual.blue,
            actual.green
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_compare_by_share_and_name_the_live_colour() {
        assert_eq!(
            Split::percent(Color::Green, 10),
            Split {
                blue: 90,
                green: 10
            }
        );
        assert!(Split {
            blue: 900,
            green: 100
        }
        .same_shares(&Split {
            blue: 90,
            green: 10
        }));
        assert!(!Split {
            blue: 0,
            green: 100
        }
        .same_shares(&Split {
            blue: 100,
            green: 0
        }));
        assert!(!Split::default().same_shares(&Split::all_on(Color::Blue)));
        assert_eq!(
            Split {
                blue: 50,
                green: 50
            }
            .live(),
            Some(Color::Blue)
        );
        assert_eq!(Split { blue: 1, green: 2 }.live(), Some(Color::Green));
        assert_eq!(Split::default().live(), None);
        assert_eq!(Split { blue: 0, green: 1 }.alone(), Some(Color::Green));
        assert_eq!(
            Split {
                blue: 50,
                green: 50
            }
            .alone(),
            None
        );
        assert_eq!(Split::default().alone(), None);
    }

    #[test]
    fn weights_read_as_percent_add_up_to_100_and_keep_a_trickle() {
        let split = |blue, green| Split { blue, green };
        assert_eq!(split(1, 0).in_percent(), split(100, 0));
        assert_eq!(split(999, 0).in_percent(), split(100, 0));
        assert_eq!(split(999, 1).in_percent(), split(99, 1));
        assert_eq!(split(1, 999).in_percent(), split(1, 99));
        assert_eq!(split(300, 600).in_percent(), split(33, 67));
        assert_eq!(split(0, 0).in_percent(), split(0, 0));
    }

    #[test]
    fn targets_match_any_port_when_one_has_none() {
        let t = |id: &str, port| Target {
            id: id.into(),
            port,
            availability_zone: None,
        };
        assert!(t("10.0.0.1", Some(80)).matches(&t("10.0.0.1", None)));
        assert!(!t("10.0.0.1", Some(80)).matches(&t("10.0.0.1", Some(81))));
        assert_eq!(t("::1", Some(80)).to_string(), "[::1]:80");
    }
}
