//! Both conversions of a provider batch, streamed line by line: jobs into Batch API input files
//! (split by model and by the per-file limits; `OpenAI` lines for `/v1/chat/completions` or
//! `/v1/responses`, or Anthropic's `{custom_id, params}` requests), and the provider's output and
//! error files (or Anthropic's results) back into qwen's result lines, exactly one per job, with
//! what each answer cost.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;

use serde_json::{Value, json};

use super::ledger::Part;
use super::outcome::{Outcome, classify, outcome_cost};
use crate::client::batch_api::BatchKind;
use crate::client::params::Param;
use crate::cost::{Cost, CostTotal, PriceTable};
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::job::{JobDefaults, JobFile};
use crate::output::Extras;
use crate::output::schema::{BatchLine, ResultMessage};
use crate::output::{self, RunMeta};

/// The provider's limits per input file (`OpenAI`: 50,000 requests, 200 MB).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_requests: u64,
    pub(crate) max_bytes: u64,
}

/// The longest line read from a provider's output or error file.
pub(crate) const MAX_LINE_BYTES: usize = 64 * 1024 * 1024;

/// The longest line of the job index read back (qwen writes an id, a model and three numbers).
const MAX_INDEX_LINE_BYTES: u64 = 1024 * 1024;

/// The index of jobs (`jobs.jsonl`): id, position in the job file, model, part.
pub(crate) const JOBS_FILE: &str = "jobs.jsonl";

struct OpenPart {
    part: usize,
    writer: BufWriter<File>,
    requests: u64,
    bytes: u64,
}

fn io_err(what: &Path, e: std::io::Error) -> Error {
    Error::file("write", what, e)
}

/// Write every job of `file` as a Batch API input line into part files under `dir`, one model per
/// part, no part over `limits`; and the job index. Returns the parts and the number of jobs.
/// The number of `job`'s schema among those written so far (written when it is new), if it has one.
fn schema_number(
    job: &crate::job::Job,
    schemas: &mut Vec<String>,
    dir: &Path,
) -> Result<Option<usize>, Error> {
    let Some(schema) = &job.schema else {
        return Ok(None);
    };
    let text = schema.schema().to_string();
    if let Some(n) = schemas.iter().position(|s| *s == text) {
        return Ok(Some(n));
    }
    let path = dir.join(format!("schema-{}.json", schemas.len()));
    std::fs::write(&path, &text).map_err(|e| io_err(&path, e))?;
    schemas.push(text);
    Ok(Some(schemas.len() - 1))
}

/// One Batch API input line for `job`: the request qwen would send, without streaming, in the
/// shape of `kind`'s Batch API (its protocol's body built by the wire module a local run uses).
fn input_line(
    job: &crate::job::Job,
    file: &JobFile,
    position: crate::job::Position,
    (kind, token_param): (BatchKind, Param),
) -> Result<Vec<u8>, Error> {
    if !job.fallback_models.is_empty() || !job.headers.is_empty() {
        return Err(Error::input(
            format!(
                "{}: {position}: `fallback_models` and `headers` are not supported by the provider's Batch API (its lines carry no headers, and its requests are not retried on another model)",
                file.name
            ),
            "run this job file locally with `qwen --jobs FILE`, or remove those fields; nothing was uploaded",
        ));
    }
    let mut body = job.body.clone();
    if let Some(schema) = &job.schema {
        // As a local run asks: `response_format` with the schema; the answer is validated on fetch.
        schema.apply(&mut body, crate::schema::FormatMode::JsonSchema);
    }
    if let Some(map) = body.as_object_mut() {
        map.remove("stream");
        map.remove("stream_options");
        // qwen's own token limit, named as this host reads it (as a local run does).
        if job.own_token_limit
            && token_param == Param::MaxCompletionTokens
            && let Some(n) = map.remove("max_tokens")
        {
            map.insert("max_completion_tokens".into(), n);
        }
    }
    let line = match kind {
        BatchKind::OpenaiChat => json!({
            "custom_id": job.id, "method": "POST", "url": kind.endpoint(), "body": body,
        }),
        BatchKind::OpenaiResponses => json!({
            "custom_id": job.id, "method": "POST", "url": kind.endpoint(),
            "body": unstreamed(crate::client::wire::responses::body(&body)),
        }),
        BatchKind::Anthropic => {
            if !crate::client::message_batches::is_custom_id(&job.id) {
                return Err(Error::input(
                    format!(
                        "{}: {position}: the job id is not a `custom_id` Anthropic accepts (1 to 64 ASCII letters, digits, `_` and `-`)",
                        file.name
                    ),
                    "give the job an `id` of that form; nothing was sent",
                ));
            }
            json!({
                "custom_id": job.id,
                "params": unstreamed(crate::client::wire::anthropic::body(&body)),
            })
        }
    };
    let mut line = serde_json::to_vec(&line).unwrap_or_default();
    line.push(b'\n');
    Ok(line)
}

