//! Storage work that waits on the disk, run on a blocking thread so that the node's one
//! thread goes on serving the network meanwhile.

use std::path::PathBuf;

use crate::storage::{Result, StorageError};

pub struct Aside<T> {
    /// What the work is about, for the error if it panics.
    path: PathBuf,
    handle: tokio::task::JoinHandle<Result<T>>,
}

impl<T: Send + 'static> Aside<T> {
    pub fn start(path: PathBuf, work: impl FnOnce() -> Result<T> + Send + 'static) -> Self {
        Aside {
            path,
            handle: tokio::task::spawn_blocking(work),
        }
    }

    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }

    /// The work's result; a panic there is reported as an I/O failure of its path.
    pub async fn wait(self) -> Result<T> {
        self.handle.await.map_err(|e| StorageError::Io {
            path: self.path,
            source: std::io::Error::other(e.to_string()),
        })?
    }
}
