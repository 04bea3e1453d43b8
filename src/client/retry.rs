//! When to try again and how long to wait: exponential backoff with jitter, `Retry-After`, `retry-after-ms`.
//
// Where a wait hint can come from, in the order read (the first one present wins):
// - `retry-after-ms`, then `Retry-After` (seconds or an HTTP date): OpenAI, Azure OpenAI and most
//   servers; openai-python's `_calculate_retry_timeout` reads them in this order.
// - `x-ms-retry-after-ms`: Azure's own spelling; Portkey's gateway honours it next to the two
//   above (portkey.ai/docs/product/ai-gateway/automatic-retries, "use_retry_after_headers").
// - `llm_provider-retry-after-ms`, `llm_provider-retry-after`: the LiteLLM proxy forwards every
//   upstream header under an `llm_provider-` prefix (`_get_llm_provider_headers` in BerriAI/litellm
//   `litellm/litellm_core_utils/llm_response_utils/get_headers.py`; docs.litellm.ai/docs/proxy/
//   response_headers), and its own 429 for a deployment's `rpm`/`tpm` (`enforce_model_rate_limits`,
//   `litellm/router_utils/pre_call_checks/model_rate_limit_check.py`) sets `retry-after: 60`, which
//   reaches the client only as `llm_provider-retry-after: 60`.

use std::time::{Duration, SystemTime};

use reqwest::header::HeaderMap;

use super::ApiError;

#[derive(Debug, Clone, Copy)]
pub(crate) struct RetryPolicy {
    /// Retries after the first attempt.
    pub(crate) retries: u32,
    /// The first backoff; doubled on each retry.
    pub(crate) base_delay: Duration,
    /// The longest backoff we choose ourselves.
    pub(crate) max_backoff: Duration,
    /// The longest wait a server may ask for; a longer demand fails at once.
    pub(crate) max_retry_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            retries: 4,
            base_delay: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            max_retry_wait: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// Backoff before retry number `retry` (1-based): `base * 2^(retry-1)`, capped, with
    /// "equal jitter" (between half and all of it) so that parallel clients spread out.
    pub(crate) fn backoff(&self, retry: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << retry.saturating_sub(1).min(20));
        let capped = exp.min(self.max_backoff).min(self.max_retry_wait);
        let half = capped / 2;
        half + half.mul_f64(fastrand::f64())
    }
}

/// What to do after a failed attempt.
#[derive(Debug)]
pub(crate) enum Decision {
    /// Try again after `wait` (the error is kept for the debug line).
    Retry { error: ApiError, wait: Duration },
    /// Stop: this is the request's error.
    GiveUp(ApiError),
}

impl RetryPolicy {
    /// The whole retry rule. After attempt number `attempt` (1-based) failed with `error`: give up
    /// when the error is permanent, when text was already shown to the user (`text_shown`), or
    /// when the retries are spent; a server's demand to wait longer than `max_retry_wait` is a
    /// failure of its own; otherwise wait what the server asked, or our backoff.
    pub(crate) fn decide(&self, error: ApiError, attempt: u32, text_shown: bool) -> Decision {
        if !error.is_retryable() || text_shown || attempt > self.retries {
            return Decision::GiveUp(error);
        }
        let server_wait = match &error {
            ApiError::Http { retry_after, .. } => *retry_after,
            _ => None,
        };
        match server_wait {
            Some(wait) if exceeds(wait, self.max_retry_wait) => {
                Decision::GiveUp(ApiError::RetryAfterTooLong {
                    status: error.status().unwrap_or_default(),
                    wait,
                    max: self.max_retry_wait,
                })
            }
            Some(wait) => Decision::Retry { error, wait },
            None => Decision::Retry {
                wait: self.backoff(attempt),
                error,
            },
        }
    }
}

