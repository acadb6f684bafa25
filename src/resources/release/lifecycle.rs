//! Plan, apply, read and delete of a deployment resource, written once for any router:
//! each resource gives its [`Site`] (the router built from its own arguments, and the
//! attributes to name in errors) and keeps only what is its own.

use super::model::{self, set, Args, Status, COMPUTED};
use crate::analysis::alarms::AlarmSource;
use crate::analysis::Analysis;
use crate::budget::{self, Budget};
use crate::lease::s3::{Keeper, S3Leases};
use crate::lease::{self, fenced::Fenced, Refused};
use crate::probe::HttpClients;
use crate::rollout::{observe, Observed, Outcome, Release, Rollout};
use crate::router::{shift, Color, Record, RouterError, Split, TrafficRouter};
use crate::text::capitalised;
use crate::tfplugin::diagnostics::{AttributePath, Diagnostics};
use crate::tfplugin::resource::Ctx;
use crate::tfplugin::value::Value;

/// Where a deployment's colours are, and how to speak of them.
pub struct Site<'a> {
    pub router: &'a dyn TrafficRouter,
    /// A second route pointed at the standby colour before the gate.
    pub test_route: Option<&'a dyn TrafficRouter>,
    /// What the router routes, in messages: "listener", "backend".
    pub noun: &'static str,
    /// The attribute naming it, for errors about it.
    pub router_attr: &'static str,
    /// The attribute that says how the router is reached, for errors reaching it.
    pub reach_attr: &'static str,
    /// The attribute each colour's problems are reported on.
    pub color_attrs: [&'static str; 2],
    /// The summary of a problem found before anything is written, and what was checked.
    pub problem_title: &'static str,
    pub checked: &'static str,
    /// Computed attributes of the resource's own that follow the live colour.
    pub live_extras: &'a (dyn Fn(Option<Color>) -> Vec<(&'static str, Value)> + Sync),
    /// Where `analysis.cloudwatch_alarms` are read, when the resource has them.
    pub alarms: Option<&'a dyn AlarmSource>,
    /// Where leases are kept when the provider keeps them in S3; else beside the records.
    pub leases: Option<&'a S3Leases>,
}

impl Site<'_> {
    /// Writes the status and the resource's own computed attributes.
    fn write(&self, state: &mut Value, status: &Status, deployed_at_unknown: bool) {
        status.write(state, deployed_at_unknown);
        for (name, value) in (self.live_extras)(status.active) {
            set(state, name, value);
        }
    }

    /// The attribute an error is about: what is routed when it is gone, else how the
    /// router is reached.
    fn attr_of(&self, e: &RouterError) -> AttributePath {
        match e {
            RouterError::NotFound(_) => AttributePath::attr(self.router_attr),
            RouterError::Failed(_) => AttributePath::attr(self.reach_attr),
        }
    }

    fn not_found(&self, diags: &mut Diagnostics, what: &str) {
        diags.attribute_error(
            AttributePath::attr(self.router_attr),
            format!("{} not found", capitalised(self.noun)),
            format!(
                "{what} not found: create it first, or fix {}.",
                self.router_attr
            ),
        );
    }

    /// The lease could not be taken: another writer holds it, or it could not be read or
    /// written.
    fn refused(&self, diags: &mut Diagnostics, refused: &Refused) {
        match refused {
            Refused::Held(why) => diags.attribute_error(
                AttributePath::attr(self.router_attr),
                format!("Another writer is releasing to this {}", self.noun),
                why.clone(),
            ),
            Refused::Failed(e) => diags.attribute_error(
                self.attr_of(e),
                format!("Cannot take the lease on the {}", self.noun),
                format!("{e}\nNothing was changed; traffic was not moved."),
            ),
        }
    }

    fn cannot_read(&self, diags: &mut Diagnostics, e: &RouterError) {
        diags.attribute_error(
            self.attr_of(e),
            format!("Cannot read the {}", self.noun),
            e.to_string(),
        );
    }
}

