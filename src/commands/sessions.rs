//! `qwen sessions list [--json]`: the recorded conversations of the working directory, most
//! recent first, with the id `-r/--resume ID` takes.

use std::fmt::Write as _;

use crate::context::Context;
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::sessions::{Store, root};

/// The largest session file `list` reads (the same default as --max-input-bytes).
const MAX_SESSION_BYTES: u64 = 8 * 1024 * 1024;

pub(crate) fn list(json: bool, ctx: &Context) -> Result<ExitStatus, Error> {
    let Some(home) = ctx.env.home() else {
        return Err(Error::config(
            "HOME is not set: there is no sessions directory",
            "set HOME",
        ));
    };
    let store = Store::new(&root(&home), &ctx.cwd, MAX_SESSION_BYTES);
    let mut text = String::new();
    for s in store.list()? {
        if json {
            text.push_str(&serde_json::to_string(&s).map_err(|e| Error::Internal(e.to_string()))?);
        } else {
            let updated = std::time::UNIX_EPOCH + std::time::Duration::from_millis(s.updated_ms);
            let first = s
                .first_prompt
                .as_deref()
                .map(|p| crate::sanitize::line(p, None, 60))
                .unwrap_or_default();
            let _ = write!(
                text,
                "{}  {}  {} messages  {}",
                s.id,
                httpdate::fmt_http_date(updated),
                s.messages,
                first
            );
        }
        text.push('\n');
    }
    crate::output::quiet_if_closed(crate::output::write_stdout(text.as_bytes()))?;
    Ok(ExitStatus::Success)
}
