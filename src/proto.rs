//! Types and service stubs generated from `proto/` by build.rs (protox + tonic-prost-build).
//! Nothing here is written by hand; the protos are the contract.

/// The peer protocol (`proto/raft.proto`).
pub mod raft {
    tonic::include_proto!("raftchat.raft");
}

/// The client protocol (`proto/chat.proto`).
pub mod chat {
    tonic::include_proto!("raftchat.chat");
}

/// The operators' protocol (`proto/admin.proto`).
pub mod admin {
    tonic::include_proto!("raftchat.admin");
}

/// Every proto's descriptors, for gRPC server reflection.
pub const DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptors.bin"));

/// Response and request metadata keys: part of the wire contract, beside the protos.
pub mod metadata {
    /// On a refused write: the address of the leader to send it to instead.
    pub const LEADER: &str = "raft-leader";
    /// On a write's reply: the log index it committed at.
    pub const INDEX: &str = "raft-index";
    /// On a peer's message stream: the sender's own address, so a node that does not know
    /// it yet (one that is joining) can answer.
    pub const ADDRESS: &str = "raft-address";
    /// On a refusal: the node has had no leader for a long time, so a majority is out of
    /// its reach; a client that hears this from every node it can reach gives up at once.
    pub const NO_QUORUM: &str = "raft-no-quorum";
}
