//! Blue/green on one HAProxy backend, through its Runtime API: the colours are the
//! backend's servers named `blue_N` and `green_N` (added at runtime with `check`), the
//! split is their weights, and a colour's record is kept in HAProxy process variables.
//! Runtime servers and variables live in HAProxy's memory: a reload drops both, which the
//! deployment sees as drift.
//!
//! HAProxy fails closed: a server at weight 0 is never a fallback, and a backend with no UP
//! server answers 503. Weights are per server, 0 to 256; a colour's share is the sum of its
//! servers' weights, so a split is written as per-server weights that give each colour its
//! share whatever the number of servers, and read back as percentages.

pub mod fragment;
pub mod runtime;
pub mod ssh;

#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::time::Duration;

use fragment::Fragment;
use runtime::{RuntimeApi, ServerStat, Transport};

use super::{Color, MemberHealth, MemberState, Record, RouterError, Split, Target, TrafficRouter};

/// HAProxy's highest server weight.
const MAX_WEIGHT: u32 = 256;
/// How long a removed server may take to finish its requests before it is deleted.
const DRAIN_WAIT: Duration = Duration::from_secs(5);
/// The oldest HAProxy whose `add server` takes health checks without experimental mode.
const OLDEST: (u32, u32) = (2, 6);

pub struct HaproxyRouter {
    api: RuntimeApi,
    backend: String,
    /// The check settings of each added server (`inter 5s rise 3 fall 3`): runtime servers
    /// take no `default-server` line.
    check: String,
    /// Kept in step after every change, when given.
    fragment: Option<Fragment>,
}

impl HaproxyRouter {
    pub fn new(
        transport: Transport,
        backend: String,
        check: String,
        fragment: Option<Fragment>,
    ) -> HaproxyRouter {
        HaproxyRouter {
            api: RuntimeApi::new(transport),
            backend,
            check,
            fragment,
        }
    }

    /// Runs commands that change the backend, then brings the fragment in step.
    async fn change(&self, commands: &[String]) -> Result<(), RouterError> {
        self.api.run(commands).await?;
        self.sync_fragment().await
    }

    /// Writes the servers and records as HAProxy has them now into the fragment.
    async fn sync_fragment(&self) -> Result<(), RouterError> {
        let Some(fragment) = &self.fragment else {
            return Ok(());
        };
        let servers: Vec<ServerStat> = self
            .servers()
            .await?
            .into_iter()
            .filter(|s| Self::colour_of(&s.name).is_some())
            .collect();
        let records = self.records().await?;
        let mut variables = Vec::new();
        for (color, record) in Color::BOTH.into_iter().zip(&records) {
            let (release, generation) = record_values(record);
            variables.push((self.variable(color, "release"), format!("str({release})")));
            variables.push((
                self.variable(color, "generation"),
                format!("int({generation})"),
            ));
        }
        fragment.write(&servers, &self.check, &variables).await
    }

    /// The colour a server of ours belongs to, by its name.
    fn colour_of(name: &str) -> Option<Color> {
        let (colour, index) = name.split_once('_')?;
        index.parse::<u32>().ok()?;
        Color::parse(colour)
    }

    async fn servers(&self) -> Result<Vec<ServerStat>, RouterError> {
        self.api.servers(&self.backend).await
    }

    fn of(servers: &[ServerStat], color: Color) -> impl Iterator<Item = &ServerStat> {
        servers
            .iter()
            .filter(move |s| Self::colour_of(&s.name) == Some(color))
    }

    fn server(&self, name: &str) -> String {
        format!("{}/{name}", self.backend)
    }

    /// A process variable's name for a colour's field.
    fn variable(&self, color: Color, field: &str) -> String {
        self.process_variable(&format!("{color}_{field}"))
    }

