//! The typed Watch API: [`Client::watch`] and [`WatchSession`], yielding
//! [`Watcher`]s of [`WatchBatch`]es.
//!
//! A [`WatchSession`] is one Watch stream shared by any number of watchers
//! (etcd multiplexes them by watch id). A background task owns the stream;
//! when it breaks, the task opens a new one after a backoff and re-creates
//! every watcher from the revision after the last one it delivered, so a
//! watcher sees every event exactly once across disconnects. A watcher whose
//! next revision was compacted meanwhile ends with
//! [`WatchError::Compacted`]: re-list and watch again.
//!
//! Batches wait for their watcher in an unbounded queue (as in etcd
//! clientv3), so one slow watcher never stalls the others on its stream; a
//! watcher nobody reads holds its backlog until dropped, which cancels it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), rollcall_client::ClientError> {
//! use rollcall_client::{Client, GetOptions, HasHeader, WatchError, WatchOptions};
//!
//! let client = Client::connect(["127.0.0.1:2379"]).await?;
//! let listed = client.get_with("/services/", GetOptions::new().prefix()).await?;
//! let options = WatchOptions::new().prefix().start_revision(listed.revision() + 1);
//! let mut watcher = client.watch("/services/", options).await?;
//! while let Some(batch) = watcher.next().await {
//!     match batch {
//!         Ok(batch) => {
//!             for event in &batch.events {
//!                 println!("{:?} {:?} at {}", event.kind, event.key(), event.revision());
//!             }
//!         }
//!         Err(WatchError::Compacted { .. }) => break, // re-list, then watch again
//!         Err(e) => return Err(e.into()),
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! - `options.rs`: [`WatchOptions`] and the create request they make;
//! - `event.rs`: [`WatchBatch`], [`WatchEvent`], [`EventKind`];
//! - `mux.rs`: the session's watchers and the stream protocol, without I/O;
//! - `session.rs`: the task that owns the stream and reconnects.

mod event;
mod mux;
mod options;
mod session;
#[cfg(test)]
mod tests;

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use tokio::sync::{mpsc, oneshot};
use tokio_stream::Stream;

pub use event::{EventKind, WatchBatch, WatchEvent};
pub use options::WatchOptions;

use self::session::{Command, Config, Shared};
use crate::backoff::RetryPolicy;
use crate::client::Client;
use crate::error::WatchError;
use crate::key::IntoBytes;

impl Client {
    /// Watches `key` (with `options`: prefix, start revision, filters...) on
    /// a stream of its own. Resolves once the server has created the watch.
    pub async fn watch(
        &self,
        key: impl IntoBytes,
        options: WatchOptions,
    ) -> Result<Watcher, WatchError> {
        self.watch_session().watch(key, options).await
    }

    /// A new Watch stream to share between watchers, reconnecting with
    /// [`RetryPolicy::default`]. Must be called within a tokio runtime (it
    /// spawns the stream's task; the stream opens with the first watcher).
    pub fn watch_session(&self) -> WatchSession {
        self.watch_session_with(RetryPolicy::default())
    }

    /// [`Client::watch_session`] with an explicit reconnect policy.
    pub fn watch_session_with(&self, retry: RetryPolicy) -> WatchSession {
        WatchSession::start(Config {
            opener: self.watch_opener(),
            retry,
            open_timeout: self.options().request_timeout,
        })
    }
}

/// One Watch stream shared by many watchers. Cloning is cheap and clones
/// share the stream; it closes when the session and all its watchers are
/// dropped.
#[derive(Debug, Clone)]
pub struct WatchSession {
    commands: mpsc::UnboundedSender<Command>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Watch { .. } => "Watch",
            Self::Cancel { .. } => "Cancel",
            Self::Progress => "Progress",
        })
    }
}

impl WatchSession {
    fn start(config: Config) -> Self {
        let (commands, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared::default());
        tokio::spawn(session::run(config, Arc::clone(&shared), rx));
        Self { commands, shared }
    }

    /// Adds a watcher of `key` to this stream. Resolves once the server has
    /// created it (with the error if it refused); a watch whose start
    /// revision is compacted is created, then ends with
    /// [`WatchError::Compacted`].
    pub async fn watch(
        &self,
        key: impl IntoBytes,
        options: WatchOptions,
    ) -> Result<Watcher, WatchError> {
        let local = self.shared.next_local.fetch_add(1, Ordering::Relaxed);
        let (events_tx, events) = mpsc::unbounded_channel();
        let (created_tx, created) = oneshot::channel();
        self.commands
            .send(Command::Watch {
                local,
                request: options.to_request(key.into_bytes()),
                events: events_tx,
                created: created_tx,
            })
            .map_err(|_| WatchError::Closed)?;
        // From here on, dropping (this future or the watcher) cancels it.
        let guard = CancelGuard {
            commands: self.commands.clone(),
            local,
        };
        let created_revision = created.await.map_err(|_| WatchError::Closed)??;
        Ok(Watcher {
            events,
            created_revision,
            ended: false,
            _guard: guard,
        })
    }

    /// Asks the server for a progress notification on this stream: every
    /// watcher then receives an empty batch at a revision the server has
    /// delivered everything up to (etcd 3.4 sends its current revision).
    pub fn request_progress(&self) -> Result<(), WatchError> {
        self.commands
            .send(Command::Progress)
            .map_err(|_| WatchError::Closed)
    }

    /// How many times the stream was re-opened after breaking.
    pub fn reconnects(&self) -> u64 {
        self.shared.opened.load(Ordering::Relaxed).saturating_sub(1)
    }
}

/// Cancels its watcher when dropped.
#[derive(Debug)]
struct CancelGuard {
    commands: mpsc::UnboundedSender<Command>,
    local: u64,
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Cancel { local: self.local });
    }
}

/// The batches of one watch, in revision order, across reconnects. Ends
/// (`None`) after yielding an error; dropping it cancels the watch.
#[derive(Debug)]
pub struct Watcher {
    events: mpsc::UnboundedReceiver<Result<WatchBatch, WatchError>>,
    created_revision: i64,
    ended: bool,
    _guard: CancelGuard,
}

impl Watcher {
    /// The next batch; `None` once the watcher has ended.
    pub async fn next(&mut self) -> Option<Result<WatchBatch, WatchError>> {
        std::future::poll_fn(|cx| self.poll_batch(cx)).await
    }

    /// The header revision of the server's created response: a watch "from
    /// now" delivers every change after it.
    pub fn created_revision(&self) -> i64 {
        self.created_revision
    }

    fn poll_batch(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<WatchBatch, WatchError>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        match self.events.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(batch))) => Poll::Ready(Some(Ok(batch))),
            Poll::Ready(Some(Err(e))) => {
                self.ended = true;
                Poll::Ready(Some(Err(e)))
            }
            // The session's task is gone without a word (it panicked).
            Poll::Ready(None) => {
                self.ended = true;
                Poll::Ready(Some(Err(WatchError::Closed)))
            }
        }
    }
}

impl Stream for Watcher {
    type Item = Result<WatchBatch, WatchError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_batch(cx)
    }
}
