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
    if flags.bare {
        return bare(flags, env);
    }
    let search = dotenv::discover(cwd, home.as_deref())?;
    // The flag wins anyway: then a broken settings file does not matter.
    let selected = if flags.auth_type.is_some() {
        None
    } else {
        settings::selected_auth_type(home.as_deref())?
    };
    resolve::resolve(flags, env, search, selected, terminal)
}

/// `--bare`: the flags and the process environment, nothing read from disk. Qwen OAuth needs
/// stored credentials, so it is refused; nobody is offered a login (it would write files).
fn bare(flags: &ConfigFlags, env: &EnvSnapshot) -> Result<ResolvedConfig, Error> {
    let none = dotenv::DotEnvSearch::default();
    let mut config = resolve::resolve(flags, env, none, None, Terminal::default())?;
    if config.auth_type.value == AuthType::QwenOauth {
        return Err(Error::config(
            "--bare reads no stored credentials, and Qwen OAuth needs them",
            "give a key with OPENAI_API_KEY (or --openai-api-key) and --auth-type openai, or drop --bare",
        ));
    }
    config.interactive = false;
    Ok(config)
}