/// Every computed attribute unknown: what the plan shows while the router or the release
/// is known only at apply.
pub fn plan_unknown(planned: &mut Value, own: &[&str]) {
    for name in COMPUTED.iter().chain(own) {
        set(planned, name, Value::Unknown);
    }
}

/// The release a cut-over lands, in a plan where it is known only at apply.
fn unknown_release(planned: &mut Value, to: Color) {
    set(planned, "active_release", Value::Unknown);
    set(planned, &format!("{to}_release"), Value::Unknown);
}

/// Plans a create: the release goes to the colour not serving traffic now (blue when
/// neither is), as the router reports it.
pub async fn plan_create(site: &Site<'_>, planned: &mut Value, diags: &mut Diagnostics) {
    match observe(site.router).await {
        Ok(observed) => {
            let release = planned
                .get("release")
                .and_then(Value::as_str)
                .map(str::to_string);
            let next = first_cut_over(&observed, release.as_deref().unwrap_or_default());
            site.write(planned, &next, true);
            if let (None, Some(to)) = (release, next.active) {
                unknown_release(planned, to);
            }
        }
        Err(e) => diags.attribute_error(
            site.attr_of(&e),
            format!("Cannot read the {}", site.noun),
            format!("Planning needs to know which colour is live: {e}."),
        ),
    }
}

/// The status a create leads to: the release goes to the colour not serving traffic now
/// (blue when neither is), as the router reports it.
fn first_cut_over(observed: &Observed, release: &str) -> Status {
    let from = observed.live.unwrap_or(Color::Green);
    let now = Status {
        generation: observed.generation,
        ..Status::default()
    };
    now.flipped(from, observed.release(from).map(str::to_string), release)
}

/// Plans an update from the prior state alone: a new release (or a new fleet) flips the
/// colours; anything else keeps them, and restores the recorded split if it drifted.
///
/// After the rollback action (read into the prior state), the configuration still names
/// the release rolled back from: that plans no traffic change, with a warning. Naming the
/// release that serves adopts the rollback, also with no traffic change.
pub fn plan_update(
    site: &Site<'_>,
    prior: &Value,
    config: &Value,
    planned: &mut Value,
    own: &[&str],
    diags: &mut Diagnostics,
) {
    let unknown = |name: &str| config.get(name).is_some_and(Value::contains_unknown);
    let now = Status::decode(prior);
    let release_of = |v: &Value| v.get("release").and_then(Value::as_str).map(str::to_string);
    let (configured, recorded) = (release_of(config), release_of(prior));
    let rolled_back = recorded.as_deref().and_then(|r| now.rolled_back_from(r));
    let adopts = rolled_back.is_some() && configured.is_some() && configured == now.active_release;
    if let (Some(from), false) = (rolled_back, adopts || configured != recorded) {
        rollback_warning(&now, from, diags);
    }
    let new_release = !unknown("release") && configured != recorded && !adopts;
    // Targets land as a release only when they really change: not when reordered, not
    // when first given to a deployment that had none (after import, say: they are
    // adopted and take effect with the next release), and not when removed (the fleet
    // now adds itself).
    let new_targets = !unknown("targets")
        && !adopts
        && matches!((model::sorted_targets(config), model::sorted_targets(prior)), (Some(new), Some(old)) if new != old);
    if !new_release && (unknown("release") || unknown("targets")) {
        // Whether a release lands is known only at apply.
        return plan_unknown(planned, own);
    }
    let recorded_from = now.active.unwrap_or(Color::Blue);
    if new_release || new_targets {
        // The release lands on the colour that is standby now, as refreshed from the
        // router, whatever the state last recorded (a flip by hand, another pipeline);
        // while traffic is split (a killed apply), the recorded colour stays the one left.
        // A colour that already serves this very release (an apply that moved traffic but
        // could not record it) is where it is finished.
        let from = match now.weights.alone() {
            Some(serving)
                if Some(serving) != now.active && now.release(serving) == configured.as_deref() =>
            {
                serving.other()
            }
            Some(serving) => serving,
            None => recorded_from,
        };
        let release = config.get("release").and_then(Value::as_str);
        let from_release = if Some(from) == now.active {
            now.active_release.clone()
        } else {
            now.release(from).map(str::to_string)
        };
        let next = now.flipped(from, from_release, release.unwrap_or_default());
        site.write(planned, &next, true);
        if release.is_none() {
            unknown_release(planned, from.other());
        }
    } else {
        // Restores the recorded colour when the router drifted; otherwise no change.
        let next = Status {
            weights: Split::all_on(recorded_from),
            ..now
        };
        site.write(planned, &next, false);
    }
}

