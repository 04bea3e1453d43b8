//! Batch progress on stderr: a live bar on a terminal, a plain line every interval in CI logs, or nothing.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::client::{RetryEvent, WaitReason};
use crate::diag;

/// What a batch's retry hook heard: the waits before another try, and the time spent waiting on
/// rate limits (429s and the batch's shared pauses, added over requests). Read by the progress
/// line and the summary.
#[derive(Debug, Default)]
pub(crate) struct RetryTally {
    waits: AtomicU64,
    rate_limit_wait_ms: AtomicU64,
    fallbacks: AtomicU64,
}

impl RetryTally {
    /// Count one wait (the client's retry hook).
    pub(crate) fn hear(&self, event: &RetryEvent) {
        let ms = u64::try_from(event.wait.as_millis()).unwrap_or(u64::MAX);
        match event.reason {
            WaitReason::Fallback => {
                self.fallbacks.fetch_add(1, Ordering::Relaxed);
            }
            _ => {
                self.waits.fetch_add(1, Ordering::Relaxed);
            }
        }
        if event.reason == WaitReason::RateLimitPause || event.status == Some(429) {
            self.rate_limit_wait_ms.fetch_add(ms, Ordering::Relaxed);
        }
    }

    /// Waits before another try (fallbacks not counted).
    pub(crate) fn waits(&self) -> u64 {
        self.waits.load(Ordering::Relaxed)
    }

    pub(crate) fn rate_limit_wait_ms(&self) -> u64 {
        self.rate_limit_wait_ms.load(Ordering::Relaxed)
    }

    pub(crate) fn fallbacks(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }
}

enum Mode {
    Bar(ProgressBar),
    Plain { every: Duration },
    Quiet,
}

pub(crate) struct Progress {
    mode: Mode,
    total: u64,
    done: AtomicU64,
    failed: AtomicU64,
    in_flight: AtomicUsize,
    /// Set while the server holds the batch back (`client::Pacers::held_back`).
    held_back: std::sync::Mutex<Option<String>>,
    started: Instant,
    /// The waits before retries, heard from the client (`RetryTally::hear`).
    retries: std::sync::Arc<RetryTally>,
}

impl Progress {
    pub(crate) fn new(total: u64, live_bar: bool, quiet: bool, every: Duration) -> Self {
        let mode = if quiet {
            Mode::Quiet
        } else if live_bar {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template("{bar:20} {pos}/{len} {msg}, ETA {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(200));
            Mode::Bar(bar)
        } else {
            Mode::Plain {
                every: every.max(Duration::from_millis(100)),
            }
        };
        Self {
            mode,
            total,
            done: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            held_back: std::sync::Mutex::new(None),
            started: Instant::now(),
            retries: std::sync::Arc::default(),
        }
    }

    /// The tally the client's retry hook adds to; the progress line shows it.
    pub(crate) fn retry_tally(&self) -> std::sync::Arc<RetryTally> {
        std::sync::Arc::clone(&self.retries)
    }

    /// How often the dispatcher should call `tick`.
    pub(crate) fn tick_every(&self) -> Duration {
        match self.mode {
            Mode::Plain { every } => every,
            _ => Duration::from_secs(3600),
        }
    }

    pub(crate) fn finished(&self, ok: bool) {
        self.done.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        if let Mode::Bar(bar) = &self.mode {
            bar.inc(1);
            bar.set_message(self.counts());
        }
    }

    pub(crate) fn in_flight(&self, n: usize) {
        self.in_flight.store(n, Ordering::Relaxed);
    }

    /// Whether (and how) the server is holding the batch back now.
    pub(crate) fn held_back(&self, note: Option<String>) {
        if matches!(self.mode, Mode::Quiet) {
            return;
        }
        let mut slot = self
            .held_back
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if *slot != note {
            *slot = note;
            drop(slot);
            if let Mode::Bar(bar) = &self.mode {
                bar.set_message(self.counts());
            }
        }
    }

    fn counts(&self) -> String {
        let done = self.done.load(Ordering::Relaxed);
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        #[allow(clippy::cast_precision_loss)]
        let rate = done as f64 / secs;
        let held = self
            .held_back
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .map_or_else(String::new, |note| format!(", {note}"));
        let waits = self.retries.waits();
        let retried = if waits == 0 {
            String::new()
        } else {
            let secs = Duration::from_millis(self.retries.rate_limit_wait_ms()).as_secs_f64();
            format!(", {waits} retry waits ({secs:.1}s on rate limits)")
        };
        format!(
            "{} failed, {} in flight, {rate:.1} req/s{retried}{held}",
            self.failed.load(Ordering::Relaxed),
            self.in_flight.load(Ordering::Relaxed),
        )
    }

    /// The periodic plain report (the first tick fires at once and is skipped).
    pub(crate) fn tick(&self) {
        let Mode::Plain { .. } = self.mode else {
            return;
        };
        if self.started.elapsed() < Duration::from_millis(50) {
            return;
        }
        let done = self.done.load(Ordering::Relaxed);
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        #[allow(clippy::cast_precision_loss)]
        let rate = done as f64 / secs;
        let eta = if rate > 0.0 {
            #[allow(clippy::cast_precision_loss)]
            let left = self.total.saturating_sub(done) as f64 / rate;
            format!("{left:.0}s")
        } else {
            "?".to_owned()
        };
        diag::warn(&format!(
            "progress: {done}/{} done, {}, ETA {eta}",
            self.total,
            self.counts()
        ));
    }

    pub(crate) fn clear(&self) {
        if let Mode::Bar(bar) = &self.mode {
            bar.finish_and_clear();
        }
    }
}
