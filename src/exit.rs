//! The process exit status table: the only place where outcomes become numbers.

use std::process::ExitCode;

/// How a command ended. The numbers are part of the public contract (README, "Exit codes"):
///
/// | code | meaning |
/// |---|---|
/// | 0 | success |
/// | 1 | the request failed for good (an API error other than auth, an unusable response, a refusal by the model, `insufficient_quota`), or stdout or a results file could not be written; in a batch, a job failed for good or was left without a result |
/// | 2 | usage error (bad flags; `--max-budget-usd` with an answer whose cost is unknown) |
/// | 41 | authentication: no key, OAuth refused in a non-interactive session, a login denied, expired or cancelled, HTTP 401/403 |
/// | 42 | input: no prompt, input too large, unreadable input, invalid job file, output file in the way |
/// | 52 | configuration: bad base URL, unreadable `.env` or `settings.json`, untrusted project base URL, no CA bundle |
/// | 55 | a budget ran out: `--max-wall-time` (a single run or a batch), `--max-total-tokens` or `--max-budget-usd`; `--resume` finishes a batch later |
/// | 65 | `--json-schema`: no answer matched the schema after `--schema-retries` repair turns (single run; `error.type: "schema_validation"`) |
/// | 75 | temporary failure: retries exhausted on 429/5xx/network/timeout or an answer the server cut short (no `finish_reason`), a batch refused for `--max-rate-limit-wait`, or the `--output` file is locked by another run; a CI step may retry |
/// | 130 / 143 | interrupted by SIGINT / SIGTERM |
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum ExitStatus {
    Success,
    Failure,
    Usage,
    Auth,
    Input,
    Config,
    WallTime,
    DataErr,
    TempFail,
    Interrupted,
    Terminated,
}

impl ExitStatus {
    /// The one rule for a finished set of results (a local batch that ran to its end, a fetched
    /// provider batch): 0 when nothing failed; 75 when every failure is temporary (a re-run or
    /// `--resume` may finish it); else 1.
    pub(crate) fn of_results(failed: u64, failed_temporary: u64) -> Self {
        if failed == 0 {
            Self::Success
        } else if failed == failed_temporary {
            Self::TempFail
        } else {
            Self::Failure
        }
    }

    pub(crate) const fn code(self) -> u8 {
        match self {
            Self::Success => 0,
            Self::Failure => 1,
            Self::Usage => 2,
            Self::Auth => 41,
            Self::Input => 42,
            Self::Config => 52,
            Self::WallTime => 55,
            Self::DataErr => 65,
            Self::TempFail => 75,
            Self::Interrupted => 130,
            Self::Terminated => 143,
        }
    }
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> Self {
        ExitCode::from(status.code())
    }
}