/// What a plan says while the configuration names a release the rollback action moved
/// traffic away from.
fn rollback_warning(now: &Status, from: &str, diags: &mut Diagnostics) {
    let serving = now.active_release.as_deref().unwrap_or("(unknown)");
    let color = now.active.map_or("?", Color::name);
    let since = now.deployed_at.as_deref().unwrap_or("(unknown)");
    diags.warning(
        format!("Release {from:?} was rolled back"),
        format!(
            "The immutable_rollback action moved all traffic back to {serving:?} (on {color}) at {since}. \
             This plan leaves traffic where it is: it does not move it back to {from:?}.\n\
             To keep {serving:?}, set release = {serving:?} (the rollback is adopted; no traffic moves). \
             To ship a fix, set release to the new release: it is deployed as usual."
        ),
    );
}

/// Applies a create or an update: the cut-over when the plan flips the colours, else
/// converging the router on the recorded colour.
pub async fn apply(
    site: &Site<'_>,
    ctx: &Ctx,
    http: &HttpClients,
    prior: &Value,
    planned: &Value,
    diags: &mut Diagnostics,
) -> Value {
    let args = match Args::decode(planned) {
        Ok(args) => args,
        Err(e) => {
            diags.error("Invalid settings", e);
            return prior.clone();
        }
    };
    let before = (!prior.is_null()).then(|| Status::decode(prior));
    let mut next = Status::decode(planned);
    if planned_at_apply(planned) {
        // The plan could not tell whether or where a release lands: on a create, as
        // planning would have; on an update, when the release or the fleet changed, onto
        // the colour that is standby now.
        next = match &before {
            None => match observe(site.router).await {
                Ok(observed) => first_cut_over(&observed, &args.release),
                Err(e) => {
                    site.cannot_read(diags, &e);
                    return prior.clone();
                }
            },
            Some(b) => {
                let changed = b.active_release.as_deref() != Some(args.release.as_str())
                    || model::sorted_targets(planned) != model::sorted_targets(prior);
                if changed {
                    let from = b.weights.alone().or(b.active).unwrap_or(Color::Blue);
                    b.flipped(from, b.release(from).map(str::to_string), &args.release)
                } else {
                    b.clone()
                }
            }
        };
    }
    let to = next.active.unwrap_or(Color::Blue);
    // A plan that lands a release counts one more cut-over; one that does not keeps the
    // generation and only converges.
    let flip = before
        .as_ref()
        .is_none_or(|b| b.generation != next.generation);
    let analysis = match args.analysis.as_ref().filter(|_| flip) {
        Some(settings) => {
            let mut bindings = vec![
                ("color", to.name().to_string()),
                ("release", args.release.clone()),
            ];
            bindings.extend(site.router.placeholders(to));
            match Analysis::new(settings, http, site.alarms, &bindings) {
                Ok(analysis) => Some(analysis),
                Err(e) => {
                    diags.attribute_error(
                        AttributePath::attr("analysis"),
                        "Invalid analysis settings",
                        e,
                    );
                    return prior.clone();
                }
            }
        }
        None => None,
    };
    let rollout = Rollout {
        router: site.router,
        test_route: site.test_route,
        http,
        stop: &ctx.stop,
        health: &args.health,
        deadline: crate::duration::later(
            tokio::time::Instant::now(),
            model::timeout(planned, prior.is_null()),
        ),
        analysis: analysis.as_ref(),
    };
    if !flip {
        return converge(site, &rollout, &args, prior, planned, diags).await;
    }
    let before_status = before.clone().unwrap_or_default();
    let mut release = Release {
        color: to,
        release: args.release.clone(),
        targets: args.targets.clone(),
        record_release: before_status.release(to) != Some(args.release.as_str()),
        strategy: args.strategy,
        bake_time: args.bake_time,
        auto_rollback: args.auto_rollback,
        retain_previous: args.retain_previous,
        generation: next.generation.max(1),
        quick_rollback: before_status.within_rollback_window(&args),
        records: None,
    };
    // The lease is claimed first and read back after the preflight, which reads the
    // router while the claim settles.
    let keeper = Keeper::of(site.leases, site.router);
    let keeper = keeper.router();
    // Bounded like the release's own calls: by what is left of `timeouts`, and Ctrl-C.
    let budget = Budget::new(
        rollout.deadline,
        ctx.stop.clone(),
        "the resource's `timeouts`",
    );
    let taken = budget::within(budget.clone(), async {
        let claim = match lease::claim(keeper).await {
            Ok(claim) => claim,
            Err(refused) => {
                site.refused(diags, &refused);
                return None;
            }
        };
        if !preflight(site, diags).await {
            budget::exempt(claim.abandon(keeper)).await;
            return None;
        }
        match claim.confirm(keeper).await {
            Ok(held) => Some(held),
            Err(refused) => {
                site.refused(diags, &refused);
                None
            }
        }
    })
    .await;
    let Some(held) = taken else {
        return prior.clone();
    };
    let released = async {
        let records = budget::within(
            budget,
            still_as_planned(
                site,
                before.as_ref(),
                to,
                next.generation,
                held.records(),
                diags,
            ),
        )
        .await?;
        release.records = Some(records.clone());
        let fenced = Fenced::new(site.router, &held, records);
        Some(
            Rollout {
                router: &fenced,
                ..rollout
            }
            .run(&release)
            .await,
        )
    };
    let Some(outcome) = lease::while_held(keeper, &held, released).await else {
        return prior.clone();
    };
    let summary = format!("Release {:?} was not deployed to {to}", args.release);
    // What the state says after a failure: nothing that serves traffic changed, but the
    // standby colour may now hold the failed release.
    let failed = |split: Option<Split>, holds_release: bool| {
        let mut state = prior.clone();
        let mut status = before_status.clone();
        if let Some(split) = split {
            status.weights = split;
        }
        if holds_release {
            status.set_release(to, Some(args.release.clone()));
        }
        site.write(&mut state, &status, false);
        state
    };
    let mut state = planned.clone();
    match outcome {
        Outcome::Done(split) => {
            next.weights = split;
            next.deployed_now();
            site.write(&mut state, &next, false);
            state
        }
        Outcome::NotMoved {
            error,
            holds_release,
        } => {
            diags.error(summary, error);
            if prior.is_null() {
                return prior.clone();
            }
            failed(None, holds_release)
        }
        Outcome::RolledBack(e, split) => {
            diags.error(summary, e);
            if prior.is_null() {
                return prior.clone();
            }
            failed(Some(split), true)
        }
        Outcome::Kept(e, split) => {
            diags.error(format!("Release {:?} failed its checks on {to}; auto_rollback is off, so it keeps the traffic", args.release), e);
            next.weights = split;
            next.deployed_now();
            site.write(&mut state, &next, false);
            state
        }
        Outcome::Stuck(e) => {
            diags.error(summary, e);
            // Record what the router says serves now, never the failed release as live,
            // so that the next plan corrects it.
            let (mut state, mut status) = if prior.is_null() {
                (planned.clone(), Status::default())
            } else {
                (prior.clone(), before_status.clone())
            };
            match observe(site.router).await {
                Ok(observed) if prior.is_null() => status = Status::observed(&observed),
                Ok(observed) => status.weights = observed.split,
                Err(e) => tracing::warn!(error = %e, "what serves could not be read back"),
            }
            site.write(&mut state, &status, false);
            state
        }
    }
}

