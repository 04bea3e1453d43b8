//! The GitHub Action's map inputs (`input`, `file_input`, `custom-headers`), read as
//! `actions/ai-inference` v2 reads them, for `--ai-inference-inputs`: the action hands qwen the text
//! (in `QWEN_ACTION_INPUT`, `QWEN_ACTION_FILE_INPUT`, `QWEN_ACTION_CUSTOM_HEADERS`, never on a
//! command line) instead of reading YAML in shell.
//!
//! Transcribed from v2.1.1 (tag `v2`, commit a7805884c808): `src/prompt.ts`
//! (`parseTemplateVariables`, `parseFileTemplateVariables`: js-yaml, a map, an error fails the step;
//! a `file_input` value must be a string path) and `src/helpers.ts` (`parseCustomHeaders`: JSON when
//! the text starts with `{` or `[`, else YAML; anything but a map, or text that does not parse,
//! warns and sends no header; a bad name or a value with CR/LF warns and skips that header). Scalars
//! become text as JavaScript's `String()` makes it of what js-yaml read (`1.0` → `1`, `True` →
//! `true`, `~` → `null`), since v2 put those values into the prompt and the headers unchanged.

use serde_json::Value as Json;

use crate::client::params::{ExtraHeader, is_tchar, merge_headers};
use crate::config::env::EnvSnapshot;
use crate::error::Error;
use crate::output::github;
use crate::prompt_file::VarValue;
use crate::settings::Invocation;

/// Where the action puts each map input.
pub(crate) const INPUT: &str = "QWEN_ACTION_INPUT";
pub(crate) const FILE_INPUT: &str = "QWEN_ACTION_FILE_INPUT";
pub(crate) const CUSTOM_HEADERS: &str = "QWEN_ACTION_CUSTOM_HEADERS";

/// Add the action's map inputs to the run's `--var`s and `-H` headers (a `-H` flag wins over a
/// `custom-headers` entry of the same name). Header values are masked first inside GitHub Actions.
pub(crate) fn apply(invocation: &mut Invocation, env: &EnvSnapshot) -> Result<(), Error> {
    let text = |name| env.get(name).unwrap_or_default();
    // Variables fill a prompt file's placeholders: a single run with `--prompt-file` takes them.
    let (connection, vars) = match invocation {
        Invocation::Single(s) if s.ai_inference_inputs => {
            let vars = s.prompt_file.is_some().then_some(&mut s.vars);
            (&mut s.connection, vars)
        }
        Invocation::Batch(b) if b.ai_inference_inputs => (&mut b.connection, None),
        _ => return Ok(()),
    };
    let mut warnings = Vec::new();
    let headers = custom_headers(text(CUSTOM_HEADERS), &mut warnings)?;
    if github::is_github_actions(env) {
        for h in headers.iter().filter(|h| !h.value.is_empty()) {
            crate::diag::raw(&github::mask_command(&h.value));
        }
    }
    connection.headers = merge_headers(&headers, &connection.headers);
    let given = template_variables(text(INPUT), text(FILE_INPUT), &mut warnings)?;
    match vars {
        Some(vars) => vars.extend(given),
        None if given.is_empty() => {}
        None => {
            return Err(Error::usage(
                "input and file_input fill the placeholders of a .prompt.yml prompt-file",
                Some(
                    "give a .prompt.yml prompt-file (a job file's jobs have their own `vars`), or drop input and file_input",
                ),
            ));
        }
    }
    for warning in warnings {
        github::warn(env, &warning);
    }
    Ok(())
}

/// `input` (text values) and `file_input` (paths, read later through the door for files), merged
/// as v2 merges them (`{...stringVars, ...fileVars}`: a name in both takes the file).
fn template_variables(
    input: &str,
    file_input: &str,
    warnings: &mut Vec<String>,
) -> Result<Vec<(String, VarValue)>, Error> {
    let texts = map_input("input", input)?;
    let files = map_input("file_input", file_input)?;
    let mut vars = Vec::with_capacity(texts.len() + files.len());
    for (name, value) in texts {
        if files.iter().any(|(n, _)| *n == name) {
            warnings.push(format!(
                "input `{}` is also in file_input: the file's text fills it (as actions/ai-inference v2 does)",
                name.escape_debug()
            ));
            continue;
        }
        vars.push((name, VarValue::Text(js_string(&value))));
    }
    for (name, value) in files {
        let serde_yaml::Value::String(path) = value else {
            return Err(bad_map(
                "file_input",
                &format!(
                    "file template variable `{}` must be a string file path",
                    name.escape_debug()
                ),
            ));
        };
        vars.push((name, VarValue::File(path.into())));
    }
    Ok(vars)
}

