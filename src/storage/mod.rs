//! Durable storage: the Raft log, the term and vote, snapshots, and the chat state.

mod codec;
mod derived;
mod error;
mod fsutil;
pub mod hardstate;
pub mod log;
pub mod node;
pub mod snapshot;
pub mod state;

pub use error::{Result, StorageError};