/// A protocol body without `stream` (a batch's requests are not streamed).
fn unstreamed(mut body: Value) -> Value {
    if let Some(map) = body.as_object_mut() {
        map.remove("stream");
    }
    body
}

/// Open a new part file for `model` (numbers run 1, 2, 3, … in opening order).
fn open_part(
    model: &str,
    open: &mut HashMap<String, OpenPart>,
    parts: &mut Vec<Part>,
    dir: &Path,
) -> Result<(), Error> {
    // Every part opened so far is in `parts`: numbers run 1, 2, 3, … in opening order.
    let number = parts.len() + 1;
    let path = dir.join(part_file(number));
    let writer = BufWriter::new(File::create(&path).map_err(|e| io_err(&path, e))?);
    parts.push(Part {
        part: number,
        model: model.to_owned(),
        input: part_file(number),
        ..Part::default()
    });
    open.insert(
        model.to_owned(),
        OpenPart {
            part: number,
            writer,
            requests: 0,
            bytes: 0,
        },
    );
    Ok(())
}

pub(crate) fn plan(
    file: &JobFile,
    defaults: &JobDefaults,
    limits: Limits,
    dir: &Path,
    kind: BatchKind,
    token_param: Param,
) -> Result<(Vec<Part>, u64), Error> {
    crate::fsutil::create_private_dir_all(dir).map_err(|e| io_err(dir, e))?;
    let index_path = dir.join(JOBS_FILE);
    let mut index = BufWriter::new(File::create(&index_path).map_err(|e| io_err(&index_path, e))?);
    let mut open: HashMap<String, OpenPart> = HashMap::new();
    let mut parts: Vec<Part> = Vec::new();
    let mut jobs = 0u64;
    // Each distinct schema is written once (`schema-N.json`); the index names it by number.
    let mut schemas: Vec<String> = Vec::new();
    for raw in file.jobs()? {
        let job = file
            .build(raw.value, raw.index, defaults)
            .map_err(|reason| {
                Error::input(
                    format!("{}: {}: {reason}", file.name, raw.position),
                    "the job file changed while it was read; nothing was uploaded",
                )
            })?;
        let line = input_line(&job, file, raw.position, (kind, token_param))?;
        // Anthropic's requests go into one JSON array: every one after a part's first is
        // preceded by a comma (counted in the part's size).
        let comma = u64::from(kind == BatchKind::Anthropic);
        let size = line.len() as u64 + comma;
        if size > limits.max_bytes {
            return Err(Error::input(
                format!(
                    "{}: {}: the request is {size} bytes, more than --max-file-bytes ({})",
                    file.name, raw.position, limits.max_bytes
                ),
                "shorten the job or raise --max-file-bytes; nothing was uploaded",
            ));
        }
        let full = open.get(&job.model).is_some_and(|p| {
            p.requests + 1 > limits.max_requests || p.bytes + size > limits.max_bytes
        });
        if full && let Some(done) = open.remove(&job.model) {
            finish(done, &mut parts, dir)?;
        }
        if !open.contains_key(&job.model) {
            open_part(&job.model, &mut open, &mut parts, dir)?;
        }
        if let Some(p) = open.get_mut(&job.model) {
            let separator: &[u8] = if comma == 1 && p.requests > 0 {
                b","
            } else {
                b""
            };
            p.writer
                .write_all(separator)
                .and_then(|()| p.writer.write_all(&line))
                .map_err(|e| io_err(&dir.join(part_file(p.part)), e))?;
            p.requests += 1;
            p.bytes += line.len() as u64 + separator.len() as u64;
            let schema = schema_number(&job, &mut schemas, dir)?;
            let mut entry = serde_json::to_vec(&json!({
                "id": job.id, "index": job.index, "model": job.model, "part": p.part,
                "schema": schema,
            }))
            .unwrap_or_default();
            entry.push(b'\n');
            index
                .write_all(&entry)
                .map_err(|e| io_err(&index_path, e))?;
        }
        jobs += 1;
    }
    for (_, p) in open.drain() {
        finish(p, &mut parts, dir)?;
    }
    index.flush().map_err(|e| io_err(&index_path, e))?;
    parts.sort_by_key(|p| p.part);
    Ok((parts, jobs))
}

