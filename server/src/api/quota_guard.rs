//! Admission against the backend quota at the API edge: a write whose cost
//! (`quota.rs`) would take the database past `--quota-backend-bytes` raises
//! the NOSPACE alarm through the proposer and is refused, as etcd's quota
//! applier does. Lives here, not beside the cost functions, so that `apply`
//! (which uses the costs) never depends on the proposer.

use rollcall_proto::etcdserverpb::{AlarmRequest, AlarmType, alarm_request::AlarmAction};

use crate::apply::Command;
use crate::error::{Error, Refusal};
use crate::mvcc::Store;
use crate::proposer::Proposer;
use crate::quota::{DEFAULT_QUOTA_BYTES, fits};

/// Admits or refuses writes against the quota before they are proposed.
#[derive(Clone)]
pub(crate) struct QuotaGuard {
    store: Store,
    proposer: Proposer,
    quota_bytes: u64,
}

impl QuotaGuard {
    pub(crate) fn new(store: Store, proposer: Proposer, quota_bytes: u64) -> Self {
        let quota_bytes = if quota_bytes == 0 {
            DEFAULT_QUOTA_BYTES
        } else {
            quota_bytes
        };
        Self {
            store,
            proposer,
            quota_bytes,
        }
    }

    pub(crate) fn quota_bytes(&self) -> u64 {
        self.quota_bytes
    }

    /// Ok when a write adding `cost` bytes may go ahead; otherwise raises
    /// NOSPACE (as etcd does) and refuses with "database space exceeded".
    pub(crate) async fn admit(&self, cost: u64) -> Result<(), Error> {
        if cost == 0 {
            return Ok(());
        }
        if self.store.read_committed().alarms.no_space() {
            return Err(Error::Refused(Refusal::NoSpace));
        }
        let size = u64::try_from(self.store.db_size()).unwrap_or(u64::MAX);
        if fits(size, cost, self.quota_bytes) {
            return Ok(());
        }
        tracing::warn!(
            db_size = size,
            quota = self.quota_bytes,
            "backend quota exceeded; raising NOSPACE"
        );
        let raise = AlarmRequest {
            action: AlarmAction::Activate as i32,
            member_id: self.store.identity.member_id,
            alarm: AlarmType::Nospace as i32,
        };
        self.proposer.propose(Command::Alarm(raise)).await?;
        Err(Error::Refused(Refusal::NoSpace))
    }
}