    /// `proc.immutable_<backend>_<suffix>`: only `[A-Za-z0-9._]` is allowed, so every other
    /// byte of the backend's name is written as `_xx`.
    fn process_variable(&self, suffix: &str) -> String {
        let backend: String = self
            .backend
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b == b'.' {
                    char::from(b).to_string()
                } else {
                    format!("_{b:02x}")
                }
            })
            .collect();
        format!("proc.immutable_{backend}_{suffix}")
    }

    /// The values of process variables, in one exchange: `None` for a variable not set.
    async fn variables(&self, names: &[String]) -> Result<Vec<Option<String>>, RouterError> {
        let mut commands = vec!["experimental-mode on".to_string()];
        commands.extend(names.iter().map(|n| format!("get var {n}")));
        let line = commands.join("; ");
        let reply = self.api.read(&line).await?;
        // Each line is a variable or "Variable not found." (a variable never set);
        // anything else is an error, not a variable without a value.
        if let Some(other) = reply.lines().find(|l| {
            !l.is_empty()
                && *l != "Variable not found."
                && !names.iter().any(|n| variable_value(l, n).is_some())
        }) {
            return Err(RouterError::Failed(runtime::refusal(&line, other)));
        }
        Ok(names
            .iter()
            .map(|n| variable_value(&reply, n).map(str::to_string))
            .collect())
    }

    /// The names of the records' variables, blue first, release before generation.
    fn record_variables(&self) -> Vec<String> {
        Color::BOTH
            .into_iter()
            .flat_map(|c| ["release", "generation"].map(|f| self.variable(c, f)))
            .collect()
    }
}

/// The records from their variables' values, in [`HaproxyRouter::record_variables`]' order.
fn records_of(values: &[Option<String>]) -> [Record; 2] {
    let record = |i: usize| Record {
        release: values[2 * i].as_deref().and_then(unhexed),
        generation: values[2 * i + 1]
            .as_deref()
            .and_then(|v| v.parse().ok())
            .filter(|g: &i64| *g >= 0),
        rolled_back_at: None,
    };
    [record(0), record(1)]
}

/// Text kept in a variable as `h` + hex (`-` for none).
fn unhexed(value: &str) -> Option<String> {
    value.strip_prefix('h').and_then(unhex)
}

fn hexed(text: Option<&str>) -> String {
    text.map_or("-".to_string(), |t| format!("h{}", hex(t)))
}

/// A server's health from HAProxy's status and last check.
fn member_health(s: &ServerStat) -> MemberHealth {
    let check = || {
        let code = s.check_code.map(|c| format!(" {c}")).unwrap_or_default();
        let desc = if s.check_desc.is_empty() {
            String::new()
        } else {
            format!(": {}", s.check_desc)
        };
        format!("HAProxy's check {}{code}{desc}", s.check_status)
    };
    let (state, detail) = match s.status.as_str() {
        // A server added at runtime reads `UP 1/3` before its first check has run: that
        // is a server nobody has checked yet, not one going down.
        status if s.check_status == "INI" && !status.starts_with("MAINT") => (
            MemberState::Initial,
            Some("its first health check has not run yet".to_string()),
        ),
        "UP" => (MemberState::Healthy, None),
        "MAINT" => (MemberState::Unchecked, Some("in maintenance".to_string())),
        "no check" => (
            MemberState::Unchecked,
            Some("not health-checked by HAProxy".to_string()),
        ),
        "DRAIN" | "NOLB" => (MemberState::Draining, Some("draining".to_string())),
        "DOWN" => (MemberState::Unhealthy, Some(format!("DOWN ({})", check()))),
        status if status.starts_with("UP ") => (
            MemberState::Unhealthy,
            Some(format!("{status}, going down ({})", check())),
        ),
        status => (
            MemberState::Initial,
            Some(format!(
                "{status}: its checks have not passed yet ({})",
                check()
            )),
        ),
    };
    MemberHealth {
        target: Target {
            id: s.addr.clone(),
            port: Some(s.port),
            availability_zone: None,
        },
        state,
        detail,
    }
}

/// The per-server weight that gives a colour of `members` servers `percent` of the
/// traffic, beside colours whose smallest has `fewest` servers.
fn server_weight(percent: u32, members: usize, fewest: usize) -> u32 {
    if percent == 0 || members == 0 {
        return 0;
    }
    let exact =
        f64::from(MAX_WEIGHT) * f64::from(percent) * fewest as f64 / (100.0 * members as f64);
    (exact.round() as u32).clamp(1, MAX_WEIGHT)
}

/// An address as `add server` takes it.
fn address(target: &Target) -> String {
    let port = target.port.unwrap_or(80);
    if target.id.contains(':') {
        format!("[{}]:{port}", target.id)
    } else {
        format!("{}:{port}", target.id)
    }
}

/// A record as HAProxy variables take it: the release hex-encoded (`h` + hex; `-` for
/// none), so that any text is safe inside `str(...)`; the generation as an integer (-1 for
/// none).
fn record_values(record: &Record) -> (String, i64) {
    (
        hexed(record.release.as_deref()),
        record.generation.unwrap_or(-1),
    )
}

fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<String> {
    let bytes: Option<Vec<u8>> = (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

/// `value` of a `get var` reply line `proc.x: type=str value=<...>`.
fn variable_value<'a>(reply: &'a str, name: &str) -> Option<&'a str> {
    reply.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?.strip_prefix(':')?;
        let value = rest.split_once("value=<")?.1;
        value.strip_suffix('>')
    })
}

#[tonic::async_trait]
impl TrafficRouter for HaproxyRouter {
    fn name(&self) -> String {
        format!(
            "HAProxy backend {:?} ({})",
            self.backend,
            self.api.describe()
        )
    }

    fn checker(&self) -> &'static str {
        "HAProxy"
    }

    fn describe(&self, color: Color) -> String {
        format!("the {color} servers of HAProxy backend {:?}", self.backend)
    }

    fn placeholders(&self, _color: Color) -> Vec<(&'static str, String)> {
        vec![("backend", self.backend.clone())]
    }

    fn none_healthy_means(&self) -> &'static str {
        "HAProxy fails closed: a backend with no UP server answers 503, and a server at weight 0 is never a fallback"
    }

    /// Each colour's share in percent of the weights of its servers in service.
    async fn weights(&self) -> Result<Split, RouterError> {
        let servers = self.servers().await?;
        let sum = |color| -> u32 {
            Self::of(&servers, color)
                .filter(|s| s.status != "MAINT")
                .map(|s| s.weight)
                .sum()
        };
        let (blue, green) = (sum(Color::Blue), sum(Color::Green));
        if blue + green == 0 {
            return Ok(Split::default());
        }
        let blue_percent = (f64::from(blue) * 100.0 / f64::from(blue + green)).round() as u32;
        Ok(Split {
            blue: blue_percent,
            green: 100 - blue_percent,
        })
    }

    /// One line: the servers whose weight rises first, then those whose weight falls, so
    /// that the backend never has zero weight in between.
    async fn set_weights(&self, split: Split) -> Result<(), RouterError> {
        let servers = self.servers().await?;
        let count = |color| Self::of(&servers, color).count();
        let fewest = Color::BOTH
            .into_iter()
            .filter(|c| split.of(*c) > 0)
            .map(count)
            .min()
            .unwrap_or(0);
        if let Some(empty) = Color::BOTH
            .into_iter()
            .find(|c| split.of(*c) > 0 && count(*c) == 0)
        {
            return Err(RouterError::Failed(format!(
                "cannot give {}% of traffic to {}: it has no server",
                split.of(empty),
                self.describe(empty)
            )));
        }
        let mut changes: Vec<(bool, String)> = Vec::new();
        for color in Color::BOTH {
            let weight = server_weight(split.of(color), count(color), fewest);
            for s in Self::of(&servers, color).filter(|s| s.weight != weight) {
                changes.push((
                    weight < s.weight,
                    format!("set server {} weight {weight}", self.server(&s.name)),
                ));
            }
        }
        changes.sort_by_key(|(falls, _)| *falls);
        let commands: Vec<String> = changes.into_iter().map(|(_, c)| c).collect();
        self.change(&commands).await
    }

    async fn members(&self, color: Color) -> Result<Vec<MemberHealth>, RouterError> {
        let servers = self.servers().await?;
        Ok(Self::of(&servers, color).map(member_health).collect())
    }

    /// Each target as the colour's lowest free `<colour>_N`, at weight 0 and checked; a
    /// server added at runtime starts in maintenance with its check off.
    async fn add_members(&self, color: Color, targets: &[Target]) -> Result<(), RouterError> {
        if let Some(named) = targets.iter().find(|t| t.id.parse::<IpAddr>().is_err()) {
            return Err(RouterError::Failed(format!(
                "cannot add {named} to {}: HAProxy resolves no host name for a server added at runtime, give an IP address",
                self.describe(color)
            )));
        }
        let servers = self.servers().await?;
        let present: Vec<MemberHealth> = Self::of(&servers, color).map(member_health).collect();
        let mut taken: Vec<String> = Self::of(&servers, color).map(|s| s.name.clone()).collect();
        let mut commands = Vec::new();
        // A target already there (a retried apply) is not added twice.
        for target in targets
            .iter()
            .filter(|t| !present.iter().any(|m| m.target.matches(t)))
        {
            let name = (1..)
                .map(|i| format!("{color}_{i}"))
                .find(|n| !taken.contains(n))
                .unwrap_or_default();
            let server = self.server(&name);
            commands.push(format!(
                "add server {server} {} check {} weight 0",
                address(target),
                self.check
            ));
            commands.push(format!("enable health {server}"));
            commands.push(format!("enable server {server}"));
            taken.push(name);
        }
        self.change(&commands).await
    }

    /// Takes the servers out of service (maintenance), lets their requests finish and
    /// their idle connections close (bounded), and deletes them.
    async fn remove_members(&self, color: Color, targets: &[Target]) -> Result<(), RouterError> {
        let servers = self.servers().await?;
        let names: Vec<String> = Self::of(&servers, color)
            .filter(|s| targets.iter().any(|t| member_health(s).target.matches(t)))
            .map(|s| s.name.clone())
            .collect();
        if names.is_empty() {
            return Ok(());
        }
        let maint: Vec<String> = names
            .iter()
            .map(|n| format!("set server {} state maint", self.server(n)))
            .collect();
        self.api.run(&maint).await?;
        let deadline = tokio::time::Instant::now() + DRAIN_WAIT;
        loop {
            let busy = self
                .servers()
                .await?
                .iter()
                .any(|s| names.contains(&s.name) && s.scur + s.idle > 0);
            if !busy || tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let delete: Vec<String> = names
            .iter()
            .map(|n| format!("del server {}", self.server(n)))
            .collect();
        self.change(&delete).await
    }

    async fn records(&self) -> Result<[Record; 2], RouterError> {
        Ok(records_of(&self.variables(&self.record_variables()).await?))
    }

    async fn set_record(&self, color: Color, record: &Record) -> Result<(), RouterError> {
        let (release, generation) = record_values(record);
        let commands = vec![
            format!("set var {} str({release})", self.variable(color, "release")),
            format!(
                "set var {} int({generation})",
                self.variable(color, "generation")
            ),
        ];
        self.change(&commands).await
    }

    async fn lease(&self) -> Result<Option<String>, RouterError> {
        let name = self.process_variable("lease");
        let values = self.variables(&[name]).await?;
        Ok(values[0].as_deref().and_then(unhexed))
    }

    /// Not kept in the fragment: a reload ends every lease, as it ends the servers.
    async fn set_lease(&self, lease: Option<&str>) -> Result<(), RouterError> {
        self.api
            .run(&[format!(
                "set var {} str({})",
                self.process_variable("lease"),
                hexed(lease)
            )])
            .await
    }

    /// One exchange for the lease and both records.
    async fn lease_and_records(&self) -> Result<(Option<String>, [Record; 2]), RouterError> {
        let mut names = vec![self.process_variable("lease")];
        names.extend(self.record_variables());
        let values = self.variables(&names).await?;
        let lease = values[0].as_deref().and_then(unhexed);
        Ok((lease, records_of(&values[1..])))
    }

    /// Every Runtime API exchange is over before the next begins, and bounded: one second
    /// is well beyond a rival's read and write on a socket.
    fn lease_settle(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn break_lease_command(&self) -> String {
        format!(
            "echo 'experimental-mode on; set var {} str(-)' | socat stdio <the stats socket>",
            self.process_variable("lease")
        )
    }

    /// HAProxy checks servers at weight 0: nothing to do.
    async fn warm_up(&self, _color: Color) -> Result<Option<String>, RouterError> {
        Ok(None)
    }

    async fn end_warm_up(&self, _handle: &str) -> Result<(), RouterError> {
        Ok(())
    }

    /// HAProxy 2.6 or newer, the backend there, no server of anyone else's in it, and an
    /// admin-level socket.
    async fn preflight(&self) -> Result<Vec<(Option<Color>, String)>, RouterError> {
        let mut problems = Vec::new();
        let (version, numbers) = self.api.version().await?;
        if numbers < OLDEST {
            problems.push((None, format!("HAProxy {version} is too old: adding servers with health checks at runtime needs HAProxy 2.6 or newer")));
        }
        let servers = self.servers().await?;
        let foreign: Vec<&str> = servers
            .iter()
            .filter(|s| Self::colour_of(&s.name).is_none())
            .map(|s| s.name.as_str())
            .collect();
        if !foreign.is_empty() {
            problems.push((None, format!(
                "backend {:?} has servers the provider does not own ({}), which would take traffic it does not control: declare the backend with no servers",
                self.backend,
                foreign.join(", ")
            )));
        }
        // Writes need `level admin`; this no-op write says whether the socket has it.
        self.api.run(&["experimental-mode on".to_string()]).await?;
        Ok(problems)
    }
}