fn part_file(number: usize) -> String {
    super::ledger::part_file(number, "input")
}

fn finish(mut p: OpenPart, parts: &mut [Part], dir: &Path) -> Result<(), Error> {
    let path = dir.join(part_file(p.part));
    p.writer.flush().map_err(|e| io_err(&path, e))?;
    p.writer
        .get_ref()
        .sync_all()
        .map_err(|e| io_err(&path, e))?;
    if let Some(entry) = parts.iter_mut().find(|e| e.part == p.part) {
        entry.requests = p.requests;
        entry.bytes = p.bytes;
    }
    Ok(())
}

/// One job of the index: small, because there is one per job in memory during a fetch.
#[derive(Clone, Copy)]
struct Entry {
    index: usize,
    /// Into `JobIndex::models`.
    model: u32,
    part: u32,
    written: bool,
    /// Into `JobIndex::schemas`: the schema the answer must match.
    schema: Option<u32>,
}

/// The job index: id → entry; the few distinct models are stored once.
struct JobIndex {
    models: Vec<String>,
    by_id: HashMap<Box<str>, Entry>,
    /// The jobs' schemas (`schema-N.json`), compiled.
    schemas: Vec<crate::schema::OutputSchema>,
}

impl JobIndex {
    fn model(&self, entry: Entry) -> &str {
        self.models
            .get(entry.model as usize)
            .map_or("", String::as_str)
    }
}

fn load_index(dir: &Path) -> Result<JobIndex, Error> {
    let mut by_id = HashMap::new();
    let mut models: Vec<String> = Vec::new();
    let path = dir.join(JOBS_FILE);
    let file = super::ledger::open_state_file(&path).map_err(|e| {
        Error::input(
            format!("cannot read the job index `{}`: {e}", path.display()),
            "",
        )
    })?;
    let damaged = |e: &dyn std::fmt::Display| {
        Error::input(format!("`{}` is damaged: {e}", path.display()), "")
    };
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = Read::by_ref(&mut reader)
            .take(MAX_INDEX_LINE_BYTES + 1)
            .read_until(b'\n', &mut line)
            .map_err(|e| damaged(&e))?;
        if n == 0 {
            break;
        }
        if line.len() as u64 > MAX_INDEX_LINE_BYTES {
            return Err(damaged(&format!(
                "a line is longer than {MAX_INDEX_LINE_BYTES} bytes"
            )));
        }
        let v: Value = serde_json::from_slice(&line).map_err(|e| damaged(&e))?;
        let model = v["model"].as_str().unwrap_or_default();
        let slot = models.iter().position(|m| m == model).unwrap_or_else(|| {
            models.push(model.to_owned());
            models.len() - 1
        });
        by_id.insert(
            Box::from(v["id"].as_str().unwrap_or_default()),
            Entry {
                index: usize::try_from(v["index"].as_u64().unwrap_or(0)).unwrap_or(0),
                model: u32::try_from(slot).unwrap_or(0),
                part: u32::try_from(v["part"].as_u64().unwrap_or(0)).unwrap_or(0),
                written: false,
                schema: v["schema"].as_u64().and_then(|n| u32::try_from(n).ok()),
            },
        );
    }
    by_id.shrink_to_fit();
    // Every schema the index names must load: a missing or refused one (a link, a FIFO) would
    // otherwise leave its jobs' answers unchecked, written as successes.
    let named = by_id.values().filter_map(|e| e.schema).max();
    let mut schemas = Vec::new();
    for n in named.map_or(0..0, |max| 0..max.saturating_add(1)) {
        schemas.push(load_schema(&dir.join(format!("schema-{n}.json")))?);
    }
    Ok(JobIndex {
        models,
        by_id,
        schemas,
    })
}

