//! A pure function from flags + environment snapshot + `.env` search to the resolved configuration.

use std::fmt;
use std::path::PathBuf;

use reqwest::Url;
use secrecy::SecretString;

use super::dotenv::{DotEnvKind, DotEnvSearch};
use super::env::{self, EnvSnapshot, Lookup};
use crate::client::url::http_url;
use crate::error::Error;

pub(crate) const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
pub(crate) const DEFAULT_MODEL: &str = "gpt-4o";
/// The model Qwen Code uses with Qwen OAuth.
pub(crate) const DEFAULT_QWEN_OAUTH_MODEL: &str = "coder-model";
/// qwen's choices where Qwen Code has none to follow (the README's tables say so).
pub(crate) const DEFAULT_ANTHROPIC_MODEL: &str = "claude-sonnet-4-5";
pub(crate) const DEFAULT_GEMINI_MODEL: &str = "gemini-2.5-flash";

/// Where a resolved value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    Flag(&'static str),
    Env(&'static str),
    DotEnv {
        path: PathBuf,
        kind: DotEnvKind,
    },
    /// A user setting file such as `~/.qwen/settings.json`.
    Setting(PathBuf),
    Default,
}

impl Source {
    pub(crate) fn is_project_dotenv(&self) -> bool {
        matches!(self, Self::DotEnv { kind, .. } if kind.is_project())
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Flag(name) => write!(f, "flag {name}"),
            Self::Env(name) => write!(f, "environment variable {name}"),
            Self::DotEnv { path, .. } => write!(f, "file {}", path.display()),
            Self::Setting(path) => write!(f, "settings file {}", path.display()),
            Self::Default => f.write_str("default"),
        }
    }
}

/// A value and where it came from (like cargo's `Value<T>`).
#[derive(Debug, Clone)]
pub(crate) struct Sourced<T> {
    pub(crate) value: T,
    pub(crate) source: Source,
}

impl<T> Sourced<T> {
    pub(crate) fn new(value: T, source: Source) -> Self {
        Self { value, source }
    }
}

/// Qwen Code's `--auth-type` values, spelled as its `AuthType` enum spells them
/// (QwenLM/qwen-code, `packages/core/src/core/contentGenerator.ts`: `USE_OPENAI = 'openai'`,
/// `USE_OPENAI_RESPONSES = 'openai-responses'`, `QWEN_OAUTH = 'qwen-oauth'`, `USE_GEMINI =
/// 'gemini'`, `USE_VERTEX_AI = 'vertex-ai'`, `USE_ANTHROPIC = 'anthropic'`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum AuthType {
    Openai,
    OpenaiResponses,
    Anthropic,
    Gemini,
    VertexAi,
    QwenOauth,
}

impl AuthType {
    pub(crate) const ALL: [Self; 6] = [
        Self::Openai,
        Self::OpenaiResponses,
        Self::Anthropic,
        Self::Gemini,
        Self::VertexAi,
        Self::QwenOauth,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Openai => "openai",
            Self::OpenaiResponses => "openai-responses",
            Self::Anthropic => "anthropic",
            Self::Gemini => "gemini",
            Self::VertexAi => "vertex-ai",
            Self::QwenOauth => "qwen-oauth",
        }
    }

    /// The value as Qwen Code writes it (`QWEN_AUTH_TYPE`, `security.auth.selectedType`).
    pub(crate) fn parse(value: &str) -> Option<Self> {
        let value = value.trim().to_ascii_lowercase();
        Self::ALL.into_iter().find(|t| t.as_str() == value)
    }

    /// The variables an API-key type reads (`None` for Qwen OAuth).
    pub(crate) fn vars(self) -> Option<&'static TypeVars> {
        Some(match self {
            Self::Openai => &OPENAI_VARS,
            Self::OpenaiResponses => &OPENAI_RESPONSES_VARS,
            Self::Anthropic => &ANTHROPIC_VARS,
            Self::Gemini => &GEMINI_VARS,
            Self::VertexAi => &VERTEX_VARS,
            Self::QwenOauth => return None,
        })
    }
}

/// The key, base URL and model variables of one API-key auth type, in the order they are read
/// (the first one set wins), and their defaults.
#[derive(Debug)]
pub(crate) struct TypeVars {
    pub(crate) keys: &'static [&'static str],
    pub(crate) base_url: &'static str,
    pub(crate) default_base_url: &'static str,
    pub(crate) model: &'static str,
    pub(crate) default_model: &'static str,
}

