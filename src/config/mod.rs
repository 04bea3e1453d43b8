//! Configuration: variable names, `.env` discovery and parsing, `settings.json`, and resolution with
//! provenance. Reading configuration prints nothing: the commands decide what to say about it.

pub(crate) mod dotenv;
pub(crate) mod dotenv_edit;
pub(crate) mod dotenv_parse;
pub(crate) mod env;
pub(crate) mod resolve;
pub(crate) mod settings;

use std::path::Path;

pub(crate) use resolve::{AuthType, ConfigFlags, ResolvedConfig, Source, Sourced, Terminal};

use crate::error::Error;
use env::EnvSnapshot;

/// Find the `.env` file, read the selected auth method, and resolve every value with its source.
pub(crate) fn load(
    flags: &ConfigFlags,
    env: &EnvSnapshot,
    terminal: Terminal,
    cwd: &Path,
) -> Result<ResolvedConfig, Error> {
    let home = env.home();
    let search = dotenv::discover(cwd, home.as_deref())?;
    // The flag wins anyway: then a broken settings file does not matter.
    let selected = if flags.auth_type.is_some() {
        None
    } else {
        settings::selected_auth_type(home.as_deref())?
    };
    resolve::resolve(flags, env, search, selected, terminal)
}
