//! raftchat: a chat service replicated with Raft, and a lab that proves it survives faults.
//!
//! The layers (see DESIGN.md beside the repository) call one way only:
//! - [`raft`]: the consensus algorithm as a pure, deterministic state machine.
//! - [`proto`]: the wire contract generated from `proto/` at build time.
//! - [`chat`]: the replicated chat state machine, pure.
//! - [`storage`]: what is durable: the Raft log, term and vote, snapshots, chat state.
//! - [`inspect`]: reads a stopped node's data directory offline.

pub mod bench;
pub mod chat;
pub mod client;
pub mod encoding;
pub mod inspect;
pub mod lab;
pub mod proto;
pub mod raft;
pub mod server;
pub mod storage;
