//! `docs/api.md`, the API reference that ships with the repository, written
//! from the OpenAPI document so the two cannot disagree.
//!
//! The test `docs_api_md_is_the_rendered_document` (in `openapi/tests.rs`)
//! fails when the committed file differs from this rendering;
//! `UPDATE_DOCS=1 cargo test -p web docs_api_md` rewrites it.

use std::fmt::Write as _;

use serde_json::{Map, Value};

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// Renders the document (as JSON) as a Markdown reference.
pub fn render(doc: &Value) -> String {
    let mut out = String::new();
    let info = &doc["info"];
    let _ = writeln!(out, "# {} HTTP API reference\n", text(&info["title"]));
    out.push_str(
        "<!-- Generated from the OpenAPI document (GET /openapi.json) by \
         adapters/web/src/openapi/markdown.rs; do not edit by hand. \
         Regenerate with `UPDATE_DOCS=1 cargo test -p web docs_api_md`. -->\n\n",
    );
    let _ = writeln!(out, "{}\n", text(&info["description"]));
    out.push_str(
        "The live server serves the same document at `GET /openapi.json` and \
         Swagger UI at `GET /docs`.\n\n",
    );
    error_codes(&mut out, doc);
    out.push_str("## Endpoints\n\n");
    overview(&mut out, doc);
    for (path, item) in object(&doc["paths"]) {
        for method in METHODS {
            if let Some(op) = item.get(method) {
                operation(&mut out, method, path, op);
            }
        }
    }
    schemas(&mut out, doc);
    out
}

fn error_codes(out: &mut String, doc: &Value) {
    let codes = &doc["components"]["schemas"]["ErrorCode"]["enum"];
    let Some(codes) = codes.as_array() else {
        return;
    };
    out.push_str("## Error codes\n\nEvery error body is `application/problem+json` with `type`, `title`, `status` and one of these `code`s:\n\n");
    let names: Vec<String> = codes.iter().map(|c| format!("`{}`", text(c))).collect();
    let _ = writeln!(out, "{}\n", names.join(", "));
}

fn overview(out: &mut String, doc: &Value) {
    out.push_str("| method | path | auth | summary |\n|---|---|---|---|\n");
    for (path, item) in object(&doc["paths"]) {
        for method in METHODS {
            if let Some(op) = item.get(method) {
                let _ = writeln!(
                    out,
                    "| {} | [`{}`](#{}) | {} | {} |",
                    method.to_uppercase(),
                    path,
                    anchor(method, path),
                    auth(op),
                    cell(first_sentence(op)),
                );
            }
        }
    }
    out.push('\n');
}

fn operation(out: &mut String, method: &str, path: &str, op: &Value) {
    let _ = writeln!(out, "### {} `{}`\n", method.to_uppercase(), path);
    let _ = writeln!(out, "<a id=\"{}\"></a>\n", anchor(method, path));
    if let Some(description) = op["description"].as_str().or(op["summary"].as_str()) {
        let _ = writeln!(out, "{description}\n");
    }
    let _ = writeln!(out, "Authentication: {}.\n", auth(op));
    if let Some(params) = op["parameters"].as_array().filter(|p| !p.is_empty()) {
        out.push_str(
            "| parameter | in | required | schema | description |\n|---|---|---|---|---|\n",
        );
        for p in params {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {} |",
                text(&p["name"]),
                text(&p["in"]),
                yes_no(p["required"].as_bool().unwrap_or(false)),
                cell(&schema_summary(&p["schema"])),
                cell(p["description"].as_str().unwrap_or("")),
            );
        }
        out.push('\n');
    }
    if let Some(body) = op.get("requestBody") {
        let required = body["required"].as_bool().unwrap_or(false);
        for (media, content) in object(&body["content"]) {
            let _ = writeln!(
                out,
                "Request body ({}, `{}`): {}.\n",
                if required { "required" } else { "optional" },
                media,
                schema_summary(&content["schema"]),
            );
        }
        if let Some(description) = body["description"].as_str() {
            let _ = writeln!(out, "{description}\n");
        }
    }
    out.push_str("| status | meaning | body |\n|---|---|---|\n");
    for (status, response) in object(&op["responses"]) {
        let body = object(&response["content"])
            .map(|(media, content)| format!("`{media}` {}", schema_summary(&content["schema"])))
            .collect::<Vec<_>>()
            .join("; ");
        let mut meaning = response["description"].as_str().unwrap_or("").to_owned();
        let headers: Vec<String> = object(&response["headers"])
            .map(|(name, _)| format!("`{name}`"))
            .collect();
        if !headers.is_empty() {
            let _ = write!(meaning, " (headers: {})", headers.join(", "));
        }
        let _ = writeln!(out, "| {} | {} | {} |", status, cell(&meaning), cell(&body));
    }
    out.push('\n');
}

