//! Response headers as etcd fills them: cluster and member identity, the raft
//! term (1 on a single member, the current term in a cluster), and the store
//! revision when the handler did not set one.

use rollcall_proto::etcdserverpb::ResponseHeader;

use crate::mvcc::Store;

#[derive(Clone)]
pub(crate) struct HeaderFiller {
    store: Store,
}

impl HeaderFiller {
    pub(crate) fn new(store: Store) -> Self {
        Self { store }
    }

    pub(crate) fn cluster_id(&self) -> u64 {
        self.store.identity.cluster_id
    }

    pub(crate) fn member_id(&self) -> u64 {
        self.store.identity.member_id
    }

    /// Completes `header`, creating it when absent.
    pub(crate) fn fill(&self, header: &mut Option<ResponseHeader>) {
        let h = header.get_or_insert_with(ResponseHeader::default);
        h.cluster_id = self.cluster_id();
        h.member_id = self.member_id();
        h.raft_term = self.store.raft_term();
        if h.revision == 0 {
            h.revision = self.store.current_rev();
        }
    }

    /// A fresh header at the current revision.
    pub(crate) fn header(&self) -> Option<ResponseHeader> {
        let mut header = None;
        self.fill(&mut header);
        header
    }
}
