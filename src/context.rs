//! Facts about the process (environment snapshot, terminals, working directory), captured once.

use std::path::PathBuf;

use crate::config::Terminal;
use crate::config::env::EnvSnapshot;

/// Facts about the process captured once in `main`.
#[derive(Debug, Clone)]
pub(crate) struct Context {
    pub(crate) env: EnvSnapshot,
    pub(crate) terminal: Terminal,
    pub(crate) cwd: PathBuf,
}

impl Context {
    #[allow(
        clippy::disallowed_methods,
        reason = "only asks whether stderr is a terminal"
    )]
    pub(crate) fn from_process() -> Self {
        use std::io::IsTerminal;
        Self {
            env: EnvSnapshot::from_process(),
            terminal: Terminal {
                stdin: std::io::stdin().is_terminal(),
                stderr: std::io::stderr().is_terminal(),
            },
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
        }
    }
}
