//! Parser errors in words: what is wrong at the position, for the mistakes
//! people make in YAML (a key at the wrong indentation, a list where a mapping
//! belongs, an empty value), rather than the parser's own vocabulary.

use super::*;

/// The keys a service (or a version) may hold, from the schema itself, so
/// this list cannot drift from the types.
fn service_keys() -> Vec<String> {
    let schema: serde_json::Value =
        serde_json::from_str(&json_schema()).expect("the generated schema is JSON");
    schema["$defs"]["RawService"]["properties"]
        .as_object()
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

/// The line at `pos`: its indentation, the key whose value the position is in
/// (in block or flow style: `    X: ` or `env: { X: `), and that value's text.
fn line_at(text: &str, pos: Option<Pos>) -> Option<(usize, &str, &str)> {
    let pos = pos?;
    let line = text.lines().nth(pos.line.checked_sub(1)? as usize)?;
    let indent = line.len() - line.trim_start().len();
    let col = (pos.column.saturating_sub(1) as usize).min(line.len());
    let before = line.get(..col).unwrap_or(line);
    let colon = before.rfind(':').or_else(|| line.find(':'))?;
    let start = line[..colon]
        .rfind(['{', ','])
        .map(|i| i + 1)
        .unwrap_or(indent);
    let key = line[start..colon].trim().trim_matches('"');
    let rest = line[colon + 1..].trim();
    let value = rest.split([',', '}']).next().unwrap_or(rest).trim();
    let value = if rest.starts_with(['[', '{']) {
        rest
    } else {
        value
    };
    Some((indent, key, value))
}

/// The service a line belongs to: the last `  name:` line before it.
fn service_before(text: &str, pos: Option<Pos>) -> Option<String> {
    let upto = pos?.line.checked_sub(1)? as usize;
    let lines: Vec<&str> = text.lines().take(upto).collect();
    lines.into_iter().rev().find_map(|l| {
        let name = l.strip_prefix("  ")?.strip_suffix(':')?;
        (!name.starts_with(' ') && is_valid_name(name)).then(|| name.to_string())
    })
}

/// The help for an unknown key: the berth name of a docker compose key, or
/// the expected key it is a misspelling of, or where every key is listed.
fn unknown_key_help(key: &str, expected: &[&str]) -> String {
    const COMPOSE: [(&str, &str); 7] = [
        ("environment", "`environment` is docker compose's name: berth's is `env`, a mapping (`env: { LOG_LEVEL: debug }`)"),
        ("ports", "`ports` is docker compose's name: berth gives each version a host port of its own and routes the service's path through its gateway; to fix one host port, write `publish: 8080`"),
        ("volumes", "`volumes` is docker compose's name: berth keeps a directory's data across versions with `keeps: [/data]`"),
        ("healthcheck", "`healthcheck` is docker compose's name: berth's is `health`, as `health: { path: /healthz }`"),
        ("build", "`build` is docker compose's name: berth builds from code with `package: ./dir` (no Dockerfile) and `runtime:`"),
        ("depends_on", "berth has no `depends_on`: each version starts on its own and is gated by its health check; remove the key"),
        ("restart", "berth has no `restart`: a service always restarts unless it stops itself as a `job: true`; remove the key"),
    ];
    if let Some((_, help)) = COMPOSE.iter().find(|(k, _)| *k == key) {
        if !expected.contains(&key) {
            return help.to_string();
        }
    }
    let closest = expected
        .iter()
        .map(|k| (strsim::damerau_levenshtein(key, k), *k))
        .filter(|(d, k)| *d <= (k.len() / 3).max(1))
        .min();
    match closest {
        Some((_, k)) => format!("did you mean `{k}`? (`berth schema` lists every key)"),
        None => "remove the key or fix its spelling; `berth schema` lists every key".into(),
    }
}

/// What a value's text looks like, in words.
fn shape(value: &str) -> String {
    match value.chars().next() {
        None => "nothing".into(),
        Some('[') | Some('-') => "a list".into(),
        Some('{') => "a mapping".into(),
        _ => format!("the single value `{value}`"),
    }
}

/// The message and help for a parser error `msg` at `pos` in `text`.
pub(super) fn explain(msg: &str, text: &str, pos: Option<Pos>) -> (String, String) {
    let line = line_at(text, pos);
    let keys = service_keys();
    let is_service_key = |k: &str| keys.iter().any(|s| s == k);
    let under = |k: &str| match service_before(text, pos) {
        Some(s) => format!("did you mean to indent it under `{s}`, as `    {k}: …`?"),
        None => format!("indent it under the service it belongs to, as `    {k}: …`"),
    };
    if let Some(rest) = msg.strip_prefix("duplicate mapping key: ") {
        let key = rest.split(',').next().unwrap_or(rest).trim();
        return (
            format!("duplicate key `{key}`"),
            "each key may appear once in a mapping: merge the two entries or rename one".into(),
        );
    }
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        let key = rest.split('`').next().unwrap_or_default();
        // The top level's keys, whatever they are now: its list names both
        // `project` and `services`.
        let expected: Vec<&str> = msg
            .split_once("expected one of ")
            .map(|(_, l)| l.split(", ").map(str::trim).collect())
            .unwrap_or_default();
        let top_level = expected.contains(&"project") && expected.contains(&"services");
        if top_level && is_service_key(key) {
            return (
                format!("`{key}` is a service setting, but it is at the top level of the file"),
                under(key),
            );
        }
        let expected: Vec<&str> = msg
            .split_once("expected one of ")
            .map(|(_, list)| {
                list.split(',')
                    .map(|k| k.trim().trim_matches('`'))
                    .collect()
            })
            .unwrap_or_default();
        return (msg.to_string(), unknown_key_help(key, &expected));
    }
    let item = pos.and_then(|p| text.lines().nth(p.line.checked_sub(1)? as usize));
    // docker compose's `environment:` list (`- KEY=value`) written under `env:`.
    let parent = pos.and_then(|p| {
        let at = p.line.checked_sub(1)? as usize;
        text.lines().take(at).last().map(|l| l.trim().to_string())
    });
    if item.is_some_and(|l| l.trim_start().starts_with("- ") && l.contains('='))
        && parent
            .as_deref()
            .is_some_and(|l| l == "env:" || l.starts_with("- "))
    {
        let (k, v) = item
            .and_then(|l| l.trim_start().strip_prefix("- ")?.split_once('='))
            .unwrap_or(("KEY", "value"));
        return (
            "`env` is a list of `KEY=value` items here, as docker compose writes `environment:`; berth's `env` is a mapping".into(),
            format!("write each as `{}: {}` under `env:`, or `env: {{ {}: {} }}`", k.trim(), v.trim(), k.trim(), v.trim()),
        );
    }
    if item.is_some_and(|l| l.trim_start().starts_with("- ") && !l.contains(':')) {
        return (
            "a list item here, where `key: value` entries are expected".into(),
            "services are a mapping by name: `services:` then `  web:` with its settings indented below".into(),
        );
    }
    if let Some((indent, key, value)) = line {
        if msg.starts_with("expected mapping start") {
            if indent == 2 && is_service_key(key) {
                return (
                    format!("`{key}` is a service setting, not a service"),
                    under(key),
                );
            }
            if key == "versions" {
                return (
                    format!("`versions` maps each version to its settings, but here it is {}", shape(value)),
                    "write `versions: { \"1.0.0\": {}, \"1.1.0\": { env: { X: \"1\" } } }`, or one `\"1.0.0\": {}` line per version below it".into(),
                );
            }
            return (
                format!("`{key}` needs a mapping (`key: value` entries), but here it is {}", shape(value)),
                format!("write `{key}:` with indented `key: value` lines below it, or `{key}: {{ key: value }}`"),
            );
        }
        if msg.starts_with("expected sequence start") {
            return (
                format!("`{key}` needs a list, but here it is {}", shape(value)),
                format!("write `{key}: [{value}]`, or one `- item` line per entry below it"),
            );
        }
        if msg.starts_with("cannot deserialize null") {
            return (
                format!("`{key}` has no value (YAML reads an empty value or `null` as nothing)"),
                format!("write `{key}: \"\"` for an empty text, or remove the key"),
            );
        }
        if msg.contains("untagged enum RawScope") {
            return (
                format!(
                    "`scope` must be `global` or `{{ database: NAME }}`, not {}",
                    shape(value)
                ),
                "for example `scope: { database: sales }`".into(),
            );
        }
        if msg.starts_with("invalid u16") {
            return (
                format!("`{key}` must be a port number (1-65535), not `{value}`"),
                format!("for example `{key}: 8000`"),
            );
        }
    }
    (
        msg.to_string(),
        "fix the YAML at this position; `berth schema` describes the file".into(),
    )
}
