//! What providers disagree on in a request: which token-limit parameter a host reads, the one
//! adjusted retry when a server refuses a parameter (remembered for the rest of the run), and the
//! extra headers a user adds (checked, and told apart when they carry credentials).
//!
//! Wire facts this follows (`OpenAI` API reference, "Create chat completion",
//! <https://platform.openai.com/docs/api-reference/chat/create>): `max_tokens` "is now deprecated in
//! favor of `max_completion_tokens`, and is not compatible with o-series models"; a reasoning model
//! answers a `max_tokens` with HTTP 400 `{"error": {"message": "Unsupported parameter: 'max_tokens' is
//! not supported with this model. Use 'max_completion_tokens' instead.", "type":
//! "invalid_request_error", "param": "max_tokens", "code": "unsupported_parameter"}}`, and a
//! non-default `temperature`/`top_p` with `"Unsupported value: 'temperature' does not support 0.2 with
//! this model. Only the default (1) value is supported."` (`code: unsupported_value`), or for some
//! models `"Unsupported parameter: 'temperature' is not supported with this model."`. The exact
//! bodies are quoted in griptape-ai/ComfyUI-Griptape#312 (`max_tokens`, gpt-5), holoviz/lumen#1087
//! (`temperature`, Azure `OpenAI`) and BeehiveInnovations/pal-mcp-server#78 (both `temperature`
//! forms, o3).

use std::sync::{Arc, Mutex};

use reqwest::Url;
use serde_json::{Map, Value};

use super::ApiError;

/// A request parameter some servers refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Param {
    MaxTokens,
    MaxCompletionTokens,
    Temperature,
    TopP,
}

impl Param {
    const ALL: [Self; 4] = [
        Self::MaxTokens,
        Self::MaxCompletionTokens,
        Self::Temperature,
        Self::TopP,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::MaxTokens => "max_tokens",
            Self::MaxCompletionTokens => "max_completion_tokens",
            Self::Temperature => "temperature",
            Self::TopP => "top_p",
        }
    }
}

/// The token-limit parameter qwen sends for its own `--max-tokens` (and a job's `max_tokens`):
/// `max_completion_tokens` to `OpenAI` and Azure `OpenAI`, `max_tokens` to everything else
/// (llama.cpp, vLLM, `DashScope`, `OpenRouter` and Ollama all read it).
pub(crate) fn token_param_for(url: &Url) -> Param {
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    let host = host.trim_end_matches('.');
    let openai = host == "api.openai.com"
        || host.ends_with(".openai.azure.com")
        || host.ends_with(".cognitiveservices.azure.com");
    if openai {
        Param::MaxCompletionTokens
    } else {
        Param::MaxTokens
    }
}

/// A change made to a request because a server refused part of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Adjustment {
    /// Send the same value under another name (`max_tokens` ↔ `max_completion_tokens`).
    Rename { from: Param, to: Param },
    /// Leave the parameter out (the server's default applies).
    Drop(Param),
}

impl Adjustment {
    /// How a result lists it (`adjusted`).
    pub(crate) fn describe(self) -> String {
        match self {
            Self::Rename { from, to } => format!("{} instead of {}", to.name(), from.name()),
            Self::Drop(p) => format!("{} removed", p.name()),
        }
    }

    fn param(self) -> Param {
        match self {
            Self::Rename { from, .. } => from,
            Self::Drop(p) => p,
        }
    }

    /// Change `body`; false when it holds nothing this adjustment touches.
    pub(crate) fn apply(self, body: &mut Map<String, Value>) -> bool {
        match self {
            Self::Rename { from, to } => {
                let Some(value) = body.remove(from.name()) else {
                    return false;
                };
                body.entry(to.name()).or_insert(value);
                true
            }
            Self::Drop(p) => body.remove(p.name()).is_some(),
        }
    }
}

