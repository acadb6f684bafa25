//! Alarms that fail an analysis while they are in `ALARM`, as CodeDeploy's do: CloudWatch
//! behind a small trait, so the analysis loop does not depend on the SDK.

/// An alarm as last read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alarm {
    pub name: String,
    /// `OK`, `ALARM` or `INSUFFICIENT_DATA`.
    pub state: String,
    pub reason: String,
}

impl Alarm {
    pub fn firing(&self) -> bool {
        self.state == "ALARM"
    }
}

#[tonic::async_trait]
pub trait AlarmSource: Send + Sync {
    /// The alarms of these names that exist (metric and composite alarms).
    async fn alarms(&self, names: &[String]) -> Result<Vec<Alarm>, String>;
}

#[tonic::async_trait]
impl AlarmSource for aws_sdk_cloudwatch::Client {
    /// DescribeAlarms, 100 names a call (its limit) and every page of each: an alarm on a
    /// later page is not missing. Each call ends at the operation's deadline or Ctrl-C too.
    async fn alarms(&self, names: &[String]) -> Result<Vec<Alarm>, String> {
        use aws_sdk_cloudwatch::types::AlarmType;
        let mut found = Vec::new();
        for chunk in names.chunks(100) {
            let mut pages = crate::aws::Pages::new("CloudWatch DescribeAlarms");
            let mut token = None;
            loop {
                let call = self
                    .describe_alarms()
                    .set_alarm_names(Some(chunk.to_vec()))
                    .alarm_types(AlarmType::MetricAlarm)
                    .alarm_types(AlarmType::CompositeAlarm)
                    .max_records(100)
                    .set_next_token(token)
                    .send();
                let answer = crate::budget::bounded("CloudWatch DescribeAlarms", call)
                    .await
                    .map_err(|cut| cut.to_string())?
                    .map_err(|e| {
                        format!(
                            "CloudWatch DescribeAlarms failed: {}",
                            crate::error_chain::one_line(&e)
                        )
                    })?;
                let alarm = |name: Option<&str>, state: Option<&str>, reason: Option<&str>| Alarm {
                    name: name.unwrap_or_default().to_string(),
                    state: state.unwrap_or("INSUFFICIENT_DATA").to_string(),
                    reason: reason.unwrap_or_default().to_string(),
                };
                found.extend(answer.metric_alarms().iter().map(|a| {
                    alarm(
                        a.alarm_name(),
                        a.state_value().map(|s| s.as_str()),
                        a.state_reason(),
                    )
                }));
                found.extend(answer.composite_alarms().iter().map(|a| {
                    alarm(
                        a.alarm_name(),
                        a.state_value().map(|s| s.as_str()),
                        a.state_reason(),
                    )
                }));
                token = pages.next(answer.next_token())?;
                if token.is_none() {
                    break;
                }
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::Arc;

    use acceptance_tests::app::{Behavior, TestApp};
    use acceptance_tests::proxy::{Exchange, FaultProxy, Hook, Reply};
    use aws_sdk_cloudwatch::config::retry::RetryConfig;
    use aws_sdk_cloudwatch::config::{BehaviorVersion, Region};

    use super::*;

    /// An endpoint that echoes the signed request shows its credentials to whoever reads
    /// the raw response; the error must not carry it.
    #[tokio::test]
    async fn an_error_never_carries_the_echoed_request_signature_or_token() {
        const TOKEN: &str = "SESSION-s3cret-t0ken";
        let app = TestApp::start("cw").await;
        app.set(Behavior::Echo(500));
        let config = aws_sdk_cloudwatch::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(aws_credential_types::Credentials::new(
                "AKIDTEST",
                "test",
                Some(TOKEN.into()),
                None,
                "test",
            ))
            .endpoint_url(app.url())
            .retry_config(RetryConfig::disabled())
            .build();
        let client = aws_sdk_cloudwatch::Client::from_conf(config);
        let err = client
            .alarms(&["high-error-rate".into()])
            .await
            .unwrap_err();
        assert!(app.saw_header("x-amz-security-token", TOKEN));
        assert!(
            err.starts_with("CloudWatch DescribeAlarms failed: "),
            "{err}"
        );
        assert!(!err.contains(TOKEN) && !err.contains("Signature="), "{err}");
    }

    #[tokio::test]
    async fn a_call_that_never_answers_ends_at_the_operations_deadline() {
        let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let config = aws_sdk_cloudwatch::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(aws_credential_types::Credentials::new(
                "test", "test", None, None, "test",
            ))
            .endpoint_url(format!("http://{}", hung.local_addr().unwrap()))
            .timeout_config(crate::aws::timeouts())
            .build();
        let client = aws_sdk_cloudwatch::Client::from_conf(config);
        let started = tokio::time::Instant::now();
        let budget = crate::budget::Budget::new(
            started + std::time::Duration::from_millis(500),
            tokio_util::sync::CancellationToken::new(),
            "the resource's `timeouts`",
        );
        let names = ["errors".to_string()];
        let error = crate::budget::within(budget, client.alarms(&names))
            .await
            .unwrap_err();
        assert!(
            started.elapsed() < std::time::Duration::from_millis(1500),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(
            error,
            "the time the resource's `timeouts` allows ran out while waiting for CloudWatch DescribeAlarms"
        );
    }

    /// A page of DescribeAlarms: asked for with this `NextToken` (none for the first), it
    /// holds these metric alarms (name, state) and names this next token.
    type Page = (
        Option<&'static str>,
        &'static [(&'static str, &'static str)],
        Option<&'static str>,
    );

    /// A CloudWatch stand-in answering DescribeAlarms from its pages.
    struct Paged(Vec<Page>);

    impl Hook for Paged {
        fn handle(&self, exchange: Exchange) -> Pin<Box<dyn Future<Output = Reply> + Send>> {
            let asked = exchange
                .form()
                .iter()
                .find(|(key, _)| key == "NextToken")
                .map(|(_, token)| token.clone());
            let page = self
                .0
                .iter()
                .find(|(token, ..)| token.map(str::to_string) == asked);
            let reply = match page {
                Some((_, alarms, next)) => {
                    let members: String = alarms
                        .iter()
                        .map(|(name, state)| format!("<member><AlarmName>{name}</AlarmName><StateValue>{state}</StateValue><StateReason>as set</StateReason></member>"))
                        .collect();
                    let next = next
                        .map(|t| format!("<NextToken>{t}</NextToken>"))
                        .unwrap_or_default();
                    Reply::xml(format!(
                        r#"<DescribeAlarmsResponse xmlns="http://monitoring.amazonaws.com/doc/2010-08-01/"><DescribeAlarmsResult><MetricAlarms>{members}</MetricAlarms><CompositeAlarms/>{next}</DescribeAlarmsResult><ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></DescribeAlarmsResponse>"#
                    ))
                }
                None => Reply::error(400, "Sender", "InvalidNextToken", "no such page"),
            };
            Box::pin(async move { reply })
        }
    }

    fn cloudwatch(pages: Vec<Page>) -> (FaultProxy, aws_sdk_cloudwatch::Client) {
        let proxy = FaultProxy::start_with("http://127.0.0.1:9", Arc::new(Paged(pages)));
        let config = aws_sdk_cloudwatch::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(aws_credential_types::Credentials::new(
                "test", "test", None, None, "test",
            ))
            .endpoint_url(proxy.endpoint())
            .build();
        (proxy, aws_sdk_cloudwatch::Client::from_conf(config))
    }

    fn names(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[tokio::test]
    async fn an_alarm_on_the_second_page_is_found() {
        let (proxy, client) = cloudwatch(vec![
            (None, &[("errors", "OK")], Some("page-2")),
            (Some("page-2"), &[("latency", "ALARM")], None),
        ]);
        let alarms = client.alarms(&names(&["errors", "latency"])).await.unwrap();
        let read: Vec<(&str, bool)> = alarms
            .iter()
            .map(|a| (a.name.as_str(), a.firing()))
            .collect();
        assert_eq!(read, [("errors", false), ("latency", true)]);
        assert_eq!(proxy.calls_of("DescribeAlarms"), 2);
    }

    #[tokio::test]
    async fn a_repeated_page_token_is_refused() {
        let (proxy, client) = cloudwatch(vec![
            (None, &[("errors", "OK")], Some("page-2")),
            (Some("page-2"), &[("latency", "OK")], Some("page-2")),
        ]);
        let error = client
            .alarms(&names(&["errors", "latency"]))
            .await
            .unwrap_err();
        assert!(
            error.contains(
                "CloudWatch DescribeAlarms returned a page token it had already returned"
            ),
            "{error}"
        );
        assert_eq!(proxy.calls_of("DescribeAlarms"), 2);
    }
}
