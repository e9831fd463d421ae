//! Alarms (etcd's `alarmStore`): conditions that stop the member from taking
//! certain writes until an operator disarms them. NOSPACE is raised when a
//! write would take the database past `--quota-backend-bytes`; while it is
//! active, writes that add data fail and reads, deletes, compactions and
//! lease revokes keep working. Alarms are replicated state: they change only
//! through `Command::Alarm` and are stored with the data.

use std::collections::BTreeSet;

use rollcall_proto::etcdserverpb::{AlarmMember, AlarmType};

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct AlarmSet {
    /// `(member id, alarm type)`.
    active: BTreeSet<(u64, i32)>,
}

impl AlarmSet {
    pub(crate) fn from_rows(rows: impl IntoIterator<Item = (u64, i32)>) -> Self {
        Self {
            active: rows.into_iter().collect(),
        }
    }

    /// Active alarms of `kind`, or all of them for `AlarmType::None`.
    pub(crate) fn get(&self, kind: i32) -> Vec<AlarmMember> {
        self.active
            .iter()
            .filter(|(_, alarm)| kind == AlarmType::None as i32 || *alarm == kind)
            .map(|&(member_id, alarm)| AlarmMember { member_id, alarm })
            .collect()
    }

    /// Raises an alarm; true if it was not active yet.
    pub(crate) fn activate(&mut self, member_id: u64, kind: i32) -> bool {
        self.active.insert((member_id, kind))
    }

    /// Disarms an alarm; true if it was active.
    pub(crate) fn deactivate(&mut self, member_id: u64, kind: i32) -> bool {
        self.active.remove(&(member_id, kind))
    }

    /// Whether any member has raised NOSPACE.
    pub(crate) fn no_space(&self) -> bool {
        self.active
            .iter()
            .any(|(_, alarm)| *alarm == AlarmType::Nospace as i32)
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.active.is_empty()
    }

    /// etcd's text form of each alarm, for Status.errors and /health.
    pub(crate) fn describe(&self) -> Vec<String> {
        self.active
            .iter()
            .map(|&(member, alarm)| {
                let name = AlarmType::try_from(alarm).map_or("UNKNOWN", |a| a.as_str_name());
                format!("memberID:{member} alarm:{name} ")
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activate_get_deactivate() {
        let mut alarms = AlarmSet::default();
        let nospace = AlarmType::Nospace as i32;
        assert!(alarms.activate(7, nospace));
        assert!(!alarms.activate(7, nospace));
        assert!(alarms.no_space());
        assert_eq!(alarms.get(AlarmType::None as i32).len(), 1);
        assert!(alarms.get(AlarmType::Corrupt as i32).is_empty());
        assert_eq!(
            alarms.describe(),
            vec!["memberID:7 alarm:NOSPACE ".to_string()]
        );
        assert!(alarms.deactivate(7, nospace));
        assert!(!alarms.deactivate(7, nospace));
        assert!(alarms.is_empty());
    }
}
