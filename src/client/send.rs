//! The send loop of one chat request, one concern per loop: the retry loop (`--retries`, backoff),
//! inside it the parameter adjustment (a 400 that refuses a parameter), inside that the pacing
//! loop (a batch's 429 for rate goes back to the line), and at its heart one attempt after the one
//! throttle point (the batch pacer, then `--rpm`).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use super::{
    ApiError, AttemptRecord, ChatClient, Completion, Decision, Failure, OnPiece, Outgoing, Piece,
    RequestTrace, RetryEvent, TraceContext, WaitReason, pacing, params,
};
use crate::diag;

/// What became of a paced attempt.
#[derive(Debug, PartialEq, Eq)]
enum Settled {
    /// Refused for rate: wait for another turn, after the batch's pause (this long from now).
    Requeue(Duration),
    Answered,
}

/// One attempt's outcome, and whether text of it was already shown to the user.
struct Attempted {
    result: Result<Completion, ApiError>,
    shown: bool,
}

/// One request's way through the loops: the body as adjusted so far, and what was spent on it.
struct Exchange<'a> {
    body: Value,
    headers: &'a [params::ExtraHeader],
    deltas_are_final: bool,
    adjusted: Vec<params::Adjustment>,
    /// A batch's pacer of this model; `None` for a single run.
    pacer: Option<Arc<pacing::Pacer>>,
    /// Requests sent, whatever became of them (the result's `attempts`).
    sent: u32,
    /// Failures that count against `--retries`: neither a paced 429 nor an adjusted retry does.
    failures: u32,
    /// Time slept before retries (the result's `retry_wait_ms`).
    retry_wait: Duration,
    /// The trace the request belongs to (`traceparent`, attempt spans).
    trace: Option<RequestTrace>,
}

impl Exchange<'_> {
    fn failure(&self, error: ApiError) -> Failure {
        Failure {
            error,
            attempts: self.sent,
            adjusted: described(&self.adjusted),
            retry_wait: self.retry_wait,
        }
    }

    fn completed(&self, mut completion: Completion) -> Completion {
        // `api_duration` is the caller's: it spans every model and turn.
        completion.attempts = self.sent;
        completion.adjusted = described(&self.adjusted);
        completion.retry_wait = self.retry_wait;
        completion
    }
}

/// The adjustments made to a request, as results report them.
fn described(adjusted: &[params::Adjustment]) -> Vec<String> {
    adjusted.iter().map(|a| a.describe()).collect()
}

/// Wait for a turn at the pacer; a pacer that gave up (quota, or refused for too long) says why.
async fn wait_turn(pacer: &Arc<pacing::Pacer>, body: &Value) -> Result<pacing::Turn, ApiError> {
    let (estimate, prompt) = pacer.estimate(body);
    pacer
        .acquire_for(estimate, prompt)
        .await
        .map_err(|refusal| match refusal {
            pacing::Refusal::WaitExceeded(waited) => ApiError::RateLimitWait { waited },
            pacing::Refusal::Quota(message) => ApiError::QuotaExhausted { message },
        })
}

impl ChatClient {
    /// Send one chat request, retrying per the policy. `on_piece` gets each piece of text (and of
    /// reasoning) as it arrives; when `deltas_are_final` is set, text handed to it counts as shown
    /// to the user, so a failure after that is not retried. A 400 that refuses one of the
    /// parameters in [`params::Param`] gets one adjusted retry per parameter, reported once per run
    /// and remembered for every later request of this client and its clones. In a batch
    /// (`with_pacers`), each attempt first waits its turn at the pacer of its model, and a 429 for
    /// rate sends it back to the line; neither counts against `--retries`.
    pub(crate) async fn send(
        &self,
        request: Outgoing<'_>,
        on_piece: &mut OnPiece<'_>,
        deltas_are_final: bool,
    ) -> Result<Completion, Failure> {
        let mut exchange = self.exchange(request, deltas_are_final);
        loop {
            let (error, shown) = match self.adjusted(&mut exchange, on_piece).await {
                Ok(completion) => return Ok(exchange.completed(completion)),
                Err(failed) => failed,
            };
            let wait = match self.settings.retry.decide(error, exchange.failures, shown) {
                Decision::Retry { error, wait } => {
                    if self.settings.debug {
                        diag::debug(&format!(
                            "attempt {} failed ({error}); retrying in {} ms",
                            exchange.sent,
                            wait.as_millis()
                        ));
                    }
                    // `decide` waits what the server asked when it asked (`retry_after`).
                    let reason = match &error {
                        ApiError::Http {
                            retry_after: Some(_),
                            ..
                        } => WaitReason::ServerHint,
                        _ => WaitReason::Backoff,
                    };
                    self.report_wait(&exchange, &error, exchange.sent, wait, reason);
                    wait
                }
                Decision::GiveUp(error) => return Err(exchange.failure(error)),
            };
            exchange.retry_wait += wait;
            tokio::time::sleep(wait).await;
        }
    }

