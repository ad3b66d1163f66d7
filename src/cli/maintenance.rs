//! `alert-ledger rebuild` and `alert-ledger verify`, with a progress bar.

use indicatif::{ProgressBar, ProgressStyle};

use crate::projections::rebuild::{rebuild, verify, Progress, RebuildReport, VerifyReport};
use crate::projections::Projector;
use crate::store::StoreError;

/// An indicatif bar: events done, events per second, time left.
pub struct Bar(ProgressBar);

impl Bar {
    pub fn new() -> Self {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{bar:40} {human_pos}/{human_len} events {per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Self(bar)
    }
}

impl Default for Bar {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress for Bar {
    fn start(&self, total: u64) {
        self.0.set_length(total);
    }
    fn advance(&self, events: u64) {
        self.0.inc(events);
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

pub async fn run_rebuild(projector: &Projector) -> Result<(RebuildReport, f64), StoreError> {
    let started = std::time::Instant::now();
    let report = rebuild(projector, &Bar::new()).await?;
    Ok((report, started.elapsed().as_secs_f64()))
}

pub async fn run_verify(
    projector: &Projector,
    max_differences: usize,
) -> Result<VerifyReport, StoreError> {
    verify(projector, &Bar::new(), max_differences).await
}
