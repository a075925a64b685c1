//! What applying a command answers, and why it may refuse. Outcomes are stored per client
//! (for exactly-once retries), so they have an encoding too.

use super::keys::Message;
use crate::encoding::{Reader, put_bytes, put_u32, put_u64};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Registered { token: String },
    LoggedIn { token: String, unread: u64 },
    LoggedOut,
    Sent { id: u64, time_ms: u64 },
    Messages(Vec<Message>),
    Deleted { count: u64 },
    AccountDeleted,
}

/// A refusal, grouped as gRPC status codes are.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChatError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    FailedPrecondition(String),
}

pub type Outcome = Result<Reply, ChatError>;

impl ChatError {
    /// The code's name as the scenario language writes it.
    pub fn code(&self) -> &'static str {
        match self {
            ChatError::InvalidArgument(_) => "invalid_argument",
            ChatError::AlreadyExists(_) => "already_exists",
            ChatError::NotFound(_) => "not_found",
            ChatError::Unauthenticated(_) => "unauthenticated",
            ChatError::PermissionDenied(_) => "permission_denied",
            ChatError::FailedPrecondition(_) => "failed_precondition",
        }
    }

    fn tag(&self) -> u8 {
        match self {
            ChatError::InvalidArgument(_) => 1,
            ChatError::AlreadyExists(_) => 2,
            ChatError::NotFound(_) => 3,
            ChatError::Unauthenticated(_) => 4,
            ChatError::PermissionDenied(_) => 5,
            ChatError::FailedPrecondition(_) => 6,
        }
    }

    fn message(&self) -> &str {
        match self {
            ChatError::InvalidArgument(m)
            | ChatError::AlreadyExists(m)
            | ChatError::NotFound(m)
            | ChatError::Unauthenticated(m)
            | ChatError::PermissionDenied(m)
            | ChatError::FailedPrecondition(m) => m,
        }
    }
}

pub fn encode_outcome(outcome: &Outcome, out: &mut Vec<u8>) {
    match outcome {
        Err(e) => {
            out.push(0);
            out.push(e.tag());
            put_bytes(out, e.message().as_bytes());
        }
        Ok(reply) => {
            out.push(1);
            match reply {
                Reply::Registered { token } => {
                    out.push(1);
                    put_bytes(out, token.as_bytes());
                }
                Reply::LoggedIn { token, unread } => {
                    out.push(2);
                    put_bytes(out, token.as_bytes());
                    put_u64(out, *unread);
                }
                Reply::LoggedOut => out.push(3),
                Reply::Sent { id, time_ms } => {
                    out.push(4);
                    put_u64(out, *id);
                    put_u64(out, *time_ms);
                }
                Reply::Messages(messages) => {
                    out.push(5);
                    put_u32(out, messages.len() as u32);
                    for m in messages {
                        m.encode(out);
                    }
                }
                Reply::Deleted { count } => {
                    out.push(6);
                    put_u64(out, *count);
                }
                Reply::AccountDeleted => out.push(7),
            }
        }
    }
}

pub fn decode_outcome(r: &mut Reader<'_>) -> Result<Outcome, String> {
    if r.u8("outcome")? == 0 {
        let tag = r.u8("error code")?;
        let m = r.string("error message")?;
        return Ok(Err(match tag {
            1 => ChatError::InvalidArgument(m),
            2 => ChatError::AlreadyExists(m),
            3 => ChatError::NotFound(m),
            4 => ChatError::Unauthenticated(m),
            5 => ChatError::PermissionDenied(m),
            6 => ChatError::FailedPrecondition(m),
            t => return Err(format!("unknown error code {t}")),
        }));
    }
    Ok(Ok(match r.u8("reply kind")? {
        1 => Reply::Registered {
            token: r.string("token")?,
        },
        2 => Reply::LoggedIn {
            token: r.string("token")?,
            unread: r.u64("unread count")?,
        },
        3 => Reply::LoggedOut,
        4 => Reply::Sent {
            id: r.u64("id")?,
            time_ms: r.u64("time")?,
        },
        5 => {
            let n = r.u32("message count")?;
            let mut messages = Vec::with_capacity(n as usize);
            for _ in 0..n {
                messages.push(Message::decode(r)?);
            }
            Reply::Messages(messages)
        }
        6 => Reply::Deleted {
            count: r.u64("count")?,
        },
        7 => Reply::AccountDeleted,
        k => return Err(format!("unknown reply kind {k}")),
    }))
}
