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
    async fn alarms(&self, names: &[String]) -> Result<Vec<Alarm>, String> {
        use aws_sdk_cloudwatch::types::AlarmType;
        let mut found = Vec::new();
        // DescribeAlarms takes at most 100 names.
        for chunk in names.chunks(100) {
            let answer = self
                .describe_alarms()
                .set_alarm_names(Some(chunk.to_vec()))
                .alarm_types(AlarmType::MetricAlarm)
                .alarm_types(AlarmType::CompositeAlarm)
                .send()
                .await
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
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use acceptance_tests::app::{Behavior, TestApp};
    use aws_sdk_cloudwatch::config::retry::RetryConfig;
    use aws_sdk_cloudwatch::config::{BehaviorVersion, Region};

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
}