const OPENAI_VARS: TypeVars = TypeVars {
    keys: &[env::OPENAI_API_KEY],
    base_url: env::OPENAI_BASE_URL,
    default_base_url: DEFAULT_BASE_URL,
    model: env::OPENAI_MODEL,
    default_model: DEFAULT_MODEL,
};
const OPENAI_RESPONSES_VARS: TypeVars = TypeVars {
    keys: &[env::OPENAI_API_KEY],
    base_url: env::OPENAI_BASE_URL,
    default_base_url: DEFAULT_BASE_URL,
    model: env::OPENAI_MODEL,
    default_model: DEFAULT_MODEL,
};
/// `ANTHROPIC_API_KEY` (sent as `x-api-key`), else `ANTHROPIC_AUTH_TOKEN` (sent as a bearer
/// token), as Anthropic's SDK reads them; its base URL is the host, the SDK adds `/v1/messages`.
const ANTHROPIC_VARS: TypeVars = TypeVars {
    keys: &[env::ANTHROPIC_API_KEY, env::ANTHROPIC_AUTH_TOKEN],
    base_url: env::ANTHROPIC_BASE_URL,
    default_base_url: "https://api.anthropic.com",
    model: env::ANTHROPIC_MODEL,
    default_model: DEFAULT_ANTHROPIC_MODEL,
};
/// `GOOGLE_GEMINI_BASE_URL` is the variable the `@google/genai` SDK reads; like its default it
/// names the host, and the SDK adds `/v1beta/models/...`.
const GEMINI_VARS: TypeVars = TypeVars {
    keys: &[env::GEMINI_API_KEY],
    base_url: env::GOOGLE_GEMINI_BASE_URL,
    default_base_url: "https://generativelanguage.googleapis.com",
    model: env::GEMINI_MODEL,
    default_model: DEFAULT_GEMINI_MODEL,
};
/// Vertex AI in express mode: an API key (`GOOGLE_API_KEY`) and the global endpoint.
const VERTEX_VARS: TypeVars = TypeVars {
    keys: &[env::GOOGLE_API_KEY],
    base_url: env::GOOGLE_VERTEX_BASE_URL,
    default_base_url: "https://aiplatform.googleapis.com",
    model: env::GOOGLE_MODEL,
    default_model: DEFAULT_GEMINI_MODEL,
};

/// The configuration-related flags, as given on the command line.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConfigFlags {
    pub(crate) api_key: Option<String>,
    pub(crate) base_url: Option<String>,
    pub(crate) model: Option<String>,
    pub(crate) auth_type: Option<AuthType>,
    pub(crate) debug: bool,
    /// `--bare`: only flags and the process environment (no `.env`, no `settings.json`, no
    /// stored OAuth credentials, no login offer).
    pub(crate) bare: bool,
}

/// Facts about the session, captured once in `main`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Terminal {
    pub(crate) stdin: bool,
    pub(crate) stderr: bool,
}

/// Everything a run needs to know about where to send what, each value with its source.
#[derive(Debug, Clone)]
pub(crate) struct ResolvedConfig {
    pub(crate) auth_type: Sourced<AuthType>,
    pub(crate) api_key: Option<Sourced<SecretString>>,
    /// The variable the key was read from (`None` for the flag or no key): `ANTHROPIC_AUTH_TOKEN`
    /// is sent as a bearer token, `ANTHROPIC_API_KEY` as `x-api-key`.
    pub(crate) key_var: Option<&'static str>,
    /// Where the key was found set but empty (a flag or a variable), for the error message.
    pub(crate) empty_key_sources: Vec<Source>,
    pub(crate) base_url: Sourced<Url>,
    pub(crate) model: Sourced<String>,
    pub(crate) debug: Option<Sourced<bool>>,
    pub(crate) dotenv: DotEnvSearch,
    pub(crate) interactive: bool,
    pub(crate) trust_project_env: bool,
}

/// A session is interactive when a person can answer: stdin and stderr are terminals and `CI` is not set.
pub(crate) fn is_interactive(terminal: Terminal, env: &EnvSnapshot) -> bool {
    terminal.stdin && terminal.stderr && !env.flag(env::CI)
}

