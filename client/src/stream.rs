//! Bidirectional streams as the watch session and the lease keeper see them:
//! an [`Opener`] turns a stream of requests into a stream of responses. The
//! real openers are tonic stubs ([`Client::watch_opener`],
//! [`Client::keep_alive_opener`]); tests substitute in-memory channels
//! ([`fake`]), so reconnects and lost streams can be played step by step.
//!
//! Requests go through an unbounded channel: the owner of a stream queues
//! what it must send (for example every watcher to re-create) before the
//! stream is even open, and etcd answers the call's headers only with its
//! first message, so nothing may wait on the stream being polled.
//!
//! [`Client::watch_opener`]: crate::Client
//! [`Client::keep_alive_opener`]: crate::Client

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio_stream::Stream;
use tokio_stream::wrappers::UnboundedReceiverStream;

/// The responses of an open stream; an `Err` or the end means it broke.
pub(crate) type Responses<T> = Pin<Box<dyn Stream<Item = Result<T, tonic::Status>> + Send>>;

/// A stream being opened.
pub(crate) type Opening<T> =
    Pin<Box<dyn Future<Output = Result<Responses<T>, tonic::Status>> + Send>>;

/// Opens one stream that sends what `requests` yields.
pub(crate) type Opener<Req, Resp> =
    Arc<dyn Fn(UnboundedReceiverStream<Req>) -> Opening<Resp> + Send + Sync>;

#[cfg(test)]
pub(crate) mod fake {
    //! In-memory streams: every open hands the test the request side and a
    //! sender of responses, or fails while `fail_opens` is positive.

    use std::sync::atomic::{AtomicU32, Ordering};

    use tokio::sync::mpsc;
    use tokio_stream::wrappers::UnboundedReceiverStream;

    use super::{Arc, Opener, Responses};

    /// One opened fake stream, as the test holds it.
    pub(crate) struct FakeStream<Req, Resp> {
        pub requests: UnboundedReceiverStream<Req>,
        pub responses: mpsc::UnboundedSender<Result<Resp, tonic::Status>>,
    }

    pub(crate) struct FakeServer<Req, Resp> {
        pub opened: mpsc::UnboundedReceiver<FakeStream<Req, Resp>>,
        /// Opens still to refuse (with `Unavailable`).
        pub fail_opens: Arc<AtomicU32>,
        /// Opens attempted so far, refused or not.
        pub attempts: Arc<AtomicU32>,
    }

    pub(crate) fn server<Req, Resp>() -> (Opener<Req, Resp>, FakeServer<Req, Resp>)
    where
        Req: Send + 'static,
        Resp: Send + 'static,
    {
        let (tx, opened) = mpsc::unbounded_channel();
        let fail_opens = Arc::new(AtomicU32::new(0));
        let attempts = Arc::new(AtomicU32::new(0));
        let (fail, count) = (Arc::clone(&fail_opens), Arc::clone(&attempts));
        let opener: Opener<Req, Resp> = Arc::new(move |requests| {
            count.fetch_add(1, Ordering::SeqCst);
            let refuse = fail
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            let tx = tx.clone();
            Box::pin(async move {
                if refuse {
                    return Err(tonic::Status::unavailable("fake: refused"));
                }
                let (responses, rx) = mpsc::unbounded_channel();
                tx.send(FakeStream {
                    requests,
                    responses,
                })
                .map_err(|_| tonic::Status::unavailable("fake: server gone"))?;
                Ok(Box::pin(UnboundedReceiverStream::new(rx)) as Responses<Resp>)
            })
        });
        (
            opener,
            FakeServer {
                opened,
                fail_opens,
                attempts,
            },
        )
    }
}
