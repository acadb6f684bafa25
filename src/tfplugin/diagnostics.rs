//! Diagnostics: the errors and warnings Terraform shows, each optionally pointing at the
//! attribute it is about.

use std::fmt;

use super::value::PathStep;

/// A path from the root of a resource's configuration to one value in it, such as
/// `health_check.headers["Authorization"]` or `targets[2].port`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttributePath(pub Vec<PathStep>);

impl AttributePath {
    /// The path of a top-level attribute or block.
    pub fn attr(name: &str) -> Self {
        Self(vec![PathStep::Attr(name.to_string())])
    }

    pub fn then_attr(&self, name: &str) -> Self {
        self.then(PathStep::Attr(name.to_string()))
    }

    pub fn then_index(&self, index: usize) -> Self {
        self.then(PathStep::Index(index as i64))
    }

    fn then(&self, step: PathStep) -> Self {
        let mut steps = self.0.clone();
        steps.push(step);
        Self(steps)
    }
}

impl fmt::Display for AttributePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, step) in self.0.iter().enumerate() {
            match step {
                PathStep::Attr(name) if i == 0 => write!(f, "{name}")?,
                PathStep::Attr(name) => write!(f, ".{name}")?,
                PathStep::Key(key) => write!(f, "[{key:?}]")?,
                PathStep::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub summary: String,
    pub detail: String,
    pub attribute: Option<AttributePath>,
}

/// The diagnostics one operation collected, in the order they were found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn error(&mut self, summary: impl Into<String>, detail: impl Into<String>) {
        self.push(Severity::Error, None, summary.into(), detail.into());
    }

    pub fn warning(&mut self, summary: impl Into<String>, detail: impl Into<String>) {
        self.push(Severity::Warning, None, summary.into(), detail.into());
    }

    /// An error about one attribute; Terraform underlines it in the configuration.
    pub fn attribute_error(
        &mut self,
        path: AttributePath,
        summary: impl Into<String>,
        detail: impl Into<String>,
    ) {
        self.push(Severity::Error, Some(path), summary.into(), detail.into());
    }

    fn push(
        &mut self,
        severity: Severity,
        attribute: Option<AttributePath>,
        summary: String,
        detail: String,
    ) {
        self.0.push(Diagnostic {
            severity,
            summary,
            detail,
            attribute,
        });
    }

    pub fn has_errors(&self) -> bool {
        self.0.iter().any(|d| d.severity == Severity::Error)
    }

    pub fn extend(&mut self, other: Diagnostics) {
        self.0.extend(other.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_read_like_terraform_references() {
        let path = AttributePath(vec![
            PathStep::Attr("health_check".into()),
            PathStep::Attr("headers".into()),
            PathStep::Key("Authorization".into()),
        ]);
        assert_eq!(path.to_string(), "health_check.headers[\"Authorization\"]");
        let path = AttributePath::attr("targets")
            .then_index(2)
            .then_attr("port");
        assert_eq!(path.to_string(), "targets[2].port");
    }

    #[test]
    fn only_errors_count_as_errors() {
        let mut diags = Diagnostics::default();
        diags.warning("careful", "");
        assert!(!diags.has_errors());
        diags.attribute_error(AttributePath::attr("url"), "bad", "");
        assert!(diags.has_errors());
    }
}