/// One `schema-N.json` the job index names, through the state door, bounded like `--json-schema`.
fn load_schema(path: &Path) -> Result<crate::schema::OutputSchema, Error> {
    let damaged = |e: &dyn std::fmt::Display| {
        Error::input(format!("`{}` is damaged: {e}", path.display()), "")
    };
    let file = super::ledger::open_state_file(path).map_err(|e| {
        damaged(&format!(
            "the job index names it, but it cannot be read: {e}"
        ))
    })?;
    let mut text = String::new();
    file.take(crate::schema::MAX_SCHEMA_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| damaged(&e))?;
    if text.len() as u64 > crate::schema::MAX_SCHEMA_BYTES {
        return Err(damaged(&format!(
            "it is larger than {} bytes",
            crate::schema::MAX_SCHEMA_BYTES
        )));
    }
    serde_json::from_str(&text)
        .map_err(|e| e.to_string())
        .and_then(crate::schema::OutputSchema::compile)
        .map_err(|e| damaged(&e))
}

/// What the conversion found.
#[derive(Debug, Default, Clone)]
pub(crate) struct Tally {
    pub(crate) jobs: u64,
    pub(crate) succeeded: u64,
    pub(crate) failed: u64,
    pub(crate) failed_temporary: u64,
    /// Jobs the provider never ran (expired, cancelled, failed batch).
    pub(crate) not_run: u64,
    /// Provider lines for unknown or already seen ids, left out.
    pub(crate) ignored: u64,
    pub(crate) input_tokens: u64,
    pub(crate) output_tokens: u64,
    /// What the answers cost (the sum of the known costs).
    pub(crate) cost: CostTotal,
    /// Answers priced at the table's regular rates (no batch price for their model).
    pub(crate) regular_rate: u64,
}

impl Tally {
    /// 0 all succeeded; 75 every failure is temporary (expired, provider failure, 429/5xx); else 1.
    pub(crate) fn exit_status(&self) -> ExitStatus {
        ExitStatus::of_results(self.failed, self.failed_temporary)
    }
}

/// The format of the converted results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// qwen's result lines, like a local batch.
    Local,
    /// The provider's own lines.
    OpenaiBatch,
}

/// How server text is cleaned on its way out.
pub(crate) struct Scrub<'a> {
    /// Text that is shown or stored (error messages, finish reasons): the one sanitiser's line.
    pub(crate) line: &'a dyn Fn(&str) -> String,
    /// Data (a provider's line copied as it is): the key removed, nothing cut or rewritten.
    pub(crate) data: &'a dyn Fn(&str) -> String,
}

/// Why a conversion stopped.
pub(crate) enum Failed {
    /// A downloaded file of `parts[part]` (`rel`) cannot be read through (a line over
    /// [`MAX_LINE_BYTES`], a read error): the caller drops it.
    File {
        part: usize,
        rel: String,
        error: Error,
    },
    Other(Error),
}

impl From<Error> for Failed {
    fn from(e: Error) -> Self {
        Self::Other(e)
    }
}

/// The next line of a provider's file into `buf` (false at its end), bounded by
/// `MAX_LINE_BYTES`: a longer line is an input error, never an allocation that grows unbounded.
fn next_line(reader: &mut impl BufRead, buf: &mut Vec<u8>, path: &Path) -> Result<bool, Error> {
    buf.clear();
    let n = Read::by_ref(reader)
        .take(MAX_LINE_BYTES as u64 + 1)
        .read_until(b'\n', buf)
        .map_err(|e| Error::file("read", path, e))?;
    if buf.len() > MAX_LINE_BYTES {
        return Err(Error::input(
            format!(
                "`{}`: a line is longer than {MAX_LINE_BYTES} bytes",
                path.display()
            ),
            "",
        ));
    }
    Ok(n > 0)
}

/// How the provider's lines are read and written back.
pub(crate) struct Reading<'a> {
    pub(crate) kind: BatchKind,
    pub(crate) format: Format,
    pub(crate) meta: &'a RunMeta,
    pub(crate) scrub: &'a Scrub<'a>,
    /// `--prices`: what an answer the provider did not price cost.
    pub(crate) prices: Option<&'a PriceTable>,
}

