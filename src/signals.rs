//! SIGINT / SIGTERM as values, so that an interrupted run can still write an honest result.

/// Listens for SIGINT and SIGTERM for as long as it lives; each call to `next` yields one signal.
pub struct Listener {
    #[cfg(unix)]
    streams: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Listener {
    /// Install the handlers. If that fails, `next` waits forever (the default disposition then
    /// still ends the process).
    pub fn new() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let streams = signal(SignalKind::interrupt())
                .and_then(|int| Ok((int, signal(SignalKind::terminate())?)))
                .ok();
            Self { streams }
        }
        #[cfg(not(unix))]
        {
            Self {}
        }
    }

    /// The next signal's name: `SIGINT` or `SIGTERM`.
    pub async fn next(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            let Some((int, term)) = &mut self.streams else {
                return std::future::pending().await;
            };
            tokio::select! {
                _ = int.recv() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}

impl Default for Listener {
    fn default() -> Self {
        Self::new()
    }
}

/// Wait for the first SIGINT or SIGTERM and name it.
pub async fn interrupted() -> &'static str {
    Listener::new().next().await
}
