//! A second writer on one listener: the live listener decides, not the state. A plan made
//! before another pipeline cut over is refused at apply before anything is written, and
//! the next plan lands the release on the colour that is standby now. Under load, no
//! request fails. Two pipelines started together take turns through the lease: one
//! releases, the other fails before any write, on a listener and on an HAProxy backend.

use std::time::Duration;

use acceptance_tests::app::TestApp;
use acceptance_tests::checks::StateCheck;
use acceptance_tests::elb::BlueGreenFixture;
use acceptance_tests::haproxy::{Haproxy, HaproxySettings};
use acceptance_tests::hcl;
use acceptance_tests::load::{Load, LoadSettings};
use acceptance_tests::s3::Bucket;
use acceptance_tests::terraform::{clis, Needs, On, Terraform};
use acceptance_tests::traffic::{self, flat, fleet_config, v1_live, Traffic, TAIL};
use acceptance_tests::workspace::{Step, Workspace};
use serde_json::json;

const DEPLOYMENT: &str = "immutable_bluegreen_deployment.app";

#[tokio::test(flavor = "multi_thread")]
async fn a_plan_made_before_another_pipeline_cut_over_is_refused_before_any_write() {
    for tf in clis("writers_stale_plan", Needs::Any, On::Newest) {
        let (fx, ws, v1) = v1_live(&tf, "stale-plan").await;
        let (v2, v3) = (TestApp::start("v2").await, TestApp::start("v3").await);
        // Pipeline A plans v2 onto blue, the standby colour.
        ws.write_config(&fleet_config(&fx, "v2", &v2, ""));
        let plan = ws
            .terraform(&["plan", "-no-color", "-input=false", "-out=tfplan"], &[])
            .await;
        assert!(plan.success, "{}", plan.text());
        // Pipeline B, from a copy of the same state, releases v3 onto blue first.
        let other = Workspace::new(&tf, "stale-plan-b");
        std::fs::copy(
            ws.dir().join("terraform.tfstate"),
            other.dir().join("terraform.tfstate"),
        )
        .unwrap();
        let load = Traffic::start(&fx, Duration::from_secs(40), None).await;
        other
            .step(Step {
                config: fleet_config(&fx, "v3", &v3, ""),
                ..Step::default()
            })
            .await;
        assert_eq!(fx.weights(&fx.listener_arn).await, traffic::weights(100, 0));
        let blue_before = fx.targets(&fx.blue_tg_arn).await;
        // Pipeline A applies its plan: blue serves now, so it must write nothing.
        let applied = ws
            .terraform(&["apply", "-no-color", "-input=false", "tfplan"], &[])
            .await;
        let text = flat(&applied.text());
        assert!(!applied.success, "{text}");
        assert!(
            text.contains("The listener changed since this plan was made")
                && text.contains("Nothing was changed; traffic was not moved"),
            "{text}"
        );
        assert!(text.contains("blue 100% (v3, generation 2)"), "{text}");
        assert_eq!(fx.weights(&fx.listener_arn).await, traffic::weights(100, 0));
        assert_eq!(
            fx.targets(&fx.blue_tg_arn).await,
            blue_before,
            "nothing registered into or removed from the colour that serves"
        );
        // Its next plan starts from what serves: v2 lands on green, now standby.
        ws.step(Step {
            config: fleet_config(&fx, "v2", &v2, ""),
            state_checks: vec![
                StateCheck::Equals(DEPLOYMENT, "active_color", json!("green")),
                StateCheck::Equals(DEPLOYMENT, "active_release", json!("v2")),
                StateCheck::Equals(DEPLOYMENT, "previous_release", json!("v3")),
            ],
            ..Step::default()
        })
        .await;
        let seen = load.finish(TAIL).await;
        seen.assert_none_failed();
        seen.print_line(
            "a-stale-plan-after-another-pipeline",
            "writers::a_plan_made_before_another_pipeline_cut_over_is_refused_before_any_write",
        );
        drop((v1, v2, v3));
    }
}