/// Convert the downloaded files of every part into one line per job, written to `out`.
pub(crate) fn results(
    dir: &Path,
    parts: &[Part],
    reading: &Reading<'_>,
    out: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
) -> Result<Tally, Failed> {
    let Reading {
        kind,
        format,
        meta,
        scrub,
        prices,
    } = *reading;
    let mut index = load_index(dir)?;
    let mut tally = Tally {
        jobs: index.by_id.len() as u64,
        ..Tally::default()
    };
    let write_err = |e: std::io::Error| Error::Io {
        context: "cannot write a result line".to_owned(),
        source: e,
    };
    for (part_index, part) in parts.iter().enumerate() {
        for rel in [&part.output, &part.errors].into_iter().flatten() {
            let path = dir.join(rel);
            let broken = |error: Error| Failed::File {
                part: part_index,
                rel: rel.clone(),
                error,
            };
            let file = super::ledger::open_state_file(&path)
                .map_err(|e| broken(Error::file("read", &path, e)))?;
            let mut reader = BufReader::with_capacity(64 * 1024, file);
            let mut buf = Vec::new();
            while next_line(&mut reader, &mut buf, &path).map_err(broken)? {
                let text = String::from_utf8_lossy(&buf);
                if text.trim().is_empty() {
                    continue;
                }
                let Ok(line) = serde_json::from_str::<Value>(&text) else {
                    tally.ignored += 1;
                    continue;
                };
                let Some(id) = line.get("custom_id").and_then(Value::as_str) else {
                    tally.ignored += 1;
                    continue;
                };
                let Some(entry) = index.by_id.get_mut(id).filter(|e| !e.written) else {
                    tally.ignored += 1;
                    continue;
                };
                entry.written = true;
                let entry = *entry;
                let outcome =
                    validated(classify(kind, &line, scrub.line), entry, &index, scrub.line);
                count(&mut tally, &outcome);
                let cost = outcome_cost(&outcome, index.model(entry), prices);
                tally.cost.add(cost.cost);
                tally.regular_rate += u64::from(cost.regular_rate);
                let bytes = match format {
                    Format::OpenaiBatch => {
                        let mut b = (scrub.data)(text.trim_end()).into_bytes();
                        b.push(b'\n');
                        b
                    }
                    Format::Local => {
                        let model = index.model(entry);
                        local_line(meta, id, entry.index, model, &outcome, 1, cost.cost)
                    }
                };
                out(&bytes).map_err(write_err)?;
            }
        }
    }
    not_run_lines(parts, format, meta, &index, &mut tally, &mut |b| {
        out(b).map_err(write_err)
    })?;
    Ok(tally)
}

/// An error line for every job the provider's files do not mention, so that `--resume` runs it.
fn not_run_lines(
    parts: &[Part],
    format: Format,
    meta: &RunMeta,
    index: &JobIndex,
    tally: &mut Tally,
    out: &mut dyn FnMut(&[u8]) -> Result<(), Error>,
) -> Result<(), Error> {
    // In job-file order: `index` is each job's position in the file.
    let mut not_written: Vec<(&str, Entry)> = index
        .by_id
        .iter()
        .filter(|(_, e)| !e.written)
        .map(|(id, e)| (&**id, *e))
        .collect();
    not_written.sort_unstable_by_key(|(_, e)| e.index);
    for (id, entry) in not_written {
        let part = parts
            .iter()
            .find(|p| p.part as u64 == u64::from(entry.part));
        let (kind, message, temporary) = not_run_reason(part);
        let outcome = Outcome::NotRun {
            kind,
            message,
            temporary,
        };
        count(tally, &outcome);
        let bytes = match format {
            Format::OpenaiBatch => {
                let Outcome::NotRun { message, .. } = &outcome else {
                    continue;
                };
                let mut b = serde_json::to_vec(&json!({
                    "id": null,
                    "custom_id": id,
                    "response": null,
                    "error": {"code": kind, "message": message},
                }))
                .unwrap_or_default();
                b.push(b'\n');
                b
            }
            Format::Local => {
                let model = index.model(entry);
                local_line(meta, id, entry.index, model, &outcome, 0, Cost::default())
            }
        };
        out(&bytes)?;
    }
    Ok(())
}

/// Why a job has no line from the provider, and whether that is temporary.
fn not_run_reason(part: Option<&Part>) -> (&'static str, String, bool) {
    let id = part.and_then(|p| p.batch_id.as_deref()).unwrap_or("?");
    let hint = "run it locally with `qwen --jobs FILE --resume --output FILE`, or submit again";
    match part.and_then(|p| p.status.as_deref()) {
        Some("expired") => (
            "batch_expired",
            format!("the provider's batch `{id}` expired before this request ran; {hint}"),
            true,
        ),
        Some("cancelled") => (
            "batch_cancelled",
            format!("the provider's batch `{id}` was cancelled before this request ran; {hint}"),
            false,
        ),
        Some("failed") => (
            "batch_failed",
            format!(
                "the provider failed batch `{id}`{}; {hint}",
                part.and_then(|p| p.batch_error.as_deref())
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            ),
            true,
        ),
        _ => (
            "missing_result",
            format!("the provider's batch `{id}` ended without a line for this request; {hint}"),
            true,
        ),
    }
}

