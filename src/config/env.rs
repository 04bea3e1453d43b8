//! The variable names we read, and a snapshot of the process environment taken once at start.

use std::collections::HashMap;
use std::path::PathBuf;

pub(crate) const OPENAI_API_KEY: &str = "OPENAI_API_KEY";
pub(crate) const OPENAI_BASE_URL: &str = "OPENAI_BASE_URL";
pub(crate) const OPENAI_MODEL: &str = "OPENAI_MODEL";
pub(crate) const ANTHROPIC_API_KEY: &str = "ANTHROPIC_API_KEY";
pub(crate) const ANTHROPIC_AUTH_TOKEN: &str = "ANTHROPIC_AUTH_TOKEN";
pub(crate) const ANTHROPIC_BASE_URL: &str = "ANTHROPIC_BASE_URL";
pub(crate) const ANTHROPIC_MODEL: &str = "ANTHROPIC_MODEL";
pub(crate) const GEMINI_API_KEY: &str = "GEMINI_API_KEY";
pub(crate) const GOOGLE_GEMINI_BASE_URL: &str = "GOOGLE_GEMINI_BASE_URL";
pub(crate) const GEMINI_MODEL: &str = "GEMINI_MODEL";
pub(crate) const GOOGLE_API_KEY: &str = "GOOGLE_API_KEY";
pub(crate) const GOOGLE_VERTEX_BASE_URL: &str = "GOOGLE_VERTEX_BASE_URL";
pub(crate) const GOOGLE_MODEL: &str = "GOOGLE_MODEL";
/// The auth type, below `--auth-type` and above `settings.json`.
pub(crate) const QWEN_AUTH_TYPE: &str = "QWEN_AUTH_TYPE";
pub(crate) const DEBUG: &str = "DEBUG";
pub(crate) const DEBUG_MODE: &str = "DEBUG_MODE";
pub(crate) const CI: &str = "CI";
pub(crate) const HOME: &str = "HOME";
pub(crate) const QWEN_TRUST_PROJECT_ENV: &str = "QWEN_TRUST_PROJECT_ENV";
/// Qwen Code's switch for `--insecure` (read from the process environment only, never a `.env`).
pub(crate) const QWEN_TLS_INSECURE: &str = "QWEN_TLS_INSECURE";
pub(crate) const GITHUB_ACTIONS: &str = "GITHUB_ACTIONS";
pub(crate) const GITHUB_STEP_SUMMARY: &str = "GITHUB_STEP_SUMMARY";
/// The Qwen OAuth server (default `https://chat.qwen.ai`), for tests and self-hosted servers.
pub(crate) const QWEN_OAUTH_BASE_URL: &str = "QWEN_OAUTH_BASE_URL";
/// Hidden, for tests: how long one second of the device flow's schedule (interval, `slow_down`,
/// `expires_in`) lasts, in milliseconds.
pub(crate) const QWEN_OAUTH_POLL_UNIT_MS: &str = "QWEN_OAUTH_POLL_UNIT_MS";
/// Hidden, for tests: a file holding milliseconds by which the OAuth refresh clock runs ahead.
pub(crate) const QWEN_TEST_CLOCK_OFFSET_FILE: &str = "QWEN_TEST_CLOCK_OFFSET_FILE";
/// Never open a browser (`BROWSER=none` does the same).
pub(crate) const QWEN_NO_BROWSER: &str = "QWEN_NO_BROWSER";
pub(crate) const BROWSER: &str = "BROWSER";
pub(crate) const DISPLAY: &str = "DISPLAY";
pub(crate) const WAYLAND_DISPLAY: &str = "WAYLAND_DISPLAY";

/// OpenTelemetry export (`otel`): where spans go, with which headers, in which encoding.
pub(crate) const OTEL_EXPORTER_OTLP_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
pub(crate) const OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
pub(crate) const OTEL_EXPORTER_OTLP_HEADERS: &str = "OTEL_EXPORTER_OTLP_HEADERS";
pub(crate) const OTEL_EXPORTER_OTLP_TRACES_HEADERS: &str = "OTEL_EXPORTER_OTLP_TRACES_HEADERS";
pub(crate) const OTEL_EXPORTER_OTLP_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
pub(crate) const OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL";
pub(crate) const OTEL_EXPORTER_OTLP_TIMEOUT: &str = "OTEL_EXPORTER_OTLP_TIMEOUT";
pub(crate) const OTEL_SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
pub(crate) const OTEL_SDK_DISABLED: &str = "OTEL_SDK_DISABLED";
pub(crate) const OTEL_TRACES_EXPORTER: &str = "OTEL_TRACES_EXPORTER";
/// Prompts and answers go into spans only when this is true (the `GenAI` semantic conventions' switch).
pub(crate) const OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT: &str =
    "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT";
/// The W3C trace context a CI tracing action hands its steps: the run becomes its child.
pub(crate) const TRACEPARENT: &str = "TRACEPARENT";

/// What one variable looks like in the environment. An empty value counts as unset for
/// every rule, but we remember it so that error messages can say "set but empty".
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Lookup<'a> {
    Unset,
    Empty,
    Set(&'a str),
}

/// The process environment, read once and passed around; tests build one by hand.
#[derive(Debug, Clone, Default)]
pub(crate) struct EnvSnapshot {
    vars: HashMap<String, String>,
}

impl EnvSnapshot {
    pub(crate) fn from_process() -> Self {
        let vars = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        Self { vars }
    }

    #[cfg(test)]
    pub(crate) fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// Every variable, in no particular order.
    pub(crate) fn vars(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub(crate) fn lookup(&self, name: &str) -> Lookup<'_> {
        match self.vars.get(name).map(String::as_str) {
            None => Lookup::Unset,
            Some(v) if v.trim().is_empty() => Lookup::Empty,
            Some(v) => Lookup::Set(v),
        }
    }

    /// The value when it is set and non-empty.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        match self.lookup(name) {
            Lookup::Set(v) => Some(v),
            _ => None,
        }
    }

    /// A boolean switch such as `CI` or `QWEN_TRUST_PROJECT_ENV`: set, non-empty and not `0`/`false`.
    pub(crate) fn flag(&self, name: &str) -> bool {
        self.get(name).is_some_and(is_truthy_switch)
    }

    /// A switch read strictly: `1`/`true`/`yes`/`on` turn it on; unset, empty, `0`/`false`/`no`/
    /// `off` leave it off; anything else (`disabled`, a typo) is an error naming the value.
    pub(crate) fn strict_switch(&self, name: &str) -> Result<bool, String> {
        let Some(value) = self.get(name) else {
            return Ok(false);
        };
        match value.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "" | "0" | "false" | "no" | "off" => Ok(false),
            _ => Err(format!(
                "{name}=`{value}` is neither on (1, true, yes, on) nor off (0, false, no, off, empty)"
            )),
        }
    }

    pub(crate) fn home(&self) -> Option<PathBuf> {
        self.get(HOME).map(PathBuf::from)
    }
}

/// `DEBUG=1|true` style values (case-insensitive).
pub(crate) fn is_true(value: &str) -> bool {
    matches!(value.trim().to_ascii_lowercase().as_str(), "1" | "true")
}

fn is_truthy_switch(value: &str) -> bool {
    !matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "0" | "false" | "no" | "off"
    )
}
