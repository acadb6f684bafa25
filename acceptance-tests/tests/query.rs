//! Discovery (Terraform 1.14+): `terraform query` finds the listeners that are blue/green
//! deployments, and `-generate-config-out` writes import and resource blocks that a plan
//! imports with no change. Older Terraform has no `query` command.

use acceptance_tests::alb;
use acceptance_tests::app::TestApp;
use acceptance_tests::elb::BlueGreenFixture;
use acceptance_tests::hcl;
use acceptance_tests::terraform::{clis, Needs, On};

/// `terraform query` and generated configuration.
const QUERY: Needs = Needs::Since(1, 14);
use acceptance_tests::workspace::{Step, Workspace};

#[tokio::test(flavor = "multi_thread")]
async fn query_finds_three_deployments_and_generates_config_that_imports_unchanged() {
    for tf in clis("query_generate", QUERY, On::Each) {
        let app = TestApp::start("v1").await;
        let mut fixtures = Vec::new();
        for i in 0..3 {
            fixtures.push(BlueGreenFixture::create(alb::shared(), &format!("query-{i}")).await);
        }
        // The fixtures of one run share a tag, so that the deployments of other tests on
        // the same moto are not found.
        let run = fixtures[0].name.clone();
        let ws = Workspace::new(&tf, "query");
        let provider = hcl::provider(&fixtures[0].endpoint, "");
        let resources: String = fixtures
            .iter()
            .enumerate()
            .map(|(i, fx)| {
                hcl::fleet(
                    fx,
                    &format!("app{i}"),
                    &format!("v{}", i + 1),
                    app.port(),
                    1,
                    "",
                )
            })
            .collect();
        ws.step(Step {
            config: provider.clone() + &resources,
            ..Step::default()
        })
        .await;
        for fx in &fixtures {
            for tg in [&fx.blue_tg_arn, &fx.green_tg_arn] {
                fx.add_tags(tg, &[("query-run", &run)]).await;
            }
        }
        let mut weights = Vec::new();
        for fx in &fixtures {
            weights.push(fx.weights(&fx.listener_arn).await);
        }
        for i in 0..3 {
            let out = ws
                .terraform(
                    &[
                        "state",
                        "rm",
                        &format!("immutable_bluegreen_deployment.app{i}"),
                    ],
                    &[],
                )
                .await;
            assert!(out.success, "{}", out.text());
        }
        ws.write_config(&provider);
        let list = |filters: &str| {
            std::fs::write(
                ws.dir().join("find.tfquery.hcl"),
                format!(
                    "list \"immutable_bluegreen_deployment\" \"found\" {{\n  provider         = immutable\n  include_resource = true\n  config {{\n{filters}    tags = {{ query-run = \"{run}\" }}\n  }}\n}}\n"
                ),
            )
            .unwrap()
        };

        // One load balancer's listing is one DescribeListeners and one DescribeTags: each
        // found listener is imported from what they read, with no call of its own.
        list(&format!(
            "    load_balancer_arn = \"{}\"\n",
            fixtures[0].lb_arn
        ));
        let proxy = alb::shared().proxy();
        proxy.reset_calls();
        let one = ws.terraform(&["query", "-no-color"], &[]).await;
        assert!(one.success, "{}", one.text());
        let path = fixtures[0].listener_arn.split_once(":listener/").unwrap().1;
        assert!(one.text().contains(path), "{}", one.text());
        assert_eq!(
            proxy.calls(),
            [
                ("DescribeListeners".to_string(), 1),
                ("DescribeTags".to_string(), 1)
            ]
            .into(),
            "the calls of one load balancer's listing"
        );

        list("");

        let query = ws.terraform(&["query", "-no-color"], &[]).await;
        let text = query.text();
        assert!(query.success, "{text}");
        println!("terraform query:\n{text}");
        for (i, fx) in fixtures.iter().enumerate() {
            let path = fx.listener_arn.split_once(":listener/").unwrap().1;
            let line = text
                .lines()
                .find(|l| l.contains(path))
                .unwrap_or_else(|| panic!("{path} not found:\n{text}"));
            assert!(
                line.contains(&format!("v{} serves on green", i + 1)),
                "{line}"
            );
        }

        let generate = ws
            .terraform(
                &["query", "-no-color", "-generate-config-out=generated.tf"],
                &[],
            )
            .await;
        assert!(generate.success, "{}", generate.text());
        let generated = std::fs::read_to_string(ws.dir().join("generated.tf")).unwrap();
        println!("generated.tf:\n{generated}");
        assert_eq!(
            generated.matches("\nimport {").count()
                + usize::from(generated.starts_with("import {")),
            3,
            "{generated}"
        );
        assert_eq!(
            generated
                .matches("resource \"immutable_bluegreen_deployment\"")
                .count(),
            3,
            "{generated}"
        );
        for fx in &fixtures {
            assert!(generated.contains(&fx.listener_arn), "{generated}");
        }
        // What a person would write: no computed attribute, no default.
        for absent in [
            "active_color",
            "traffic_weights",
            "generation",
            "auto_rollback",
            "deployed_at",
        ] {
            assert!(!generated.contains(absent), "{absent} in:\n{generated}");
        }

        let plan = ws
            .terraform(&["plan", "-no-color", "-input=false"], &[])
            .await;
        let text = plan.text();
        assert!(plan.success, "{text}");
        let summary = text
            .lines()
            .find(|l| l.starts_with("Plan:"))
            .unwrap_or_default();
        println!("after generating: {summary}");
        assert!(
            text.contains("Plan: 3 to import, 0 to add, 0 to change, 0 to destroy."),
            "{text}"
        );

        let apply = ws
            .terraform(
                &["apply", "-no-color", "-input=false", "-auto-approve"],
                &[],
            )
            .await;
        assert!(apply.success, "{}", apply.text());
        let again = ws
            .terraform(
                &["plan", "-no-color", "-input=false", "-detailed-exitcode"],
                &[],
            )
            .await;
        assert_eq!(
            again.code,
            Some(0),
            "imported deployments plan no change:\n{}",
            again.text()
        );
        for (fx, before) in fixtures.iter().zip(&weights) {
            assert_eq!(
                &fx.weights(&fx.listener_arn).await,
                before,
                "importing moved no traffic"
            );
        }
        ws.destroy().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_list_block_with_a_bad_load_balancer_arn_is_refused_with_its_attribute() {
    for tf in clis("query_validate", QUERY, On::Each) {
        let ws = Workspace::new(&tf, "query-validate");
        ws.write_config(&hcl::provider("http://127.0.0.1:1", ""));
        std::fs::write(
            ws.dir().join("find.tfquery.hcl"),
            "list \"immutable_bluegreen_deployment\" \"found\" {\n  provider = immutable\n  config {\n    load_balancer_arn = \"my-alb\"\n  }\n}\n",
        )
        .unwrap();
        let out = ws.terraform(&["query", "-no-color"], &[]).await;
        let text = out.text();
        assert!(!out.success, "{text}");
        assert!(text.contains("load_balancer_arn"), "{text}");
        assert!(text.contains("is not an ELB loadbalancer ARN"), "{text}");
    }
}
