//! The settings blocks of a network: the request policy (limits, method
//! policy, retries, hedging, routing, ejection and admission, which data
//! planes enforce) and the cache settings.
//!
//! Declared once (see [`crate::settings`]): this is the model both planes
//! use, its keys in each `[[networks]]` table of the control plane's TOML,
//! the conversion to and from `proto::NetworkPolicy`, and the README's
//! table.

use crate::proto;
use crate::settings;

settings! {
    /// Limits and method policy a data plane enforces for one network.
    pub struct NetworkPolicy: proto::NetworkPolicy {
        /// Largest client request body, in bytes; larger is refused with
        /// HTTP 413 before it is read.
        max_body_bytes: u64 = 1024 * 1024, Positive;
        /// Largest batch; larger is refused whole with HTTP 413.
        max_batch: u32 = 100, Positive;
        /// Deadline of one client request, in milliseconds, retries and
        /// hedges included.
        request_timeout_ms: u32 = 10_000, Positive;
        /// Methods refused with -32601 (`*` globs, e.g. `"debug_*"`).
        deny_methods: Vec<String> = Vec::new(), MethodPatterns;
        /// If non-empty, the only methods served (`*` globs).
        allow_methods: Vec<String> = Vec::new(), MethodPatterns;
        /// Most tries of one request, each on a different upstream.
        max_tries: u32 = 3, Positive;
        /// A read without an answer after this many milliseconds gets a
        /// backup request to another upstream; the first good answer wins.
        hedge_after_ms: u32 = 2_000, Positive;
        /// Derive each hedge delay from the chosen upstream's observed p95
        /// latency instead (`hedge_after_ms` stays the upper bound).
        hedge_from_p95: bool = false, Any;
        /// Reads naming a block more than this many blocks behind the
        /// network's head go to `archive` upstreams (0: never
        /// automatically).
        archive_after_blocks: u64 = 0, Any;
        /// Writes a chain allows to broadcast (EVM `eth_sendRawTransaction`)
        /// go to this many `write` upstreams at once; the first success (or
        /// "already known") answers.
        write_broadcast: u32 = 1, Positive;
        /// Consecutive failures after which a data plane ejects an upstream
        /// locally for a cool-down (30 s, doubling to 5 min).
        eject_after_failures: u32 = 5, Positive;
        /// Tries in flight to one upstream from one data plane.
        max_concurrency: u32 = 256, Positive;
        /// Requests waiting per priority class when upstreams are
        /// saturated; a full queue answers 503.
        max_queue: u32 = 1_024, Positive;
        /// Longest a request waits in the queue, in milliseconds.
        max_queue_wait_ms: u32 = 1_000, Positive;
    }
}

settings! {
    /// How answers of one network may be cached (`[networks.cache]`).
    pub struct CacheSettings: proto::CacheSettings {
        /// Whether data planes cache this network's answers at all.
        enabled: bool = true, Any;
        /// How long an answer that follows the head (`eth_blockNumber`, a
        /// read at `latest`, a block above the finalized height) is served
        /// from the cache, in milliseconds.
        head_ttl_ms: u32 = 1_000, Positive;
        /// Largest answer kept, in bytes (the `result` member); larger
        /// answers are passed through and not cached.
        max_entry_bytes: u64 = 1024 * 1024, Positive;
        /// Blocks below the head taken as final when no upstream reports a
        /// finalized height (0: the chain kind's default, EVM 64, ICON 1). The
        /// network's finalized height is on `/metrics` of both planes.
        finality_depth: u64 = 0, Any;
        /// How long a data plane's shared tier (Redis, `--cache-redis`)
        /// keeps an immutable answer (a static one, a finalized block), in
        /// seconds; never unbounded.
        redis_ttl_s: u32 = 86_400, Positive;
    }
}

impl CacheSettings {
    /// `finality_depth` with the chain kind's default filled in.
    pub fn finality_depth_for(&self, chain: &dyn crate::chain::Chain) -> u64 {
        match self.finality_depth {
            0 => chain.default_finality_depth(),
            depth => depth,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_round_trips_and_zero_means_the_default() {
        let p = NetworkPolicy {
            max_batch: 7,
            deny_methods: vec!["debug_*".into()],
            hedge_from_p95: true,
            archive_after_blocks: 128,
            ..NetworkPolicy::default()
        };
        assert_eq!(NetworkPolicy::decode(p.encode()), Ok(p));
        assert_eq!(
            NetworkPolicy::decode(proto::NetworkPolicy::default()),
            Ok(NetworkPolicy::default())
        );
    }

    #[test]
    fn a_cache_turned_off_stays_off_on_the_wire_and_absent_means_on() {
        let off = CacheSettings {
            enabled: false,
            head_ttl_ms: 250,
            ..CacheSettings::default()
        };
        assert_eq!(CacheSettings::decode(off.encode()), Ok(off));
        let old_control_plane = proto::CacheSettings::default();
        let decoded = CacheSettings::decode(old_control_plane).unwrap();
        assert!(decoded.enabled);
        assert_eq!(decoded.head_ttl_ms, 1_000);
    }

    #[test]
    fn the_wire_gets_the_checks_of_the_toml() {
        let bad = proto::NetworkPolicy {
            allow_methods: vec!["eth_ call".into()],
            ..Default::default()
        };
        assert_eq!(
            NetworkPolicy::decode(bad),
            Err(r#"allow_methods: method pattern "eth_ call" is empty or has whitespace"#.into())
        );
    }

    #[test]
    fn toml_keys_are_the_field_names_and_checked_at_the_value() {
        let p: NetworkPolicy =
            toml::from_str("max_batch = 5\ndeny_methods = [\"debug_*\"]\nhedge_from_p95 = true")
                .unwrap();
        assert_eq!(
            (
                p.max_batch,
                p.deny_methods.as_slice(),
                p.hedge_from_p95,
                p.max_tries
            ),
            (5, ["debug_*".to_owned()].as_slice(), true, 3)
        );
        let zero = toml::from_str::<NetworkPolicy>("max_tries = 0").unwrap_err();
        assert!(zero.message().contains("must be at least 1"), "{zero}");
        assert_eq!(zero.span(), Some(12..13), "the value's own span");
        let unknown = toml::from_str::<NetworkPolicy>("max_trys = 2").unwrap_err();
        assert!(
            unknown.message().contains("unknown field `max_trys`")
                && unknown.message().contains("max_tries"),
            "{unknown}"
        );
        let wrong = toml::from_str::<NetworkPolicy>("hedge_after_ms = \"2s\"").unwrap_err();
        assert!(wrong.message().contains("invalid type"), "{wrong}");
    }

    #[test]
    fn the_reference_lists_every_field_with_its_default_and_doc() {
        let rows = NetworkPolicy::reference();
        assert_eq!(
            rows.iter().map(|r| r.name).collect::<Vec<_>>(),
            NetworkPolicy::FIELDS
        );
        let body = &rows[0];
        assert_eq!(
            (body.name, body.default.as_str()),
            ("max_body_bytes", "1048576")
        );
        assert!(
            body.doc
                .starts_with("Largest client request body, in bytes;")
        );
        assert_eq!(rows[3].default, "[]");
        assert_eq!(rows[7].default, "false");
    }
}
