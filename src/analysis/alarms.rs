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
                        aws_sdk_cloudwatch::error::DisplayErrorContext(&e)
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
