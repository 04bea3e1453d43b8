//! The one error type of the program; every variant knows its exit status and its hint.

use std::path::PathBuf;

use crate::client::ApiError;
use crate::exit::ExitStatus;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{message}")]
    Auth { message: String, hint: String },

    #[error("{message}")]
    Input { message: String, hint: String },

    /// Flags that parse but do not go together.
    #[error("{message}")]
    Usage { message: String, hint: String },

    #[error("{message}")]
    Config { message: String, hint: String },

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

    #[error("interrupted by {signal}")]
    Interrupted { signal: &'static str },

    #[error("{0}")]
    Io(String),
}

impl Error {
    pub fn input(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::Input {
            message: message.into(),
            hint: hint.into(),
        }
    }

    pub fn config(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::Config {
            message: message.into(),
            hint: hint.into(),
        }
    }

    pub fn auth(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::Auth {
            message: message.into(),
            hint: hint.into(),
        }
    }

    pub fn exit_status(&self) -> ExitStatus {
        match self {
            Self::Auth { .. } => ExitStatus::Auth,
            Self::Input { .. } => ExitStatus::Input,
            Self::Usage { .. } => ExitStatus::Usage,
            Self::Config { .. } | Self::DotEnvUnreadable { .. } => ExitStatus::Config,
            Self::Api(api) => api.exit_status(),
            Self::SchemaValidation { .. } => ExitStatus::DataErr,
            Self::Interrupted { signal } => {
                if *signal == "SIGTERM" {
                    ExitStatus::Terminated
                } else {
                    ExitStatus::Interrupted
                }
            }
            Self::Io(_) => ExitStatus::Failure,
        }
    }

    /// The short machine-readable name used in `error.type` of JSON results.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Auth { .. } => "authentication_error",
            Self::Input { .. } => "input_error",
            Self::Usage { .. } => "usage_error",
            Self::Config { .. } | Self::DotEnvUnreadable { .. } => "configuration_error",
            Self::Api(api) => api.kind(),
            Self::SchemaValidation { .. } => "schema_validation",
            Self::Interrupted { .. } => "interrupted",
            Self::Io(_) => "io_error",
        }
    }

    pub fn hint(&self) -> Option<String> {
        match self {
            Self::Auth { hint, .. }
            | Self::Input { hint, .. }
            | Self::Usage { hint, .. }
            | Self::Config { hint, .. } => (!hint.is_empty()).then(|| hint.clone()),
            Self::DotEnvUnreadable { .. } => Some(
                "fix the file's permissions or syntax (KEY=value lines), or remove it".to_owned(),
            ),
            Self::Api(api) => api.hint(),
            Self::SchemaValidation { .. } => Some(
                "the last answer is in `error.last_answer` of the JSON result (-o json); make the prompt or schema clearer, or raise --schema-retries".to_owned(),
            ),
            Self::Interrupted { .. } | Self::Io(_) => None,
        }
    }
}
