//! The last applied snapshot on disk: `<state_dir>/snapshot.pb`.
//!
//! Written as the protobuf `Snapshot` through a temporary file, fsync and
//! rename, then an fsync of the directory: a crash leaves either the old
//! file or the new one, never half of one. Reading it back is validated
//! exactly like a snapshot from the stream (by [`super::Applier`]), so a
//! corrupt or tampered file is refused, logged and ignored.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use meridian_common::proto;
use prost::Message as _;

/// File name of the persisted snapshot inside the state dir.
pub const FILE_NAME: &str = "snapshot.pb";
const TEMP_NAME: &str = "snapshot.pb.tmp";

/// The persisted snapshot could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is not a snapshot: {source}")]
    Decode {
        path: PathBuf,
        #[source]
        source: prost::DecodeError,
    },
}

/// The snapshot file in one state dir.
#[derive(Debug, Clone)]
pub struct SnapshotFile {
    dir: PathBuf,
}

impl SnapshotFile {
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: state_dir.into(),
        }
    }

    /// Path of the snapshot file.
    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// Creates the state dir if it is missing.
    pub fn ensure_dir(&self) -> io::Result<()> {
        fs::create_dir_all(&self.dir)
    }

    /// The persisted snapshot; `Ok(None)` when there is none yet.
    pub fn load(&self) -> Result<Option<proto::Snapshot>, LoadError> {
        let path = self.path();
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(LoadError::Read { path, source }),
        };
        proto::Snapshot::decode(bytes.as_slice())
            .map(Some)
            .map_err(|source| LoadError::Decode { path, source })
    }

    /// Replaces the persisted snapshot with `snapshot`, atomically.
    pub fn save(&self, snapshot: &proto::Snapshot) -> io::Result<()> {
        let temp = self.dir.join(TEMP_NAME);
        {
            let mut file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&temp)?;
            file.write_all(&snapshot.encode_to_vec())?;
            // Data must be on disk before the rename makes it the snapshot.
            file.sync_all()?;
        }
        fs::rename(&temp, self.path())?;
        sync_dir(&self.dir)
    }
}

/// Makes a rename in `dir` durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let file = SnapshotFile::new(dir.path().join("nested"));
        file.ensure_dir().unwrap();
        assert!(file.load().unwrap().is_none());
        let mut s = proto::Snapshot {
            version: Some(proto::Version { epoch: 3, seq: 4 }),
            nonce: "n".into(),
            content_hash: "abc".into(),
            table: Some(proto::RoutingTable::default()),
            table_gzip: Default::default(),
        };
        file.save(&s).unwrap();
        assert_eq!(file.load().unwrap(), Some(s.clone()));
        s.version = Some(proto::Version { epoch: 3, seq: 5 });
        file.save(&s).unwrap();
        assert_eq!(file.load().unwrap(), Some(s));
        assert!(!dir.path().join("nested").join(TEMP_NAME).exists());
    }

    #[test]
    fn garbage_is_a_decode_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = SnapshotFile::new(dir.path());
        fs::write(file.path(), b"\xff\xff\xff\xff not protobuf").unwrap();
        assert!(matches!(file.load(), Err(LoadError::Decode { .. })));
    }
}
