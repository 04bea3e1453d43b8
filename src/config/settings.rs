//! `~/.qwen/settings.json`, the file Qwen Code keeps its settings in: read the selected auth method
//! (`security.auth.selectedType`) and change it while keeping every other setting as it was.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::config::{AuthType, Source, Sourced};
use crate::error::Error;
use crate::fsutil;

/// Where Qwen Code keeps the chosen method (settings format v2).
const SELECTED_TYPE: [&str; 3] = ["security", "auth", "selectedType"];
/// The same choice in the older, flat settings format.
const LEGACY_SELECTED_TYPE: &str = "selectedAuthType";

pub(crate) fn path(home: &Path) -> PathBuf {
    home.join(".qwen").join("settings.json")
}

/// The method a settings value names: Qwen Code's own values (`AuthType::parse`); the spellings
/// `openai-api-key` and `qwen_oauth` seen in its forks are understood too.
pub(crate) fn parse_auth_type(value: &str) -> Option<AuthType> {
    match value.trim().to_ascii_lowercase().as_str() {
        "openai-api-key" | "use_openai" => Some(AuthType::Openai),
        "qwen_oauth" => Some(AuthType::QwenOauth),
        other => AuthType::parse(other),
    }
}

/// The raw selected method in a settings document: the v2 key, else the legacy flat key.
pub(crate) fn selected_type(doc: &Value) -> Option<&str> {
    let v2 = SELECTED_TYPE
        .iter()
        .try_fold(doc, |v, key| v.get(key))
        .and_then(Value::as_str);
    v2.or_else(|| doc.get(LEGACY_SELECTED_TYPE).and_then(Value::as_str))
}

