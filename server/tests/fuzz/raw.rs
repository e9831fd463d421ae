//! Arbitrary bytes as the message of any method: a gRPC codec that sends
//! and receives message bodies as they are, without protobuf.

use bytes::{Buf, BufMut, Bytes};
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;

#[derive(Clone, Copy, Default)]
pub struct RawCodec;

pub struct RawEncoder;
pub struct RawDecoder;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// The unary methods of KV and Lease.
pub const UNARY: &[&str] = &[
    "/etcdserverpb.KV/Range",
    "/etcdserverpb.KV/Put",
    "/etcdserverpb.KV/DeleteRange",
    "/etcdserverpb.KV/Txn",
    "/etcdserverpb.KV/Compact",
    "/etcdserverpb.Lease/LeaseGrant",
    "/etcdserverpb.Lease/LeaseRevoke",
    "/etcdserverpb.Lease/LeaseTimeToLive",
    "/etcdserverpb.Lease/LeaseLeases",
];

pub async fn unary(channel: &Channel, path: &'static str, body: Bytes) -> Result<Bytes, Status> {
    let mut grpc = tonic::client::Grpc::new(channel.clone()).max_decoding_message_size(usize::MAX);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    grpc.unary(
        tonic::Request::new(body),
        PathAndQuery::from_static(path),
        RawCodec,
    )
    .await
    .map(tonic::Response::into_inner)
}

/// What to do after an answer on a stream.
pub enum Next {
    Wait,
    Send(Bytes),
    Done,
}

/// Sends `messages` on a streaming method and collects its answers until
/// `on_answer` says done (true), the stream ends (false) or fails.
pub async fn streaming(
    channel: &Channel,
    path: &'static str,
    messages: Vec<Bytes>,
    mut on_answer: impl FnMut(&Bytes) -> Next,
) -> Result<(Vec<Bytes>, bool), Status> {
    // As etcd's own client: a catch-up of a large history may come in one
    // message larger than tonic's default 4 MiB.
    let mut grpc = tonic::client::Grpc::new(channel.clone()).max_decoding_message_size(usize::MAX);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    // The request side stays open until the answers are read, as a client
    // keeping its stream would.
    let (tx, rx) = tokio::sync::mpsc::channel(messages.len() + 1);
    for message in messages {
        let _ = tx.try_send(message);
    }
    let outbound = tokio_stream::wrappers::ReceiverStream::new(rx);
    let mut inbound = grpc
        .streaming(
            tonic::Request::new(outbound),
            PathAndQuery::from_static(path),
            RawCodec,
        )
        .await?
        .into_inner();
    let mut answers = Vec::new();
    while let Some(message) = inbound.message().await? {
        let next = on_answer(&message);
        answers.push(message);
        match next {
            Next::Wait => {}
            Next::Send(bytes) => {
                let _ = tx.send(bytes).await;
            }
            Next::Done => return Ok((answers, true)),
        }
    }
    Ok((answers, false))
}
