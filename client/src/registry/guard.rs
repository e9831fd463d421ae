//! [`KeyGuard`]: watches a registered instance's own key for deletes, so a
//! key removed by an operator or a script while its lease still lives is
//! noticed (the registration then puts it back; see `registration.rs`).
//!
//! The guard only reports the revision of each delete it sees; whether the
//! delete matters (it may predate the registration's latest put, or come
//! from the registration's own revoke) is the registration's call. When the
//! watch ends in an error it is opened again after [`RETRY`]; when history
//! was compacted under it, a read of the key stands in for the lost events.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::client::Client;
use crate::error::WatchError;
use crate::header::HasHeader;
use crate::kv::GetOptions;
use crate::watch::WatchOptions;

/// Pause before watching again after the watch ended.
const RETRY: Duration = Duration::from_secs(1);

/// A background watch on one key; stops when dropped.
pub(crate) struct KeyGuard {
    deletes: mpsc::UnboundedReceiver<i64>,
    task: JoinHandle<()>,
}

impl KeyGuard {
    /// Watches `key` from revision `from` (the registration's put).
    pub(crate) fn spawn(client: Client, key: String, from: i64) -> Self {
        let (tx, deletes) = mpsc::unbounded_channel();
        let task = tokio::spawn(guard(client, key, from, tx));
        Self { deletes, task }
    }

    /// The revision of the next delete of the key (or the revision at which
    /// it was found missing after a compaction). Never resolves once the
    /// guard's task has ended.
    pub(crate) async fn deleted(&mut self) -> i64 {
        match self.deletes.recv().await {
            Some(revision) => revision,
            None => std::future::pending().await,
        }
    }
}

impl Drop for KeyGuard {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn guard(client: Client, key: String, mut from: i64, deletes: mpsc::UnboundedSender<i64>) {
    while !deletes.is_closed() {
        let options = WatchOptions::new().start_revision(from.max(1)).no_put();
        if let Ok(mut watcher) = client.watch(key.as_str(), options).await {
            while let Some(batch) = watcher.next().await {
                match batch {
                    Ok(batch) => {
                        for event in batch.events.iter().filter(|e| e.is_delete()) {
                            if deletes.send(event.revision()).is_err() {
                                return;
                            }
                        }
                        if let Some(last) = batch.last_revision() {
                            from = from.max(last + 1);
                        }
                    }
                    Err(WatchError::Compacted { .. }) => {
                        // The events in between are gone: read the key instead.
                        let read = GetOptions::new().count_only();
                        if let Ok(response) = client.get_with(key.as_str(), read).await {
                            if response.count == 0 && deletes.send(response.revision()).is_err() {
                                return;
                            }
                            from = response.revision() + 1;
                        }
                        break;
                    }
                    Err(e) => {
                        tracing::debug!(key, error = %e, "instance key watch ended; watching again");
                        break;
                    }
                }
            }
        }
        tokio::time::sleep(RETRY).await;
    }
}