fn count(tally: &mut Tally, outcome: &Outcome) {
    match outcome {
        Outcome::Ok(c) | Outcome::Structured(c, _) => {
            tally.succeeded += 1;
            if let Some(u) = c.usage {
                tally.input_tokens = tally.input_tokens.saturating_add(u.input_tokens);
                tally.output_tokens = tally.output_tokens.saturating_add(u.output_tokens);
            }
        }
        Outcome::Err(e) => {
            tally.failed += 1;
            if e.exit_status() == ExitStatus::TempFail {
                tally.failed_temporary += 1;
            }
        }
        Outcome::Invalid { usage, .. } => {
            tally.failed += 1;
            if let Some(u) = usage {
                tally.input_tokens = tally.input_tokens.saturating_add(u.input_tokens);
                tally.output_tokens = tally.output_tokens.saturating_add(u.output_tokens);
            }
        }
        Outcome::NotRun { temporary, .. } => {
            tally.failed += 1;
            tally.not_run += 1;
            if *temporary {
                tally.failed_temporary += 1;
            }
        }
    }
}

/// An answer checked against its job's schema, as a local run checks it: the compact value as the
/// text (with `structured_result`), or `Invalid`.
fn validated(
    outcome: Outcome,
    entry: Entry,
    index: &JobIndex,
    scrub: &dyn Fn(&str) -> String,
) -> Outcome {
    let schema = entry
        .schema
        .and_then(|n| index.schemas.get(usize::try_from(n).ok()?));
    match (outcome, schema) {
        (Outcome::Ok(mut c), Some(schema)) => match schema.check(&c.text) {
            Ok(value) => {
                c.text = value.to_string();
                Outcome::Structured(c, value)
            }
            Err(errors) => Outcome::Invalid {
                errors: errors.iter().map(|e| scrub(e)).collect(),
                last_answer: scrub(&c.text),
                usage: c.usage,
            },
        },
        (outcome, _) => outcome,
    }
}

/// A local result line: the same fields as a local batch's (`id`, `index`, then the result message).
fn local_line(
    meta: &RunMeta,
    id: &str,
    index: usize,
    model: &str,
    outcome: &Outcome,
    attempts: u32,
    cost: Cost,
) -> Vec<u8> {
    let mut job_meta = meta.clone();
    model.clone_into(&mut job_meta.model);
    let none = Extras::default();
    let message = match outcome {
        Outcome::Ok(c) => {
            let extras = Extras {
                cost,
                ..Extras::default()
            };
            output::result_message(&job_meta, &output::Outcome::Success(c), &extras, 0, 0)
        }
        Outcome::Structured(c, value) => {
            let extras = Extras {
                structured_result: Some(value.clone()),
                cost,
                ..Extras::default()
            };
            output::result_message(&job_meta, &output::Outcome::Success(c), &extras, 0, 0)
        }
        Outcome::Invalid {
            errors,
            last_answer,
            usage,
        } => {
            let text = format!(
                "the answer does not match the JSON schema: {}",
                crate::schema::summarize_errors(errors)
            );
            let failure = output::Outcome::Failure {
                kind: "schema_validation",
                message: &text,
                attempts,
            };
            let extras = Extras {
                last_answer: Some(last_answer.clone()),
                usage: usage.map(|u| Some(u).into()),
                num_turns: Some(1),
                cost,
                ..Extras::default()
            };
            output::result_message(&job_meta, &failure, &extras, 0, 0)
        }
        Outcome::Err(e) => {
            let text = e.to_string();
            let failure = output::Outcome::Failure {
                kind: e.kind(),
                message: &text,
                attempts,
            };
            output::result_message(&job_meta, &failure, &none, 0, 0)
        }
        Outcome::NotRun { kind, message, .. } => {
            let failure = output::Outcome::Failure {
                kind,
                message,
                attempts: 0,
            };
            output::result_message(&job_meta, &failure, &none, 0, 0)
        }
    };
    line_with_id(id, index, message)
}

