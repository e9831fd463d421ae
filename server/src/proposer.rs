//! The single way into the write path: every mutation is a [`Command`] handed
//! to the [`Proposer`], which queues it for the one applier thread
//! (`applier.rs`) and waits for its durable result. An acknowledged write is
//! therefore durable.
//!
//! On a single member the proposer hands commands straight to the applier; in
//! a cluster it will append them to the replicated log first, with the same
//! applier behind it.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::applier::{Applier, MAX_BATCH, Proposal, Work};
use crate::apply::{Applied, Command};
use crate::error::Error;
use crate::lease::Lessor;
use crate::metrics::Metrics;
use crate::mvcc::Store;
use crate::settle::Settle;
use crate::state::State;
use crate::watch::WatchHub;

/// Hands commands to the applier and waits for their durable result.
#[derive(Clone)]
pub(crate) struct Proposer {
    tx: mpsc::Sender<Work>,
}

impl Proposer {
    /// Starts the applier thread over `store`, with `state` its working copy
    /// (both from `State::open`). The thread ends when every
    /// `Proposer` clone is dropped, or on a storage error it cannot recover
    /// from; its handle then yields that error.
    pub(crate) fn start(
        store: Store,
        state: State,
        lessor: Arc<Lessor>,
        hub: Arc<WatchHub>,
        metrics: Arc<Metrics>,
    ) -> (Self, JoinHandle<Result<(), Error>>) {
        let (tx, rx) = mpsc::channel(MAX_BATCH * 4);
        let settle = Settle {
            store,
            lessor,
            hub,
            metrics,
        };
        let applier = Applier::new(state, settle, rx);
        // The applier stamps lease deadlines with tokio's clock; inside the
        // caller's runtime context that is the runtime's clock, which tests
        // can pause and advance, rather than the wall clock.
        let runtime = tokio::runtime::Handle::try_current().ok();
        let handle = std::thread::Builder::new()
            .name("rollcall-applier".into())
            .spawn(move || {
                let _context = runtime.as_ref().map(tokio::runtime::Handle::enter);
                applier.run()
            })
            .unwrap_or_else(|e| panic!("cannot spawn the applier thread: {e}"));
        (Self { tx }, handle)
    }

    /// True once the applier has stopped: no write can commit any more.
    pub(crate) fn is_stopped(&self) -> bool {
        self.tx.is_closed()
    }

    pub(crate) async fn propose(&self, command: Command) -> Result<Applied, Error> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Work::Apply(Proposal { command, reply }))
            .await
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)?
    }

    /// Defragments the database; returns how long writes (and reads) waited.
    pub(crate) async fn defragment(&self) -> Result<Duration, Error> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Work::Defragment(reply))
            .await
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)?
    }
}
