//! Facts about the process (environment snapshot, terminals, working directory), captured once.

use std::path::PathBuf;

use crate::config::Terminal;
use crate::config::env::EnvSnapshot;

/// Facts about the process captured once in `main`.
#[derive(Debug, Clone)]
pub struct Context {
    pub env: EnvSnapshot,
    pub terminal: Terminal,
    pub cwd: PathBuf,
}

impl Context {
    pub fn from_process() -> Self {
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
