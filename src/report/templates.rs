//! The report's templates: the built-in ones (`templates/` in the repository, compiled in) or,
//! file by file, those of a folder the spec names (`[report] templates = "my-templates/"`).
//!
//! Rendering is strict: a variable the context does not have is an error naming the template and
//! the variable — checked before rendering for the variables a template reads from the context,
//! and while rendering for attributes of loop variables.

use std::collections::BTreeSet;
use std::path::Path;

use minijinja::{Environment, ErrorKind, UndefinedBehavior};

use crate::error::{Error, Result};

/// Built-in templates by file name.
pub const BUILT_IN: &[(&str, &str)] = &[
    ("report.md.j2", include_str!("../../templates/report.md.j2")),
    ("report.html.j2", include_str!("../../templates/report.html.j2")),
    ("sweep.md.j2", include_str!("../../templates/sweep.md.j2")),
];

/// A template set: names as in [`BUILT_IN`], sources from `dir` where it has the file.
pub struct Templates {
    env: Environment<'static>,
    /// Where each template came from, for error messages.
    origins: Vec<(String, String)>,
}

impl Templates {
    pub fn load(dir: Option<&Path>) -> Result<Self> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // keeps the template source with errors, to quote the undefined expression
        env.set_debug(true);
        // `.html.j2` is not an extension minijinja escapes by default: every user-provided string
        // in the HTML report goes through the HTML escaper
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".html.j2") { minijinja::AutoEscape::Html } else { minijinja::AutoEscape::None }
        });
        // a folder the spec named and that is gone would silently give the built-in report
        if let Some(dir) = dir.filter(|d| !d.is_dir()) {
            return Err(Error::Report(format!(
                "the templates folder {} (report.templates of the run's spec) is not a folder: restore it (or remove `report.templates` from the run's meta.json to use the built-in templates)",
                crate::fmt::display_path(dir)
            )));
        }
        env.add_filter("md", markdown_cell);
        let mut origins = Vec::new();
        for &(name, built_in) in BUILT_IN {
            let custom = dir.map(|d| d.join(name)).filter(|p| p.is_file());
            let (source, origin) = match custom {
                Some(path) => (std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?, crate::fmt::display_path(&path)),
                None => (built_in.to_string(), format!("templates/{name} (built in)")),
            };
            env.add_template_owned(name.to_string(), source).map_err(|e| template_error(&origin, &e))?;
            origins.push((name.to_string(), origin));
        }
        Ok(Self { env, origins })
    }

    fn origin<'a>(&'a self, name: &'a str) -> &'a str {
        self.origins.iter().find(|(n, _)| n == name).map(|(_, o)| o.as_str()).unwrap_or(name)
    }

    /// Renders template `name` with `context`, which must provide every variable it reads.
    pub fn render<S: serde::Serialize>(&self, name: &str, context: &S) -> Result<String> {
        let origin = self.origin(name);
        let template = self.env.get_template(name).map_err(|e| template_error(origin, &e))?;
        let value = serde_json::to_value(context).map_err(|e| Error::Report(format!("template context: {e}")))?;
        let missing: BTreeSet<String> = template
            .undeclared_variables(true)
            .into_iter()
            .filter(|path| !is_builtin(path) && !has_path(&value, path))
            .collect();
        if let Some(first) = missing.first() {
            let available: Vec<&String> = value.as_object().map(|o| o.keys().collect()).unwrap_or_default();
            return Err(Error::Report(format!(
                "template {origin}: variable `{first}` is not defined{} (the report provides: {})",
                if missing.len() > 1 { format!(" (nor {})", missing.iter().skip(1).map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", ")) } else { String::new() },
                available.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")
            )));
        }
        template.render(minijinja::Value::from(minijinja::value::Serde(&value))).map_err(|e| template_error(origin, &e))
    }
}

