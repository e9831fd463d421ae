//! The task behind a [`WatchSession`](super::WatchSession): it owns one Watch
//! stream at a time and the [`Mux`] of the session's watchers, opens the
//! stream when there is something to watch, and after a break waits out the
//! backoff and opens a new one, re-creating every watcher from its next
//! revision. When the retry policy's attempts are spent every watcher ends
//! with [`WatchError::Disconnected`] (the session itself stays usable: a new
//! watch starts a fresh round of attempts).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::SmallRng;
use rollcall_proto::etcdserverpb::{
    WatchCreateRequest, WatchProgressRequest, WatchRequest, WatchResponse, watch_request,
};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::UnboundedReceiverStream;

use super::mux::{CreatedSender, EventSender, Mux};
use crate::backoff::{Backoff, RetryPolicy};
use crate::error::{ClientError, WatchError};
use crate::stream::{Opener, Opening, Responses};

/// What a session handle or a watcher asks of the task.
pub(crate) enum Command {
    Watch {
        local: u64,
        request: WatchCreateRequest,
        events: EventSender,
        created: CreatedSender,
    },
    /// The watcher was dropped.
    Cancel { local: u64 },
    /// Send a WatchProgressRequest on the current stream.
    Progress,
}

/// Counters the handles read.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub next_local: AtomicU64,
    /// Streams opened successfully.
    pub opened: AtomicU64,
}

/// How the task runs.
#[derive(Clone)]
pub(crate) struct Config {
    pub opener: Opener<WatchRequest, WatchResponse>,
    pub retry: RetryPolicy,
    /// How long opening a stream may take before it counts as failed.
    pub open_timeout: Duration,
}

enum Link {
    /// No stream; open one at `retry_at` if there is something to watch.
    Down { retry_at: Instant },
    Opening {
        requests: mpsc::UnboundedSender<WatchRequest>,
        opening: Opening<WatchResponse>,
        give_up_at: Instant,
    },
    Up {
        requests: mpsc::UnboundedSender<WatchRequest>,
        responses: Responses<WatchResponse>,
    },
}

enum Step {
    Command(Option<Command>),
    Open,
    Opened(Result<Responses<WatchResponse>, tonic::Status>),
    OpenTimedOut,
    Response(Option<Result<WatchResponse, tonic::Status>>),
}

struct Task {
    config: Config,
    shared: Arc<Shared>,
    mux: Mux,
    backoff: Backoff,
    rng: SmallRng,
}

pub(crate) async fn run(
    config: Config,
    shared: Arc<Shared>,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let mut task = Task {
        backoff: Backoff::new(config.retry),
        config,
        shared,
        mux: Mux::default(),
        rng: SmallRng::from_rng(&mut rand::rng()),
    };
    let mut link = Link::Down {
        retry_at: Instant::now(),
    };
    loop {
        let step = match &mut link {
            Link::Down { .. } if task.mux.is_empty() => Step::Command(commands.recv().await),
            Link::Down { retry_at } => {
                let at = *retry_at;
                tokio::select! {
                    command = commands.recv() => Step::Command(command),
                    () = sleep_until(at) => Step::Open,
                }
            }
            Link::Opening {
                opening,
                give_up_at,
                ..
            } => {
                let at = *give_up_at;
                tokio::select! {
                    command = commands.recv() => Step::Command(command),
                    opened = opening => Step::Opened(opened),
                    () = sleep_until(at) => Step::OpenTimedOut,
                }
            }
            Link::Up { responses, .. } => tokio::select! {
                command = commands.recv() => Step::Command(command),
                next = responses.next() => Step::Response(next),
            },
        };
        link = match step {
            // Every handle and watcher is gone.
            Step::Command(None) => return,
            Step::Command(Some(command)) => {
                task.command(command, &link);
                link
            }
            Step::Open => task.open(),
            Step::Opened(Ok(responses)) => match link {
                Link::Opening { requests, .. } => {
                    task.shared.opened.fetch_add(1, Ordering::Relaxed);
                    Link::Up {
                        requests,
                        responses,
                    }
                }
                other => other,
            },
            Step::Opened(Err(status)) => task.failed(ClientError::from(status)),
            Step::OpenTimedOut => task.failed(ClientError::Timeout(task.config.open_timeout)),
            Step::Response(Some(Ok(response))) => {
                task.backoff.succeed();
                let replies = task.mux.on_response(response);
                send_all(&link, replies);
                link
            }
            Step::Response(Some(Err(status))) => task.failed(ClientError::from(status)),
            Step::Response(None) => task.failed(ClientError::Transport(
                tonic::Status::unavailable("the server closed the watch stream"),
            )),
        };
    }
}

fn send_all(link: &Link, requests: impl IntoIterator<Item = WatchRequest>) {
    if let Link::Opening { requests: tx, .. } | Link::Up { requests: tx, .. } = link {
        for request in requests {
            let _ = tx.send(request);
        }
    }
}

impl Task {
    fn command(&mut self, command: Command, link: &Link) {
        let request = match command {
            Command::Watch {
                local,
                request,
                events,
                created,
            } => self.mux.add(local, request, events, created),
            Command::Cancel { local } => self.mux.remove(local),
            Command::Progress => Some(WatchRequest {
                request_union: Some(watch_request::RequestUnion::ProgressRequest(
                    WatchProgressRequest {},
                )),
            }),
        };
        send_all(link, request);
    }

    /// Opens a stream with every watcher's create queued on it.
    fn open(&mut self) -> Link {
        let (requests, rx) = mpsc::unbounded_channel();
        for request in self.mux.open() {
            let _ = requests.send(request);
        }
        Link::Opening {
            requests,
            opening: (self.config.opener)(UnboundedReceiverStream::new(rx)),
            give_up_at: Instant::now() + self.config.open_timeout,
        }
    }

    /// The stream broke or could not open: retry after the backoff, or give
    /// every watcher up when the attempts are spent or retrying cannot help.
    fn failed(&mut self, error: ClientError) -> Link {
        self.mux.reset();
        let delay = if error.is_retryable() {
            self.backoff.fail(&mut self.rng)
        } else {
            None
        };
        if let Some(delay) = delay {
            return Link::Down {
                retry_at: Instant::now() + delay,
            };
        }
        let attempts = self.backoff.failures().max(1);
        self.mux.fail_all(&WatchError::Disconnected {
            attempts,
            source: Arc::new(error),
        });
        self.backoff.succeed();
        Link::Down {
            retry_at: Instant::now(),
        }
    }
}
