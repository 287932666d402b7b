//! How an immutable entry is written to the shared tier, and read back.
//!
//! A value is a 3-byte header, an optional height, then the answer:
//!
//! ```text
//! b'M', version (1), flags (bit 0: deflated, bit 1: height follows)
//! [height: u64, big endian]   the block a reorg would take it with
//! payload                      the raw JSON `result`, deflated above
//!                              COMPRESS_ABOVE bytes
//! ```
//!
//! Anything else is undecodable and read as a miss: another writer's
//! format, a value cut short, garbage written by hand, a payload that
//! inflates past the entry limit or is not JSON. Nothing read from Redis
//! reaches a client without passing that check.

use std::io::{Read, Write};

use bytes::Bytes;
use flate2::Compression;
use flate2::read::DeflateDecoder;
use flate2::write::DeflateEncoder;

const MAGIC: u8 = b'M';
const VERSION: u8 = 1;
const DEFLATED: u8 = 1;
const HEIGHT: u8 = 2;

/// Answers above this many bytes are deflated: below it the header and
/// the CPU cost more than the bytes saved.
pub const COMPRESS_ABOVE: usize = 1024;

/// Why a value read from the shared tier was not used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Undecodable {
    #[error("not a Meridian cache value (header)")]
    Header,
    #[error("cut short")]
    Short,
    #[error("does not inflate within {0} bytes")]
    Inflate(u64),
    #[error("payload is not a JSON value")]
    NotJson,
}

/// `result` as a value, with the height a reorg would take it with.
pub fn encode(result: &[u8], reorg_from: Option<u64>) -> Vec<u8> {
    if result.len() > COMPRESS_ABOVE {
        let mut deflate = DeflateEncoder::new(header(DEFLATED, reorg_from, 0), Compression::fast());
        // Writing into a Vec does not fail; if it did, the value goes raw.
        if deflate.write_all(result).is_ok()
            && let Ok(value) = deflate.finish()
        {
            return value;
        }
    }
    let mut value = header(0, reorg_from, result.len());
    value.extend_from_slice(result);
    value
}

fn header(flags: u8, reorg_from: Option<u64>, room: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(11 + room);
    let flags = flags | if reorg_from.is_some() { HEIGHT } else { 0 };
    out.extend_from_slice(&[MAGIC, VERSION, flags]);
    if let Some(height) = reorg_from {
        out.extend_from_slice(&height.to_be_bytes());
    }
    out
}

/// The answer and reorg height in `value`, inflating at most `max_bytes`.
pub fn decode(value: &[u8], max_bytes: u64) -> Result<(Bytes, Option<u64>), Undecodable> {
    let [magic, version, flags, rest @ ..] = value else {
        return Err(Undecodable::Short);
    };
    if *magic != MAGIC || *version != VERSION || flags & !(DEFLATED | HEIGHT) != 0 {
        return Err(Undecodable::Header);
    }
    let (reorg_from, payload) = if flags & HEIGHT != 0 {
        let (height, payload) = rest.split_first_chunk::<8>().ok_or(Undecodable::Short)?;
        (Some(u64::from_be_bytes(*height)), payload)
    } else {
        (None, rest)
    };
    let result = if flags & DEFLATED != 0 {
        // Reserved up to the limit only: a huge value under the key must
        // not make a huge allocation before the limit is checked.
        let room = usize::try_from(max_bytes.saturating_add(1)).unwrap_or(usize::MAX);
        let mut inflated = Vec::with_capacity(payload.len().saturating_mul(4).min(room));
        // One byte past the limit tells "too large" from "exactly the limit".
        DeflateDecoder::new(payload)
            .take(max_bytes.saturating_add(1))
            .read_to_end(&mut inflated)
            .map_err(|_| Undecodable::Inflate(max_bytes))?;
        if inflated.len() as u64 > max_bytes {
            return Err(Undecodable::Inflate(max_bytes));
        }
        Bytes::from(inflated)
    } else if payload.len() as u64 > max_bytes {
        // Larger than any entry the network keeps: never written by us.
        return Err(Undecodable::Inflate(max_bytes));
    } else {
        Bytes::copy_from_slice(payload)
    };
    if result.trim_ascii() == b"null"
        || serde_json::from_slice::<serde::de::IgnoredAny>(&result).is_err()
    {
        return Err(Undecodable::NotJson);
    }
    Ok((result, reorg_from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_and_large_answers_round_trip_with_their_height() {
        let small = br#""0x1""#;
        let value = encode(small, None);
        assert_eq!(value.len(), 3 + small.len(), "small: stored as it is");
        assert_eq!(
            decode(&value, 1 << 20),
            Ok((Bytes::from_static(small), None))
        );

        let large = format!(
            r#"{{"number":"0x64","logsBloom":"0x{}"}}"#,
            "0".repeat(4_096)
        );
        let value = encode(large.as_bytes(), Some(100));
        assert!(value.len() < large.len() / 4, "deflated: {}", value.len());
        assert_eq!(
            decode(&value, 1 << 20),
            Ok((Bytes::from(large.clone()), Some(100)))
        );
        assert_eq!(
            decode(&value, 1_000),
            Err(Undecodable::Inflate(1_000)),
            "never inflates past the entry limit"
        );
    }

    #[test]
    fn anything_else_is_undecodable() {
        assert_eq!(decode(b"", 100), Err(Undecodable::Short));
        assert_eq!(decode(b"garbage", 100), Err(Undecodable::Header));
        assert_eq!(decode(b"M\x02\x00\"x\"", 100), Err(Undecodable::Header));
        assert_eq!(decode(b"M\x01\x02\x00\x01", 100), Err(Undecodable::Short));
        assert_eq!(decode(b"M\x01\x00{\"a\":", 100), Err(Undecodable::NotJson));
        assert_eq!(decode(b"M\x01\x00null", 100), Err(Undecodable::NotJson));
        assert_eq!(
            decode(b"M\x01\x00\"0123456789\"", 5),
            Err(Undecodable::Inflate(5)),
            "a raw value past the entry limit is refused too"
        );
        assert!(matches!(
            decode(b"M\x01\x01not deflate", 100),
            Err(Undecodable::Inflate(_) | Undecodable::NotJson)
        ));
    }
}