    /// Tell the retry hook (if any) that the request waits `wait` before trying again.
    fn report_wait(
        &self,
        exchange: &Exchange<'_>,
        error: &ApiError,
        attempt: u32,
        wait: Duration,
        reason: WaitReason,
    ) {
        if self.on_event.is_none() {
            return;
        }
        self.retry_event(RetryEvent {
            attempt,
            max_retries: self.settings.retry.retries,
            status: error.status(),
            error: error.kind(),
            wait,
            reason,
            model: exchange
                .body
                .get("model")
                .and_then(Value::as_str)
                .map(|m| self.short(m))
                .unwrap_or_default(),
            fallback_model: None,
        });
    }

    fn exchange<'a>(&self, request: Outgoing<'a>, deltas_are_final: bool) -> Exchange<'a> {
        let mut body = streaming_body(request.body);
        let adjusted = self.learned.prepare(
            &mut body,
            request.own_token_limit.then_some(self.token_param),
        );
        let model = body
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let pacer = self
            .pacers
            .as_ref()
            .map(|p| p.get(self.url.as_str(), model));
        Exchange {
            body,
            headers: request.headers,
            deltas_are_final,
            adjusted,
            pacer,
            sent: 0,
            failures: 0,
            retry_wait: Duration::ZERO,
            trace: request.trace,
        }
    }

    /// The parameter-adjustment loop: a failure that refuses a parameter is sent again without
    /// it (not a failure for `--retries`); any other failure counts as one, and comes back with
    /// whether text of it was shown. A pacer that gave up comes back uncounted: its errors
    /// (quota, `--max-rate-limit-wait`) are never retryable, so the retry loop gives up on them.
    async fn adjusted(
        &self,
        exchange: &mut Exchange<'_>,
        on_piece: &mut OnPiece<'_>,
    ) -> Result<Completion, (ApiError, bool)> {
        loop {
            let attempted = self
                .paced(exchange, on_piece)
                .await
                .map_err(|error| (error, false))?;
            let error = match attempted.result {
                Ok(completion) => return Ok(completion),
                Err(error) => error,
            };
            let learned = &self.learned;
            if let Some(adjustment) =
                learned.retry_adjustment(&error, &mut exchange.body, &exchange.adjusted)
            {
                exchange.adjusted.push(adjustment);
                continue;
            }
            exchange.failures += 1;
            return Err((error, attempted.shown));
        }
    }

    /// The pacing loop: one attempt per turn, and a 429 for rate waits for another turn. `Err`
    /// when the pacer gave up (quota, `--max-rate-limit-wait`): no attempt is made.
    async fn paced(
        &self,
        exchange: &mut Exchange<'_>,
        on_piece: &mut OnPiece<'_>,
    ) -> Result<Attempted, ApiError> {
        loop {
            let turn = self.throttle(exchange).await?;
            exchange.sent += 1;
            let mut rate = pacing::RateHeaders::default();
            let mut emitted = false;
            let attempt_trace = Traced::start(exchange);
            let result = {
                let mut tracked = |piece: Piece<'_>| {
                    emitted |= matches!(piece, Piece::Text(_));
                    on_piece(piece)
                };
                let headers = attempt_trace.headers(exchange.headers);
                let body = &exchange.body;
                self.attempt(body, &headers, &mut tracked, exchange.sent, &mut rate)
                    .await
            };
            let shown = exchange.deltas_are_final && emitted;
            attempt_trace.finish(self, exchange, &result);
            if let Some(turn) = turn
                && let Settled::Requeue(pause) =
                    self.settle(turn, &result, &rate, exchange.sent, shown)?
            {
                if let Err(error) = &result {
                    let reason = WaitReason::RateLimitPause;
                    self.report_wait(exchange, error, exchange.sent, pause, reason);
                }
                continue;
            }
            return Ok(Attempted { result, shown });
        }
    }

    /// The one throttle point before every attempt: a batch's turn at the pacer of its model,
    /// then `--rpm`'s spacing.
    async fn throttle(&self, exchange: &Exchange<'_>) -> Result<Option<pacing::Turn>, ApiError> {
        let turn = match &exchange.pacer {
            Some(pacer) => Some(wait_turn(pacer, &exchange.body).await?),
            None => None,
        };
        if let Some(limiter) = &self.limiter {
            limiter.acquire().await;
        }
        Ok(turn)
    }

    /// Tell the pacer how a paced attempt went: a 429 for rate goes back to the line, quota
    /// stops everyone (`Err`), congestion (`ApiError::is_congestion`) shrinks the window (and goes
    /// back to the line when others crowded it out), anything else is an answer that corrects the
    /// budget.
    fn settle(
        &self,
        turn: pacing::Turn,
        result: &Result<Completion, ApiError>,
        rate: &pacing::RateHeaders,
        attempt: u32,
        shown: bool,
    ) -> Result<Settled, ApiError> {
        match result {
            Err(ApiError::Http { status: 429, .. }) => {
                if self.settings.debug {
                    diag::debug(&format!(
                        "attempt {attempt}: HTTP 429 (rate); the batch pauses and this request waits its turn again"
                    ));
                }
                Ok(Settled::Requeue(turn.rate_limited(rate, None)))
            }
            Err(ApiError::QuotaExhausted { message }) => {
                turn.quota_exhausted(message);
                Err(ApiError::QuotaExhausted {
                    message: message.clone(),
                })
            }
            Err(error) if error.is_congestion() => {
                if self.settings.debug {
                    diag::debug(&format!(
                        "attempt {attempt}: the server looks congested ({error}); the batch sends fewer requests at once"
                    ));
                }
                // A cut answer, a dropped connection or a busy 503 lowers the window as a 429 does
                // (no pause: the request itself is retried within --retries, with its backoff).
                // Against llama.cpp's one-slot server, 16 jobs at --concurrency 8 converge to one
                // at a time instead of cutting each other short (scripts/real-server-test.sh).
                // Not a 429: no pause, no "refused since" timer, the learnt pace kept. Cut short
                // by others in flight, the request waits its turn again without spending a retry
                // (unless its text was already shown); alone, the failure is its own and goes to
                // the retry policy, so a requeue can never loop.
                if turn.congested(rate) && !shown {
                    Ok(Settled::Requeue(Duration::ZERO))
                } else {
                    Ok(Settled::Answered)
                }
            }
            _ => {
                let usage = result
                    .as_ref()
                    .ok()
                    .and_then(|c| c.usage)
                    .map(|u| (u.input_tokens, u.output_tokens));
                turn.answered(rate, result.is_ok(), usage);
                Ok(Settled::Answered)
            }
        }
    }
}