/// Reads the router again just before the first write: when it no longer routes as the
/// plan saw it (another apply, the rollback action or a hand edit moved traffic or cut
/// over since), the apply stops with an error on the router's attribute and writes nothing.
/// `before` is the refreshed prior state (none on create); `generation` the planned one.
/// The routing is the preflight's fresh read (ELBv2) and the records those read with the
/// lease when it was confirmed (else read here): they are returned for the release, which
/// then need not read them again.
async fn still_as_planned(
    site: &Site<'_>,
    before: Option<&Status>,
    to: Color,
    generation: i64,
    records: Option<[Record; 2]>,
    diags: &mut Diagnostics,
) -> Option<[Record; 2]> {
    let read = async {
        let split = site.router.routing().await?.split;
        let records = match records {
            Some(records) => records,
            None => site.router.records().await?,
        };
        Ok(Observed::new(split, records))
    };
    let now = match read.await {
        Ok(now) => now,
        Err(e) => {
            site.cannot_read(diags, &e);
            return None;
        }
    };
    let moved = match before {
        Some(before) => !now.split.same_shares(&before.weights),
        None => now.split.of(to) > 0,
    };
    // Generations only grow: a newer one is another cut-over since the plan (an older one
    // is a record lost, e.g. to an HAProxy reload, which the release writes again).
    if !moved && now.generation < generation {
        return Some(now.records);
    }
    let colour = |c: Color| {
        format!(
            "{c} {}% ({}, generation {})",
            now.split.in_percent().of(c),
            now.release(c).unwrap_or("no release"),
            now.records[c.index()]
                .generation
                .map_or("none".to_string(), |g| g.to_string())
        )
    };
    let planned_from = match before {
        Some(before) => {
            let at = before.weights.in_percent();
            format!(
                "blue {}% / green {}% at generation {}",
                at.blue,
                at.green,
                generation - 1
            )
        }
        None => format!("{} at 0% at generation {}", to, generation - 1),
    };
    diags.attribute_error(
        AttributePath::attr(site.router_attr),
        format!("The {} changed since this plan was made", site.noun),
        format!(
            "It routes {} / {} now (live generation {}); the plan was made from {planned_from}. \
             Another apply, the immutable_rollback action or a change by hand wrote it since.\n\
             Nothing was changed; traffic was not moved. Run terraform apply again: its plan \
             starts from what serves now. If another pipeline is releasing to this {}, let it \
             finish first.",
            colour(Color::Blue),
            colour(Color::Green),
            now.generation,
            site.noun
        ),
    );
    None
}

