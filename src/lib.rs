//! raftchat: a chat service replicated with Raft, and a lab that proves it survives faults.
//!
//! The layers (see DESIGN.md beside the repository) call one way only:
//! - [`raft`]: the consensus algorithm as a pure, deterministic state machine.
//! - [`proto`]: the wire contract generated from `proto/` at build time.

pub mod chat;
pub mod encoding;
pub mod proto;
pub mod raft;
pub mod storage;