/// The parameter a 400 refuses as unsupported (a parameter, or a value of it), when it is one of
/// the four this module adjusts. The body's `error.code` (`unsupported_parameter`,
/// `unsupported_value`) or the message's wording says it is a refusal; the message names the
/// parameter, the first of the four it mentions (`Use 'max_completion_tokens' instead` comes after).
pub(crate) fn refused_param(status: u16, code: Option<&str>, message: &str) -> Option<Param> {
    if status != 400 {
        return None;
    }
    let lower = message.to_ascii_lowercase();
    let refusal = matches!(code, Some("unsupported_parameter" | "unsupported_value"))
        || lower.contains("unsupported")
        || lower.contains("not supported")
        || lower.contains("unrecognized")
        || lower.contains("extra inputs are not permitted");
    if !refusal {
        return None;
    }
    Param::ALL
        .iter()
        .filter_map(|p| find_word(&lower, p.name()).map(|at| (at, *p)))
        .min_by_key(|(at, _)| *at)
        .map(|(_, p)| p)
}

/// The first place `word` stands on its own in `text` (not inside a longer identifier).
fn find_word(text: &str, word: &str) -> Option<usize> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut from = 0;
    while let Some(i) = text[from..].find(word) {
        let at = from + i;
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        if !before.is_some_and(ident) && !after.is_some_and(ident) {
            return Some(at);
        }
        from = at + word.len();
    }
    None
}

/// What to change in `body` when `param` was refused; `None` when the body does not hold it.
pub(crate) fn adjustment_for(param: Param, body: &Map<String, Value>) -> Option<Adjustment> {
    if !body.contains_key(param.name()) {
        return None;
    }
    Some(match param {
        Param::MaxTokens => Adjustment::Rename {
            from: param,
            to: Param::MaxCompletionTokens,
        },
        Param::MaxCompletionTokens => Adjustment::Rename {
            from: param,
            to: Param::MaxTokens,
        },
        Param::Temperature | Param::TopP => Adjustment::Drop(param),
    })
}

/// The adjustments learned during a run, shared by every clone of a client: a batch adjusts
/// once, and every later request is sent adjusted from the start.
#[derive(Debug, Clone, Default)]
pub(crate) struct Learned(Arc<Mutex<Vec<Adjustment>>>);

impl Learned {
    fn list(&self) -> Vec<Adjustment> {
        match self.0.lock() {
            Ok(l) => l.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Remember `adjustment`; true when it is new to this run (the one time it is reported).
    pub(crate) fn remember(&self, adjustment: Adjustment) -> bool {
        let mut list = match self.0.lock() {
            Ok(l) => l,
            Err(poisoned) => poisoned.into_inner(),
        };
        if list.iter().any(|a| a.param() == adjustment.param()) {
            return false;
        }
        list.push(adjustment);
        true
    }

    /// The one adjusted retry for a refused parameter: change `body`, learn it for the run, and
    /// say so once (a one-line warning). `None` when the error is no such refusal, or when this
    /// request already had that adjustment.
    pub(crate) fn retry_adjustment(
        &self,
        error: &ApiError,
        body: &mut Value,
        done: &[Adjustment],
    ) -> Option<Adjustment> {
        let ApiError::Http {
            status,
            message,
            code,
            ..
        } = error
        else {
            return None;
        };
        let param = refused_param(*status, code.as_deref(), message)?;
        let map = body.as_object_mut()?;
        let adjustment = adjustment_for(param, map)?;
        if done.contains(&adjustment) {
            return None;
        }
        adjustment.apply(map);
        if self.remember(adjustment) {
            crate::diag::warn(&format!(
                "warning: the server refused `{}` (HTTP {status}: {message}); retrying with {}, and for the rest of this run",
                param.name(),
                adjustment.describe()
            ));
        }
        Some(adjustment)
    }

    /// A body before its first attempt: qwen's own token limit named for the host (`token_param`,
    /// when the limit is qwen's), then what this run learned; returns the learned changes made.
    pub(crate) fn prepare(&self, body: &mut Value, token_param: Option<Param>) -> Vec<Adjustment> {
        let Some(map) = body.as_object_mut() else {
            return Vec::new();
        };
        if token_param == Some(Param::MaxCompletionTokens) {
            Adjustment::Rename {
                from: Param::MaxTokens,
                to: Param::MaxCompletionTokens,
            }
            .apply(map);
        }
        self.list().into_iter().filter(|a| a.apply(map)).collect()
    }
}

/// Names that carry credentials: their values are treated like the key (masked, scrubbed).
const SECRET_NAME_PARTS: [&str; 7] = [
    "key",
    "token",
    "secret",
    "auth",
    "password",
    "cookie",
    "signature",
];

/// Headers that cannot be set with `-H`: the key has its own way in, and framing is the client's.
const RESERVED: [&str; 4] = [
    "authorization",
    "content-length",
    "transfer-encoding",
    "host",
];

/// RFC 9110 `tchar`, what a header name is made of: letters, digits, the backtick and
/// !#$%&'*+-.^_|~.
pub(crate) fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// One `-H 'Name: value'` header (or a job's `headers` entry). Its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct ExtraHeader {
    pub(crate) name: String,
    pub(crate) value: String,
}

impl std::fmt::Debug for ExtraHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: ****", self.name)
    }
}

