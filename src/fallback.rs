//! `--fallback-model`: which failures mean "this model has no capacity now" (and so move the same
//! request to the next model), and the order the models are tried in.

use crate::client::ApiError;

/// At most this many fallback models (`--fallback-model`, a job's `fallback_models`).
pub(crate) const MAX_FALLBACK_MODELS: usize = 3;

/// Whether a failure, once the retry rules gave up, is one of capacity: HTTP 503 (unavailable),
/// 529 (Anthropic-style "overloaded", also used by some gateways), an error whose type or
/// message says overloaded (`overloaded_error`), or a rate-limit 429 (including a `Retry-After`
/// longer than the run may wait, and a batch's model refused for `--max-rate-limit-wait`). Never an error that another model cannot fix: 400 (the
/// request), 401/403 (the key), 404 (the endpoint or model name), or a 429 whose code is
/// `insufficient_quota` (`OpenAI`'s "You exceeded your current quota": the account, not the model),
/// nor a refusal (the model declined the prompt: `ApiError::Refusal`).
pub(crate) fn is_capacity(error: &ApiError) -> bool {
    match error {
        ApiError::Http {
            status,
            message,
            code,
            ..
        } => {
            if code.as_deref() == Some("insufficient_quota") {
                return false;
            }
            let overloaded = code
                .as_deref()
                .is_some_and(|c| c.to_ascii_lowercase().contains("overloaded"))
                || message.to_ascii_lowercase().contains("overloaded");
            match status {
                503 | 529 | 429 => true,
                400 | 401 | 403 | 404 => false,
                s if *s >= 500 => overloaded,
                _ => false,
            }
        }
        ApiError::RetryAfterTooLong { status, .. } => matches!(status, 429 | 503 | 529),
        // A batch's pacer gave up on this model after `--max-rate-limit-wait` of refusals: its
        // jobs move to the next model instead of ending without a line.
        ApiError::RateLimitWait { .. } => true,
        ApiError::StreamError(message) => message.to_ascii_lowercase().contains("overloaded"),
        _ => false,
    }
}

/// The models a request may go to, in order: the job's (or run's) model, then the fallbacks,
/// without repeats.
pub(crate) fn model_order(primary: &str, fallbacks: &[String]) -> Vec<String> {
    let mut models = vec![primary.to_owned()];
    for m in fallbacks {
        if !models.contains(m) {
            models.push(m.clone());
        }
    }
    models
}

/// Check a list of fallback models from a flag or a job file.
pub(crate) fn check_list(models: &[String]) -> Result<(), String> {
    if models.len() > MAX_FALLBACK_MODELS {
        return Err(format!(
            "at most {MAX_FALLBACK_MODELS} fallback models, not {}",
            models.len()
        ));
    }
    if models.iter().any(|m| m.trim().is_empty()) {
        return Err("a fallback model name is empty".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn http(status: u16, message: &str, code: Option<&str>) -> ApiError {
        ApiError::Http {
            status,
            message: message.to_owned(),
            retry_after: None,
            code: code.map(str::to_owned),
        }
    }

    #[test]
    fn capacity_failures() {
        let yes = [
            http(503, "Service Unavailable", None),
            http(529, "Overloaded", Some("overloaded_error")),
            http(500, "upstream", Some("overloaded_error")),
            http(502, "The engine is currently overloaded", None),
            http(
                429,
                "Rate limit reached for requests",
                Some("rate_limit_exceeded"),
            ),
            ApiError::RetryAfterTooLong {
                status: 429,
                wait: Duration::from_secs(600),
                max: Duration::from_secs(60),
            },
            ApiError::StreamError("{\"type\":\"overloaded_error\"} Overloaded".into()),
            ApiError::RateLimitWait {
                waited: Duration::from_secs(600),
            },
        ];
        for e in &yes {
            assert!(is_capacity(e), "{e:?}");
        }
        let no = [
            http(400, "overloaded words in a bad request", None),
            http(401, "bad key", None),
            http(403, "forbidden", None),
            http(404, "model not found", None),
            http(
                429,
                "You exceeded your current quota",
                Some("insufficient_quota"),
            ),
            http(500, "internal error", None),
            http(422, "unprocessable", None),
            ApiError::Network("connection refused".into()),
            ApiError::StreamCut,
            // A refusal is the model's answer to this prompt: another model is not asked.
            ApiError::Refusal("I can't help with that.".into()),
            ApiError::QuotaExhausted {
                message: "You exceeded your current quota".into(),
            },
        ];
        for e in &no {
            assert!(!is_capacity(e), "{e:?}");
        }
    }

    #[test]
    fn order_and_limits() {
        let f = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            model_order("a", &f(&["b", "a", "c", "b"])),
            f(&["a", "b", "c"])
        );
        assert_eq!(model_order("a", &[]), f(&["a"]));
        assert!(check_list(&f(&["b", "c", "d"])).is_ok());
        assert!(check_list(&f(&["b", "c", "d", "e"])).is_err());
        assert!(check_list(&f(&[" "])).is_err());
    }
}
