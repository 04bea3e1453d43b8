//! The plan of a batch, built before anything is sent: the job file read and validated in one
//! pass, the precedence of flags over the file's defaults, and what an existing results file
//! already holds.

use super::super::job_defaults;
use super::results::{Done, Output, existing_output};
use crate::config::ResolvedConfig;
use crate::context::Context;
use crate::error::Error;
use crate::job::{JobDefaults, JobFile, Validation};
use crate::paths::PathRules;
use crate::settings::{BatchSettings, Shard};

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

/// Read and validate the job file (exit 42 before anything is sent), and check the results file.
pub(crate) fn build(
    args: &BatchSettings,
    config: &ResolvedConfig,
    spooled: Option<tempfile::TempPath>,
    ctx: &Context,
) -> Result<Plan, Error> {
    let batch = args;
    let rules = PathRules {
        allow_outside: batch.request.allow_outside_paths,
        outputs: [("--output", &batch.output), ("--summary", &batch.summary)]
            .into_iter()
            .filter_map(|(flag, path)| Some((flag, ctx.cwd.join(path.as_ref()?))))
            .collect(),
    };
    let file = JobFile::open(&args.jobs, &ctx.cwd, rules, spooled)?;
    let defaults = job_defaults(
        &args.request,
        &config.model,
        args.connection.headers.clone(),
        ctx,
    )?;
    // The outputs pass the command line's door: a link in the workspace may not lead them out.
    let door = crate::paths::Workspace::new(&ctx.cwd, batch.request.allow_outside_paths);
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
