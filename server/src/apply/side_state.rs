//! The replicated state beside the key space: leases and alarms.
//!
//! The applier owns a working copy that each command changes inside the
//! batch's write transaction (with its redb rows); every change is also
//! logged as a [`SideChange`]. Readers see a published copy that the applier
//! brings up to date by replaying the log only after the batch's commit, under
//! the same lock that publishes the revision: a lease granted or revoked in a
//! batch is never visible before the batch is durable.

use bytes::Bytes;
use redb::Table;

use crate::alarm::AlarmSet;
use crate::error::Error;
use crate::lease::LeaseTable;

/// One change to the side state, replayable on another copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SideChange {
    Grant { id: i64, ttl: i64 },
    Revoke { id: i64 },
    Checkpoint { id: i64, remaining_ttl: i64 },
    Attach { key: Bytes, lease: i64 },
    Detach { key: Bytes },
    Activate { member: u64, alarm: i32 },
    Deactivate { member: u64, alarm: i32 },
}

impl SideChange {
    /// Applies the change to a copy of the state.
    pub(crate) fn replay(&self, leases: &mut LeaseTable, alarms: &mut AlarmSet) {
        match self {
            Self::Grant { id, ttl } => {
                leases.grant(*id, *ttl);
            }
            Self::Revoke { id } => {
                leases.revoke(*id);
            }
            Self::Checkpoint { id, remaining_ttl } => {
                leases.checkpoint(*id, *remaining_ttl);
            }
            Self::Attach { key, lease } => leases.attach(key, *lease),
            Self::Detach { key } => leases.detach(key),
            Self::Activate { member, alarm } => {
                alarms.activate(*member, *alarm);
            }
            Self::Deactivate { member, alarm } => {
                alarms.deactivate(*member, *alarm);
            }
        }
    }
}

/// The applier's view of the side state during one batch.
pub(crate) struct SideState<'a, 't> {
    leases: &'a mut LeaseTable,
    lease_rows: &'a mut Table<'t, i64, i64>,
    checkpoint_rows: &'a mut Table<'t, i64, i64>,
    alarms: &'a mut AlarmSet,
    alarm_rows: &'a mut Table<'t, (u64, i32), ()>,
    log: &'a mut Vec<SideChange>,
}

impl<'a, 't> SideState<'a, 't> {
    pub(crate) fn new(
        leases: &'a mut LeaseTable,
        lease_rows: &'a mut Table<'t, i64, i64>,
        checkpoint_rows: &'a mut Table<'t, i64, i64>,
        alarms: &'a mut AlarmSet,
        alarm_rows: &'a mut Table<'t, (u64, i32), ()>,
        log: &'a mut Vec<SideChange>,
    ) -> Self {
        Self {
            leases,
            lease_rows,
            checkpoint_rows,
            alarms,
            alarm_rows,
            log,
        }
    }

    pub(crate) fn leases(&self) -> &LeaseTable {
        self.leases
    }

    pub(crate) fn alarms(&self) -> &AlarmSet {
        self.alarms
    }

    /// Grants a lease; false if the id is taken.
    pub(crate) fn grant(&mut self, id: i64, ttl: i64) -> Result<bool, Error> {
        if !self.leases.grant(id, ttl) {
            return Ok(false);
        }
        self.lease_rows.insert(id, ttl)?;
        self.log.push(SideChange::Grant { id, ttl });
        Ok(true)
    }

    /// Revokes a lease, returning its keys (`None` if unknown).
    pub(crate) fn revoke(
        &mut self,
        id: i64,
    ) -> Result<Option<std::collections::BTreeSet<Bytes>>, Error> {
        let Some(keys) = self.leases.revoke(id) else {
            return Ok(None);
        };
        self.lease_rows.remove(id)?;
        self.checkpoint_rows.remove(id)?;
        self.log.push(SideChange::Revoke { id });
        Ok(Some(keys))
    }

    /// Records a lease's checkpointed remaining TTL (0 clears it); false if
    /// the lease is unknown.
    pub(crate) fn checkpoint(&mut self, id: i64, remaining_ttl: i64) -> Result<bool, Error> {
        if !self.leases.checkpoint(id, remaining_ttl) {
            return Ok(false);
        }
        if remaining_ttl > 0 {
            self.checkpoint_rows.insert(id, remaining_ttl)?;
        } else {
            self.checkpoint_rows.remove(id)?;
        }
        self.log.push(SideChange::Checkpoint { id, remaining_ttl });
        Ok(true)
    }

    pub(crate) fn attach(&mut self, key: &Bytes, lease: i64) {
        self.leases.attach(key, lease);
        self.log.push(SideChange::Attach {
            key: key.clone(),
            lease,
        });
    }

    pub(crate) fn detach(&mut self, key: &Bytes) {
        self.leases.detach(key);
        self.log.push(SideChange::Detach { key: key.clone() });
    }

    /// Raises an alarm; true if it was not raised yet.
    pub(crate) fn activate(&mut self, member: u64, alarm: i32) -> Result<bool, Error> {
        if !self.alarms.activate(member, alarm) {
            return Ok(false);
        }
        self.alarm_rows.insert((member, alarm), ())?;
        self.log.push(SideChange::Activate { member, alarm });
        Ok(true)
    }

    /// Disarms an alarm; true if it was raised.
    pub(crate) fn deactivate(&mut self, member: u64, alarm: i32) -> Result<bool, Error> {
        if !self.alarms.deactivate(member, alarm) {
            return Ok(false);
        }
        self.alarm_rows.remove((member, alarm))?;
        self.log.push(SideChange::Deactivate { member, alarm });
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaying_the_log_reproduces_the_state() {
        let k = Bytes::from_static(b"k");
        let log = [
            SideChange::Grant { id: 1, ttl: 10 },
            SideChange::Grant { id: 2, ttl: 20 },
            SideChange::Attach {
                key: k.clone(),
                lease: 1,
            },
            SideChange::Attach {
                key: k.clone(),
                lease: 2,
            },
            SideChange::Revoke { id: 1 },
            SideChange::Activate {
                member: 9,
                alarm: 1,
            },
        ];
        let (mut leases, mut alarms) = (LeaseTable::default(), AlarmSet::default());
        for change in &log {
            change.replay(&mut leases, &mut alarms);
        }
        assert!(!leases.contains(1));
        assert!(leases.get(2).is_some_and(|e| e.keys.contains(&k)));
        assert!(alarms.no_space());
        SideChange::Detach { key: k.clone() }.replay(&mut leases, &mut alarms);
        SideChange::Deactivate {
            member: 9,
            alarm: 1,
        }
        .replay(&mut leases, &mut alarms);
        assert!(leases.get(2).is_some_and(|e| e.keys.is_empty()));
        assert!(alarms.is_empty());
    }
}