fn bad_map(input: &str, why: &str) -> Error {
    Error::usage(
        format!("{input}: {why}"),
        Some(
            "write a YAML map of `name: value` lines (or a JSON object), as actions/ai-inference v2 reads it",
        ),
    )
}

/// A map input's entries, keys as text: empty text is no entry; text that is not YAML, or not a map
/// (nor a list, whose indexes v2 takes for names), fails, as v2's `yaml.load` check does.
fn map_input(input: &str, text: &str) -> Result<Vec<(String, serde_yaml::Value)>, Error> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let value: serde_yaml::Value =
        crate::yaml::from_str(text).map_err(|e| bad_map(input, &format!("not valid YAML: {e}")))?;
    entries(value).ok_or_else(|| bad_map(input, "not a YAML map"))
}

/// A map's (or a list's) entries with their keys as JavaScript would name them; `None` for
/// anything else (a scalar, null).
fn entries(value: serde_yaml::Value) -> Option<Vec<(String, serde_yaml::Value)>> {
    match value {
        serde_yaml::Value::Mapping(map) => {
            Some(map.into_iter().map(|(k, v)| (js_string(&k), v)).collect())
        }
        serde_yaml::Value::Sequence(items) => Some(
            items
                .into_iter()
                .enumerate()
                .map(|(i, v)| (i.to_string(), v))
                .collect(),
        ),
        serde_yaml::Value::Tagged(tagged) => entries(tagged.value),
        _ => None,
    }
}

/// `custom-headers`, as v2's `parseCustomHeaders` reads it: what cannot be read warns and sends
/// no header at all; a bad name or a line break in a value warns and skips that one header. A
/// header qwen cannot send safely (`Authorization`, which would replace the key, and the framing
/// headers) fails: sending the request without it would not be what the workflow asked for.
fn custom_headers(text: &str, warnings: &mut Vec<String>) -> Result<Vec<ExtraHeader>, Error> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let parsed = if text.starts_with('{') || text.starts_with('[') {
        serde_json::from_str::<Json>(text)
            .map_err(|e| format!("Failed to parse custom headers: {e}"))
            .and_then(|v| match v {
                Json::Object(map) => Ok(map.into_iter().map(|(k, v)| (k, js_json(&v))).collect()),
                _ => Err("Custom headers JSON must be an object, not null or an array".to_owned()),
            })
    } else {
        crate::yaml::from_str::<serde_yaml::Value>(text)
            .map_err(|e| format!("Failed to parse custom headers: {e}"))
            .and_then(|v| match v {
                serde_yaml::Value::Mapping(map) => Ok(map
                    .into_iter()
                    .map(|(k, v)| (js_string(&k), js_string(&v)))
                    .collect::<Vec<_>>()),
                _ => Err("Custom headers YAML must be an object".to_owned()),
            })
    };
    let pairs = match parsed {
        Ok(pairs) => pairs,
        Err(warning) => {
            warnings.push(format!(
                "custom-headers: {warning}: no custom header is sent"
            ));
            return Ok(Vec::new());
        }
    };
    let mut headers = Vec::with_capacity(pairs.len());
    for (name, value) in pairs {
        let shown = name.escape_debug();
        if name.is_empty() || !name.chars().all(is_tchar) {
            warnings.push(format!(
                "custom-headers: Skipping invalid header name: {shown} (contains invalid characters)"
            ));
        } else if value.contains(['\r', '\n']) {
            warnings.push(format!(
                "custom-headers: Skipping header \"{shown}\" because its value contains newline characters, which are not allowed in HTTP header values."
            ));
        } else {
            let header = ExtraHeader::new(&name, &value).map_err(|e| {
                Error::usage(
                    format!("custom-headers: {e}"),
                    Some("give the key with `token` (or `api-key`), and leave framing headers to qwen"),
                )
            })?;
            headers.push(header);
        }
    }
    Ok(headers)
}