fn line_with_id(id: &str, index: usize, message: ResultMessage) -> Vec<u8> {
    let line = BatchLine {
        id: id.to_owned(),
        index,
        result: message,
    };
    let mut bytes = serde_json::to_vec(&line).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_of(jobs: &str, limits: Limits) -> (Vec<Part>, u64, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("jobs.jsonl"), jobs).unwrap();
        let file = JobFile::open(
            "jobs.jsonl",
            dir.path(),
            crate::paths::PathRules::default(),
            None,
        )
        .unwrap();
        let defaults = JobDefaults {
            model: "m".into(),
            max_input_bytes: 1024,
            ..JobDefaults::default()
        };
        let (parts, n) = plan(
            &file,
            &defaults,
            limits,
            &dir.path().join("state"),
            BatchKind::OpenaiChat,
            Param::MaxTokens,
        )
        .unwrap();
        (parts, n, dir)
    }

    #[test]
    fn parts_split_at_the_byte_limit_and_keep_every_job_once() {
        let mut jobs = String::new();
        for i in 0..10 {
            jobs.push_str(
                &[
                    "{\"id\":\"j",
                    &i.to_string(),
                    "\",\"prompt\":\"p\",\"stream\":true}\n",
                ]
                .concat(),
            );
        }
        // One input line is 128 bytes: three fit in 400.
        let (parts, n, dir) = plan_of(
            &jobs,
            Limits {
                max_requests: 1000,
                max_bytes: 400,
            },
        );
        assert_eq!(n, 10);
        assert_eq!(parts.len(), 4, "{parts:?}");
        let mut seen = Vec::new();
        for p in &parts {
            assert!(p.bytes <= 400 && p.requests <= 3, "{p:?}");
            let text = std::fs::read_to_string(dir.path().join("state").join(&p.input)).unwrap();
            assert_eq!(text.len() as u64, p.bytes);
            for line in text.lines() {
                let v: Value = serde_json::from_str(line).unwrap();
                assert!(v["body"].get("stream").is_none(), "{line}");
                seen.push(v["custom_id"].as_str().unwrap().to_owned());
            }
        }
        assert_eq!(seen, (0..10).map(|i| format!("j{i}")).collect::<Vec<_>>());
    }

    #[test]
    fn every_schema_the_index_names_must_load() {
        let dir = tempfile::tempdir().unwrap();
        let index = r#"{"id":"a","index":0,"model":"m","part":0,"schema":1}"#;
        std::fs::write(dir.path().join(JOBS_FILE), format!("{index}\n")).unwrap();
        std::fs::write(dir.path().join("schema-0.json"), r#"{"type":"object"}"#).unwrap();
        // schema-1.json missing: the job's answers would go unchecked.
        let err = load_index(dir.path()).err().unwrap().to_string();
        assert!(
            err.contains("schema-1.json") && err.contains("names it"),
            "{err}"
        );
        // A FIFO in its place is refused the same way, never waited on.
        let fifo = dir.path().join("schema-1.json");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        assert!(load_index(dir.path()).is_err());
        std::fs::remove_file(&fifo).unwrap();
        // Too large is damaged, not cut.
        let big = format!(
            r#"{{"type":"object","description":"{}"}}"#,
            "x".repeat(usize::try_from(crate::schema::MAX_SCHEMA_BYTES).unwrap())
        );
        std::fs::write(&fifo, big).unwrap();
        let err = load_index(dir.path()).err().unwrap().to_string();
        assert!(err.contains("larger than"), "{err}");
        std::fs::write(&fifo, r#"{"type":"string"}"#).unwrap();
        assert_eq!(load_index(dir.path()).unwrap().schemas.len(), 2);
    }

    #[test]
    fn a_request_larger_than_a_file_is_an_input_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("jobs.jsonl"), "{\"prompt\":\"hello\"}\n").unwrap();
        let file = JobFile::open(
            "jobs.jsonl",
            dir.path(),
            crate::paths::PathRules::default(),
            None,
        )
        .unwrap();
        let limits = Limits {
            max_requests: 10,
            max_bytes: 20,
        };
        let err = plan(
            &file,
            &JobDefaults::default(),
            limits,
            &dir.path().join("s"),
            BatchKind::OpenaiChat,
            Param::MaxTokens,
        )
        .unwrap_err();
        assert_eq!(err.exit_status(), ExitStatus::Input);
    }
}
