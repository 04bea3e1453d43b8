//! Dispatch from parsed arguments to commands; every command returns an `ExitStatus`.

use std::path::PathBuf;
use std::time::Instant;

use secrecy::ExposeSecret;

use crate::cli::{AuthCommand, Cli, Command, ConfigArgs, OutputFormat};
use crate::config::env::EnvSnapshot;
use crate::config::{ResolvedConfig, Terminal, dotenv, resolve};
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::login::{self, LoginOptions};
use crate::output::diag;
use crate::{auth_commands, batch, generate, run, settings, status};

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
                stdout: std::io::stdout().is_terminal(),
                stderr: std::io::stderr().is_terminal(),
            },
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
        }
    }
}

/// Find the `.env` file and resolve the configuration with provenance.
pub fn load_config(args: &ConfigArgs, ctx: &Context) -> Result<ResolvedConfig, Error> {
    let home = ctx.env.home();
    let search = dotenv::discover(&ctx.cwd, home.as_deref())?;
    // The flag wins anyway: then a broken settings file does not matter.
    let selected = if args.auth_type.is_some() {
        None
    } else {
        settings::selected_auth_type(home.as_deref())?
    };
    let config = resolve::resolve(&args.flags(), &ctx.env, search, selected, ctx.terminal)?;
    if crate::gha::is_github_actions(&ctx.env)
        && let Some(key) = &config.api_key
    {
        diag::raw(&crate::gha::mask_command(key.value.expose_secret()));
    }
    if config.debug.is_some() {
        debug_config(&config);
    }
    Ok(config)
}

fn debug_config(config: &ResolvedConfig) {
    diag::debug(&format!(
        "auth-type={} ({})",
        config.auth_type.value.as_str(),
        config.auth_type.source
    ));
    if let Some(key) = &config.api_key {
        diag::debug(&format!("api key from {}", key.source));
    }
    diag::debug(&format!(
        "base-url={} ({})",
        config.base_url.value, config.base_url.source
    ));
    diag::debug(&format!(
        "model={} ({})",
        config.model.value, config.model.source
    ));
    match &config.dotenv.found {
        Some(f) => diag::debug(&format!(".env used: {}", f.path.display())),
        None => diag::debug(".env used: none"),
    }
    diag::debug(&format!("interactive={}", config.interactive));
}

/// Run the parsed command line.
pub fn run(cli: Cli, ctx: &Context) -> ExitStatus {
    match cli.command {
        Some(Command::Auth(auth)) => match auth.command {
            AuthCommand::Status { config, json } => status::auth_status(&config, json, ctx),
            AuthCommand::Login {
                method,
                user,
                no_verify,
            } => with_runtime(|runtime| {
                login::command(
                    LoginOptions {
                        method,
                        user,
                        verify: !no_verify,
                    },
                    ctx,
                    runtime,
                )
            }),
            AuthCommand::Use { method } => auth_commands::use_method(method, ctx),
            AuthCommand::Logout { env, user } => auth_commands::logout(env, user, ctx),
        },
        // Generated text needs neither configuration nor the async runtime.
        Some(Command::Completions { shell }) => generate::completions(shell),
        Some(Command::Man) => generate::man(),
        Some(Command::Batch(args)) => {
            with_runtime(|runtime| crate::provider_batch::run(*args, ctx, runtime))
        }
        None => match &cli.run.batch.jobs {
            Some(jobs) => with_runtime(|runtime| batch::run(&cli.run, jobs, ctx, runtime)),
            None if cli.run.format() == OutputFormat::OpenaiBatch => {
                let err = Error::Usage {
                    message: "`-o openai-batch` is a batch output format".to_owned(),
                    hint: "use it with --jobs FILE".to_owned(),
                };
                diag::error(&err);
                err.exit_status()
            }
            None => with_runtime(|runtime| run::single(&cli.run, ctx, runtime, Instant::now())),
        },
    }
}

/// Run `work` on a fresh multi-thread runtime, then drop the runtime without waiting.
fn with_runtime(work: impl FnOnce(&tokio::runtime::Runtime) -> ExitStatus) -> ExitStatus {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            diag::error(&Error::Io(format!("cannot start the async runtime: {e}")));
            return ExitStatus::Failure;
        }
    };
    let status = work(&runtime);
    // A reader thread may still wait on a silent stdin: do not wait for it.
    runtime.shutdown_background();
    status
}