/// JavaScript's `String(value)` of what js-yaml reads: `null`, `true`, numbers as JavaScript
/// prints them, a list's items joined by `,` (a null item empty), a map `[object Object]`.
pub(crate) fn js_string(value: &serde_yaml::Value) -> String {
    match value {
        serde_yaml::Value::Null => "null".to_owned(),
        serde_yaml::Value::Bool(b) => b.to_string(),
        serde_yaml::Value::Number(n) => js_number(yaml_number(n)),
        serde_yaml::Value::String(s) => s.clone(),
        serde_yaml::Value::Sequence(items) => items
            .iter()
            .map(|v| match v {
                serde_yaml::Value::Null => String::new(),
                other => js_string(other),
            })
            .collect::<Vec<_>>()
            .join(","),
        serde_yaml::Value::Mapping(_) => "[object Object]".to_owned(),
        serde_yaml::Value::Tagged(tagged) => js_string(&tagged.value),
    }
}

/// The same for a JSON value (`custom-headers` written as JSON).
fn js_json(value: &Json) -> String {
    match value {
        Json::Null => "null".to_owned(),
        Json::Bool(b) => b.to_string(),
        Json::Number(n) => js_number(n.as_f64().unwrap_or(f64::NAN)),
        Json::String(s) => s.clone(),
        Json::Array(items) => items
            .iter()
            .map(|v| {
                if v.is_null() {
                    String::new()
                } else {
                    js_json(v)
                }
            })
            .collect::<Vec<_>>()
            .join(","),
        Json::Object(_) => "[object Object]".to_owned(),
    }
}

#[allow(
    clippy::cast_precision_loss,
    reason = "JavaScript reads every number as a double: the loss is what v2 sends"
)]
fn yaml_number(n: &serde_yaml::Number) -> f64 {
    if let Some(i) = n.as_i64() {
        i as f64
    } else if let Some(u) = n.as_u64() {
        u as f64
    } else {
        n.as_f64().unwrap_or(f64::NAN)
    }
}

