//! The XML the emulator writes (the answers it gives itself, in AWS's shape) and patches
//! (moto's DescribeTargetGroups, whose `LoadBalancerArns` moto does not keep up to date).
//!
//! moto's answers are machine-written, without attributes on the elements the emulator
//! reads, so a small scanner over tags is enough; nothing here parses arbitrary XML.

use std::ops::Range;

use crate::proxy::{request_id, xml_escape};

const NAMESPACE: &str = "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/";

/// `<{Action}Response><{Action}Result>{result}</{Action}Result><ResponseMetadata>...`
pub fn response(action: &str, result: &str) -> String {
    let result = if result.is_empty() {
        format!("<{action}Result/>")
    } else {
        format!("<{action}Result>{result}</{action}Result>")
    };
    format!(
        r#"<{action}Response xmlns="{NAMESPACE}">{result}<ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></{action}Response>"#,
        request_id()
    )
}

/// One `TargetHealthDescriptions` member of DescribeTargetHealth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Described {
    pub id: String,
    pub port: u16,
    pub health_check_port: u16,
    pub state: &'static str,
    pub reason: Option<&'static str>,
    pub description: Option<String>,
}

pub fn target_health(described: &[Described]) -> String {
    let mut members = String::new();
    for d in described {
        let mut health = format!("<State>{}</State>", d.state);
        if let Some(reason) = d.reason {
            health.push_str(&format!("<Reason>{reason}</Reason>"));
        }
        if let Some(description) = &d.description {
            health.push_str(&format!(
                "<Description>{}</Description>",
                xml_escape(description)
            ));
        }
        members.push_str(&format!(
            "<member><Target><Id>{}</Id><Port>{}</Port></Target><HealthCheckPort>{}</HealthCheckPort><TargetHealth>{health}</TargetHealth></member>",
            xml_escape(&d.id),
            d.port,
            d.health_check_port
        ));
    }
    let list = if members.is_empty() {
        "<TargetHealthDescriptions/>".to_string()
    } else {
        format!("<TargetHealthDescriptions>{members}</TargetHealthDescriptions>")
    };
    response("DescribeTargetHealth", &list)
}

/// The text of the first `<tag>` element, unescaped.
pub fn first_text(xml: &str, tag: &str) -> Option<String> {
    let range = elements(xml, tag).into_iter().next()?;
    inner(xml, range, tag).map(unescape)
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// The ranges of the outermost `<tag>...</tag>` (or `<tag/>`) elements in `xml`, in order.
fn elements(xml: &str, tag: &str) -> Vec<Range<usize>> {
    let (open, close, empty) = (format!("<{tag}>"), format!("</{tag}>"), format!("<{tag}/>"));
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    let mut at = 0;
    while let Some(found) = xml[at..].find('<') {
        let pos = at + found;
        let rest = &xml[pos..];
        if rest.starts_with(&open) {
            if depth == 0 {
                start = pos;
            }
            depth += 1;
            at = pos + open.len();
        } else if rest.starts_with(&close) && depth > 0 {
            depth -= 1;
            at = pos + close.len();
            if depth == 0 {
                out.push(start..at);
            }
        } else if rest.starts_with(&empty) && depth == 0 {
            at = pos + empty.len();
            out.push(pos..at);
        } else {
            at = pos + 1;
        }
    }
    out
}

/// The content of an element found by [`elements`] (`None` for `<tag/>`).
fn inner<'a>(xml: &'a str, range: Range<usize>, tag: &str) -> Option<&'a str> {
    let element = &xml[range];
    let content = element.strip_prefix(&format!("<{tag}>"))?;
    content.strip_suffix(&format!("</{tag}>"))
}

/// The target groups of a DescribeTargetGroups answer with the load balancers moto lists for
/// each (a superset: moto adds on CreateListener and CreateRule, and never removes).
pub fn target_groups(xml: &str) -> Vec<(String, Vec<String>)> {
    members_of_groups(xml)
        .into_iter()
        .filter_map(|member| {
            let text = &xml[member];
            let arn = first_text(text, "TargetGroupArn")?;
            let listed = elements(text, "LoadBalancerArns")
                .into_iter()
                .filter_map(|r| inner(text, r, "LoadBalancerArns"))
                .flat_map(|list| {
                    elements(list, "member")
                        .into_iter()
                        .filter_map(|r| inner(list, r, "member").map(unescape))
                        .collect::<Vec<_>>()
                })
                .collect();
            Some((arn, listed))
        })
        .collect()
}