/// The model: each type reads its own model variable; with Qwen OAuth only the flag counts, and
/// the default is Qwen Code's.
fn resolve_model(
    auth_type: AuthType,
    vars: &TypeVars,
    flags: &ConfigFlags,
    env: &EnvSnapshot,
    dotenv: &DotEnvSearch,
    ignored: &mut Vec<Source>,
) -> Sourced<String> {
    // Each type reads its own model variable; with Qwen OAuth only the flag counts, and the
    // default is Qwen Code's.
    if auth_type == AuthType::QwenOauth {
        flags
            .model
            .as_deref()
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .map_or_else(
                || Sourced::new(DEFAULT_QWEN_OAUTH_MODEL.to_owned(), Source::Default),
                |m| Sourced::new(m.to_owned(), Source::Flag("--model")),
            )
    } else {
        pick(
            flags.model.as_deref(),
            "--model",
            env,
            vars.model,
            dotenv,
            ignored,
        )
        .unwrap_or_else(|| Sourced::new(vars.default_model.to_owned(), Source::Default))
    }
}

/// Resolve key, base URL, model, auth type and debug from flags, then the process environment,
/// then the one `.env` file found, then defaults. A malformed base URL is a configuration error.
/// The auth type is the flag, then `selected` (the user's settings file), then `openai`.
pub(crate) fn resolve(
    flags: &ConfigFlags,
    env: &EnvSnapshot,
    dotenv: DotEnvSearch,
    selected: Option<Sourced<AuthType>>,
    terminal: Terminal,
) -> Result<ResolvedConfig, Error> {
    let auth_type = match flags.auth_type {
        Some(t) => Sourced::new(t, Source::Flag("--auth-type")),
        None => match auth_type_from_env(env, &dotenv)? {
            Some(t) => t,
            None => selected.unwrap_or_else(|| Sourced::new(AuthType::Openai, Source::Default)),
        },
    };
    // Qwen OAuth has no variables of its own: the key it would ignore is still shown by `auth
    // status`, so it is read as `openai` reads it.
    let vars = auth_type.value.vars().unwrap_or(&OPENAI_VARS);

    let mut empty_key_sources = Vec::new();
    let key = pick_any(
        flags.api_key.as_deref(),
        "--openai-api-key",
        env,
        vars.keys,
        &dotenv,
        &mut empty_key_sources,
    );
    let key_var = key.as_ref().and_then(|(_, var)| *var);
    let api_key = key.map(|(s, _)| Sourced::new(SecretString::from(s.value), s.source));

    let mut ignored = Vec::new();
    let base_url_raw = pick(
        flags.base_url.as_deref(),
        "--openai-base-url",
        env,
        vars.base_url,
        &dotenv,
        &mut ignored,
    )
    .unwrap_or_else(|| Sourced::new(vars.default_base_url.to_owned(), Source::Default));
    let base_url = Sourced::new(
        parse_base_url_for(&base_url_raw.value, &base_url_raw.source, vars.base_url)?,
        base_url_raw.source,
    );

    let model = resolve_model(auth_type.value, vars, flags, env, &dotenv, &mut ignored);

    let debug = resolve_debug(flags.debug, env, &dotenv);
    let interactive = is_interactive(terminal, env);

    Ok(ResolvedConfig {
        auth_type,
        api_key,
        key_var,
        empty_key_sources,
        base_url,
        model,
        debug,
        dotenv,
        interactive,
        trust_project_env: env
            .strict_switch(env::QWEN_TRUST_PROJECT_ENV)
            .map_err(|e| {
                Error::config(e, "set it to 1 to trust the project's .env, or unset it")
            })?,
    })
}

/// `QWEN_AUTH_TYPE` from the environment, then from the `.env` file: below the flag, above
/// `settings.json`. A value that names no auth type is a configuration error naming it.
fn auth_type_from_env(
    env: &EnvSnapshot,
    dotenv: &DotEnvSearch,
) -> Result<Option<Sourced<AuthType>>, Error> {
    let mut ignored = Vec::new();
    let Some(raw) = pick(None, "", env, env::QWEN_AUTH_TYPE, dotenv, &mut ignored) else {
        return Ok(None);
    };
    match AuthType::parse(&raw.value) {
        Some(t) => Ok(Some(Sourced::new(t, raw.source))),
        None => Err(Error::config(
            format!(
                "QWEN_AUTH_TYPE=`{}` (from {}) is not an auth type",
                raw.value, raw.source
            ),
            format!(
                "use one of: {}",
                AuthType::ALL.map(AuthType::as_str).join(", ")
            ),
        )),
    }
}

