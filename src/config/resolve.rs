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

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum AuthType {
    Openai,
    QwenOauth,
}

impl AuthType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Openai => "openai",
            Self::QwenOauth => "qwen-oauth",
        }
    }
}

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
        None => selected.unwrap_or_else(|| Sourced::new(AuthType::Openai, Source::Default)),
    };

    let mut empty_key_sources = Vec::new();
    let api_key = pick(
        flags.api_key.as_deref(),
        "--openai-api-key",
        env,
        env::OPENAI_API_KEY,
        &dotenv,
        &mut empty_key_sources,
    )
    .map(|s| Sourced::new(SecretString::from(s.value), s.source));

    let mut ignored = Vec::new();
    let base_url_raw = pick(
        flags.base_url.as_deref(),
        "--openai-base-url",
        env,
        env::OPENAI_BASE_URL,
        &dotenv,
        &mut ignored,
    )
    .unwrap_or_else(|| Sourced::new(DEFAULT_BASE_URL.to_owned(), Source::Default));
    let base_url = Sourced::new(
        parse_base_url(&base_url_raw.value, &base_url_raw.source)?,
        base_url_raw.source,
    );

    // `OPENAI_MODEL` names a model of the OpenAI-compatible provider; with Qwen OAuth only the
    // flag counts, and the default is Qwen Code's.
    let model = match auth_type.value {
        AuthType::Openai => pick(
            flags.model.as_deref(),
            "--model",
            env,
            env::OPENAI_MODEL,
            &dotenv,
            &mut ignored,
        )
        .unwrap_or_else(|| Sourced::new(DEFAULT_MODEL.to_owned(), Source::Default)),
        AuthType::QwenOauth => flags
            .model
            .as_deref()
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .map_or_else(
                || Sourced::new(DEFAULT_QWEN_OAUTH_MODEL.to_owned(), Source::Default),
                |m| Sourced::new(m.to_owned(), Source::Flag("--model")),
            ),
    };

    let debug = resolve_debug(flags.debug, env, &dotenv);
    let interactive = is_interactive(terminal, env);

    Ok(ResolvedConfig {
        auth_type,
        api_key,
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
    let shown = crate::client::url::without_userinfo(raw);
    let bad = |why: &str| {
        Error::config(
            format!("invalid base URL `{shown}` (from {source}): {why}"),
            "give an absolute http(s) URL such as `https://api.openai.com/v1` with --openai-base-url or OPENAI_BASE_URL",
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
