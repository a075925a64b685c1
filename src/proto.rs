//! Types and service stubs generated from `proto/` by build.rs (protox + tonic-prost-build).
//! Nothing here is written by hand; the protos are the contract.

/// The peer protocol (`proto/raft.proto`).
pub mod raft {
    tonic::include_proto!("raftchat.raft");
}
