//! The few placeholders of tfplugindocs' templates that this project's templates use,
//! with the same syntax, so the templates read like any provider's:
//!
//! - `{{ .SchemaMarkdown }}`: the generated `## Schema` section;
//! - `{{ tffile "examples/.../resource.tf" }}`: a file in a ```` ```terraform ```` fence;
//! - `{{ codefile "shell" "examples/.../import.sh" }}`: a file in a fence of that language;
//! - `{{/* a comment */}}`: nothing (a comment alone on its line takes the line with it).
//!
//! Anything else between `{{` and `}}` is an error naming the template and line, so a
//! typo never reaches the published page. Paths are relative to the repository root.

use std::fs;
use std::path::Path;

pub struct Context<'a> {
    pub root: &'a Path,
    pub schema_markdown: &'a str,
}

const SUPPORTED: &str = "{{ .SchemaMarkdown }}, {{ tffile \"PATH\" }}, {{ codefile \"LANG\" \"PATH\" }}, {{/* comment */}}";

/// Expands a template; `source` names it in errors.
pub fn render(template: &str, source: &str, ctx: &Context) -> Result<String, String> {
    let mut out = String::with_capacity(template.len() * 2);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let (before, tail) = rest.split_at(start);
        out.push_str(before);
        let offset = template.len() - rest.len() + start;
        let line = template[..offset].matches('\n').count() + 1;
        let end = tail
            .find("}}")
            .ok_or_else(|| format!("{source}:{line}: `{{{{` without a closing `}}}}`"))?;
        let inner = tail[2..end].trim();
        rest = &tail[end + 2..];

        if inner.starts_with("/*") && inner.ends_with("*/") {
            let own_line = out.is_empty() || out.ends_with('\n');
            if own_line {
                rest = rest.strip_prefix('\n').unwrap_or(rest);
            }
            continue;
        }
        let expanded = expand(inner, ctx)
            .map_err(|e| format!("{source}:{line}: {e} in `{{{{ {inner} }}}}`"))?;
        out.push_str(&expanded);
    }
    out.push_str(rest);
    Ok(out)
}

fn expand(inner: &str, ctx: &Context) -> Result<String, String> {
    let words = split_words(inner)?;
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    match words.as_slice() {
        [".SchemaMarkdown"] => Ok(ctx.schema_markdown.trim_end().to_string()),
        ["tffile", path] => fence("terraform", ctx.root, path),
        ["codefile", lang, path] => fence(lang, ctx.root, path),
        _ => Err(format!("unsupported placeholder (supported: {SUPPORTED})")),
    }
}

/// A file's text in a fenced code block.
fn fence(lang: &str, root: &Path, path: &str) -> Result<String, String> {
    let text = read_text(&root.join(path)).map_err(|e| format!("cannot read {path}: {e}"))?;
    Ok(format!("```{lang}\n{}\n```", text.trim_end()))
}

/// A text file with `\r\n` line ends made `\n`.
pub fn read_text(path: &Path) -> std::io::Result<String> {
    Ok(fs::read_to_string(path)?.replace("\r\n", "\n"))
}

/// Bare words and double-quoted strings (with `\"` and `\\` escapes).
fn split_words(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' {
            chars.next();
            let mut word = String::new();
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some(escaped @ ('"' | '\\')) => word.push(escaped),
                        _ => return Err("unsupported escape in a string".into()),
                    },
                    Some(c) => word.push(c),
                    None => return Err("unterminated string".into()),
                }
            }
            words.push(word);
        } else {
            let mut word = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || c == '"' {
                    break;
                }
                word.push(c);
                chars.next();
            }
            words.push(word);
        }
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::TempDir;

    #[test]
    fn placeholders_expand_and_comments_vanish() {
        let dir = TempDir::new("template");
        dir.write("examples/x/resource.tf", "resource \"a\" \"b\" {}\n\n");
        dir.write("examples/x/import.sh", "terraform import a.b id\n");
        let ctx = Context {
            root: dir.path(),
            schema_markdown: "## Schema\n\nstuff\n",
        };
        let template = "{{/* edit me, not docs/ */}}\n# Title\n\n{{ tffile \"examples/x/resource.tf\" }}\n\n{{codefile \"shell\" \"examples/x/import.sh\"}}\n\n{{ .SchemaMarkdown }}\n";
        let out = render(template, "t.md.tmpl", &ctx).unwrap();
        assert_eq!(
            out,
            "# Title\n\n```terraform\nresource \"a\" \"b\" {}\n```\n\n```shell\nterraform import a.b id\n```\n\n## Schema\n\nstuff\n"
        );
    }

    #[test]
    fn errors_name_the_template_and_line() {
        let dir = TempDir::new("template-errors");
        let ctx = Context {
            root: dir.path(),
            schema_markdown: "",
        };
        let err = render("a\nb\n{{ .Description }}\n", "t.md.tmpl", &ctx).unwrap_err();
        assert!(
            err.starts_with("t.md.tmpl:3: unsupported placeholder"),
            "{err}"
        );
        let err = render("{{ tffile \"missing.tf\" }}", "t.md.tmpl", &ctx).unwrap_err();
        assert!(
            err.starts_with("t.md.tmpl:1: cannot read missing.tf"),
            "{err}"
        );
        let err = render("x {{ tffile", "t.md.tmpl", &ctx).unwrap_err();
        assert!(err.contains("without a closing"), "{err}");
    }
}