/// Whether the plan left the cut-over to apply (the release or the fleet was unknown).
fn planned_at_apply(planned: &Value) -> bool {
    planned.get("generation").is_some_and(Value::is_unknown)
}

/// Checks the router once, before anything is written, for what it would refuse; each
/// problem is an error on its attribute.
async fn preflight(site: &Site<'_>, diags: &mut Diagnostics) -> bool {
    let problems = match site.router.preflight().await {
        Ok(problems) => problems,
        Err(RouterError::NotFound(what)) => {
            site.not_found(diags, &what);
            return false;
        }
        Err(e) => {
            diags.attribute_error(
                site.attr_of(&e),
                format!("Cannot check the {}", site.checked),
                format!("{e}\nNothing was changed; traffic was not moved."),
            );
            return false;
        }
    };
    for (color, problem) in &problems {
        let attr = match color {
            Some(Color::Blue) => site.color_attrs[0],
            Some(Color::Green) => site.color_attrs[1],
            None => site.router_attr,
        };
        diags.attribute_error(
            AttributePath::attr(attr),
            site.problem_title,
            format!("{problem}. Nothing was changed; traffic was not moved."),
        );
    }
    problems.is_empty()
}

/// No colour flip: settings changed, or the router drifted. Traffic is put back on the
/// recorded colour (its fleet and record restored when the router lost them, then gated)
/// only when it is not there already.
async fn converge(
    site: &Site<'_>,
    rollout: &Rollout<'_>,
    args: &Args,
    prior: &Value,
    planned: &Value,
    diags: &mut Diagnostics,
) -> Value {
    let mut status = Status::decode(prior);
    let color = status.active.unwrap_or(Color::Blue);
    let mut state = planned.clone();
    let current = match site.router.weights().await {
        Ok(split) => split,
        Err(e) => {
            diags.error(format!("Cannot read the {}", site.noun), e.to_string());
            return prior.clone();
        }
    };
    let wanted = Split::all_on(color);
    if current.same_shares(&wanted) {
        // A new `release` without a flip: the configuration adopts a rollback.
        let adopted = prior.get("release") != planned.get("release");
        if adopted {
            if let Err(e) = end_rollback(site.router, color.other()).await {
                diags.warning("The rollback record was not cleared", e);
            }
        }
        status.weights = current;
        site.write(&mut state, &status, false);
        return state;
    }
    tracing::info!(%color, "the router drifted; restoring the recorded colour");
    let keeper = Keeper::of(site.leases, site.router);
    let keeper = keeper.router();
    let held = match lease::acquire(keeper).await {
        Ok(held) => held,
        Err(refused) => {
            site.refused(diags, &refused);
            return prior.clone();
        }
    };
    let restored = async {
        let not_restored = format!("Traffic was not restored to {color}");
        let records = match site.router.records().await {
            Ok(records) => records,
            Err(e) => {
                site.cannot_read(diags, &e);
                return prior.clone();
            }
        };
        let router = Fenced::new(keeper, &held, records);
        if let Err(e) = restore_fleet(&router, color, args, &status).await {
            diags.error(not_restored, e);
            return prior.clone();
        }
        if let Err(e) = rollout.check_color(color).await {
            diags.error(not_restored, e);
            let mut state = prior.clone();
            status.weights = current;
            site.write(&mut state, &status, false);
            return state;
        }
        match shift(&router, wanted).await {
            Ok(split) => {
                status.weights = split;
                site.write(&mut state, &status, false);
                state
            }
            Err(e) => {
                diags.error(not_restored, e.to_string());
                prior.clone()
            }
        }
    };
    lease::while_held(keeper, &held, restored).await
}