/// Settings files may carry `//` and `/* */` comments (Qwen Code accepts them). Strings are
/// left alone. Returns the text unchanged when it has none.
pub(crate) fn strip_comments(text: &str) -> Cow<'_, str> {
    if !text.contains("//") && !text.contains("/*") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match c {
                '\\' => {
                    if let Some(n) = chars.next() {
                        out.push(n);
                    }
                }
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match (c, chars.peek()) {
            ('"', _) => {
                in_string = true;
                out.push(c);
            }
            ('/', Some('/')) => {
                for n in chars.by_ref() {
                    if n == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            ('/', Some('*')) => {
                chars.next();
                let mut prev = '\0';
                for n in chars.by_ref() {
                    if prev == '*' && n == '/' {
                        break;
                    }
                    if n == '\n' {
                        out.push('\n');
                    }
                    prev = n;
                }
                out.push(' ');
            }
            _ => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn unreadable(path: &Path, why: &str) -> Error {
    Error::config(
        format!("cannot read `{}`: {why}", path.display()),
        "fix the file (it must be a JSON object), or pass --auth-type to choose the method for this run",
    )
}

/// Read the settings document; `Ok(None)` when there is no file.
fn read(path: &Path) -> Result<Option<(String, Value)>, Error> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(unreadable(path, &e.to_string())),
    };
    if text.trim().is_empty() {
        return Ok(Some((text, Value::Object(Map::new()))));
    }
    let doc: Value = serde_json::from_str(&strip_comments(&text))
        .map_err(|e| unreadable(path, &e.to_string()))?;
    if !doc.is_object() {
        return Err(unreadable(path, "it is not a JSON object"));
    }
    Ok(Some((text, doc)))
}

/// What the user settings say about the method, if anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Selection {
    None,
    Known(AuthType),
    /// A value this program does not implement (another of Qwen Code's methods); ignored.
    Unknown(String),
}

/// The selected method from `~/.qwen/settings.json` (no file, or no key: `Selection::None`).
pub(crate) fn load_selection(home: Option<&Path>) -> Result<(Selection, PathBuf), Error> {
    let Some(home) = home else {
        return Ok((Selection::None, PathBuf::new()));
    };
    let path = path(home);
    let selection = match read(&path)? {
        Some((_, doc)) => match selected_type(&doc) {
            Some(raw) => parse_auth_type(raw)
                .map_or_else(|| Selection::Unknown(raw.to_owned()), Selection::Known),
            None => Selection::None,
        },
        None => Selection::None,
    };
    Ok((selection, path))
}

/// The selected method as an input to `resolve`, with the file as its source.
pub(crate) fn selected_auth_type(home: Option<&Path>) -> Result<Option<Sourced<AuthType>>, Error> {
    let (selection, path) = load_selection(home)?;
    Ok(match selection {
        Selection::Known(t) => Some(Sourced::new(t, Source::Setting(path))),
        Selection::None | Selection::Unknown(_) => None,
    })
}

/// The document with `security.auth.selectedType` set (and the legacy flat key, when the file
/// has one, kept in agreement). Fails when `security` or `security.auth` is not an object.
pub(crate) fn with_selected_type(mut doc: Value, method: AuthType) -> Result<Value, String> {
    let value = Value::String(method.as_str().to_owned());
    let Some(root) = doc.as_object_mut() else {
        return Err("the file is not a JSON object".into());
    };
    if root.contains_key(LEGACY_SELECTED_TYPE) {
        root.insert(LEGACY_SELECTED_TYPE.to_owned(), value.clone());
    }
    let mut node = root;
    for key in &SELECTED_TYPE[..2] {
        node = node
            .entry((*key).to_owned())
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()
            .ok_or_else(|| format!("`{key}` is not a JSON object"))?;
    }
    node.insert(SELECTED_TYPE[2].to_owned(), value);
    Ok(doc)
}

/// Record `method` in `~/.qwen/settings.json` (atomic write, mode 0600), keeping every other setting.
pub(crate) fn save_selected_type(home: &Path, method: AuthType) -> Result<PathBuf, Error> {
    let path = path(home);
    let (text, doc) = read(&path)?.unwrap_or_else(|| (String::new(), Value::Object(Map::new())));
    if matches!(strip_comments(&text), Cow::Owned(ref s) if *s != text) {
        return Err(Error::config(
            format!(
                "`{}` has comments, which rewriting it would lose",
                path.display()
            ),
            format!(
                "set \"security\": {{\"auth\": {{\"selectedType\": \"{}\"}}}} in it by hand, or pass --auth-type",
                method.as_str()
            ),
        ));
    }
    let doc = with_selected_type(doc, method).map_err(|why| unreadable(&path, &why))?;
    let mut bytes = serde_json::to_vec_pretty(&doc)
        .map_err(|e| Error::Internal(format!("cannot encode settings: {e}")))?;
    bytes.push(b'\n');
    fsutil::write_private(&path, &bytes).map_err(|e| Error::file("write", &path, e))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn patch_keeps_every_other_key_in_order() {
        let doc = json!({
            "model": {"name": "qwen3-coder-plus"},
            "security": {"auth": {"selectedType": "openai", "useExternal": false}, "folderTrust": {"enabled": true}},
            "ui": {"theme": "GitHub"}
        });
        let patched = with_selected_type(doc, AuthType::QwenOauth).unwrap();
        assert_eq!(
            patched.to_string(),
            r#"{"model":{"name":"qwen3-coder-plus"},"security":{"auth":{"selectedType":"qwen-oauth","useExternal":false},"folderTrust":{"enabled":true}},"ui":{"theme":"GitHub"}}"#
        );
    }

    #[test]
    fn patch_creates_missing_objects_and_follows_the_legacy_key() {
        let patched = with_selected_type(json!({}), AuthType::Openai).unwrap();
        assert_eq!(
            patched,
            json!({"security": {"auth": {"selectedType": "openai"}}})
        );
        let legacy =
            with_selected_type(json!({"selectedAuthType": "openai"}), AuthType::QwenOauth).unwrap();
        assert_eq!(legacy["selectedAuthType"], "qwen-oauth");
        assert_eq!(selected_type(&legacy), Some("qwen-oauth"));
        assert!(with_selected_type(json!({"security": 1}), AuthType::Openai).is_err());
        assert!(with_selected_type(json!([]), AuthType::Openai).is_err());
    }

    #[test]
    fn selected_type_spellings() {
        let cases = [
            ("openai", Some(AuthType::Openai)),
            ("qwen-oauth", Some(AuthType::QwenOauth)),
            ("QWEN_OAUTH", Some(AuthType::QwenOauth)),
            ("openai-api-key", Some(AuthType::Openai)),
            ("gemini", Some(AuthType::Gemini)),
            ("openai-responses", Some(AuthType::OpenaiResponses)),
            ("anthropic", Some(AuthType::Anthropic)),
            ("vertex-ai", Some(AuthType::VertexAi)),
            ("cloud-shell", None),
        ];
        for (raw, want) in cases {
            assert_eq!(parse_auth_type(raw), want, "{raw}");
        }
        assert_eq!(
            selected_type(
                &json!({"security": {"auth": {"selectedType": "qwen-oauth"}}, "selectedAuthType": "openai"})
            ),
            Some("qwen-oauth")
        );
    }

    #[test]
    fn comments_are_stripped_outside_strings() {
        let text = "{\n // a comment\n \"a\": \"http://x//y\", /* block\n */ \"b\": 1 // end\n}";
        let v: Value = serde_json::from_str(&strip_comments(text)).unwrap();
        assert_eq!(v, json!({"a": "http://x//y", "b": 1}));
        assert!(matches!(strip_comments("{\"a\": 1}"), Cow::Borrowed(_)));
        assert_eq!(strip_comments(r#"{"a": "//"}"#), r#"{"a": "//"}"#);
    }

    #[test]
    fn save_keeps_other_settings_and_refuses_commented_files() {
        let home = tempfile::tempdir().unwrap();
        let path = path(home.path());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, r#"{"ui": {"theme": "Dark"}, "mcpServers": {}}"#).unwrap();
        save_selected_type(home.path(), AuthType::QwenOauth).unwrap();
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(
            doc,
            json!({"ui": {"theme": "Dark"}, "mcpServers": {}, "security": {"auth": {"selectedType": "qwen-oauth"}}})
        );
        assert_eq!(
            selected_auth_type(Some(home.path()))
                .unwrap()
                .unwrap()
                .value,
            AuthType::QwenOauth
        );
        std::fs::write(&path, "{ // mine\n}").unwrap();
        assert!(save_selected_type(home.path(), AuthType::Openai).is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{ // mine\n}");
    }
}