fn schemas(out: &mut String, doc: &Value) {
    out.push_str("## Schemas\n\n");
    for (name, schema) in object(&doc["components"]["schemas"]) {
        let _ = writeln!(out, "### {name}\n");
        if let Some(description) = schema["description"].as_str() {
            let _ = writeln!(out, "{description}\n");
        }
        let properties = object(&schema["properties"]).collect::<Vec<_>>();
        if properties.is_empty() {
            let _ = writeln!(out, "{}\n", schema_summary(schema));
            continue;
        }
        let required: Vec<&str> = schema["required"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        out.push_str("| field | required | schema | description |\n|---|---|---|---|\n");
        for (field, property) in properties {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} |",
                field,
                yes_no(required.contains(&field.as_str())),
                cell(&schema_summary(property)),
                cell(property["description"].as_str().unwrap_or("")),
            );
        }
        out.push('\n');
    }
}

/// One line describing a schema: its type or reference, and every
/// constraint a client must respect.
fn schema_summary(schema: &Value) -> String {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.rsplit('/').next().unwrap_or(reference);
        return format!("[`{name}`](#{})", name.to_lowercase());
    }
    for combinator in ["oneOf", "anyOf", "allOf"] {
        if let Some(parts) = schema[combinator].as_array() {
            let rendered: Vec<String> = parts.iter().map(schema_summary).collect();
            let joiner = if combinator == "allOf" {
                " and "
            } else {
                " or "
            };
            return rendered.join(joiner);
        }
    }
    let mut parts = Vec::new();
    match &schema["type"] {
        Value::String(t) if t == "array" => {
            parts.push(format!("array of {}", schema_summary(&schema["items"])));
        }
        Value::String(t) => parts.push(t.clone()),
        Value::Array(types) => {
            let names: Vec<String> = types.iter().map(text).collect();
            if names.iter().any(|t| t == "array") {
                parts.push(format!(
                    "{} (items: {})",
                    names.join(" or "),
                    schema_summary(&schema["items"])
                ));
            } else {
                parts.push(names.join(" or "));
            }
        }
        _ => parts.push("any".to_owned()),
    }
    for (key, label) in [
        ("format", "format"),
        ("minimum", "minimum"),
        ("maximum", "maximum"),
        ("minLength", "min length"),
        ("maxLength", "max length"),
        ("minItems", "min items"),
        ("maxItems", "max items"),
        ("pattern", "pattern"),
        ("default", "default"),
    ] {
        match &schema[key] {
            Value::Null => {}
            Value::String(s) => parts.push(format!("{label} `{s}`")),
            value => parts.push(format!("{label} `{}`", compact(value))),
        }
    }
    if let Some(values) = schema["enum"].as_array() {
        let names: Vec<String> = values.iter().map(|v| format!("`{}`", text(v))).collect();
        parts.push(format!("one of {}", names.join(", ")));
    }
    parts.join(", ")
}

fn auth(op: &Value) -> String {
    let Some(requirements) = op["security"].as_array() else {
        return "none".to_owned();
    };
    let mut names: Vec<String> = Vec::new();
    for requirement in requirements {
        let keys: Vec<String> = object(requirement).map(|(k, _)| k.clone()).collect();
        names.push(if keys.is_empty() {
            "none".to_owned()
        } else {
            keys.join(" + ")
        });
    }
    names.join(" or ")
}

fn first_sentence(op: &Value) -> &str {
    let text = op["summary"]
        .as_str()
        .or(op["description"].as_str())
        .unwrap_or("");
    match text.find(". ") {
        Some(end) => &text[..=end],
        None => text,
    }
}

fn anchor(method: &str, path: &str) -> String {
    let mut id = method.to_owned();
    for c in path.chars() {
        if c.is_ascii_alphanumeric() {
            id.push(c.to_ascii_lowercase());
        } else if !id.ends_with('-') {
            id.push('-');
        }
    }
    id.trim_end_matches('-').to_owned()
}

/// Text fit for a table cell: one line, pipes escaped.
fn cell(text: &str) -> String {
    text.replace('\n', " ").replace('|', "\\|")
}

fn yes_no(flag: bool) -> &'static str {
    if flag {
        "yes"
    } else {
        "no"
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => compact(other),
    }
}

fn compact(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

fn object(value: &Value) -> impl Iterator<Item = (&String, &Value)> {
    static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    value
        .as_object()
        .unwrap_or_else(|| EMPTY.get_or_init(Map::new))
        .iter()
}
