//! The progress display on stderr while a scenario runs: a bar towards the
//! total when the run is bounded by one, otherwise a spinner with the count,
//! the rate and the elapsed time. indicatif draws nothing when stderr is not
//! a terminal, so redirected runs stay clean.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::task::JoinHandle;

/// How often the display reads the counter.
const TICK: Duration = Duration::from_millis(100);

pub(crate) struct Progress {
    bar: ProgressBar,
    ticker: Option<JoinHandle<()>>,
}

impl Progress {
    /// Shows `counter` (which the scenario increments per completed
    /// request) until [`Progress::finish`].
    pub(crate) fn start(
        scenario: &str,
        counter: Arc<AtomicU64>,
        total: Option<u64>,
        duration: Option<Duration>,
        enabled: bool,
    ) -> Self {
        if !enabled {
            return Self {
                bar: ProgressBar::hidden(),
                ticker: None,
            };
        }
        let bar = match (total, duration) {
            (Some(total), None) => {
                let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
                if let Ok(style) = ProgressStyle::with_template(
                    "{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, eta {eta})",
                ) {
                    bar.set_style(style);
                }
                bar
            }
            _ => {
                let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
                if let Ok(style) = ProgressStyle::with_template(
                    "{prefix} {spinner} [{elapsed_precise}] {pos} ({per_sec})",
                ) {
                    bar.set_style(style);
                }
                bar
            }
        };
        bar.set_prefix(scenario.to_owned());
        let ticker = {
            let bar = bar.clone();
            tokio::spawn(async move {
                loop {
                    bar.set_position(counter.load(Ordering::Relaxed));
                    bar.tick();
                    tokio::time::sleep(TICK).await;
                }
            })
        };
        Self {
            bar,
            ticker: Some(ticker),
        }
    }

    /// Runs `work` with the display on, then clears it.
    pub(crate) async fn around<T>(self, work: impl Future<Output = T>) -> T {
        let out = work.await;
        self.finish();
        out
    }

    /// Stops and clears the display.
    pub(crate) fn finish(self) {
        if let Some(ticker) = &self.ticker {
            ticker.abort();
        }
        self.bar.finish_and_clear();
    }
}