/// The `<member>` elements of the first `<TargetGroups>` list.
fn members_of_groups(xml: &str) -> Vec<Range<usize>> {
    let Some(list) = elements(xml, "TargetGroups").into_iter().next() else {
        return Vec::new();
    };
    let Some(content) = inner(xml, list.clone(), "TargetGroups") else {
        return Vec::new();
    };
    let offset = list.start + "<TargetGroups>".len();
    elements(content, "member")
        .into_iter()
        .map(|r| r.start + offset..r.end + offset)
        .collect()
}

/// The answer with each group's `LoadBalancerArns` replaced by `users(arn)`, and the groups
/// for which `users` says `None` left out.
pub fn patch_target_groups(xml: &str, users: impl Fn(&str) -> Option<Vec<String>>) -> String {
    let mut out = String::with_capacity(xml.len());
    let mut copied = 0;
    for member in members_of_groups(xml) {
        out.push_str(&xml[copied..member.start]);
        copied = member.end;
        let text = &xml[member];
        let Some(lbs) = first_text(text, "TargetGroupArn").and_then(|arn| users(&arn)) else {
            continue;
        };
        let mut kept = String::new();
        let mut from = 0;
        for list in elements(text, "LoadBalancerArns") {
            kept.push_str(&text[from..list.start]);
            from = list.end;
        }
        kept.push_str(&text[from..]);
        let list = if lbs.is_empty() {
            "<LoadBalancerArns/>".to_string()
        } else {
            let members: String = lbs
                .iter()
                .map(|lb| format!("<member>{}</member>", xml_escape(lb)))
                .collect();
            format!("<LoadBalancerArns>{members}</LoadBalancerArns>")
        };
        let body = kept.strip_suffix("</member>").unwrap_or(&kept).to_string();
        out.push_str(&format!("{body}{list}</member>"));
    }
    out.push_str(&xml[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const GROUPS: &str = "<DescribeTargetGroupsResponse><DescribeTargetGroupsResult><TargetGroups>\
        <member><TargetGroupArn>tg-a</TargetGroupArn><Matcher><HttpCode>200</HttpCode></Matcher>\
        <LoadBalancerArns><member>lb-1</member><member>lb-2</member></LoadBalancerArns><TargetType>ip</TargetType></member>\
        <member><TargetGroupArn>tg-b</TargetGroupArn><Port>80</Port></member>\
        </TargetGroups></DescribeTargetGroupsResult></DescribeTargetGroupsResponse>";

    #[test]
    fn reads_groups_and_their_listed_load_balancers() {
        assert_eq!(
            target_groups(GROUPS),
            [
                (
                    "tg-a".to_string(),
                    vec!["lb-1".to_string(), "lb-2".to_string()]
                ),
                ("tg-b".to_string(), vec![])
            ]
        );
        assert_eq!(first_text(GROUPS, "Port").as_deref(), Some("80"));
        assert_eq!(first_text("<a>x&amp;y</a>", "a").as_deref(), Some("x&y"));
        assert_eq!(first_text("<a/>", "a"), None);
    }

    #[test]
    fn patches_load_balancer_arns_and_filters_groups() {
        let patched = patch_target_groups(GROUPS, |arn| match arn {
            "tg-a" => Some(vec![]),
            _ => Some(vec!["lb-9".to_string()]),
        });
        assert_eq!(
            target_groups(&patched),
            [
                ("tg-a".to_string(), vec![]),
                ("tg-b".to_string(), vec!["lb-9".to_string()])
            ]
        );
        assert!(patched.contains("<TargetType>ip</TargetType><LoadBalancerArns/></member>"));
        let only_b = patch_target_groups(GROUPS, |arn| (arn == "tg-b").then(Vec::new));
        assert_eq!(target_groups(&only_b), [("tg-b".to_string(), vec![])]);
        assert!(only_b.ends_with(
            "</TargetGroups></DescribeTargetGroupsResult></DescribeTargetGroupsResponse>"
        ));
    }

    #[test]
    fn writes_target_health() {
        let xml = target_health(&[Described {
            id: "127.0.0.1".into(),
            port: 8080,
            health_check_port: 8080,
            state: "unhealthy",
            reason: Some("Target.ResponseCodeMismatch"),
            description: Some("Health checks failed with these codes: [503]".into()),
        }]);
        assert!(xml.starts_with("<DescribeTargetHealthResponse xmlns="));
        assert!(xml.contains("<Target><Id>127.0.0.1</Id><Port>8080</Port></Target><HealthCheckPort>8080</HealthCheckPort>"));
        assert!(xml.contains(
            "<TargetHealth><State>unhealthy</State><Reason>Target.ResponseCodeMismatch</Reason>"
        ));
        assert!(target_health(&[]).contains("<TargetHealthDescriptions/>"));
        assert!(response("RegisterTargets", "")
            .contains("<RegisterTargetsResult/><ResponseMetadata><RequestId>"));
    }
}
