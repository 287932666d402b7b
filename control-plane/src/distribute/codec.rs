//! The stream's codec: pre-encoded messages out, prost-decoded messages in.
//!
//! Out go snapshots and heights, both encoded once and shared by every
//! stream.
//!
//! A `ControlPlaneMessage { snapshot = 1 }` on the wire is the key of field
//! 1, a length, and the snapshot's bytes. Protobuf lets a message's fields
//! come in any order and merges them, so the nonce (field 2 of `Snapshot`)
//! is appended after the shared bytes of the snapshot (encoded once, with
//! an empty nonce) instead of re-encoding the whole table for each push.

use bytes::Bytes;
use meridian_common::proto;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint, string};
use tonic::Status;
use tonic::codec::{Codec, EncodeBuf, Encoder};

/// Field number of `ControlPlaneMessage.snapshot`.
const SNAPSHOT_FIELD: u32 = 1;
/// Field number of `Snapshot.nonce`.
const NONCE_FIELD: u32 = 2;

/// One push on one stream.
#[derive(Debug, Clone)]
pub struct SnapshotPush {
    /// `Snapshot` encoded by the publisher, with an empty nonce.
    pub encoded: Bytes,
    /// This push's nonce.
    pub nonce: String,
}

impl SnapshotPush {
    /// Length of the `Snapshot` message with the nonce appended.
    fn snapshot_len(&self) -> usize {
        self.encoded.len() + string::encoded_len(NONCE_FIELD, &self.nonce)
    }

    /// Length of the whole `ControlPlaneMessage`.
    pub fn encoded_len(&self) -> usize {
        let inner = self.snapshot_len();
        prost::encoding::key_len(SNAPSHOT_FIELD) + encoded_len_varint(inner as u64) + inner
    }

    /// Writes the `ControlPlaneMessage` to `buf`.
    pub fn encode(&self, buf: &mut impl bytes::BufMut) {
        encode_key(SNAPSHOT_FIELD, WireType::LengthDelimited, buf);
        encode_varint(self.snapshot_len() as u64, buf);
        buf.put_slice(&self.encoded);
        string::encode(NONCE_FIELD, &self.nonce, buf);
    }
}

/// One message out on one stream.
#[derive(Debug, Clone)]
pub enum StreamItem {
    /// A snapshot, with this stream's nonce.
    Snapshot(SnapshotPush),
    /// A whole `ControlPlaneMessage` as encoded once (heights: no nonce).
    Encoded(Bytes),
}

impl StreamItem {
    fn encoded_len(&self) -> usize {
        match self {
            StreamItem::Snapshot(push) => push.encoded_len(),
            StreamItem::Encoded(bytes) => bytes.len(),
        }
    }

    fn encode(&self, buf: &mut impl bytes::BufMut) {
        match self {
            StreamItem::Snapshot(push) => push.encode(buf),
            StreamItem::Encoded(bytes) => buf.put_slice(bytes),
        }
    }
}

/// Codec of `SnapshotService.Stream` on the server side.
#[derive(Debug, Clone, Copy, Default)]
pub struct StreamCodec;

/// Encoder of [`StreamItem`].
#[derive(Debug, Clone, Copy, Default)]
pub struct PushEncoder;

impl Encoder for PushEncoder {
    type Item = StreamItem;
    type Error = Status;

    fn encode(&mut self, item: StreamItem, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.reserve(item.encoded_len());
        item.encode(buf);
        Ok(())
    }
}

impl Codec for StreamCodec {
    type Encode = StreamItem;
    type Decode = proto::DataPlaneMessage;
    type Encoder = PushEncoder;
    type Decoder = tonic_prost::ProstDecoder<proto::DataPlaneMessage>;

    fn encoder(&mut self) -> Self::Encoder {
        PushEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        tonic_prost::ProstDecoder::default()
    }
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    #[test]
    fn appended_nonce_decodes_as_one_message() {
        let snapshot = proto::Snapshot {
            version: Some(proto::Version { epoch: 3, seq: 9 }),
            nonce: String::new(),
            content_hash: "abc".into(),
            table: Some(proto::RoutingTable {
                networks: vec![proto::Network {
                    id: "eth".into(),
                    chain: "evm".into(),
                    ..Default::default()
                }],
                generated_at_unix_ms: 7,
            }),
            table_gzip: Default::default(),
        };
        let push = SnapshotPush {
            encoded: Bytes::from(snapshot.encode_to_vec()),
            nonce: "s1-42".into(),
        };
        let mut buf = Vec::new();
        push.encode(&mut buf);
        assert_eq!(buf.len(), push.encoded_len());
        let decoded = proto::ControlPlaneMessage::decode(buf.as_slice()).unwrap();
        let expected = proto::Snapshot {
            nonce: "s1-42".into(),
            ..snapshot
        };
        assert_eq!(
            decoded.message,
            Some(proto::control_plane_message::Message::Snapshot(expected))
        );
    }
}
