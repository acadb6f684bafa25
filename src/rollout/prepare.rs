//! Preparing the standby colour before its gate: its fleet, its record, the router's
//! warm-up and the test route; and putting the colour back as it was when the release
//! fails before traffic moved.

use super::*;

/// What preparing a colour changed, to undo when the release fails before traffic moved.
#[derive(Debug, Default)]
pub(super) struct Prepared {
    /// The fleet's targets taken out of the colour, and those put in (`targets` only).
    pub(super) removed: Vec<Target>,
    pub(super) added: Vec<Target>,
    /// The colour's record before, when the fleet is `targets`.
    pub(super) record_before: Option<Record>,
    /// The router's handle for keeping the colour health-checked until it takes traffic.
    pub(super) warm_up: Option<String>,
    /// The colour's record names the release.
    pub(super) recorded: bool,
}

impl Prepared {
    /// Whether the colour's `targets` fleet or its record were changed, and so are put
    /// back when the release fails before traffic moved.
    pub(super) fn changed_fleet(&self) -> bool {
        self.record_before.is_some()
            && (self.recorded || !self.added.is_empty() || !self.removed.is_empty())
    }
}

impl Rollout<'_> {
    /// Puts the release's fleet in the colour (removing stale members first), records the
    /// release there, has the router health-check it, and points the test route at it.
    /// Records what it changed in `prepared`.
    pub(super) async fn prepare(
        &self,
        release: &Release,
        prepared: &mut Prepared,
    ) -> Result<(), String> {
        let color = release.color;
        let router = self.router;
        if let Some(wanted) = &release.targets {
            let [blue, green] = match &release.records {
                Some(records) => records.clone(),
                None => router.records().await.map_err(|e| e.to_string())?,
            };
            prepared.record_before = Some(match color {
                Color::Blue => blue,
                Color::Green => green,
            });
            let members = router.members(color).await.map_err(|e| e.to_string())?;
            let current: Vec<Target> = members.iter().map(|t| t.target.clone()).collect();
            // A draining member is on its way out (the fleet of a release that just failed
            // here): wanted again, it is added again.
            let staying: Vec<Target> = members
                .into_iter()
                .filter(|t| t.state != MemberState::Draining)
                .map(|t| t.target)
                .collect();
            let stale: Vec<Target> = current
                .iter()
                .filter(|t| !contains(wanted, t))
                .cloned()
                .collect();
            let new: Vec<Target> = wanted
                .iter()
                .filter(|t| !contains(&staying, t))
                .cloned()
                .collect();
            router
                .remove_members(color, &stale)
                .await
                .map_err(|e| e.to_string())?;
            prepared.removed = stale;
            router
                .add_members(color, &new)
                .await
                .map_err(|e| e.to_string())?;
            prepared.added = new;
        }
        // The release and the generation it will go live as, in one write before the gate,
        // so that after the gate only the split is written and read back.
        let record = Record {
            release: Some(release.release.clone()),
            generation: Some(release.generation),
            rolled_back_at: None,
        };
        router
            .set_record(color, &record)
            .await
            .map_err(|e| e.to_string())?;
        prepared.recorded = release.record_release;
        prepared.warm_up = router.warm_up(color).await.map_err(|e| {
            format!(
                "Having {} health-check {} failed: {e}",
                router.checker(),
                router.describe(color)
            )
        })?;
        if let Some(test_route) = self.test_route {
            shift(test_route, Split::all_on(color))
                .await
                .map_err(|e| format!("Pointing the test listener at {color} failed: {e}"))?;
        }
        Ok(())
    }

    /// Puts back the fleet and the record the colour had before [`Self::prepare`].
    pub(super) async fn restore(
        &self,
        release: &Release,
        prepared: &Prepared,
    ) -> Result<(), String> {
        let color = release.color;
        let failed = |e: crate::router::RouterError| e.to_string();
        self.router
            .remove_members(color, &prepared.added)
            .await
            .map_err(failed)?;
        self.router
            .add_members(color, &prepared.removed)
            .await
            .map_err(failed)?;
        let before = prepared.record_before.clone().unwrap_or_default();
        self.router.set_record(color, &before).await.map_err(failed)
    }
}
