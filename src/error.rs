//! The one error type of the program; every variant knows its exit status and its hint.

use std::path::PathBuf;

use crate::client::ApiError;
use crate::exit::ExitStatus;
use crate::signals::Signal;

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("{message}")]
    Auth {
        message: String,
        hint: Option<String>,
    },

    #[error("{message}")]
    Input {
        message: String,
        hint: Option<String>,
    },

    /// Flags that parse but do not go together.
    #[error("{message}")]
    Usage {
        message: String,
        hint: Option<String>,
    },

    #[error("{message}")]
    Config {
        message: String,
        hint: Option<String>,
    },

    #[error("cannot read `{}`: {source}", path.display())]
    DotEnvUnreadable {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error(transparent)]
    Api(#[from] ApiError),

    /// `--json-schema`: no answer matched the schema, even after the repair turns.
    #[error("the answer does not match the JSON schema: {summary}")]
    SchemaValidation { summary: String },

    /// `--max-wall-time` reached by a single run.
    #[error("the run did not finish within --max-wall-time ({}s)", limit.as_secs_f64())]
    WallTime { limit: std::time::Duration },

    /// `--max-budget-usd`: the run would spend, or spent, more than it may.
    #[error("{message}")]
    Budget {
        message: String,
        hint: Option<String>,
    },

    #[error("interrupted by {signal}")]
    Interrupted { signal: Signal },

    /// An operating-system failure, with what we were doing.
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },

    /// Another process holds a resource we need (a lock), for longer than we wait.
    #[error("{0}")]
    Busy(String),

    /// A file this run must own (the results file) is locked by another process: exit 75, try later.
    #[error("{message}")]
    InUse {
        message: String,
        hint: Option<String>,
    },

    /// A failure that is not about the user's input or the outside world (encoding our own data).
    #[error("{0}")]
    Internal(String),
}

impl Error {
    pub(crate) fn input(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::Input {
            message: message.into(),
            hint: Some(hint.into()).filter(|h: &String| !h.is_empty()),
        }
    }

    pub(crate) fn config(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::Config {
            message: message.into(),
            hint: Some(hint.into()).filter(|h: &String| !h.is_empty()),
        }
    }

    pub(crate) fn usage(message: impl Into<String>, hint: Option<&str>) -> Self {
        Self::Usage {
            message: message.into(),
            hint: hint.map(str::to_owned),
        }
    }

    /// An I/O failure on a named file: "cannot {action} `path`: reason".
    pub(crate) fn file(action: &str, path: &std::path::Path, source: std::io::Error) -> Self {
        Self::Io {
            context: format!("cannot {action} `{}`", path.display()),
            source,
        }
    }

    pub(crate) fn auth(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::Auth {
            message: message.into(),
            hint: Some(hint.into()).filter(|h: &String| !h.is_empty()),
        }
    }

    pub(crate) fn exit_status(&self) -> ExitStatus {
        match self {
            Self::Auth { .. } => ExitStatus::Auth,
            Self::Input { .. } => ExitStatus::Input,
            Self::Usage { .. } => ExitStatus::Usage,
            Self::Config { .. } | Self::DotEnvUnreadable { .. } => ExitStatus::Config,
            Self::Api(api) => api.exit_status(),
            Self::SchemaValidation { .. } => ExitStatus::DataErr,
            Self::WallTime { .. } | Self::Budget { .. } => ExitStatus::WallTime,
            Self::Interrupted {
                signal: Signal::Terminate,
            } => ExitStatus::Terminated,
            Self::Interrupted {
                signal: Signal::Interrupt,
            } => ExitStatus::Interrupted,
            Self::Io { .. } | Self::Internal(_) | Self::Busy(_) => ExitStatus::Failure,
            Self::InUse { .. } => ExitStatus::TempFail,
        }
    }

    /// The short machine-readable name used in `error.type` of JSON results.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::Auth { .. } => "authentication_error",
            Self::Input { .. } => "input_error",
            Self::Usage { .. } => "usage_error",
            Self::Config { .. } | Self::DotEnvUnreadable { .. } => "configuration_error",
            Self::Api(api) => api.kind(),
            Self::SchemaValidation { .. } => "schema_validation",
            Self::Interrupted { .. } => "interrupted",
            Self::WallTime { .. } => "wall_time",
            Self::Budget { .. } => "budget",
            Self::Io { .. } => "io_error",
            Self::Internal(_) => "internal_error",
            Self::Busy(_) | Self::InUse { .. } => "busy",
        }
    }

    pub(crate) fn hint(&self) -> Option<String> {
        match self {
            Self::Auth { hint, .. }
            | Self::Input { hint, .. }
            | Self::Usage { hint, .. }
            | Self::Config { hint, .. }
            | Self::Budget { hint, .. }
            | Self::InUse { hint, .. } => hint.clone(),
            Self::DotEnvUnreadable { .. } => Some(
                "fix the file's permissions or syntax (KEY=value lines), or remove it".to_owned(),
            ),
            Self::Api(api) => api.hint(),
            Self::SchemaValidation { .. } => Some(
                "the last answer is in `error.last_answer` of the JSON result (-o json); make the prompt or schema clearer, or raise --schema-retries".to_owned(),
            ),
            Self::WallTime { .. } => Some(
                "raise --max-wall-time, or ask for less (a shorter answer, --max-tokens)".to_owned(),
            ),
            Self::Interrupted { .. } | Self::Io { .. } | Self::Internal(_) | Self::Busy(_) => None,
        }
    }
}
