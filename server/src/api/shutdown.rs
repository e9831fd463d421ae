//! Ends long-lived response streams (Watch, LeaseKeepAlive) when the server
//! stops. tonic's graceful shutdown waits for every open RPC to finish, and a
//! watch never finishes on its own: without this, SIGTERM would hang for as
//! long as any client kept a stream open.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::watch;
use tokio_stream::Stream;

/// A stream that ends (cleanly, with an OK status) once `stop` turns true.
pub(crate) struct UntilStopped<S> {
    inner: S,
    stopped: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl<S> UntilStopped<S> {
    pub(crate) fn new(inner: S, mut stop: watch::Receiver<bool>) -> Self {
        let stopped = Box::pin(async move {
            // A dropped sender means the server is gone: stop as well.
            let _ = stop.wait_for(|stopped| *stopped).await;
        });
        Self { inner, stopped }
    }
}

impl<S: Stream + Unpin> Stream for UntilStopped<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.stopped.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        Pin::new(&mut self.inner).poll_next(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_stream::StreamExt;

    #[tokio::test]
    async fn ends_when_stopped() {
        let (stop_tx, stop_rx) = watch::channel(false);
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let mut stream =
            UntilStopped::new(tokio_stream::wrappers::ReceiverStream::new(rx), stop_rx);
        tx.send(1).await.unwrap_or_default();
        assert_eq!(stream.next().await, Some(1));
        stop_tx.send(true).unwrap_or_default();
        tx.send(2).await.unwrap_or_default();
        assert_eq!(stream.next().await, None);
    }
}