impl ExtraHeader {
    /// `Name: value`, as `-H` takes it (the value is trimmed of surrounding blanks).
    pub(crate) fn parse(spec: &str) -> Result<Self, String> {
        let Some((name, value)) = spec.split_once(':') else {
            return Err("a header is `Name: value` (no `:` found)".to_owned());
        };
        Self::new(name.trim(), value.trim_matches([' ', '\t']))
    }

    /// A checked header: the name an RFC 9110 token, the value without CR, LF or other controls.
    /// Errors never quote the value.
    pub(crate) fn new(name: &str, value: &str) -> Result<Self, String> {
        if name.is_empty() || !name.chars().all(is_tchar) {
            return Err(format!(
                "`{name}` is not a header name (letters, digits and !#$%&'*+-.^_`|~)"
            ));
        }
        let lower = name.to_ascii_lowercase();
        if lower == "authorization" {
            return Err(
                "`Authorization` cannot be set with a header: give the key with OPENAI_API_KEY"
                    .to_owned(),
            );
        }
        if RESERVED.contains(&lower.as_str()) {
            return Err(format!("`{name}` is set by qwen itself"));
        }
        if value.contains(['\r', '\n']) {
            return Err(format!("the value of `{name}` holds a line break"));
        }
        // What an HTTP header value may carry as text: visible ASCII, spaces and tabs.
        if !value.chars().all(|c| c == '\t' || (' '..='~').contains(&c)) {
            return Err(format!(
                "the value of `{name}` holds a control or non-ASCII character"
            ));
        }
        Ok(Self {
            name: name.to_owned(),
            value: value.to_owned(),
        })
    }

    /// Whether the name looks like it carries a credential.
    pub(crate) fn is_secret(&self) -> bool {
        let lower = self.name.to_ascii_lowercase();
        SECRET_NAME_PARTS.iter().any(|p| lower.contains(p))
    }
}