/// One attempt's place in its trace: the `traceparent` it sends, and (when the trace is recorded)
/// its own span, reported to the hook when the attempt ends.
struct Traced {
    sent: Option<TraceContext>,
    recorded: Option<(TraceContext, SystemTime)>,
}

impl Traced {
    fn start(exchange: &Exchange<'_>) -> Self {
        let Some(trace) = exchange.trace else {
            return Self {
                sent: None,
                recorded: None,
            };
        };
        if !trace.record {
            // Not recorded here: the caller's context is passed on as it is.
            return Self {
                sent: Some(trace.parent),
                recorded: None,
            };
        }
        let own = TraceContext {
            span_id: super::new_span_id(),
            ..trace.parent
        };
        Self {
            sent: Some(own),
            recorded: Some((trace.parent, SystemTime::now())),
        }
    }

    /// The request's headers, with `traceparent` when there is a trace.
    fn headers(&self, headers: &[params::ExtraHeader]) -> Vec<params::ExtraHeader> {
        let mut all = headers.to_vec();
        if let Some(sent) = &self.sent {
            all.push(params::ExtraHeader {
                name: "traceparent".to_owned(),
                value: sent.traceparent(),
            });
        }
        all
    }

    fn finish(
        self,
        client: &ChatClient,
        exchange: &Exchange<'_>,
        result: &Result<Completion, ApiError>,
    ) {
        let (Some((parent, start)), Some(sent)) = (self.recorded, self.sent) else {
            return;
        };
        let ok = result.as_ref().ok();
        client.attempt_event(AttemptRecord {
            parent,
            span_id: sent.span_id,
            start,
            end: SystemTime::now(),
            attempt: exchange.sent,
            model: exchange
                .body
                .get("model")
                .and_then(Value::as_str)
                .map(|m| client.short(m))
                .unwrap_or_default(),
            status: match result {
                Ok(_) => Some(200),
                Err(e) => e.status(),
            },
            error: result.as_ref().err().map(|e| (e.kind(), e.to_string())),
            usage: ok.and_then(|c| c.usage),
            server_model: ok.and_then(|c| c.server_model.clone()),
            finish_reason: ok.and_then(|c| c.finish_reason.clone()),
            response_id: ok.and_then(|c| c.response_id.clone()),
        });
    }
}

/// The body with the streaming fields set, whatever the caller gave.
fn streaming_body(body: &Value) -> Value {
    let mut body = body.clone();
    if let Some(map) = body.as_object_mut() {
        map.insert("stream".into(), Value::Bool(true));
        map.insert(
            "stream_options".into(),
            serde_json::json!({"include_usage": true}),
        );
    }
    body
}
