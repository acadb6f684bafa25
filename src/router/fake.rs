//! A router kept in memory, for the paths a real router shows only by accident: a write
//! that fails after it took effect (in whole or in part) or never answers, a health read
//! that never answers.

use std::sync::Mutex;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{
    Color, MemberHealth, MemberState, Record, RouterError, Routing, Split, Target, TrafficRouter,
};

/// How the next weight write goes wrong.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum WriteFault {
    None,
    /// The write takes effect, then the call fails (a lost answer, an SSH timeout after
    /// the bytes were sent, a failed fragment sync).
    AfterWrite,
    /// Half of it takes effect (HAProxy ran the rest of a line after one command failed).
    Partial(Split),
    /// The write never answers and never takes effect: the call ends only when its
    /// budget (Ctrl-C, the deadline) cuts it off, as a real router's calls do.
    Hang,
}

pub struct Fake {
    pub split: Split,
    /// Routing that is no colour (a fixed response), while the split is 0/0.
    pub fixed_response: Option<String>,
    pub members: [Vec<Target>; 2],
    pub records: [Record; 2],
    pub fault: WriteFault,
    /// Health reads never answer (a router that accepts and never replies).
    pub members_hang: bool,
    /// Fired once the next write has taken: Ctrl-C just after a write.
    pub stop_after_write: Option<CancellationToken>,
    pub lease: Option<String>,
}

pub struct FakeRouter(Mutex<Fake>);

impl FakeRouter {
    pub fn new(split: Split, fixed_response: Option<&str>, blue: &[&str], green: &[&str]) -> Self {
        let targets = |ids: &[&str]| {
            ids.iter()
                .map(|id| Target {
                    id: id.to_string(),
                    port: Some(80),
                    availability_zone: None,
                })
                .collect()
        };
        FakeRouter(Mutex::new(Fake {
            split,
            fixed_response: fixed_response.map(str::to_string),
            members: [targets(blue), targets(green)],
            records: Default::default(),
            fault: WriteFault::None,
            members_hang: false,
            stop_after_write: None,
            lease: None,
        }))
    }

    pub fn state(&self) -> std::sync::MutexGuard<'_, Fake> {
        self.0.lock().unwrap()
    }
}

#[tonic::async_trait]
impl TrafficRouter for FakeRouter {
    fn name(&self) -> String {
        "the fake listener".into()
    }
    fn checker(&self) -> &'static str {
        "the fake"
    }
    fn describe(&self, color: Color) -> String {
        format!("the fake {color} group")
    }
    fn none_healthy_means(&self) -> &'static str {
        "the fake fails closed"
    }
    fn placeholders(&self, _: Color) -> Vec<(&'static str, String)> {
        Vec::new()
    }
    async fn weights(&self) -> Result<Split, RouterError> {
        sent("the fake read", async {}).await?;
        Ok(self.state().split)
    }
    async fn set_weights(&self, split: Split) -> Result<(), RouterError> {
        let fault = std::mem::replace(&mut self.state().fault, WriteFault::None);
        if fault == WriteFault::Hang {
            sent("the fake write", std::future::pending::<()>()).await?;
        }
        sent("the fake write", async {}).await?;
        let mut fake = self.state();
        fake.fixed_response = None;
        match fault {
            WriteFault::Hang => unreachable!(),
            WriteFault::None => {
                fake.split = split;
                if let Some(stop) = fake.stop_after_write.take() {
                    stop.cancel();
                }
                Ok(())
            }
            WriteFault::AfterWrite => {
                fake.split = split;
                Err(RouterError::Failed("the answer was lost".into()))
            }
            WriteFault::Partial(partial) => {
                fake.split = partial;
                Err(RouterError::Failed("No such server.".into()))
            }
        }
    }
    async fn routing(&self) -> Result<Routing, RouterError> {
        let fake = self.state();
        Ok(match &fake.fixed_response {
            Some(status) => Routing::new(
                fake.split,
                format!("a fixed response ({status})"),
                status.clone(),
            ),
            None => Routing::weights(fake.split),
        })
    }
    async fn restore(&self, routing: &Routing) -> Result<(), RouterError> {
        let mut fake = self.state();
        fake.split = routing.split;
        fake.fixed_response = routing.saved::<String>().cloned();
        Ok(())
    }
    async fn members(&self, color: Color) -> Result<Vec<MemberHealth>, RouterError> {
        if self.state().members_hang {
            std::future::pending::<()>().await;
        }
        Ok(self.state().members[color.index()]
            .iter()
            .map(|target| MemberHealth {
                target: target.clone(),
                state: MemberState::Healthy,
                detail: None,
            })
            .collect())
    }
    async fn add_members(&self, color: Color, targets: &[Target]) -> Result<(), RouterError> {
        self.state().members[color.index()].extend_from_slice(targets);
        Ok(())
    }
    async fn remove_members(&self, color: Color, targets: &[Target]) -> Result<(), RouterError> {
        self.state().members[color.index()].retain(|m| !targets.iter().any(|t| t.matches(m)));
        Ok(())
    }
    async fn records(&self) -> Result<[Record; 2], RouterError> {
        Ok(self.state().records.clone())
    }
    async fn set_record(&self, color: Color, record: &Record) -> Result<(), RouterError> {
        sent("the fake tag write", async {}).await?;
        self.state().records[color.index()] = record.clone();
        Ok(())
    }
    async fn lease(&self) -> Result<Option<String>, RouterError> {
        Ok(self.state().lease.clone())
    }
    async fn set_lease(&self, lease: Option<&str>) -> Result<(), RouterError> {
        self.state().lease = lease.map(str::to_string);
        Ok(())
    }
    fn lease_settle(&self) -> Duration {
        Duration::from_millis(10)
    }
    fn break_lease_command(&self) -> String {
        "fake break".into()
    }
    async fn warm_up(&self, _: Color) -> Result<Option<String>, RouterError> {
        Ok(None)
    }
    async fn end_warm_up(&self, _: &str) -> Result<(), RouterError> {
        Ok(())
    }
    async fn preflight(&self) -> Result<Vec<(Option<Color>, String)>, RouterError> {
        Ok(Vec::new())
    }
}

/// A call of the fake's, bounded as a real router's calls are: not sent after a Ctrl-C or
/// the deadline, and cut off by them.
async fn sent<T>(what: &str, call: impl std::future::Future<Output = T>) -> Result<T, RouterError> {
    crate::budget::bounded(what, call)
        .await
        .map_err(|cut| RouterError::Failed(cut.to_string()))
}