/// `later` over `earlier`, by case-insensitive name, in first-seen order.
pub(crate) fn merge_headers(earlier: &[ExtraHeader], later: &[ExtraHeader]) -> Vec<ExtraHeader> {
    let mut out: Vec<ExtraHeader> = earlier.to_vec();
    for h in later {
        if let Some(slot) = out
            .iter_mut()
            .find(|o| o.name.eq_ignore_ascii_case(&h.name))
        {
            slot.clone_from(h);
        } else {
            out.push(h.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn openai_and_azure_hosts_get_max_completion_tokens_and_others_max_tokens() {
        let cases = [
            ("https://api.openai.com/v1", Param::MaxCompletionTokens),
            ("https://API.OpenAI.com./v1", Param::MaxCompletionTokens),
            (
                "https://res.openai.azure.com/openai/v1",
                Param::MaxCompletionTokens,
            ),
            (
                "https://res.cognitiveservices.azure.com/openai/v1",
                Param::MaxCompletionTokens,
            ),
            ("https://openrouter.ai/api/v1", Param::MaxTokens),
            (
                "https://dashscope-intl.aliyuncs.com/compatible-mode/v1",
                Param::MaxTokens,
            ),
            ("http://localhost:11434/v1", Param::MaxTokens),
            ("https://api.openai.com.evil.example/v1", Param::MaxTokens),
            ("https://notopenai.azure.com/v1", Param::MaxTokens),
        ];
        for (url, want) in cases {
            let url = Url::parse(url).expect("url");
            assert_eq!(token_param_for(&url), want, "{url}");
        }
    }

    #[test]
    fn refusals_name_the_first_parameter_they_mention() {
        let cases = [
            (
                400,
                Some("unsupported_parameter"),
                "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.",
                Some(Param::MaxTokens),
            ),
            (
                400,
                Some("unsupported_value"),
                "Unsupported value: 'temperature' does not support 0.2 with this model. Only the default (1) value is supported.",
                Some(Param::Temperature),
            ),
            (
                400,
                None,
                "Unsupported value: 'top_p' does not support 0.5 with this model.",
                Some(Param::TopP),
            ),
            (
                400,
                None,
                "max_completion_tokens: Extra inputs are not permitted",
                Some(Param::MaxCompletionTokens),
            ),
            (400, None, "max_tokens is too large: 99999", None),
            (
                500,
                Some("unsupported_parameter"),
                "Unsupported parameter: 'max_tokens'",
                None,
            ),
            (
                400,
                Some("unsupported_parameter"),
                "Unsupported parameter: 'logprobs'",
                None,
            ),
            (400, None, "unsupported parameter: 'my_max_tokens_x'", None),
        ];
        for (status, code, message, want) in cases {
            assert_eq!(refused_param(status, code, message), want, "{message}");
        }
    }

    #[test]
    fn adjustments_rename_or_drop_and_are_learned_once() {
        let mut body = json!({"max_tokens": 5, "temperature": 0.2})
            .as_object()
            .cloned()
            .expect("object");
        let rename = adjustment_for(Param::MaxTokens, &body).expect("adjust");
        assert!(rename.apply(&mut body));
        assert_eq!(
            Value::Object(body.clone()),
            json!({"max_completion_tokens": 5, "temperature": 0.2})
        );
        assert_eq!(
            rename.describe(),
            "max_completion_tokens instead of max_tokens"
        );
        assert_eq!(adjustment_for(Param::TopP, &body), None);
        let learned = Learned::default();
        assert!(learned.remember(rename));
        assert!(!learned.clone().remember(rename));
        assert!(learned.remember(Adjustment::Drop(Param::Temperature)));
        let mut next = json!({"max_tokens": 9, "temperature": 1, "top_p": 1});
        assert_eq!(learned.prepare(&mut next, Some(Param::MaxTokens)).len(), 2);
        assert_eq!(next, json!({"max_completion_tokens": 9, "top_p": 1}));
        let mut openai = json!({"max_tokens": 9});
        let fresh = Learned::default();
        assert!(
            fresh
                .prepare(&mut openai, Some(Param::MaxCompletionTokens))
                .is_empty()
        );
        assert_eq!(
            openai,
            json!({"max_completion_tokens": 9}),
            "the host's name, not an adjustment"
        );
    }

    #[test]
    fn headers_are_checked_and_credential_names_recognised() {
        let h = ExtraHeader::parse("X-Title:  CI run ").expect("ok");
        assert_eq!((h.name.as_str(), h.value.as_str()), ("X-Title", "CI run"));
        assert!(!h.is_secret());
        assert!(
            ExtraHeader::parse("X-Api-Key: s3cret")
                .expect("ok")
                .is_secret()
        );
        assert!(ExtraHeader::parse("Cookie: a=b").expect("ok").is_secret());
        assert_eq!(
            format!("{:?}", ExtraHeader::parse("X-Api-Key: s3cret").expect("ok")),
            "X-Api-Key: ****"
        );
        for bad in [
            "no colon",
            ": empty name",
            "Bad Name: x",
            "Authorization: Bearer x",
            "authorization: x",
            "Host: x",
            "X-A: a\u{7}b",
            "X-A: caf\u{e9}",
        ] {
            let err = ExtraHeader::parse(bad).expect_err(bad);
            assert!(!err.contains("Bearer"), "{err}");
        }
        assert!(ExtraHeader::new("X-A", "a\r\nX-B: b").is_err());
        let merged = merge_headers(
            &[
                ExtraHeader::new("X-A", "1").expect("ok"),
                ExtraHeader::new("X-B", "1").expect("ok"),
            ],
            &[ExtraHeader::new("x-a", "2").expect("ok")],
        );
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].value, "2");
    }
}
