//! The snapshot's table on the wire: plain, or gzip-compressed once per
//! version.
//!
//! A table of 10,000 upstreams encodes to ~780 kB and compresses to about a
//! tenth. Compressing it in the transport (gRPC message compression) would
//! run once per stream, a thousand times per version for a thousand data
//! planes; compressing it into `Snapshot.table_gzip` runs once, and every
//! stream shares the bytes. Data planes that say so in their Hello get the
//! compressed form; the content hash always covers the plain table.

use std::io::{Read as _, Write as _};

use crate::proto;
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use prost::Message as _;

/// Why a snapshot's compressed table could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error("the snapshot carries both `table` and `table_gzip`")]
    Both,
    #[error("`table_gzip` is not gzip: {0}")]
    Gzip(std::io::Error),
    #[error("`table_gzip` inflates to more than {0} bytes")]
    TooLarge(usize),
    #[error("`table_gzip` does not hold a routing table: {0}")]
    Decode(#[from] prost::DecodeError),
}

/// `table`'s protobuf encoding, gzip-compressed.
pub fn gzip_table(table: &proto::RoutingTable) -> Vec<u8> {
    let encoded = table.encode_to_vec();
    // Writing into a Vec cannot fail; the level is flate2's default (6):
    // this runs once per version, so size matters more than time.
    let mut gz = GzEncoder::new(
        Vec::with_capacity(encoded.len() / 8 + 64),
        Compression::default(),
    );
    let written = gz.write_all(&encoded).and_then(|()| gz.finish());
    written.unwrap_or_default()
}

/// Moves a compressed table into `snapshot.table`, refusing one that
/// inflates beyond `max_bytes` (a decompression bomb never gets further
/// than that). A snapshot with a plain table is left as it is.
pub fn inflate_table(snapshot: &mut proto::Snapshot, max_bytes: usize) -> Result<(), PayloadError> {
    if snapshot.table_gzip.is_empty() {
        return Ok(());
    }
    if snapshot.table.is_some() {
        return Err(PayloadError::Both);
    }
    let compressed = std::mem::take(&mut snapshot.table_gzip);
    let limit = u64::try_from(max_bytes)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    let mut encoded = Vec::new();
    GzDecoder::new(&compressed[..])
        .take(limit)
        .read_to_end(&mut encoded)
        .map_err(PayloadError::Gzip)?;
    if encoded.len() > max_bytes {
        return Err(PayloadError::TooLarge(max_bytes));
    }
    snapshot.table = Some(proto::RoutingTable::decode(encoded.as_slice())?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(networks: usize) -> proto::RoutingTable {
        proto::RoutingTable {
            networks: (0..networks)
                .map(|i| proto::Network {
                    id: format!("net-{i}"),
                    chain: "evm".into(),
                    ..Default::default()
                })
                .collect(),
            generated_at_unix_ms: 7,
        }
    }

    fn compressed(table: &proto::RoutingTable) -> proto::Snapshot {
        proto::Snapshot {
            table_gzip: gzip_table(table),
            ..Default::default()
        }
    }

    #[test]
    fn a_compressed_table_inflates_to_the_same_table() {
        let t = table(50);
        let mut s = compressed(&t);
        assert!(s.table_gzip.len() < t.encoded_len() / 2);
        inflate_table(&mut s, 1 << 20).unwrap();
        assert_eq!(s.table, Some(t));
        assert!(s.table_gzip.is_empty());
    }

    #[test]
    fn a_plain_table_is_left_alone() {
        let mut s = proto::Snapshot {
            table: Some(table(1)),
            ..Default::default()
        };
        let before = s.clone();
        inflate_table(&mut s, 16).unwrap();
        assert_eq!(s, before);
    }

    #[test]
    fn bombs_garbage_and_ambiguity_are_refused() {
        // 1 MiB of zeros compresses to about a kilobyte.
        let mut gz = GzEncoder::new(Vec::new(), Compression::best());
        gz.write_all(&vec![0u8; 1 << 20]).unwrap();
        let mut bomb = proto::Snapshot {
            table_gzip: gz.finish().unwrap(),
            ..Default::default()
        };
        assert!(matches!(
            inflate_table(&mut bomb, 64 * 1024),
            Err(PayloadError::TooLarge(_))
        ));

        let mut garbage = proto::Snapshot {
            table_gzip: b"not gzip at all".to_vec(),
            ..Default::default()
        };
        assert!(matches!(
            inflate_table(&mut garbage, 1 << 20),
            Err(PayloadError::Gzip(_))
        ));

        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(&[0xff; 32]).unwrap();
        let mut not_a_table = proto::Snapshot {
            table_gzip: gz.finish().unwrap(),
            ..Default::default()
        };
        assert!(matches!(
            inflate_table(&mut not_a_table, 1 << 20),
            Err(PayloadError::Decode(_))
        ));

        let mut both = compressed(&table(1));
        both.table = Some(table(1));
        assert!(matches!(
            inflate_table(&mut both, 1 << 20),
            Err(PayloadError::Both)
        ));
    }
}
