//! Erases what legitimately differs between two servers answering the same
//! request (the cluster id, the member id and the raft term in every response
//! header, nested txn responses included), so that the rest of a response can
//! be compared with `==` field by field.

use rollcall_proto::etcdserverpb::{
    CompactionResponse, DeleteRangeResponse, PutResponse, RangeResponse, ResponseHeader,
    ResponseOp, TxnResponse, response_op,
};

/// A response whose server-identity fields can be zeroed.
pub trait Normalize {
    /// Zeroes `cluster_id`, `member_id` and `raft_term` in every header,
    /// recursively; leaves `revision` and everything else as it was.
    fn normalize(&mut self);

    /// [`Normalize::normalize`] by value.
    #[must_use]
    fn normalized(mut self) -> Self
    where
        Self: Sized,
    {
        self.normalize();
        self
    }
}

fn header(h: &mut Option<ResponseHeader>) {
    if let Some(h) = h {
        h.cluster_id = 0;
        h.member_id = 0;
        h.raft_term = 0;
    }
}

impl Normalize for RangeResponse {
    fn normalize(&mut self) {
        header(&mut self.header);
    }
}

impl Normalize for PutResponse {
    fn normalize(&mut self) {
        header(&mut self.header);
    }
}

impl Normalize for DeleteRangeResponse {
    fn normalize(&mut self) {
        header(&mut self.header);
    }
}

impl Normalize for CompactionResponse {
    fn normalize(&mut self) {
        header(&mut self.header);
    }
}

impl Normalize for TxnResponse {
    fn normalize(&mut self) {
        header(&mut self.header);
        for op in &mut self.responses {
            op.normalize();
        }
    }
}

impl Normalize for ResponseOp {
    fn normalize(&mut self) {
        match &mut self.response {
            Some(response_op::Response::ResponseRange(r)) => r.normalize(),
            Some(response_op::Response::ResponsePut(r)) => r.normalize(),
            Some(response_op::Response::ResponseDeleteRange(r)) => r.normalize(),
            Some(response_op::Response::ResponseTxn(r)) => r.normalize(),
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Normalize;
    use rollcall_proto::etcdserverpb::{
        PutResponse, ResponseHeader, ResponseOp, TxnResponse, response_op,
    };

    fn h() -> Option<ResponseHeader> {
        Some(ResponseHeader {
            cluster_id: 1,
            member_id: 2,
            revision: 3,
            raft_term: 4,
        })
    }

    #[test]
    fn zeroes_nested_headers_and_keeps_revision() {
        let inner = TxnResponse {
            header: h(),
            succeeded: true,
            responses: vec![ResponseOp {
                response: Some(response_op::Response::ResponsePut(PutResponse {
                    header: h(),
                    prev_kv: None,
                })),
            }],
        };
        let outer = TxnResponse {
            header: h(),
            succeeded: false,
            responses: vec![ResponseOp {
                response: Some(response_op::Response::ResponseTxn(inner)),
            }],
        }
        .normalized();
        let zero = Some(ResponseHeader {
            cluster_id: 0,
            member_id: 0,
            revision: 3,
            raft_term: 0,
        });
        assert_eq!(outer.header, zero);
        let Some(response_op::Response::ResponseTxn(inner)) = &outer.responses[0].response else {
            panic!("nested txn response lost");
        };
        assert_eq!(inner.header, zero);
        let Some(response_op::Response::ResponsePut(put)) = &inner.responses[0].response else {
            panic!("nested put response lost");
        };
        assert_eq!(put.header, zero);
    }
}