/// Clears the rollback action's mark on the colour it moved traffic away from, once the
/// configuration names the release that serves (the rollback is adopted).
async fn end_rollback(router: &dyn TrafficRouter, color: Color) -> Result<(), String> {
    let records = router.records().await.map_err(|e| e.to_string())?;
    let record = &records[color.index()];
    if record.rolled_back_at.is_none() {
        return Ok(());
    }
    let cleared = Record {
        rolled_back_at: None,
        ..record.clone()
    };
    router
        .set_record(color, &cleared)
        .await
        .map_err(|e| e.to_string())
}

/// Puts back what the router lost of the live colour (an HAProxy reload drops runtime
/// servers and their record): the missing `targets`, and the record.
async fn restore_fleet(
    router: &dyn TrafficRouter,
    color: Color,
    args: &Args,
    status: &Status,
) -> Result<(), String> {
    if let Some(targets) = &args.targets {
        let members = router.members(color).await.map_err(|e| e.to_string())?;
        let missing: Vec<_> = targets
            .iter()
            .filter(|t| !members.iter().any(|m| m.target.matches(t)))
            .cloned()
            .collect();
        router
            .add_members(color, &missing)
            .await
            .map_err(|e| e.to_string())?;
    }
    let record = Record {
        release: status.active_release.clone(),
        generation: Some(status.generation),
        rolled_back_at: None,
    };
    let records = router.records().await.map_err(|e| e.to_string())?;
    if records[color.index()] != record {
        router
            .set_record(color, &record)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Refreshes the split from the router; `Null` (gone from state) when what it routes is
/// gone. Traffic found on the other colour is drift, unless the rollback action moved it
/// there: then the records say so, and the state takes the rollback as it is.
pub async fn read(site: &Site<'_>, state: &Value, diags: &mut Diagnostics) -> Value {
    match site.router.weights().await {
        Ok(split) => {
            let mut state = state.clone();
            let mut status = Status::decode(&state);
            status.weights = split;
            if split.live().is_some() && split.live() != status.active {
                match site.router.records().await {
                    Ok(records) => match status.after_rollback(&records, split) {
                        Some(rolled_back) => status = rolled_back,
                        // Drift: the colours' releases as their records say.
                        // Drift: the colours' releases as their records say, and the
                        // live generation when newer (generations only grow; a colour
                        // flipped to by hand may record none).
                        None => {
                            for color in Color::BOTH {
                                status.set_release(color, records[color.index()].release.clone());
                            }
                            status.generation = status
                                .generation
                                .max(Observed::new(split, records).generation);
                        }
                    },
                    // Failing the refresh beats taking a rollback for drift, which the
                    // next apply would undo.
                    Err(e) => site.cannot_read(diags, &e),
                }
            }
            site.write(&mut state, &status, false);
            state
        }
        Err(RouterError::NotFound(what)) => {
            tracing::info!(%what, "gone; removing the deployment from state");
            Value::Null
        }
        Err(e) => {
            site.cannot_read(diags, &e);
            state.clone()
        }
    }
}

/// Leaves the router serving the active colour (never a black hole), removes the
/// standby's fleet unless `retain_previous`, and removes the records.
pub async fn delete(site: &Site<'_>, prior: &Value, diags: &mut Diagnostics) {
    let router = site.router;
    let status = Status::decode(prior);
    let active = status.active.unwrap_or(Color::Blue);
    match router.weights().await {
        Ok(split) if split.of(active.other()) > 0 => {
            if let Err(e) = shift(router, Split::all_on(active)).await {
                diags.error(
                    format!("Cannot leave the {} on the active colour", site.noun),
                    e.to_string(),
                );
                return;
            }
        }
        Ok(_) => {}
        Err(RouterError::NotFound(_)) => return,
        Err(e) => {
            site.cannot_read(diags, &e);
            return;
        }
    }
    let retain = prior
        .get("retain_previous")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    if !retain && model::targets(prior).is_some() {
        let standby = active.other();
        match router.members(standby).await {
            Ok(members) => {
                let targets: Vec<_> = members.into_iter().map(|m| m.target).collect();
                if let Err(e) = router.remove_members(standby, &targets).await {
                    diags.warning("The standby fleet was not removed", e.to_string());
                }
            }
            Err(e) => diags.warning("The standby fleet was not removed", e.to_string()),
        }
    }
    for color in Color::BOTH {
        match router.set_record(color, &Record::default()).await {
            Ok(()) | Err(RouterError::NotFound(_)) => {}
            Err(e) => diags.warning(
                "Records not removed",
                format!("{}: {e}", router.describe(color)),
            ),
        }
    }
}

/// Why an import found nothing to adopt.
pub enum ImportError {
    Router(RouterError),
    /// Neither colour takes traffic.
    NoLiveColour,
    /// The live colour records no release.
    NoRelease(Color),
}

/// The state of an existing deployment, read from the router into `state` (which holds
/// the resource's own arguments): the live colour from the weights, the releases and the
/// generation from the records, and, with `with_targets`, the live colour's members as
/// `targets`. `observed` is what the caller already read of the router (discovery reads
/// many listeners at once); `None` reads it now.
pub async fn import(
    site: &Site<'_>,
    mut state: Value,
    observed: Option<Observed>,
    with_targets: bool,
) -> Result<Value, ImportError> {
    let observed = match observed {
        Some(observed) => observed,
        None => observe(site.router).await.map_err(ImportError::Router)?,
    };
    let live = observed.live.ok_or(ImportError::NoLiveColour)?;
    let release = observed
        .release(live)
        .map(str::to_string)
        .ok_or(ImportError::NoRelease(live))?;
    set(&mut state, "release", release.as_str());
    set(&mut state, "auto_rollback", true);
    set(&mut state, "retain_previous", true);
    if with_targets {
        let members = site
            .router
            .members(live)
            .await
            .map_err(ImportError::Router)?;
        let targets = members
            .into_iter()
            .map(|m| {
                Value::Object(
                    [
                        ("id".to_string(), Value::from(m.target.id)),
                        (
                            "port".to_string(),
                            m.target.port.map_or(Value::Null, |p| i64::from(p).into()),
                        ),
                    ]
                    .into(),
                )
            })
            .collect();
        set(&mut state, "targets", Value::List(targets));
    }
    site.write(&mut state, &Status::observed(&observed), false);
    Ok(state)
}