/// `Number.prototype.toString()` (ECMA-262 `Number::toString`): the shortest digits that read
/// back as the same double, plain from 1e-6 up to 1e21, else with an exponent.
pub(crate) fn js_number(x: f64) -> String {
    if x.is_nan() {
        return "NaN".to_owned();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.to_owned();
    }
    if x == 0.0 {
        return "0".to_owned();
    }
    let sign = if x < 0.0 { "-" } else { "" };
    // Rust's `{:e}` writes the shortest round-trip digits: `d.ddde±x`.
    let sci = format!("{:e}", x.abs());
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((&sci, "0"));
    let digits = mantissa.replace('.', "");
    let k = i64::try_from(digits.len()).unwrap_or(i64::MAX);
    let n = exponent.parse::<i64>().unwrap_or(0) + 1;
    let zeros = |count: i64| "0".repeat(usize::try_from(count).unwrap_or(0));
    let split = |at: i64| digits.split_at(usize::try_from(at).unwrap_or(0));
    let body = if k <= n && n <= 21 {
        format!("{digits}{}", zeros(n - k))
    } else if 0 < n && n <= 21 {
        let (int, frac) = split(n);
        format!("{int}.{frac}")
    } else if -6 < n && n <= 0 {
        format!("0.{}{digits}", zeros(-n))
    } else {
        let e = n - 1;
        let e = if e >= 0 {
            format!("+{e}")
        } else {
            e.to_string()
        };
        match split(1) {
            (first, "") => format!("{first}e{e}"),
            (first, rest) => format!("{first}.{rest}e{e}"),
        }
    };
    format!("{sign}{body}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> serde_yaml::Value {
        serde_yaml::from_str(text).expect("yaml")
    }

    #[test]
    fn numbers_print_as_javascript_prints_them() {
        let cases = [
            (1.0, "1"),
            (-0.0, "0"),
            (0.1, "0.1"),
            (1.5, "1.5"),
            (-2.25, "-2.25"),
            (100.0, "100"),
            (1e21, "1e+21"),
            (1.5e21, "1.5e+21"),
            (123_456_789_012_345_680_000.0, "123456789012345680000"),
            (0.000_001, "0.000001"),
            (1e-7, "1e-7"),
            (1.25e-7, "1.25e-7"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
            (f64::NAN, "NaN"),
        ];
        for (x, want) in cases {
            assert_eq!(js_number(x), want, "{x}");
        }
    }

    /// js-yaml 4's core schema, then `String()`: what v2 put in a prompt for each scalar.
    #[test]
    fn scalars_become_the_text_js_yaml_and_string_make_of_them() {
        let cases = [
            ("1.0", "1"),
            ("True", "true"),
            ("FALSE", "false"),
            ("~", "null"),
            ("null", "null"),
            ("", "null"),
            ("0x1A", "26"),
            ("0o17", "15"),
            ("1e3", "1000"),
            ("-.inf", "-Infinity"),
            (".nan", "NaN"),
            ("12345678901234567890", "12345678901234567000"),
            ("'1.0'", "1.0"),
            ("plain text", "plain text"),
            ("[1, ~, a]", "1,,a"),
            ("{a: 1}", "[object Object]"),
        ];
        for (text, want) in cases {
            assert_eq!(js_string(&yaml(text)), want, "{text:?}");
        }
    }

    fn texts(vars: &[(String, VarValue)]) -> Vec<(String, String)> {
        vars.iter()
            .map(|(n, v)| {
                let shown = match v {
                    VarValue::Text(t) => t.clone(),
                    VarValue::File(p) => format!("@{}", p.display()),
                };
                (n.clone(), shown)
            })
            .collect()
    }

    #[test]
    fn template_variables_merge_input_and_file_input_as_v2_does() {
        let mut warnings = Vec::new();
        let vars = template_variables(
            "a: 1.0\nb: True\nc: ~\nd: |\n  two\n  lines\n",
            "d: notes.txt\ne: data.json\n",
            &mut warnings,
        )
        .expect("reads");
        let want = [
            ("a", "1"),
            ("b", "true"),
            ("c", "null"),
            ("d", "@notes.txt"),
            ("e", "@data.json"),
        ]
        .map(|(n, v)| (n.to_owned(), v.to_owned()));
        assert_eq!(texts(&vars), want);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("`d` is also in file_input"),
            "{warnings:?}"
        );
    }

    #[test]
    fn map_inputs_that_v2_refuses_fail_without_quoting_the_text() {
        let cases = [
            ("invalid: yaml: content:", "", "input: not valid YAML"),
            ("just text", "", "input: not a YAML map"),
            ("# only a comment", "", "input: not a YAML map"),
            ("", "x: 123", "must be a string file path"),
            ("", "x: true", "must be a string file path"),
            (
                "",
                "x: { nested: \"object\" }",
                "must be a string file path",
            ),
            ("", "[unclosed", "file_input: not valid YAML"),
        ];
        for (input, file_input, want) in cases {
            let err = template_variables(input, file_input, &mut Vec::new()).expect_err(input);
            let text = err.to_string();
            assert!(text.contains(want), "{input:?} {file_input:?}: {text}");
            assert!(!text.contains("content:"), "{text}");
        }
    }

    #[test]
    fn headers_unreadable_or_not_a_map_warn_and_send_none() {
        let cases = [
            ("{invalid json}", "Failed to parse custom headers"),
            (
                "invalid: yaml: structure: bad",
                "Failed to parse custom headers",
            ),
            (
                "[\"header1\", \"header2\"]",
                "Custom headers JSON must be an object, not null or an array",
            ),
            ("null", "Custom headers YAML must be an object"),
            (
                "- header1\n- header2",
                "Custom headers YAML must be an object",
            ),
        ];
        for (text, want) in cases {
            let mut warnings = Vec::new();
            let headers = custom_headers(text, &mut warnings).expect(text);
            assert!(headers.is_empty(), "{text}");
            assert_eq!(warnings.len(), 1, "{text}: {warnings:?}");
            assert!(warnings[0].contains(want), "{text}: {warnings:?}");
        }
        for text in ["", "  "] {
            let mut warnings = Vec::new();
            assert!(
                custom_headers(text, &mut warnings)
                    .expect("empty")
                    .is_empty()
            );
            assert!(warnings.is_empty());
        }
    }

    #[test]
    fn a_header_that_would_replace_the_key_fails_and_never_shows_its_value() {
        for text in [
            "Authorization: Bearer sk-h1dden",
            "{\"Host\": \"sk-h1dden\"}",
        ] {
            let err = custom_headers(text, &mut Vec::new()).expect_err(text);
            assert!(!err.to_string().contains("sk-h1dden"), "{err}");
        }
    }
}
