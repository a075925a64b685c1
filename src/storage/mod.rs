//! Durable storage: the Raft log, the term and vote, snapshots, and the chat state.

mod codec;
mod error;
mod fsutil;
pub mod log;

pub use error::{Result, StorageError};
