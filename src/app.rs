//! From argv to an exit status: parse, check the flags together, dispatch to a command, and
//! report an error. This is the one place where an error is printed and becomes an exit status.

use std::ffi::OsString;
use std::time::Instant;

use clap::{CommandFactory, FromArgMatches};

use crate::cli::{AuthCommand, Cli, Command};
use crate::commands::{auth_manage, auth_status, batch, generate, login, provider_batch, run};
use crate::config::resolve::DEFAULT_MODEL;
use crate::context::Context;
use crate::diag;
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::output::{Format, RunMeta, RunOutput, github};
use crate::settings::Invocation;

/// The whole program, given the name it was called by and its arguments.
pub(crate) fn main(bin_name: &'static str, args: Vec<OsString>, ctx: &Context) -> ExitStatus {
    let started = Instant::now();
    let args = crate::cli::help_words_as_prompt(args);
    let json_format = crate::cli::json_format_in(&args);
    let parsed = Cli::command()
        .name(bin_name)
        .bin_name(bin_name)
        .try_get_matches_from(args)
        .and_then(|m| Cli::from_arg_matches(&m).map(|cli| (cli, m)));
    let (cli, matches) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => {
            let _ = e.print();
            if !e.use_stderr() {
                // --help and --version
                return ExitStatus::Success;
            }
            if let Some(format) = json_format {
                let err = Error::usage(e.kind().as_str().unwrap_or("invalid arguments"), None);
                usage_document(format, &err, ctx, started);
            }
            return ExitStatus::Usage;
        }
    };
    match dispatch(cli, &matches, ctx, started) {
        Ok(status) => status,
        Err(failure) => report(&failure, ctx),
    }
}

/// Print an error (and its hint) once, annotate it under GitHub Actions, and give its status.
fn report(err: &Error, ctx: &Context) -> ExitStatus {
    diag::error(&err.to_string(), err.hint().as_deref());
    if github::is_github_actions(&ctx.env) {
        diag::raw(&github::error_command(Some("qwen"), &err.to_string()));
    }
    err.exit_status()
}

fn dispatch(
    cli: Cli,
    matches: &clap::ArgMatches,
    ctx: &Context,
    started: Instant,
) -> Result<ExitStatus, Error> {
    match cli.command {
        Some(Command::Auth(auth)) => match auth.command {
            AuthCommand::Status { config, json } => {
                auth_status::command(&config.connection()?, json, ctx)
            }
            AuthCommand::Login {
                method,
                user,
                no_verify,
            } => with_runtime(|runtime| {
                let opts = login::LoginOptions {
                    method,
                    user,
                    verify: !no_verify,
                };
                login::command(opts, ctx, runtime)
            }),
            AuthCommand::Use { method } => auth_manage::use_method(method, ctx),
            AuthCommand::Logout { env, user } => auth_manage::logout(env, user, ctx),
        },
        // Generated text needs neither configuration nor the async runtime.
        Some(Command::Sessions(args)) => match args.command {
            crate::cli::SessionsCommand::List { json } => {
                crate::commands::sessions::list(json, ctx)
            }
        },
        Some(Command::Completions { shell }) => generate::completions(shell, Cli::command()),
        Some(Command::Man) => generate::man(Cli::command()),
        Some(Command::Batch(args)) => {
            let mut settings = crate::cli::provider_batch::resolve(*args)?;
            if let crate::settings::BatchApiCommand::Submit(submit) = &mut settings {
                let outputs = [("--output", submit.output.output.as_deref())];
                crate::commands::read_system_prompt_file(&mut submit.request, &outputs, ctx)?;
            }
            with_runtime(|runtime| provider_batch::command(settings, ctx, runtime))
        }
        None => {
            let json_format = crate::cli::json_format_of(&cli.run);
            let invocation = crate::cli::invocation(cli.run, matches).and_then(|mut invocation| {
                read_file_flags(&mut invocation, ctx).map(|()| invocation)
            });
            let invocation = match invocation {
                Ok(invocation) => invocation,
                Err(err) => {
                    if let Some(format) = json_format {
                        usage_document(format, &err, ctx, started);
                    }
                    return Err(err);
                }
            };
            match invocation {
                Invocation::Batch(settings) => {
                    with_runtime(|runtime| batch::command(&settings, ctx, runtime))
                }
                Invocation::Single(settings) if settings.stream_input => with_runtime(|runtime| {
                    crate::commands::stream::command(&settings, ctx, runtime)
                }),
                Invocation::Single(settings) => {
                    let events = run::open_events(&settings, ctx)?;
                    with_runtime(|runtime| run::command(&settings, ctx, runtime, (started, events)))
                }
            }
        }
    }
}

/// The file flags read before a command starts (`--system-prompt-file`), so that the files the
/// command writes cannot be them; and the action's map inputs (`--ai-inference-inputs`), which add
/// `--var`s and headers.
fn read_file_flags(invocation: &mut Invocation, ctx: &Context) -> Result<(), Error> {
    crate::commands::ai_inference::apply(invocation, &ctx.env)?;
    match invocation {
        Invocation::Single(s) => {
            let outputs = [("--result-file", s.result_file.as_deref())];
            crate::commands::read_system_prompt_file(&mut s.request, &outputs, ctx)
        }
        Invocation::Batch(b) => {
            let outputs = [
                ("--output", b.output.as_deref()),
                ("--summary", b.summary.as_deref()),
            ];
            crate::commands::read_system_prompt_file(&mut b.request, &outputs, ctx)
        }
    }
}

/// A usage error in a JSON format still leaves a valid document on stdout.
fn usage_document(format: Format, err: &Error, ctx: &Context, started: Instant) {
    let meta = RunMeta {
        session_id: uuid::Uuid::new_v4().to_string(),
        model: DEFAULT_MODEL.to_owned(),
        cwd: ctx.cwd.display().to_string(),
    };
    let mut out = RunOutput::new(format, false, meta, started, false);
    let _ = out
        .init()
        .and_then(|()| out.failure(err, 0, 0, &crate::output::Extras::default()));
}

/// Run `work` on a fresh runtime, then drop the runtime without waiting. One thread: the work is
/// waiting on the network, and a batch of 1,000 requests in flight uses about 0.12 ms of CPU per
/// request (about 8,000 requests/s on one core); a second worker thread only added a second
/// allocator arena (about 10 MiB more at `--concurrency 1000`) and cross-thread wakeups.
/// Blocking work (standard input, DNS) runs on threads of its own.
fn with_runtime(
    work: impl FnOnce(&tokio::runtime::Runtime) -> Result<ExitStatus, Error>,
) -> Result<ExitStatus, Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| Error::Io {
            context: "cannot start the async runtime".to_owned(),
            source,
        })?;
    let status = work(&runtime);
    // A reader thread may still wait on a silent stdin: do not wait for it.
    runtime.shutdown_background();
    status
}