/// Whether a server's demand is longer than `max`, as the message that refuses it shows durations
/// (whole milliseconds under a second, tenths of a second above): `Retry-After: 60.0000001` against
/// `--max-retry-wait 60s` is 60 s, not "60s, more than 60s". The wait itself is honoured exactly.
fn exceeds(wait: Duration, max: Duration) -> bool {
    let resolution = if wait < Duration::from_secs(1) {
        Duration::from_millis(1)
    } else {
        Duration::from_millis(100)
    };
    wait.saturating_sub(max) >= resolution
}

/// Whether an HTTP status is worth another try. 529 is the "overloaded" status of Anthropic-style
/// APIs and some gateways: temporary, like 503.
pub(crate) fn is_retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504 | 529)
}

/// The wait a server asks for: `retry-after-ms` (milliseconds), else `Retry-After` (seconds or an
/// HTTP date), else the same under the names gateways use (see the top of this file).
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let millis = |name: &str| {
        let ms = text(name)?.parse::<f64>().ok()?;
        (ms.is_finite() && ms >= 0.0)
            .then(|| Duration::try_from_secs_f64((ms / 1000.0).min(1e9)).ok())
            .flatten()
    };
    millis("retry-after-ms")
        .or_else(|| parse_retry_after(text("retry-after")?, now))
        .or_else(|| millis("x-ms-retry-after-ms"))
        .or_else(|| millis("llm_provider-retry-after-ms"))
        .or_else(|| parse_retry_after(text("llm_provider-retry-after")?, now))
}

pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(1e9)));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn retry_after_forms() {
        let now = httpdate::parse_http_date("Tue, 24 Nov 2026 10:00:00 GMT").unwrap();
        let cases = [
            ("3", Some(Duration::from_secs(3))),
            ("0", Some(Duration::ZERO)),
            ("1.5", Some(Duration::from_millis(1500))),
            (
                "Tue, 24 Nov 2026 10:00:30 GMT",
                Some(Duration::from_secs(30)),
            ),
            ("Tue, 24 Nov 2026 09:00:00 GMT", Some(Duration::ZERO)),
            ("-1", None),
            ("soon", None),
        ];
        for (value, want) in cases {
            assert_eq!(parse_retry_after(value, now), want, "{value}");
        }
    }

    #[test]
    fn retry_after_ms_wins() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("10"));
        h.insert("retry-after-ms", HeaderValue::from_static("250"));
        assert_eq!(
            retry_after(&h, SystemTime::now()),
            Some(Duration::from_millis(250))
        );
        // A huge demand is capped (and then refused by --max-retry-wait), never a panic.
        h.insert("retry-after-ms", HeaderValue::from_static("1e300"));
        assert_eq!(
            retry_after(&h, SystemTime::now()),
            Some(Duration::from_secs(1_000_000_000))
        );
    }

    #[test]
    fn gateway_spellings_are_read_when_the_plain_headers_are_missing() {
        let now = SystemTime::now();
        let with = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, HeaderValue::from_static(v));
            }
            retry_after(&h, now)
        };
        let secs = |s| Some(Duration::from_secs(s));
        // LiteLLM's own 429 (`enforce_model_rate_limits`).
        assert_eq!(with(&[("llm_provider-retry-after", "60")]), secs(60));
        assert_eq!(
            with(&[("llm_provider-retry-after-ms", "1500")]),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            with(&[
                ("llm_provider-retry-after", "60"),
                ("llm_provider-retry-after-ms", "2000")
            ]),
            secs(2),
            "milliseconds first, as for the plain names"
        );
        assert_eq!(
            with(&[("x-ms-retry-after-ms", "250")]),
            Some(Duration::from_millis(250))
        );
        // The plain headers win: they are the server's own word.
        assert_eq!(
            with(&[("retry-after", "3"), ("llm_provider-retry-after", "60")]),
            secs(3)
        );
        assert_eq!(with(&[("llm_provider-retry-after", "soon")]), None);
        assert_eq!(with(&[("llm_provider-retry-after-ms", "-5")]), None);
    }

    #[test]
    fn a_wait_within_the_messages_precision_of_max_retry_wait_is_not_refused() {
        let s = Duration::from_secs;
        let ms = Duration::from_millis;
        let cases = [
            (Duration::from_secs_f64(60.000_000_1), s(60), false),
            (s(60), s(60), false),
            (ms(60_099), s(60), false),
            (ms(60_100), s(60), true),
            (s(61), s(60), true),
            (Duration::from_micros(500_500), ms(500), false),
            (ms(501), ms(500), true),
        ];
        for (wait, max, want) in cases {
            assert_eq!(exceeds(wait, max), want, "{wait:?} against {max:?}");
        }
        let p = RetryPolicy {
            max_retry_wait: s(60),
            ..RetryPolicy::default()
        };
        let error = ApiError::Http {
            status: 429,
            message: String::new(),
            retry_after: Some(Duration::from_secs_f64(60.000_000_1)),
            code: None,
        };
        match p.decide(error, 1, false) {
            Decision::Retry { wait, .. } => assert!(wait > s(60)),
            other @ Decision::GiveUp(_) => panic!("{other:?}"),
        }
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy::default();
        for retry in 1..=10 {
            let d = p.backoff(retry);
            let full = (Duration::from_secs(1) * (1 << (retry - 1))).min(Duration::from_secs(30));
            assert!(d >= full / 2 && d <= full, "retry {retry}: {d:?}");
        }
        let zero = RetryPolicy {
            base_delay: Duration::ZERO,
            ..p
        };
        assert_eq!(zero.backoff(3), Duration::ZERO);
    }

    /// (error, attempt, text shown) -> Some(wait bounds) to retry, None to give up
    type Case = (ApiError, u32, bool, Option<(Duration, Duration)>);

    #[test]
    fn the_retry_rule() {
        let p = RetryPolicy {
            retries: 2,
            base_delay: Duration::from_millis(100),
            max_backoff: Duration::from_secs(30),
            max_retry_wait: Duration::from_secs(10),
        };
        let http = |status, retry_after| ApiError::Http {
            status,
            message: String::new(),
            retry_after,
            code: None,
        };
        let secs = |s| Some(Duration::from_secs(s));
        let backoff1 = Some((Duration::from_millis(50), Duration::from_millis(100)));
        let cases: Vec<Case> = vec![
            (http(503, None), 1, false, backoff1),
            (
                http(429, secs(3)),
                1,
                false,
                Some((Duration::from_secs(3), Duration::from_secs(3))),
            ),
            (http(429, secs(11)), 1, false, None),
            (http(503, None), 3, false, None),
            (http(400, None), 1, false, None),
            (http(401, None), 1, false, None),
            (ApiError::StreamCut, 1, true, None),
            (
                ApiError::StreamCut,
                2,
                false,
                Some((Duration::from_millis(100), Duration::from_millis(200))),
            ),
            (ApiError::Network("reset".into()), 1, false, backoff1),
            (ApiError::InvalidResponse("x".into()), 1, false, None),
        ];
        for (error, attempt, shown, want) in cases {
            let label = format!("{error:?} attempt {attempt} shown {shown}");
            match (p.decide(error, attempt, shown), want) {
                (Decision::Retry { wait, .. }, Some((lo, hi))) => {
                    assert!(wait >= lo && wait <= hi, "{label}: {wait:?}");
                }
                (Decision::GiveUp(_), None) => {}
                (got, want) => panic!("{label}: got {got:?}, want {want:?}"),
            }
        }
        match p.decide(http(429, secs(11)), 1, false) {
            Decision::GiveUp(ApiError::RetryAfterTooLong { wait, .. }) => {
                assert_eq!(wait, Duration::from_secs(11));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn retryable_statuses() {
        for s in [408, 429, 500, 502, 503, 504, 529] {
            assert!(is_retryable_status(s));
        }
        for s in [400, 401, 403, 404, 422, 501] {
            assert!(!is_retryable_status(s));
        }
    }
}
