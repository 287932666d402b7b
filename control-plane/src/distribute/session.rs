//! The rules of one stream, without I/O (see `proto/meridian/v1/snapshot.proto`).
//!
//! - A Hello that holds the current version and content hash gets nothing.
//! - Every push carries a nonce unique within the stream.
//! - An Ack or Nack counts only if it echoes a nonce this stream issued
//!   for that version; anything else is stale or bogus and ignored.
//! - After a Nack the stream is parked: nothing is sent until a version
//!   newer than the rejected one exists. No resend loop. The registry
//!   remembers the Nack, so a reconnect of that data plane is parked too.

use std::collections::VecDeque;

use meridian_common::snapshot::Version;

/// Pushes remembered for matching answers; a data plane answers each push
/// promptly, so a few suffice even when versions follow each other fast.
const REMEMBERED_PUSHES: usize = 16;

/// What an answer from the data plane meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// It applied `version`.
    Acked(Version),
    /// It rejected `version`; the stream is parked until a newer one.
    Nacked(Version),
    /// The nonce/version pair was not issued by this stream.
    Unknown,
}

/// The state of one stream.
#[derive(Debug)]
pub struct Session {
    /// Prefix of this stream's nonces (makes them unique across streams too).
    tag: String,
    /// What the Hello said it holds.
    held: Option<(Version, String)>,
    /// Highest version sent (or skipped because the data plane held it).
    last_offered: Option<Version>,
    /// Nothing up to and including this version is sent.
    parked_at: Option<Version>,
    next_nonce: u64,
    pushes: VecDeque<(String, Version)>,
}

impl Session {
    /// A stream that opened with a Hello holding `held_version` and
    /// `held_hash` (empty when nothing is held). `tag` prefixes nonces.
    pub fn new(tag: impl Into<String>, held_version: Version, held_hash: &str) -> Session {
        let held = (!held_version.is_none() && !held_hash.is_empty())
            .then(|| (held_version, held_hash.to_owned()));
        Session {
            tag: tag.into(),
            held,
            last_offered: None,
            parked_at: None,
            next_nonce: 1,
            pushes: VecDeque::with_capacity(REMEMBERED_PUSHES),
        }
    }

    /// Whether `version`, whose table for this data plane has
    /// `content_hash`, must be pushed; if so, the nonce to push it with.
    pub fn offer(&mut self, version: Version, content_hash: &str) -> Option<String> {
        if self.last_offered.is_some_and(|v| version <= v) {
            return None;
        }
        self.last_offered = Some(version);
        if self
            .held
            .as_ref()
            .is_some_and(|(v, h)| *v == version && *h == content_hash)
        {
            return None;
        }
        if self.parked_at.is_some_and(|v| version <= v) {
            return None;
        }
        let nonce = format!("{}-{}", self.tag, self.next_nonce);
        self.next_nonce += 1;
        if self.pushes.len() == REMEMBERED_PUSHES {
            self.pushes.pop_front();
        }
        self.pushes.push_back((nonce.clone(), version));
        Some(nonce)
    }

    fn issued(&self, version: Version, nonce: &str) -> bool {
        self.pushes.iter().any(|(n, v)| n == nonce && *v == version)
    }

    /// Records an Ack.
    pub fn on_ack(&mut self, version: Version, nonce: &str) -> Answer {
        if !self.issued(version, nonce) {
            return Answer::Unknown;
        }
        Answer::Acked(version)
    }

    /// Records a Nack and parks the stream until a newer version exists.
    pub fn on_nack(&mut self, version: Version, nonce: &str) -> Answer {
        if !self.issued(version, nonce) {
            return Answer::Unknown;
        }
        self.park(version);
        Answer::Nacked(version)
    }

    /// Parks the stream at `version`: a data plane that NACKed it on an
    /// earlier stream does not get it again just because it reconnected.
    pub fn park(&mut self, version: Version) {
        self.parked_at = Some(self.parked_at.map_or(version, |p| p.max(version)));
    }

    /// The version after which pushes resume, if parked.
    pub fn parked_at(&self) -> Option<Version> {
        self.parked_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version and its content hash, as `offer` takes them.
    fn published(seq: u64, hash: &str) -> (Version, &str) {
        (Version { epoch: 1, seq }, hash)
    }

    impl Session {
        fn offer_pair(&mut self, (version, hash): (Version, &str)) -> Option<String> {
            self.offer(version, hash)
        }
    }

    #[test]
    fn hello_with_current_version_and_hash_gets_nothing() {
        let mut s = Session::new("t", Version { epoch: 1, seq: 4 }, "h4");
        assert_eq!(s.offer_pair(published(4, "h4")), None);
        assert!(s.offer_pair(published(5, "h5")).is_some());
    }

    #[test]
    fn same_version_other_hash_or_other_version_same_hash_is_sent() {
        let mut s = Session::new("t", Version { epoch: 1, seq: 4 }, "other");
        assert!(s.offer_pair(published(4, "h4")).is_some());
        let mut s = Session::new("t", Version { epoch: 0, seq: 9 }, "h4");
        assert!(s.offer_pair(published(4, "h4")).is_some());
        let mut s = Session::new("t", Version::NONE, "");
        assert!(s.offer_pair(published(1, "h1")).is_some());
    }

    #[test]
    fn nonces_are_unique_and_each_version_goes_out_once() {
        let mut s = Session::new("t", Version::NONE, "");
        let a = s.offer_pair(published(1, "a")).unwrap();
        assert_eq!(s.offer_pair(published(1, "a")), None);
        let b = s.offer_pair(published(2, "b")).unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("t-"));
    }

    #[test]
    fn nack_parks_until_newer_version() {
        let mut s = Session::new("t", Version::NONE, "");
        let n = s.offer_pair(published(1, "a")).unwrap();
        assert_eq!(
            s.on_nack(Version { epoch: 1, seq: 1 }, &n),
            Answer::Nacked(Version { epoch: 1, seq: 1 })
        );
        assert_eq!(s.parked_at(), Some(Version { epoch: 1, seq: 1 }));
        // A re-offer of the rejected version (e.g. a wake-up) sends nothing.
        assert_eq!(s.offer_pair(published(1, "a")), None);
        let n2 = s.offer_pair(published(2, "b")).unwrap();
        assert_eq!(
            s.on_ack(Version { epoch: 1, seq: 2 }, &n2),
            Answer::Acked(Version { epoch: 1, seq: 2 })
        );
    }

    #[test]
    fn a_parked_reconnect_waits_for_a_newer_version() {
        let mut s = Session::new("t", Version::NONE, "");
        s.park(Version { epoch: 1, seq: 1 });
        assert_eq!(s.offer_pair(published(1, "a")), None);
        assert!(s.offer_pair(published(2, "b")).is_some());
    }

    #[test]
    fn answers_must_echo_an_issued_nonce_and_version() {
        let mut s = Session::new("t", Version::NONE, "");
        let n = s.offer_pair(published(1, "a")).unwrap();
        assert_eq!(s.on_ack(Version { epoch: 1, seq: 2 }, &n), Answer::Unknown);
        assert_eq!(s.on_ack(Version { epoch: 1, seq: 1 }, "x"), Answer::Unknown);
        assert_eq!(
            s.on_nack(Version { epoch: 1, seq: 1 }, "x"),
            Answer::Unknown
        );
        assert_eq!(s.parked_at(), None);
    }
}
