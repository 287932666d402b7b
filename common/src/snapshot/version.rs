//! Snapshot versions: `{epoch, seq}`, totally ordered.

use std::fmt;

use crate::proto;

/// A snapshot version. The epoch is persisted and bumped on every control
/// plane start; seq counts publications within it. Derived `Ord` compares
/// epoch first, so versions never go backwards across restarts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    pub epoch: u64,
    pub seq: u64,
}

impl Version {
    /// The version of "nothing held".
    pub const NONE: Version = Version { epoch: 0, seq: 0 };

    pub fn is_none(self) -> bool {
        self == Self::NONE
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.epoch, self.seq)
    }
}

impl From<Option<proto::Version>> for Version {
    fn from(v: Option<proto::Version>) -> Self {
        v.map(|v| Version {
            epoch: v.epoch,
            seq: v.seq,
        })
        .unwrap_or_default()
    }
}

impl From<Version> for proto::Version {
    fn from(v: Version) -> Self {
        proto::Version {
            epoch: v.epoch,
            seq: v.seq,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_dominates_seq() {
        assert!(Version { epoch: 2, seq: 1 } > Version { epoch: 1, seq: 99 });
        assert!(Version { epoch: 1, seq: 2 } > Version { epoch: 1, seq: 1 });
        assert_eq!(Version { epoch: 3, seq: 4 }.to_string(), "3.4");
    }
}
