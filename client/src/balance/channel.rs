//! [`balanced_channel`]: a tonic [`Channel`] that balances over a discovered
//! service, fed by [`discover()`](super::discover()); and [`endpoint`], the
//! tonic [`Endpoint`] of an instance's `addr`.

use futures_util::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint, channel};
use tower::discover::Change;

use crate::registry::{Instance, ServiceSnapshot};

/// How many set changes may queue between the discovery stream and the
/// channel's balancer.
const CHANGE_BUFFER: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum BalanceError {
    #[error("instance {id:?} has address {addr:?}, which is not a valid endpoint: {source}")]
    InvalidAddr {
        id: String,
        addr: String,
        #[source]
        source: tonic::transport::Error,
    },
}

/// The endpoint of `instance.addr`: used as is when it is a URL, as
/// `http://<addr>` when it is `host:port`.
pub fn endpoint(instance: &Instance) -> Result<Endpoint, BalanceError> {
    let addr = &instance.addr;
    let uri = if addr.contains("://") {
        addr.clone()
    } else {
        format!("http://{addr}")
    };
    Endpoint::from_shared(uri).map_err(|source| BalanceError::InvalidAddr {
        id: instance.id.clone(),
        addr: addr.clone(),
        source,
    })
}

/// A channel balancing (tower's power of two choices over pending requests)
/// over the eligible instances of `rx` under protection `threshold`, kept
/// up to date by a background task (the returned handle) that ends when the
/// snapshots stop or the channel and all its clones are dropped.
///
/// `configure` turns each instance into its endpoint (timeouts, TLS, ...);
/// `None` leaves the instance out. `|i| balance::endpoint(i).ok()` is the
/// plain choice. Must be called inside a tokio runtime.
pub fn balanced_channel<F>(
    rx: watch::Receiver<ServiceSnapshot>,
    threshold: f64,
    configure: F,
) -> (Channel, JoinHandle<()>)
where
    F: FnMut(&Instance) -> Option<Endpoint> + Send + 'static,
{
    let (channel, tx) = Channel::balance_channel::<String>(CHANGE_BUFFER);
    let mut changes = super::discover(rx, threshold, configure);
    let feeder = tokio::spawn(async move {
        while let Some(Ok(change)) = changes.next().await {
            // tonic has its own copy of tower's `Change`.
            let change = match change {
                Change::Insert(id, Some(endpoint)) => channel::Change::Insert(id, endpoint),
                // Left out: removing it later is a no-op too.
                Change::Insert(_, None) => continue,
                Change::Remove(id) => channel::Change::Remove(id),
            };
            if tx.send(change).await.is_err() {
                return;
            }
        }
    });
    (channel, feeder)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_from_addresses() -> Result<(), BalanceError> {
        let plain = Instance::new("s", "a", "127.0.0.1:50051");
        assert_eq!(
            endpoint(&plain)?.uri().to_string(),
            "http://127.0.0.1:50051/"
        );
        let url = Instance::new("s", "b", "https://echo.internal:443");
        assert_eq!(
            endpoint(&url)?.uri().to_string(),
            "https://echo.internal:443/"
        );
        let bad = Instance::new("s", "c", "not a host");
        assert!(matches!(
            endpoint(&bad),
            Err(BalanceError::InvalidAddr { .. })
        ));
        Ok(())
    }
}
