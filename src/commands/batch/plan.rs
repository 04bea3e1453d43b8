//! The plan of a batch, built before anything is sent: the job file read and validated in one
//! pass, the precedence of flags over the file's defaults, and what an existing results file
//! already holds.

use std::sync::Arc;

use serde_json::Map;

use super::super::structured_options;
use super::results::{Done, Output, existing_output};
use crate::cli::{RunArgs, Shard};
use crate::config::{ResolvedConfig, Source};
use crate::context::Context;
use crate::error::Error;
use crate::job::{Flags, JobDefaults, JobFile, Validation};
use crate::paths::PathRules;
use crate::schema::OutputSchema;

pub(crate) struct Plan {
    pub(crate) file: JobFile,
    pub(crate) defaults: JobDefaults,
    /// The ids that already have a successful line in the results file (`--resume`).
    pub(crate) done: Done,
    pub(crate) validation: Validation,
    /// The results file, exclusively locked for the whole run (see [`Output`]).
    pub(crate) output: Option<Output>,
    pub(crate) shard: Option<Shard>,
}

impl Plan {
    /// Whether the job at `index` belongs to this shard.
    pub(crate) fn in_shard(&self, index: usize) -> bool {
        self.shard.is_none_or(|s| s.contains(index))
    }
}

/// Flags beat a job file's `defaults`; a job's own fields beat both.
fn defaults(
    args: &RunArgs,
    config: &ResolvedConfig,
    schema: Option<Arc<OutputSchema>>,
    extra_body: Map<String, serde_json::Value>,
    headers: Vec<crate::client::params::ExtraHeader>,
) -> JobDefaults {
    let mut defaults = JobDefaults::from_flags(Flags {
        model: &config.model.value,
        model_from_flag: matches!(config.model.source, Source::Flag(_)),
        fields: crate::request::flag_fields(args),
        system: args.system_prompt.as_deref(),
        max_input_bytes: args.max_input_bytes,
    });
    defaults.schema = schema;
    defaults.extra_body = extra_body;
    defaults.headers = headers;
    defaults
        .fallback_models
        .clone_from(&args.structured.fallback_models);
    defaults
}

/// Read and validate the job file (exit 42 before anything is sent), and check the results file.
pub(crate) fn build(
    args: &RunArgs,
    config: &ResolvedConfig,
    jobs_spec: &str,
    spooled: Option<tempfile::TempPath>,
    ctx: &Context,
) -> Result<Plan, Error> {
    let batch = &args.batch;
    let rules = PathRules {
        allow_outside: batch.allow_outside_paths,
        outputs: [("--output", &batch.output), ("--summary", &batch.summary)]
            .into_iter()
            .filter_map(|(flag, path)| Some((flag, ctx.cwd.join(path.as_ref()?))))
            .collect(),
    };
    let file = JobFile::open(jobs_spec, &ctx.cwd, rules, spooled)?;
    let extra_body = match &args.extra_body {
        Some(arg) => crate::request::load_extra_body(
            arg,
            &crate::paths::Workspace::new(&ctx.cwd, batch.allow_outside_paths),
        )
        .map_err(|e| Error::usage(format!("--extra-body: {e}"), Some("nothing was sent")))?,
        None => Map::new(),
    };
    let defaults = defaults(
        args,
        config,
        structured_options(args, ctx)?,
        extra_body,
        args.config.headers()?,
    );
    // The outputs pass the command line's door: a link in the workspace may not lead them out.
    let door = crate::paths::Workspace::new(&ctx.cwd, batch.allow_outside_paths);
    for (flag, file) in [("--output", &batch.output), ("--summary", &batch.summary)] {
        if let Some(file) = file {
            door.output(flag, file)
                .map_err(|e| Error::input(e, "nothing was sent"))?;
        }
    }
    // Locked before it is read: a second run on the same file stops here (exit 75).
    let output = batch
        .output
        .as_ref()
        .map(|o| Output::lock(ctx.cwd.join(o)))
        .transpose()?;
    let checked = (|| {
        let done = match &output {
            Some(out) => existing_output(&out.path, batch.resume, batch.overwrite)?,
            None => Done::default(),
        };
        let in_shard = |index: usize| batch.shard.is_none_or(|s| s.contains(index));
        let validation = file.validate(&defaults, in_shard, |id| !done.contains(id))?;
        Ok((done, validation))
    })();
    let (done, validation) = match checked {
        Ok(checked) => checked,
        Err(e) => {
            if let Some(output) = output {
                output.discard();
            }
            return Err(e);
        }
    };
    let shard = batch.shard;
    Ok(Plan {
        file,
        defaults,
        done,
        validation,
        output,
        shard,
    })
}