/// How many pairs of applies race: a few in CI, 20 for the figure in docs/reliability.md
/// (`IMMUTABLE_LEASE_PAIRS=20`).
fn pairs() -> usize {
    std::env::var("IMMUTABLE_LEASE_PAIRS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(3)
}

/// What one pair of racing applies did.
#[derive(Default)]
struct Race {
    both_moved: usize,
    refused_by_lease: usize,
    refused_by_plan_check: usize,
}

impl Race {
    /// Applies `a` and `b` together; returns the text of the one that succeeded, and
    /// which did. Both workspaces then get the winner's state.
    async fn run(&mut self, a: (&Workspace, String), b: (&Workspace, String)) -> (bool, bool) {
        a.0.write_config(&a.1);
        b.0.write_config(&b.1);
        let args = ["apply", "-auto-approve", "-no-color", "-input=false"];
        let owner = |label: &str| [("IMMUTABLE_LEASE_OWNER".to_string(), label.to_string())];
        let (owner_a, owner_b) = (owner("pipeline-a"), owner("pipeline-b"));
        let (ra, rb) = tokio::join!(
            a.0.terraform(&args, &owner_a),
            b.0.terraform(&args, &owner_b)
        );
        if ra.success && rb.success {
            self.both_moved += 1;
        }
        for (loser, winner) in [(&ra, "pipeline-b"), (&rb, "pipeline-a")]
            .into_iter()
            .filter(|(r, _)| !r.success)
        {
            let text = flat(&loser.text());
            assert!(
                text.contains("Nothing was changed; traffic was not moved"),
                "{text}"
            );
            if text.contains("Another writer is releasing to this") {
                assert!(text.contains("holds its lease until"), "{text}");
                assert!(text.contains(&format!("owner {winner})")), "{text}");
                self.refused_by_lease += 1;
            } else {
                assert!(text.contains("changed since this plan was made"), "{text}");
                self.refused_by_plan_check += 1;
            }
        }
        let (winner, loser) = if ra.success { (a.0, b.0) } else { (b.0, a.0) };
        std::fs::copy(
            winner.dir().join("terraform.tfstate"),
            loser.dir().join("terraform.tfstate"),
        )
        .unwrap();
        (ra.success, rb.success)
    }
}

/// Pairs of applies racing on one listener under load, from two states; `bucket` keeps
/// the leases in S3 when given. Every pair moves traffic once, no request fails, and the
/// winner's state names its release.
async fn race_on_a_listener(
    tf: &Terraform,
    name: &str,
    bucket: Option<&Bucket>,
) -> (BlueGreenFixture, Race) {
    let (fx, ws, v1) = v1_live(tf, name).await;
    let other = Workspace::new(tf, &format!("{name}-b"));
    std::fs::copy(
        ws.dir().join("terraform.tfstate"),
        other.dir().join("terraform.tfstate"),
    )
    .unwrap();
    let (a, b) = (TestApp::start("a").await, TestApp::start("b").await);
    let config = |release: String, app: &TestApp| {
        let config = fleet_config(&fx, &release, app, "");
        match bucket {
            Some(bucket) => in_s3(config, bucket),
            None => config,
        }
    };
    let pairs = pairs();
    let load = Traffic::start(&fx, Duration::from_secs(30 * pairs as u64), None).await;
    let mut race = Race::default();
    for i in 0..pairs {
        let (a_won, _) = race
            .run(
                (&ws, config(format!("a{i}"), &a)),
                (&other, config(format!("b{i}"), &b)),
            )
            .await;
        let live = fx.weights(&fx.listener_arn).await;
        assert!(
            live == traffic::weights(100, 0) || live == traffic::weights(0, 100),
            "all traffic on one colour after pair {i}: {live:?}"
        );
        let winner = if a_won { &ws } else { &other };
        let release = format!("{}{i}", if a_won { "a" } else { "b" });
        assert!(
            winner
                .state()
                .await
                .to_string()
                .contains(&format!("\"active_release\":\"{release}\"")),
            "the winner's state names its release {release}"
        );
    }
    let seen = load.finish(TAIL).await;
    println!(
        "lease-pairs: {name} pairs={pairs} both_moved={} refused_by_lease={} refused_by_plan_check={} requests={} failed={}",
        race.both_moved,
        race.refused_by_lease,
        race.refused_by_plan_check,
        seen.report.total(),
        seen.report.failed()
    );
    assert_eq!(
        race.both_moved, 0,
        "pairs in which both applies moved traffic"
    );
    seen.assert_none_failed();
    drop((v1, a, b));
    (fx, race)
}

#[tokio::test(flavor = "multi_thread")]
async fn two_pipelines_started_together_on_one_listener_move_traffic_once() {
    for tf in clis("writers_lease_pairs", Needs::Any, On::Newest) {
        let (fx, _) = race_on_a_listener(&tf, "lease-pairs", None).await;
        assert!(
            !fx.tags(&fx.listener_arn).await.contains_key(LEASE_TAG),
            "every lease given back"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_pipelines_started_together_on_one_haproxy_backend_move_traffic_once() {
    for tf in clis("writers_lease_pairs_haproxy", Needs::Any, On::Newest) {
        let proxy = Haproxy::start(HaproxySettings::default());
        let config = |release: &str, app: &TestApp| {
            hcl::haproxy(
                &proxy.runtime_api(),
                proxy.backend(),
                release,
                &[app.port()],
                "",
            )
        };
        let v1 = TestApp::start("v1").await;
        let ws = Workspace::new(&tf, "hx-lease-pairs");
        ws.step(Step {
            config: config("v1", &v1),
            ..Step::default()
        })
        .await;
        let other = Workspace::new(&tf, "hx-lease-pairs-b");
        std::fs::copy(
            ws.dir().join("terraform.tfstate"),
            other.dir().join("terraform.tfstate"),
        )
        .unwrap();
        let (a, b) = (TestApp::start("a").await, TestApp::start("b").await);
        let pairs = pairs();
        let load = Load::start(
            &format!("{}/", proxy.frontend_url()),
            LoadSettings {
                workers: 4,
                rate_per_second: 150.0,
                max_duration: Duration::from_secs(30 * pairs as u64),
                ..LoadSettings::default()
            },
        );
        let mut race = Race::default();
        for i in 0..pairs {
            let (a_won, _) = race
                .run(
                    (&ws, config(&format!("a{i}"), &a)),
                    (&other, config(&format!("b{i}"), &b)),
                )
                .await;
            let (blue, green) = proxy.weights_by_colour();
            assert!(
                (blue == 0) != (green == 0),
                "all traffic on one colour after pair {i}: blue {blue} / green {green}"
            );
            let winner = if a_won { &ws } else { &other };
            let release = format!("{}{i}", if a_won { "a" } else { "b" });
            assert!(
                winner
                    .state()
                    .await
                    .to_string()
                    .contains(&format!("\"active_release\":\"{release}\"")),
                "the winner's state names its release {release}"
            );
        }
        tokio::time::sleep(TAIL).await;
        let report = load.stop().await;
        println!(
            "lease-pairs: backend pairs={pairs} both_moved={} refused_by_lease={} refused_by_plan_check={} requests={} failed={}",
            race.both_moved,
            race.refused_by_lease,
            race.refused_by_plan_check,
            report.total(),
            report.failed()
        );
        assert_eq!(
            race.both_moved, 0,
            "pairs in which both applies moved traffic"
        );
        assert_eq!(report.failed(), 0, "{report}");
        drop((v1, a, b));
    }
}

const LEASE_TAG: &str = "immutable:lease";

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lease_left_by_a_dead_holder_refuses_until_broken_or_expired() {
    for tf in clis("writers_lease_left", Needs::Any, On::Newest) {
        let (fx, ws, v1) = v1_live(&tf, "lease-left").await;
        assert!(
            !fx.tags(&fx.listener_arn).await.contains_key(LEASE_TAG),
            "a release gives its lease back"
        );
        let (v2, v3) = (TestApp::start("v2").await, TestApp::start("v3").await);
        // A pipeline killed while it held the lease, an hour from expiring.
        let left = format!(
            "00dead00beef0000;{};4242;{};ci-runner-9;https://ci.example/job/77",
            unix_now() + 3600,
            unix_now() - 60
        );
        fx.add_tags(&fx.listener_arn, &[(LEASE_TAG, &left)]).await;
        ws.write_config(&fleet_config(&fx, "v2", &v2, ""));
        let refused = ws
            .terraform(
                &["apply", "-auto-approve", "-no-color", "-input=false"],
                &[],
            )
            .await;
        let text = flat(&refused.text());
        assert!(!refused.success, "{text}");
        for expected in [
            "Another writer is releasing to this listener",
            "process 4242 on ci-runner-9",
            "owner https://ci.example/job/77",
            "Nothing was changed; traffic was not moved",
            &format!(
                "aws elbv2 remove-tags --resource-arns {} --tag-keys {LEASE_TAG}",
                fx.listener_arn
            ),
        ] {
            assert!(text.contains(expected), "{expected:?} in {text}");
        }
        assert_eq!(fx.weights(&fx.listener_arn).await, traffic::weights(0, 100));
        assert_eq!(fx.tags(&fx.listener_arn).await.get(LEASE_TAG), Some(&left));

        // Broken as the error says: the release goes through.
        fx.remove_tags(&fx.listener_arn, &[LEASE_TAG]).await;
        ws.step(Step {
            config: fleet_config(&fx, "v2", &v2, ""),
            state_checks: vec![StateCheck::Equals(
                DEPLOYMENT,
                "active_release",
                json!("v2"),
            )],
            ..Step::default()
        })
        .await;

        // A lease past its expiry is taken over without breaking it.
        let expired = format!(
            "00dead00beef0001;{};4242;{};ci-runner-9;",
            unix_now() - 1,
            unix_now() - 600
        );
        fx.add_tags(&fx.listener_arn, &[(LEASE_TAG, &expired)])
            .await;
        ws.step(Step {
            config: fleet_config(&fx, "v3", &v3, ""),
            state_checks: vec![StateCheck::Equals(
                DEPLOYMENT,
                "active_release",
                json!("v3"),
            )],
            ..Step::default()
        })
        .await;
        assert!(!fx.tags(&fx.listener_arn).await.contains_key(LEASE_TAG));
        drop((v1, v2, v3));
    }
}

/// `fleet_config` with the provider keeping leases in `bucket` (moto's S3).
fn in_s3(config: String, bucket: &Bucket) -> String {
    config
        .replacen(
            "max_retries = 1",
            &format!(
                "max_retries = 1\n  lease {{\n    s3_bucket = \"{}\"\n  }}",
                bucket.name
            ),
            1,
        )
        .replacen(
            "  endpoints {\n",
            &format!(
                "  endpoints {{\n    s3 = \"{}\"\n",
                acceptance_tests::moto::shared().endpoint()
            ),
            1,
        )
}

#[tokio::test(flavor = "multi_thread")]
async fn with_leases_in_s3_two_pipelines_started_together_move_traffic_once() {
    for tf in clis("writers_lease_pairs_s3", Needs::Any, On::Newest) {
        let bucket = Bucket::create("lease-s3").await;
        let (fx, _) = race_on_a_listener(&tf, "lease-s3", Some(&bucket)).await;
        assert_eq!(
            bucket.keys().await,
            Vec::<String>::new(),
            "every lease given back"
        );
        assert!(
            !fx.tags(&fx.listener_arn).await.contains_key(LEASE_TAG),
            "no lease beside the records when they are kept in S3"
        );
    }
}

/// A self-registering fleet's standby service is updated before the deployment: with
/// `ephemeral "immutable_lease"` (Terraform 1.10+) the run holds the listener's lease from
/// its start. While the standby update runs, a second pipeline's release is refused naming
/// the holder and Terraform renews the lease; the run's own deployment then releases under
/// the same lease, and the end of the run gives it back.
#[tokio::test(flavor = "multi_thread")]
async fn a_lease_held_open_for_the_run_refuses_another_writer_and_lets_its_own_release_through() {
    for tf in clis("writers_ephemeral_lease", Needs::Since(1, 10), On::Newest) {
        let (fx, ws, v1) = v1_live(&tf, "ephemeral-lease").await;
        let (v2, v3) = (TestApp::start("v2").await, TestApp::start("v3").await);
        let other = Workspace::new(&tf, "ephemeral-lease-b");
        std::fs::copy(
            ws.dir().join("terraform.tfstate"),
            other.dir().join("terraform.tfstate"),
        )
        .unwrap();
        // Bad ARNs are refused at validate, naming the attribute.
        let lease_config = |listener: &str, green: &str| {
            hcl::provider(&fx.endpoint, "")
                + &format!(
                    "ephemeral \"immutable_lease\" \"web\" {{\n  listener_arn = \"{listener}\"\n  blue_target_group_arn = \"{}\"\n  green_target_group_arn = \"{green}\"\n}}\n",
                    fx.blue_tg_arn
                )
        };
        other
            .assert_refused_at_validate(&[
                (
                    lease_config(&fx.listener_arn, &fx.blue_tg_arn),
                    "green_target_group_arn must name a different target group",
                ),
                (
                    lease_config("web", &fx.green_tg_arn),
                    r"listener_arn.*arn:aws:elasticloadbalancing:us-west-2:123456789012:listener/app/",
                ),
            ])
            .await;
        let updating = ws.dir().join("standby-updating");
        let config = fleet_config(
            &fx,
            "v2",
            &v2,
            "  depends_on = [terraform_data.standby_service]\n",
        ) + &format!(
            r#"
ephemeral "immutable_lease" "web" {{
  listener_arn           = "{}"
  blue_target_group_arn  = "{}"
  green_target_group_arn = "{}"
}}

# The standby service's update, which the fleet's members register from.
resource "terraform_data" "standby_service" {{
  input      = "v2"
  depends_on = [ephemeral.immutable_lease.web]

  provisioner "local-exec" {{
    command = "touch {} && sleep 40"
  }}
}}
"#,
            fx.listener_arn,
            fx.blue_tg_arn,
            fx.green_tg_arn,
            updating.display()
        );
        ws.write_config(&config);
        let load = Traffic::start(&fx, Duration::from_secs(90), None).await;
        let run = ws.spawn(&["apply", "-auto-approve", "-no-color", "-input=false"]);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !updating.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "the standby update never started"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // A second pipeline is refused naming the holder: by its deployment's lease, and
        // (with the same configuration as the first) already when it opens its own.
        let lease_block = &config[config.find("ephemeral \"immutable_lease\"").unwrap()..];
        let lease_block = &lease_block[..lease_block.find("}\n").unwrap() + 2];
        let second = fleet_config(&fx, "v3", &v3, "");
        for (second, refused_by) in [
            (second.clone(), DEPLOYMENT),
            (second + lease_block, "ephemeral.immutable_lease.web"),
        ] {
            other.write_config(&second);
            let refused = other
                .terraform(
                    &["apply", "-auto-approve", "-no-color", "-input=false"],
                    &[],
                )
                .await;
            let text = flat(&refused.text());
            assert!(!refused.success, "{text}");
            assert!(
                text.contains("Another writer is releasing to this listener")
                    && text.contains("holds its lease until")
                    && text.contains("Nothing was changed; traffic was not moved")
                    && text.contains(&format!("with {refused_by},")),
                "{text}"
            );
        }
        assert_eq!(
            fx.weights(&fx.listener_arn).await,
            traffic::weights(0, 100),
            "the refused pipeline moved nothing"
        );
        // Terraform renews the lease (every 30 s) while the run goes on.
        let expires = || async {
            let tags = fx.tags(&fx.listener_arn).await;
            let lease = tags
                .get("immutable:lease")
                .expect("the run holds the lease");
            lease.split(';').nth(1).unwrap().to_string()
        };
        let opened = expires().await;
        let deadline = std::time::Instant::now() + Duration::from_secs(45);
        while expires().await == opened {
            assert!(
                std::time::Instant::now() < deadline,
                "the lease was never renewed"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let out = run.wait_with_output().await.unwrap();
        let applied = flat(&format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
        assert!(out.status.success(), "{applied}");
        assert_eq!(fx.weights(&fx.listener_arn).await, traffic::weights(100, 0));
        assert!(
            !fx.tags(&fx.listener_arn)
                .await
                .contains_key("immutable:lease"),
            "the end of the run gave the lease back"
        );
        let seen = load.finish(TAIL).await;
        seen.assert_none_failed();
        drop((v1, v2, v3));
    }
}
