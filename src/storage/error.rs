//! What can go wrong with what is on disk, grouped by what the caller does about it.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The operating system refused a read or a write: retrying rarely helps.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Stored data does not check out: the node must not start on it.
    #[error("corrupt {what} in {} at byte {offset}: {detail}", path.display())]
    Corrupt {
        what: &'static str,
        path: PathBuf,
        offset: u64,
        detail: String,
    },
    /// The state database reported an error.
    #[error("state database {}: {detail}", path.display())]
    Database { path: PathBuf, detail: String },
}

pub type Result<T> = std::result::Result<T, StorageError>;

/// Attaches a path to an I/O error.
pub trait IoContext<T> {
    fn at(self, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: &Path) -> Result<T> {
        self.map_err(|source| StorageError::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}