/// The `md` filter: a value (a class name, a file name) as literal text in markdown, in a table
/// cell as elsewhere: `|` would end the cell and `<`, `>`, `&` would be read as HTML.
fn markdown_cell(value: minijinja::Value) -> String {
    let text = value.to_string();
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '|' => out.push_str("\\|"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            c => out.push(c),
        }
    }
    out
}

/// Globals and functions minijinja provides itself.
fn is_builtin(path: &str) -> bool {
    let root = path.split('.').next().unwrap_or(path);
    matches!(root, "range" | "dict" | "namespace" | "debug" | "loop" | "true" | "false" | "none")
}

/// Whether `value` has the dotted `path` (a missing key is the only failure; a path through a
/// list or a scalar is left to the renderer).
fn has_path(value: &serde_json::Value, path: &str) -> bool {
    let mut current = value;
    for key in path.split('.') {
        match current {
            serde_json::Value::Object(map) => match map.get(key) {
                Some(next) => current = next,
                None => return false,
            },
            _ => return true,
        }
    }
    true
}

fn template_error(origin: &str, e: &minijinja::Error) -> Error {
    let line = e.line().map(|l| format!(", line {l}")).unwrap_or_default();
    let what = match (e.kind(), e.template_source().zip(e.range())) {
        (ErrorKind::UndefinedError, Some((source, range))) => {
            format!("`{}` is not defined", source.get(range).unwrap_or("?"))
        }
        _ => e.detail().map(str::to_string).unwrap_or_else(|| e.kind().to_string()),
    };
    let mut message = format!("template {origin}{line}: {what}");
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        message.push_str(&format!(": {inner}"));
        source = inner.source();
    }
    Error::Report(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(files: &[(&str, &str)]) -> (tempfile::TempDir, Templates) {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let templates = Templates::load(Some(dir.path())).unwrap();
        (dir, templates)
    }

    #[test]
    fn the_md_filter_keeps_a_class_name_in_its_table_cell_and_out_of_html() {
        let (_dir, t) = set(&[("report.md.j2", "| {{ name | md }} | 1 |")]);
        let text = t.render("report.md.j2", &serde_json::json!({"name": "a|b <img src=x> & c"})).unwrap();
        assert_eq!(text, "| a\\|b &lt;img src=x&gt; &amp; c | 1 |");
    }

    #[test]
    fn a_templates_folder_that_is_gone_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("tpl");
        let Err(e) = Templates::load(Some(&gone)) else { panic!("a missing templates folder loads") };
        assert!(e.to_string().contains("tpl") && e.to_string().contains("report.templates"), "{e}");
        assert_eq!(e.exit_code(), 6u8);
    }

    #[test]
    fn a_missing_variable_names_template_and_variable() {
        let (_dir, t) = set(&[("report.md.j2", "# {{ meta.experiment }} {{ meta.nope }}\n")]);
        let context = serde_json::json!({ "meta": { "experiment": "x" } });
        let err = t.render("report.md.j2", &context).unwrap_err().to_string();
        assert!(err.contains("report.md.j2") && err.contains("`meta.nope` is not defined"), "{err}");
    }

    #[test]
    fn a_missing_loop_attribute_names_template_line_and_expression() {
        let (_dir, t) = set(&[("report.md.j2", "{% for p in parts %}\n{{ p.title }} {{ p.missing }}\n{% endfor %}")]);
        let context = serde_json::json!({ "parts": [{ "title": "Test" }] });
        let err = t.render("report.md.j2", &context).unwrap_err().to_string();
        assert!(err.contains("report.md.j2, line 2") && err.contains("`p.missing` is not defined"), "{err}");
    }

    #[test]
    fn html_escapes_and_built_ins_fill_the_rest() {
        let (_dir, t) = set(&[("report.html.j2", "<p>{{ name }}</p>")]);
        let html = t.render("report.html.j2", &serde_json::json!({ "name": "<script>&" })).unwrap();
        assert_eq!(html, "<p>&lt;script&gt;&amp;</p>");
        assert!(t.origin("report.md.j2").contains("built in"));
    }
}
