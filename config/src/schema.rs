//! The JSON Schema of the check YAML, and the README's reference generated from it.
//!
//! One source: the `///` comments on the raw types. `statuspage schema`
//! prints the schema; `statuspage schema --markdown` prints the reference
//! that the README carries (a test keeps the two equal).

use crate::raw::RawFile;
use serde_json::{Map, Value};

/// The JSON Schema (draft 2020-12) of a check file.
pub fn json_schema() -> Value {
    let schema = schemars::schema_for!(RawFile);
    serde_json::to_value(schema).unwrap_or(Value::Null)
}

/// The YAML reference as Markdown: the defaults table, then every key.
pub fn reference_markdown() -> String {
    let schema = json_schema();
    let mut out = String::new();
    out.push_str("Built-in defaults (a `defaults:` block overrides them for the checks of its file; a check overrides both):\n\n");
    out.push_str("| key | default |\n|---|---|\n");
    for (key, value) in crate::defaults::table() {
        out.push_str(&format!("| `{key}` | {value} |\n"));
    }
    out.push_str("\nEvery key (`[]` marks a list item). Unknown keys are errors.\n\n");
    out.push_str("| key | type | required | description |\n|---|---|---|---|\n");
    let mut rows = Vec::new();
    walk(&schema, &schema, "", &mut rows, 0);
    for (key, ty, required, description) in rows {
        out.push_str(&format!(
            "| `{key}` | {ty} | {} | {} |\n",
            if required { "yes" } else { "" },
            description.replace('|', "\\|").replace('\n', " ")
        ));
    }
    out
}

type Row = (String, String, bool, String);

fn walk(root: &Value, schema: &Value, prefix: &str, rows: &mut Vec<Row>, depth: usize) {
    let schema = resolve(root, schema);
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for (key, property) in properties {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        let description = property
            .get("description")
            .or_else(|| resolve(root, property).get("description"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let core = resolve(root, property);
        rows.push((
            path.clone(),
            type_name(root, core),
            required.contains(&key.as_str()),
            description,
        ));
        if depth > 8 {
            continue;
        }
        if primary_type(core).as_deref() == Some("array") {
            if let Some(items) = core.get("items") {
                walk(root, items, &format!("{path}[]"), rows, depth + 1);
            }
        } else {
            walk(root, core, &path, rows, depth + 1);
        }
    }
}

/// Follows `$ref` and drops the `null` branch of an optional value.
fn resolve<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.trim_start_matches("#/$defs/");
        if let Some(target) = root.get("$defs").and_then(|d| d.get(name)) {
            return resolve(root, target);
        }
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(options) = schema.get(key).and_then(Value::as_array) {
            let non_null: Vec<&Value> = options
                .iter()
                .filter(|o| o.get("type").and_then(Value::as_str) != Some("null"))
                .collect();
            if non_null.len() == 1 && non_null.len() < options.len() {
                return resolve(root, non_null[0]);
            }
        }
    }
    schema
}

fn type_name(root: &Value, schema: &Value) -> String {
    let schema = resolve(root, schema);
    if let Some(title) = schema_title(schema) {
        return title;
    }
    if let Some(options) = schema
        .get("oneOf")
        .or(schema.get("anyOf"))
        .and_then(Value::as_array)
    {
        return options
            .iter()
            .map(|o| type_name(root, o))
            .collect::<Vec<_>>()
            .join(" or ");
    }
    if let Some(c) = schema.get("const") {
        return format!(
            "`{}`",
            c.as_str()
                .map(str::to_string)
                .unwrap_or_else(|| c.to_string())
        );
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        return values
            .iter()
            .map(|v| {
                format!(
                    "`{}`",
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string())
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
    }
    match primary_type(schema).as_deref() {
        Some("array") => {
            let item = schema
                .get("items")
                .map(|i| type_name(root, i))
                .unwrap_or_default();
            format!("list of {item}")
        }
        Some("object") => {
            if schema.get("properties").is_some() {
                "mapping".into()
            } else {
                let values = schema
                    .get("additionalProperties")
                    .map(|v| type_name(root, v))
                    .unwrap_or_else(|| "any".into());
                format!("mapping of string to {values}")
            }
        }
        Some(t) => t.to_string(),
        None => "any".into(),
    }
}

/// The schema's `type` without `null`: `["array", "null"]` is `array`.
fn primary_type(schema: &Value) -> Option<String> {
    match schema.get("type")? {
        Value::String(t) => Some(t.clone()),
        Value::Array(ts) => {
            let names: Vec<&str> = ts
                .iter()
                .filter_map(Value::as_str)
                .filter(|t| *t != "null")
                .collect();
            (!names.is_empty()).then(|| names.join(" or "))
        }
        _ => None,
    }
}

/// Our own leaf types name themselves: a duration is a "duration", not a string.
fn schema_title(schema: &Value) -> Option<String> {
    let pattern = schema.get("pattern").and_then(Value::as_str)?;
    Some(
        match pattern {
            p if p.contains("(d|h|m|s|ms|us)") => "duration",
            p if p.contains("KiB") => "size",
            _ => return None,
        }
        .to_string(),
    )
}

/// The property names of a schema object, for tests.
pub fn property_names(schema: &Value) -> Vec<String> {
    schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|p: &Map<String, Value>| p.keys().cloned().collect())
        .unwrap_or_default()
}
