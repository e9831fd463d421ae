//! The encoding of one history entry in redb: a tag byte, then the protobuf
//! `mvccpb.KeyValue`. A put stores the full key-value; a delete stores a
//! tombstone (the key, with `mod_revision` the delete's revision).

use bytes::{BufMut, Bytes, BytesMut};
use prost::Message;
use rollcall_proto::mvccpb::event::EventType;
use rollcall_proto::mvccpb::{Event, KeyValue};

use crate::error::Error;

const TAG_PUT: u8 = 0;
const TAG_TOMBSTONE: u8 = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Record {
    Put(KeyValue),
    Tombstone(KeyValue),
}

impl Record {
    pub(crate) fn kv(&self) -> &KeyValue {
        match self {
            Self::Put(kv) | Self::Tombstone(kv) => kv,
        }
    }

    /// The watch event this change is.
    pub(crate) fn into_event(self) -> Event {
        let (kind, kv) = match self {
            Self::Put(kv) => (EventType::Put, kv),
            Self::Tombstone(kv) => (EventType::Delete, kv),
        };
        Event {
            r#type: kind as i32,
            kv: Some(kv),
            prev_kv: None,
        }
    }

    pub(crate) fn encode(&self) -> Bytes {
        let (tag, kv) = match self {
            Self::Put(kv) => (TAG_PUT, kv),
            Self::Tombstone(kv) => (TAG_TOMBSTONE, kv),
        };
        let mut buf = BytesMut::with_capacity(1 + kv.encoded_len());
        buf.put_u8(tag);
        kv.encode(&mut buf)
            .unwrap_or_else(|_| unreachable!("BytesMut grows as needed"));
        buf.freeze()
    }

    pub(crate) fn decode(key: (i64, i64), raw: &[u8]) -> Result<Self, Error> {
        let corrupt = |reason: String| Error::CorruptRecord {
            main: key.0,
            sub: key.1,
            reason,
        };
        let (&tag, body) = raw
            .split_first()
            .ok_or_else(|| corrupt("empty record".into()))?;
        let kv = KeyValue::decode(body).map_err(|e| corrupt(e.to_string()))?;
        match tag {
            TAG_PUT => Ok(Self::Put(kv)),
            TAG_TOMBSTONE => Ok(Self::Tombstone(kv)),
            other => Err(corrupt(format!("unknown tag {other}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let kv = KeyValue {
            key: Bytes::from_static(b"k"),
            value: Bytes::from_static(b"v"),
            create_revision: 2,
            mod_revision: 3,
            version: 2,
            lease: 7,
        };
        for record in [Record::Put(kv.clone()), Record::Tombstone(kv)] {
            assert_eq!(Record::decode((3, 0), &record.encode()).ok(), Some(record));
        }
        assert!(Record::decode((1, 0), &[]).is_err());
        assert!(Record::decode((1, 0), &[9]).is_err());
    }
}
