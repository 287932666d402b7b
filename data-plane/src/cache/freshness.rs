//! How long an answer may be served from the cache, by its class and the
//! network's finalized height.
//!
//! Correct first: an answer is immutable only when the block it belongs to
//! is at or below the finalized height the data plane knows (0: not known,
//! so nothing at a height is immutable yet); everything else that may be
//! cached lives for the network's head TTL. `null` (a receipt not mined
//! yet, a block above the head) may become something later and is never
//! kept, nor is an answer larger than `max_entry_bytes`.

use std::time::{Duration, Instant};

use meridian_common::chain::CacheClass;
use meridian_common::snapshot::CacheSettings;

/// How long a kept answer is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// Until evicted: it cannot change.
    Immutable,
    /// Until this instant (the head TTL after it was stored).
    Until(Instant),
}

impl Lifetime {
    /// Whether an entry of this lifetime may still be served at `now`.
    pub fn fresh_at(self, now: Instant) -> bool {
        match self {
            Lifetime::Immutable => true,
            Lifetime::Until(end) => now < end,
        }
    }
}

/// Whether a reorganisation at `height` takes an entry with it:
/// `Some(h)` when it depends on block `h` (or, `u64::MAX`, on the head);
/// `None` for answers no reorganisation changes (static ones).
pub fn reorg_from(class: CacheClass, answer_block: Option<u64>) -> Option<u64> {
    match class {
        CacheClass::Static | CacheClass::Never => None,
        CacheClass::Head => Some(u64::MAX),
        CacheClass::AtHeight(height) => Some(height),
        CacheClass::ByHash => Some(answer_block.unwrap_or(u64::MAX)),
    }
}

/// How long `result` (the raw JSON of an answer's `result` member) to a
/// call of `class` may be served, or `None` when it must not be kept.
/// `answer_block` is the block the answer itself names
/// ([`meridian_common::chain::Chain::answer_block`]), which decides for
/// [`CacheClass::ByHash`].
pub fn lifetime(
    class: CacheClass,
    result: &[u8],
    answer_block: Option<u64>,
    settings: &CacheSettings,
    finalized: u64,
    now: Instant,
) -> Option<Lifetime> {
    let too_large = u64::try_from(result.len()).map_or(true, |n| n > settings.max_entry_bytes);
    if too_large || result.trim_ascii() == b"null" {
        return None;
    }
    let until = Lifetime::Until(now + Duration::from_millis(u64::from(settings.head_ttl_ms)));
    let final_at = |height: u64| finalized > 0 && height <= finalized;
    Some(match class {
        CacheClass::Never => return None,
        CacheClass::Static => Lifetime::Immutable,
        CacheClass::Head => until,
        CacheClass::AtHeight(height) if final_at(height) => Lifetime::Immutable,
        CacheClass::AtHeight(_) => until,
        CacheClass::ByHash => match answer_block {
            Some(height) if final_at(height) => Lifetime::Immutable,
            _ => until,
        },
    })
}

#[cfg(test)]
mod tests {
    use meridian_common::chain::ChainKind;

    use super::*;

    fn keep(class: CacheClass, result: &str, finalized: u64) -> Option<Lifetime> {
        let now = Instant::now();
        // What the cache passes: the block the EVM module reads in the answer.
        let raw = serde_json::value::RawValue::from_string(result.to_owned()).unwrap();
        lifetime(
            class,
            result.as_bytes(),
            ChainKind::Evm.chain().answer_block(&raw),
            &CacheSettings::default(),
            finalized,
            now,
        )
        .map(|l| match l {
            Lifetime::Until(end) => {
                assert_eq!(end - now, Duration::from_millis(1_000));
                l
            }
            l => l,
        })
    }

    fn ttl(l: Option<Lifetime>) -> bool {
        matches!(l, Some(Lifetime::Until(_)))
    }

    #[test]
    fn static_answers_are_immutable_and_head_ones_live_for_the_ttl() {
        assert_eq!(
            keep(CacheClass::Static, r#""0x1""#, 0),
            Some(Lifetime::Immutable)
        );
        assert!(ttl(keep(CacheClass::Head, r#""0x10""#, 100)));
        assert_eq!(keep(CacheClass::Never, r#""0x1""#, 100), None);
    }

    #[test]
    fn a_block_is_immutable_only_at_or_below_the_finalized_height() {
        let block = r#"{"number":"0x64","hash":"0xab"}"#;
        assert_eq!(
            keep(CacheClass::AtHeight(100), block, 100),
            Some(Lifetime::Immutable)
        );
        assert!(ttl(keep(CacheClass::AtHeight(101), block, 100)));
        // No finalized height known: nothing at a height is final yet.
        assert!(ttl(keep(CacheClass::AtHeight(0), block, 0)));
    }

    #[test]
    fn by_hash_answers_are_judged_by_their_own_block() {
        let receipt = r#"{"blockNumber":"0x64","status":"0x1"}"#;
        assert_eq!(
            keep(CacheClass::ByHash, receipt, 100),
            Some(Lifetime::Immutable)
        );
        assert!(ttl(keep(CacheClass::ByHash, receipt, 99)));
        // A count by hash names no block: it is kept for the TTL only.
        assert!(ttl(keep(CacheClass::ByHash, r#""0x3""#, 1_000)));
    }

    #[test]
    fn null_and_oversized_answers_are_never_kept() {
        assert_eq!(keep(CacheClass::ByHash, "null", 100), None);
        assert_eq!(keep(CacheClass::Static, " null ", 100), None);
        let settings = CacheSettings {
            max_entry_bytes: 4,
            ..CacheSettings::default()
        };
        let now = Instant::now();
        assert_eq!(
            lifetime(CacheClass::Static, b"\"0x1\"", None, &settings, 0, now),
            None
        );
        assert!(lifetime(CacheClass::Static, b"\"0x\"", None, &settings, 0, now).is_some());
    }
}
