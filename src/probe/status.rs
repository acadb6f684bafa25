//! The expected status of a health check, in the syntax of ELB's target group matcher
//! (`"200"`, `"200,204"`, `"200-299"`), which users already write for their target groups.

use std::fmt;
use std::ops::RangeInclusive;
use std::str::FromStr;

/// A set of HTTP status codes: single codes and inclusive ranges, comma-separated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusMatcher {
    ranges: Vec<RangeInclusive<u16>>,
}

const VALID: &str =
    "use HTTP status codes from 100 to 599: one code (\"200\"), a comma-separated list (\"200,204\") or a range (\"200-299\"), or both (\"200-299,302\")";

impl StatusMatcher {
    pub fn parse(text: &str) -> Result<Self, String> {
        let invalid = |why: String| format!("{text:?} is not a status matcher: {why}; {VALID}");
        let code = |part: &str| match part.trim().parse::<u16>() {
            Ok(c) if (100..=599).contains(&c) => Ok(c),
            _ => Err(invalid(format!("{:?} is not a status code", part.trim()))),
        };
        let ranges = text
            .split(',')
            .map(|item| match item.split_once('-') {
                Some((lo, hi)) => {
                    let (lo, hi) = (code(lo)?, code(hi)?);
                    if lo > hi {
                        return Err(invalid(format!("the range {lo}-{hi} is reversed")));
                    }
                    Ok(lo..=hi)
                }
                None => code(item).map(|c| c..=c),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(StatusMatcher { ranges })
    }

    pub fn matches(&self, status: u16) -> bool {
        self.ranges.iter().any(|r| r.contains(&status))
    }
}

impl FromStr for StatusMatcher {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Self::parse(text)
    }
}

/// The normalised form, e.g. `200-299,302`.
impl fmt::Display for StatusMatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if r.start() == r.end() {
                write!(f, "{}", r.start())?;
            } else {
                write!(f, "{}-{}", r.start(), r.end())?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_elb_matcher_syntax() {
        let m = StatusMatcher::parse("200").unwrap();
        assert!(m.matches(200) && !m.matches(201));
        let m = StatusMatcher::parse("200,204").unwrap();
        assert!(m.matches(204) && !m.matches(202));
        let m = StatusMatcher::parse("200-299").unwrap();
        assert!(m.matches(200) && m.matches(299) && !m.matches(300) && !m.matches(199));
        let m = StatusMatcher::parse(" 200 - 299 , 302").unwrap();
        assert!(m.matches(250) && m.matches(302) && !m.matches(301));
        assert_eq!(m.to_string(), "200-299,302");
        assert_eq!(
            StatusMatcher::parse("100-599").unwrap().to_string(),
            "100-599"
        );
        assert_eq!("404".parse::<StatusMatcher>().unwrap().to_string(), "404");
    }

    #[test]
    fn rejects_with_a_message_saying_what_is_valid() {
        for (bad, why) in [
            ("", "\"\" is not a status code"),
            ("abc", "\"abc\" is not a status code"),
            ("600", "\"600\" is not a status code"),
            ("99", "\"99\" is not a status code"),
            ("200,", "\"\" is not a status code"),
            ("299-200", "the range 299-200 is reversed"),
            ("200-", "\"\" is not a status code"),
            ("200-300-400", "\"300-400\" is not a status code"),
            ("2xx", "\"2xx\" is not a status code"),
        ] {
            let err = StatusMatcher::parse(bad).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
            assert!(err.contains("from 100 to 599"), "{bad:?}: {err}");
        }
    }
}