/// `pick` over several variables read in order (`ANTHROPIC_API_KEY`, then
/// `ANTHROPIC_AUTH_TOKEN`): the flag, then each variable in the environment, then each in the
/// `.env` file. Also says which variable won (`None` for the flag).
fn pick_any(
    flag: Option<&str>,
    flag_name: &'static str,
    env: &EnvSnapshot,
    vars: &[&'static str],
    dotenv: &DotEnvSearch,
    empties: &mut Vec<Source>,
) -> Option<(Sourced<String>, Option<&'static str>)> {
    let mut flag = flag;
    let mut from_env = None;
    for var in vars {
        let no_file = DotEnvSearch::default();
        if let Some(found) = pick(flag.take(), flag_name, env, var, &no_file, empties) {
            let var = matches!(found.source, Source::Env(_)).then_some(*var);
            from_env = Some((found, var));
            break;
        }
    }
    if from_env.is_some() {
        return from_env;
    }
    vars.iter().find_map(|var| {
        pick(
            None,
            flag_name,
            &EnvSnapshot::default(),
            var,
            dotenv,
            empties,
        )
        .map(|found| (found, Some(*var)))
    })
}

/// One value through the precedence chain: flag, then variable, then the `.env` file.
/// Empty values count as unset; where they were met is recorded in `empties`.
fn pick(
    flag: Option<&str>,
    flag_name: &'static str,
    env: &EnvSnapshot,
    var: &'static str,
    dotenv: &DotEnvSearch,
    empties: &mut Vec<Source>,
) -> Option<Sourced<String>> {
    match flag {
        Some(v) if !v.trim().is_empty() => {
            return Some(Sourced::new(v.trim().to_owned(), Source::Flag(flag_name)));
        }
        Some(_) => empties.push(Source::Flag(flag_name)),
        None => {}
    }
    match env.lookup(var) {
        Lookup::Set(v) => return Some(Sourced::new(v.trim().to_owned(), Source::Env(var))),
        Lookup::Empty => empties.push(Source::Env(var)),
        Lookup::Unset => {}
    }
    let file = dotenv.found.as_ref()?;
    match file.vars.get(var) {
        Some(v) if !v.trim().is_empty() => Some(Sourced::new(
            v.trim().to_owned(),
            Source::DotEnv {
                path: file.path.clone(),
                kind: file.kind,
            },
        )),
        Some(_) => {
            empties.push(Source::DotEnv {
                path: file.path.clone(),
                kind: file.kind,
            });
            None
        }
        None => None,
    }
}

/// `--debug`, then `DEBUG`/`DEBUG_MODE` from the environment, then from the `.env` file unless it
/// is a project's plain `.env` (another tool's `DEBUG=1` must not switch ours on).
fn resolve_debug(flag: bool, env: &EnvSnapshot, dotenv: &DotEnvSearch) -> Option<Sourced<bool>> {
    if flag {
        return Some(Sourced::new(true, Source::Flag("--debug")));
    }
    for var in [env::DEBUG, env::DEBUG_MODE] {
        if let Some(v) = env.get(var)
            && env::is_true(v)
        {
            return Some(Sourced::new(true, Source::Env(var)));
        }
    }
    let file = dotenv.found.as_ref()?;
    if file.kind == DotEnvKind::ProjectPlain {
        return None;
    }
    [env::DEBUG, env::DEBUG_MODE]
        .into_iter()
        .filter(|var| env.get(var).is_none())
        .find(|var| file.get(var).is_some_and(env::is_true))
        .map(|_| {
            Sourced::new(
                true,
                Source::DotEnv {
                    path: file.path.clone(),
                    kind: file.kind,
                },
            )
        })
}

/// Parse and check a base URL: absolute, http or https, with a host, no query or fragment.
pub(crate) fn parse_base_url(raw: &str, source: &Source) -> Result<Url, Error> {
    parse_base_url_for(raw, source, env::OPENAI_BASE_URL)
}

/// `parse_base_url`, naming `var` (the auth type's base-URL variable) in the hint.
fn parse_base_url_for(raw: &str, source: &Source, var: &str) -> Result<Url, Error> {
    let shown = crate::client::url::without_userinfo(raw);
    let bad = |why: &str| {
        Error::config(
            format!("invalid base URL `{shown}` (from {source}): {why}"),
            format!(
                "give an absolute http(s) URL such as `https://api.openai.com/v1` with --openai-base-url or {var}"
            ),
        )
    };
    if shown != raw {
        return Err(Error::config(
            format!(
                "invalid base URL `{shown}` (from {source}): it must not carry a user name or password"
            ),
            "put the key in OPENAI_API_KEY and remove `user:password@` from the base URL",
        ));
    }
    let url = http_url(raw).map_err(|why| bad(&why))?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("it must not carry a query or a fragment"));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::dotenv::DotEnvFile;
    use secrecy::ExposeSecret;
    use std::collections::HashMap;

    fn dotenv(kind: DotEnvKind, pairs: &[(&str, &str)]) -> DotEnvSearch {
        DotEnvSearch {
            probed: vec![PathBuf::from("/p/.env")],
            found: Some(DotEnvFile {
                path: PathBuf::from("/p/.env"),
                kind,
                vars: pairs
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect::<HashMap<_, _>>(),
                skipped_lines: Vec::new(),
            }),
        }
    }

    #[test]
    fn flag_beats_env_beats_file_beats_default() {
        let file = dotenv(
            DotEnvKind::ProjectQwen,
            &[("OPENAI_API_KEY", "file"), ("OPENAI_MODEL", "file-model")],
        );
        let env = EnvSnapshot::from_pairs([("OPENAI_API_KEY", "env")]);
        let flags = ConfigFlags {
            api_key: Some("flag".into()),
            ..ConfigFlags::default()
        };
        let c = resolve(&flags, &env, file.clone(), None, Terminal::default()).unwrap();
        assert_eq!(c.api_key.unwrap().value.expose_secret(), "flag");
        let c = resolve(
            &ConfigFlags::default(),
            &env,
            file.clone(),
            None,
            Terminal::default(),
        )
        .unwrap();
        assert_eq!(c.api_key.as_ref().unwrap().value.expose_secret(), "env");
        assert_eq!(c.model.value, "file-model");
        assert!(c.model.source.is_project_dotenv());
        assert_eq!(c.base_url.value.as_str(), "https://api.openai.com/v1");
        assert_eq!(c.base_url.source, Source::Default);
    }

    /// The precedence matrix for key, base URL and model: every combination of flag, variable and
    /// `.env` value (each absent, empty or set) against the value and source that must win.
    #[test]
    fn precedence_matrix_for_key_base_url_and_model() {
        #[derive(Clone, Copy, Debug)]
        enum At {
            Absent,
            Empty,
            Set,
        }
        let states = [At::Absent, At::Empty, At::Set];
        // (variable, flag value, env value, file value, default)
        let fields = [
            ("OPENAI_API_KEY", "flag-key", "env-key", "file-key", None),
            (
                "OPENAI_BASE_URL",
                "http://127.0.0.1:1/flag",
                "http://127.0.0.1:1/env",
                "http://127.0.0.1:1/file",
                Some(DEFAULT_BASE_URL),
            ),
            (
                "OPENAI_MODEL",
                "flag-model",
                "env-model",
                "file-model",
                Some(DEFAULT_MODEL),
            ),
        ];
        for (var, flag_v, env_v, file_v, default) in fields {
            for flag in states {
                for envs in states {
                    for file in states {
                        let pick = |at: At, v: &'static str| match at {
                            At::Absent => None,
                            At::Empty => Some(""),
                            At::Set => Some(v),
                        };
                        let flag_value = pick(flag, flag_v).map(str::to_owned);
                        let mut flags = ConfigFlags::default();
                        match var {
                            "OPENAI_API_KEY" => flags.api_key = flag_value,
                            "OPENAI_BASE_URL" => flags.base_url = flag_value,
                            _ => flags.model = flag_value,
                        }
                        let env_pairs: Vec<(&str, &str)> =
                            pick(envs, env_v).map(|v| (var, v)).into_iter().collect();
                        let env = EnvSnapshot::from_pairs(env_pairs);
                        let file_pairs: Vec<(&str, &str)> =
                            pick(file, file_v).map(|v| (var, v)).into_iter().collect();
                        // A base URL in a project file with no key from elsewhere is trusted here:
                        // the trust rule is auth's, tested there.
                        let found = dotenv(DotEnvKind::ProjectQwen, &file_pairs);
                        let c = resolve(&flags, &env, found, None, Terminal::default()).unwrap();
                        let (want, want_source) = if matches!(flag, At::Set) {
                            (Some(flag_v), "flag")
                        } else if matches!(envs, At::Set) {
                            (Some(env_v), "env")
                        } else if matches!(file, At::Set) {
                            (Some(file_v), "dotenv")
                        } else {
                            (default, "default")
                        };
                        let label = format!("{var}: flag {flag:?}, env {envs:?}, file {file:?}");
                        let (got, source) = match var {
                            "OPENAI_API_KEY" => (
                                c.api_key
                                    .as_ref()
                                    .map(|k| k.value.expose_secret().to_owned()),
                                c.api_key.as_ref().map(|k| k.source.clone()),
                            ),
                            "OPENAI_BASE_URL" => (
                                Some(c.base_url.value.as_str().trim_end_matches('/').to_owned()),
                                Some(c.base_url.source.clone()),
                            ),
                            _ => (Some(c.model.value.clone()), Some(c.model.source.clone())),
                        };
                        assert_eq!(
                            got.as_deref(),
                            want.map(|w| w.trim_end_matches('/')),
                            "{label}"
                        );
                        let source_kind = source.map(|s| match s {
                            Source::Flag(_) => "flag",
                            Source::Env(_) => "env",
                            Source::DotEnv { .. } => "dotenv",
                            Source::Default => "default",
                            Source::Setting(_) => "setting",
                        });
                        let want_kind = (want.is_some()).then_some(want_source);
                        assert_eq!(source_kind, want_kind, "{label}");
                    }
                }
            }
        }
    }

    #[test]
    fn empty_variable_counts_as_unset_and_is_remembered() {
        let env = EnvSnapshot::from_pairs([("OPENAI_API_KEY", "")]);
        let file = dotenv(DotEnvKind::ProjectQwen, &[("OPENAI_API_KEY", "file")]);
        let c = resolve(
            &ConfigFlags::default(),
            &env,
            file,
            None,
            Terminal::default(),
        )
        .unwrap();
        assert_eq!(c.api_key.unwrap().value.expose_secret(), "file");
        assert_eq!(c.empty_key_sources, vec![Source::Env("OPENAI_API_KEY")]);
    }

    #[test]
    fn debug_is_ignored_from_plain_project_env_only() {
        let none = EnvSnapshot::default();
        for (kind, want) in [
            (DotEnvKind::ProjectPlain, false),
            (DotEnvKind::ProjectQwen, true),
            (DotEnvKind::HomePlain, true),
            (DotEnvKind::HomeQwen, true),
        ] {
            for var in ["DEBUG", "DEBUG_MODE"] {
                let c = resolve(
                    &ConfigFlags::default(),
                    &none,
                    dotenv(kind, &[(var, "true")]),
                    None,
                    Terminal::default(),
                )
                .unwrap();
                assert_eq!(c.debug.is_some(), want, "{kind:?} {var}");
            }
        }
    }

    #[test]
    fn auth_type_is_flag_then_setting_then_default() {
        let setting = || {
            Some(Sourced::new(
                AuthType::QwenOauth,
                Source::Setting(PathBuf::from("/h/.qwen/settings.json")),
            ))
        };
        let none = EnvSnapshot::default();
        let d = DotEnvSearch::default;
        let flag = ConfigFlags {
            auth_type: Some(AuthType::Openai),
            ..ConfigFlags::default()
        };
        let c = resolve(&flag, &none, d(), setting(), Terminal::default()).unwrap();
        assert_eq!(c.auth_type.value, AuthType::Openai);
        assert_eq!(c.auth_type.source, Source::Flag("--auth-type"));
        let c = resolve(
            &ConfigFlags::default(),
            &none,
            d(),
            setting(),
            Terminal::default(),
        )
        .unwrap();
        assert_eq!(c.auth_type.value, AuthType::QwenOauth);
        assert!(matches!(c.auth_type.source, Source::Setting(_)));
        let c = resolve(
            &ConfigFlags::default(),
            &none,
            d(),
            None,
            Terminal::default(),
        )
        .unwrap();
        assert_eq!(c.auth_type.value, AuthType::Openai);
        assert_eq!(c.auth_type.source, Source::Default);
    }

    /// Every API-key type reads its own variables with the same precedence, and none of
    /// another type's: flag, then environment, then the `.env` file, then the type's default.
    #[test]
    fn each_type_reads_its_own_variables_in_the_same_order() {
        for t in AuthType::ALL {
            let Some(vars) = t.vars() else { continue };
            let key = vars.keys[0];
            let flags = ConfigFlags {
                auth_type: Some(t),
                ..ConfigFlags::default()
            };
            // Another type's variables are not read.
            let others = EnvSnapshot::from_pairs([
                ("OPENAI_API_KEY", "o"),
                ("ANTHROPIC_API_KEY", "a"),
                ("GEMINI_API_KEY", "g"),
                ("GOOGLE_API_KEY", "v"),
            ]);
            let c = resolve(
                &flags,
                &others,
                DotEnvSearch::default(),
                None,
                Terminal::default(),
            )
            .unwrap();
            let got = c.api_key.map(|k| k.value.expose_secret().to_owned());
            assert_eq!(got.as_deref(), others.get(key), "{t:?}");
            assert_eq!(
                c.base_url.value.as_str().trim_end_matches('/'),
                vars.default_base_url,
                "{t:?}"
            );
            assert_eq!(c.model.value, vars.default_model, "{t:?}");

            let file = dotenv(
                DotEnvKind::ProjectQwen,
                &[
                    (key, "file-key"),
                    (vars.base_url, "http://127.0.0.1:1/file"),
                    (vars.model, "file-model"),
                ],
            );
            let env = EnvSnapshot::from_pairs([(vars.model, "env-model")]);
            let c = resolve(&flags, &env, file.clone(), None, Terminal::default()).unwrap();
            assert_eq!(
                c.api_key.as_ref().unwrap().value.expose_secret(),
                "file-key",
                "{t:?}"
            );
            assert_eq!(c.key_var, Some(key), "{t:?}");
            assert_eq!(
                c.base_url.value.as_str(),
                "http://127.0.0.1:1/file",
                "{t:?}"
            );
            assert_eq!(c.model.value, "env-model", "{t:?}");
            assert_eq!(c.model.source, Source::Env(vars.model), "{t:?}");

            let with_flags = ConfigFlags {
                api_key: Some("flag-key".into()),
                model: Some("flag-model".into()),
                ..flags.clone()
            };
            let c = resolve(&with_flags, &env, file, None, Terminal::default()).unwrap();
            assert_eq!(
                c.api_key.unwrap().value.expose_secret(),
                "flag-key",
                "{t:?}"
            );
            assert_eq!(c.key_var, None, "{t:?}");
            assert_eq!(c.model.value, "flag-model", "{t:?}");
        }
    }

    #[test]
    fn anthropic_api_key_wins_over_the_auth_token_and_the_environment_over_the_file() {
        let flags = ConfigFlags {
            auth_type: Some(AuthType::Anthropic),
            ..ConfigFlags::default()
        };
        let both =
            EnvSnapshot::from_pairs([("ANTHROPIC_API_KEY", "k"), ("ANTHROPIC_AUTH_TOKEN", "t")]);
        let c = resolve(
            &flags,
            &both,
            DotEnvSearch::default(),
            None,
            Terminal::default(),
        )
        .unwrap();
        assert_eq!(c.key_var, Some("ANTHROPIC_API_KEY"));
        let token = EnvSnapshot::from_pairs([("ANTHROPIC_AUTH_TOKEN", "t")]);
        let file = dotenv(
            DotEnvKind::ProjectQwen,
            &[("ANTHROPIC_API_KEY", "file-key")],
        );
        let c = resolve(&flags, &token, file, None, Terminal::default()).unwrap();
        assert_eq!(c.api_key.unwrap().value.expose_secret(), "t");
        assert_eq!(c.key_var, Some("ANTHROPIC_AUTH_TOKEN"));
    }

    #[test]
    fn qwen_auth_type_is_below_the_flag_and_above_the_settings_file() {
        let setting = || {
            Some(Sourced::new(
                AuthType::QwenOauth,
                Source::Setting(PathBuf::from("/h/.qwen/settings.json")),
            ))
        };
        let env = EnvSnapshot::from_pairs([("QWEN_AUTH_TYPE", "Gemini")]);
        let c = resolve(
            &ConfigFlags::default(),
            &env,
            DotEnvSearch::default(),
            setting(),
            Terminal::default(),
        )
        .unwrap();
        assert_eq!(c.auth_type.value, AuthType::Gemini);
        assert_eq!(c.auth_type.source, Source::Env("QWEN_AUTH_TYPE"));
        let file = dotenv(DotEnvKind::ProjectQwen, &[("QWEN_AUTH_TYPE", "anthropic")]);
        let none = EnvSnapshot::default();
        let c = resolve(
            &ConfigFlags::default(),
            &none,
            file,
            setting(),
            Terminal::default(),
        )
        .unwrap();
        assert_eq!(c.auth_type.value, AuthType::Anthropic);
        let flag = ConfigFlags {
            auth_type: Some(AuthType::OpenaiResponses),
            ..ConfigFlags::default()
        };
        let c = resolve(
            &flag,
            &env,
            DotEnvSearch::default(),
            setting(),
            Terminal::default(),
        )
        .unwrap();
        assert_eq!(c.auth_type.value, AuthType::OpenaiResponses);
        let bad = EnvSnapshot::from_pairs([("QWEN_AUTH_TYPE", "claude")]);
        let e = resolve(
            &ConfigFlags::default(),
            &bad,
            DotEnvSearch::default(),
            None,
            Terminal::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("`claude`"), "{e}");
    }

    #[test]
    fn qwen_oauth_model_is_the_flag_or_qwen_codes_default() {
        let env = EnvSnapshot::from_pairs([("OPENAI_MODEL", "gpt-4o-mini")]);
        let oauth = ConfigFlags {
            auth_type: Some(AuthType::QwenOauth),
            ..ConfigFlags::default()
        };
        let c = resolve(
            &oauth,
            &env,
            DotEnvSearch::default(),
            None,
            Terminal::default(),
        )
        .unwrap();
        assert_eq!(c.model.value, DEFAULT_QWEN_OAUTH_MODEL);
        assert_eq!(c.model.source, Source::Default);
        let with_flag = ConfigFlags {
            model: Some("vision-model".into()),
            ..oauth
        };
        let c = resolve(
            &with_flag,
            &env,
            DotEnvSearch::default(),
            None,
            Terminal::default(),
        )
        .unwrap();
        assert_eq!(c.model.value, "vision-model");
    }

    #[test]
    fn base_url_validation() {
        for bad in [
            "not a url",
            "ftp://x/v1",
            "http://",
            "api.openai.com/v1",
            "https://h/v1?x=1",
        ] {
            assert!(parse_base_url(bad, &Source::Default).is_err(), "{bad}");
        }
        assert!(parse_base_url("http://127.0.0.1:8080/v1/", &Source::Default).is_ok());
    }

    #[test]
    fn interactive_needs_both_terminals_and_no_ci() {
        let tty = Terminal {
            stdin: true,
            stderr: true,
        };
        let no_ci = EnvSnapshot::default();
        let ci = EnvSnapshot::from_pairs([("CI", "true")]);
        let d = DotEnvSearch::default;
        assert!(
            resolve(&ConfigFlags::default(), &no_ci, d(), None, tty)
                .unwrap()
                .interactive
        );
        assert!(
            !resolve(&ConfigFlags::default(), &ci, d(), None, tty)
                .unwrap()
                .interactive
        );
        let piped = Terminal {
            stdin: false,
            ..tty
        };
        assert!(
            !resolve(&ConfigFlags::default(), &no_ci, d(), None, piped)
                .unwrap()
                .interactive
        );
        let logged = Terminal {
            stderr: false,
            ..tty
        };
        assert!(
            !resolve(&ConfigFlags::default(), &no_ci, d(), None, logged)
                .unwrap()
                .interactive
        );
    }
}
