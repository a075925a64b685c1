//! The Raft consensus algorithm as a pure, deterministic state machine.
//!
//! # What it is
//!
//! A [`Node`] is one member of a Raft cluster with no I/O of its own, in the style of etcd's
//! raft and raft-rs. Its inputs are logical clock ticks ([`Node::tick`]), messages from peers
//! ([`Node::step`]) and requests from the application ([`Node::propose`],
//! [`Node::read_index`], [`Node::propose_change`], [`Node::transfer_leader`],
//! [`Node::compact`]). Its outputs are gathered in a [`Ready`]: what to make durable, what
//! to send, what is committed and which reads may be served. The driver (the server, or the
//! simulator in the tests) owns the clock, the disk and the network, and decides how long a
//! tick is. Given the same inputs, a node produces the same outputs, which is what lets the
//! simulator replay any run from its seed.
//!
//! # What it implements
//!
//! - Leader election with randomized timeouts (§5.2), PreVote and CheckQuorum (§9.6).
//! - Log replication (§5.3) with batched Appends bounded in bytes, pipelining bounded per
//!   follower, and fast backtracking by conflict term.
//! - The commit rule of §5.4.2: only entries of the current term are committed by counting
//!   replicas; a new leader appends a no-op to commit its predecessors' entries.
//! - Linearizable reads by ReadIndex (§6.4), forwarded from followers to the leader.
//! - Leadership transfer (§3.10), snapshots and InstallSnapshot (§5 of the dissertation),
//!   and membership changes one server at a time, with learners (§4).
//!
//! # Invariants it asserts
//!
//! A node panics, naming the broken rule, rather than diverge: two leaders in one term, a
//! committed entry overwritten, a term going backwards, a commit beyond the log.
//!
//! # What it does not do
//!
//! It never reads or writes files, sockets or clocks, and it does not hold snapshot data:
//! a snapshot's data travels beside the InstallSnapshot message, handled by the driver. It
//! keeps the log after the last snapshot in memory, so the application must compact
//! regularly. Membership changes are single-server (no joint consensus), so a change that
//! swaps two voters takes two steps. Proposals are not forwarded: a follower answers
//! "not the leader" with the leader it knows, and the application redirects.

mod config;
mod log;
mod message;
mod node;
mod progress;
mod ready;
mod rng;

pub use rng::{Rng, hash_str as hash_seed};
mod types;

pub use config::Config;
pub use message::{Append, AppendResponse, Body, Campaign, Message, ReadId};
pub use node::{Node, ProposeError, Restored, Status};
pub use ready::{ReadState, Ready, SoftState};
pub use types::{
    ConfChange, Entry, HardState, LogIndex, Membership, NodeId, Payload, RoleKind, SnapshotMeta,
    Term,
};
