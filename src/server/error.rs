//! Why a node could not serve a request, grouped by what the client should do, and how each
//! becomes a gRPC status at the edge.

use tonic::{Code, Status};

use crate::chat::ChatError;

/// The response metadata key that carries the leader's address with a redirect.
pub const LEADER_KEY: &str = crate::proto::metadata::LEADER;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServeError {
    /// Ask the leader instead: its id and address, if known.
    NotLeader(Option<(String, String)>),
    /// No quorum, or leadership changed: the outcome is unknown; retry with the same id.
    Unavailable(String),
    /// No leader for long: a majority is out of this node's reach.
    NoQuorum(String),
    /// The request cannot proceed in the cluster's current state.
    FailedPrecondition(String),
    /// The request itself is wrong.
    Invalid(String),
    /// The node failed (a disk error); it is shutting down.
    Internal(String),
}

impl From<ServeError> for Status {
    fn from(e: ServeError) -> Status {
        match e {
            ServeError::NotLeader(Some((id, address))) => {
                let mut s =
                    Status::unavailable(format!("not the leader; the leader is {id} at {address}"));
                if let Ok(v) = address.parse() {
                    s.metadata_mut().insert(LEADER_KEY, v);
                }
                s
            }
            ServeError::NotLeader(None) => {
                Status::unavailable("no leader: an election is under way, or there is no quorum")
            }
            ServeError::Unavailable(m) => Status::unavailable(m),
            ServeError::NoQuorum(m) => {
                let mut s = Status::unavailable(m);
                s.metadata_mut().insert(
                    crate::proto::metadata::NO_QUORUM,
                    tonic::metadata::MetadataValue::from_static("1"),
                );
                s
            }
            ServeError::FailedPrecondition(m) => Status::failed_precondition(m),
            ServeError::Invalid(m) => Status::invalid_argument(m),
            ServeError::Internal(m) => Status::internal(m),
        }
    }
}

pub fn chat_status(e: ChatError) -> Status {
    let code = match e {
        ChatError::InvalidArgument(_) => Code::InvalidArgument,
        ChatError::AlreadyExists(_) => Code::AlreadyExists,
        ChatError::NotFound(_) => Code::NotFound,
        ChatError::Unauthenticated(_) => Code::Unauthenticated,
        ChatError::PermissionDenied(_) => Code::PermissionDenied,
        ChatError::FailedPrecondition(_) => Code::FailedPrecondition,
    };
    Status::new(code, e.to_string())
}
