//! The client library: a list of endpoints, a cached leader, redirects followed, retries
//! with exponential backoff and jitter inside a deadline, and a request id on every write
//! so that a retry is applied at most once.
//!
//! A request that fails with UNAVAILABLE (no leader, no quorum, a node going away) or a
//! transport error is retried, on the leader named in the redirect if there is one and on
//! the next endpoint otherwise; every other error is the answer. A write keeps its request
//! id across its retries: the state machine answers a repeat with the first result.

mod connect;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use crate::proto::admin::StatusReply;
use crate::proto::admin::admin_client::AdminClient;
use crate::proto::chat as pb;

pub use connect::Link;

/// A failed request: its gRPC code and one line for a person.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ClientError {
    pub code: Code,
    pub message: String,
}

impl ClientError {
    /// The code's name as the scenario language writes it (`unavailable`, ...).
    pub fn code_name(&self) -> &'static str {
        match self.code {
            Code::InvalidArgument => "invalid_argument",
            Code::AlreadyExists => "already_exists",
            Code::NotFound => "not_found",
            Code::Unauthenticated => "unauthenticated",
            Code::PermissionDenied => "permission_denied",
            Code::FailedPrecondition => "failed_precondition",
            Code::Unavailable | Code::DeadlineExceeded => "unavailable",
            _ => "internal",
        }
    }

    fn from_status(s: &Status) -> ClientError {
        ClientError {
            code: s.code(),
            message: s.message().to_string(),
        }
    }
}

/// How long to keep trying.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// The whole request, retries included.
    pub deadline: Duration,
    /// One attempt on one node (a paused node accepts connections but never answers).
    pub attempt: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            deadline: Duration::from_secs(10),
            attempt: Duration::from_secs(2),
        }
    }
}

pub struct Client {
    endpoints: Vec<String>,
    /// The index in `endpoints` to try first (the leader, when known).
    current: usize,
    links: Vec<Option<Link>>,
    client_id: u64,
    seq: u64,
    pub timeouts: Timeouts,
    rng: crate::raft::Rng,
    /// The log index the last write committed at (from the `raft-index` metadata), for
    /// the lab's check that every acknowledged write is in the log.
    pub last_index: Option<u64>,
}

/// Clients of several nodes' admin services (status, membership, faults), one per address,
/// connected on first use: the lab's and the benchmark's view of their nodes.
#[derive(Default)]
pub struct Admins(BTreeMap<String, AdminClient<Channel>>);

impl Admins {
    /// The admin client of the node at `address` (a supervised node's `127.0.0.1:PORT`).
    pub fn get(&mut self, address: &str) -> AdminClient<Channel> {
        self.0
            .entry(address.to_string())
            .or_insert_with(|| {
                let channel = Endpoint::from_shared(format!("http://{address}"))
                    .expect("a supervised node listens on HOST:PORT")
                    .connect_timeout(Duration::from_millis(300))
                    .connect_lazy();
                AdminClient::new(channel)
            })
            .clone()
    }

    /// The node's status, or None if it does not answer within half a second (down,
    /// paused, or still starting).
    pub async fn status(&mut self, address: &str) -> Option<StatusReply> {
        let mut admin = self.get(address);
        let call = admin.status(crate::proto::admin::StatusRequest {});
        match tokio::time::timeout(Duration::from_millis(500), call).await {
            Ok(Ok(reply)) => Some(reply.into_inner()),
            _ => None,
        }
    }
}

/// The longest pause between two rounds of attempts.
const MAX_BACKOFF: Duration = Duration::from_millis(100);

fn index_of(metadata: &tonic::metadata::MetadataMap) -> Option<u64> {
    metadata
        .get(crate::proto::metadata::INDEX)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    u64::from_le_bytes(b)
}

impl Client {
    pub fn new(endpoints: Vec<String>) -> Client {
        let n = endpoints.len();
        Client {
            endpoints,
            current: 0,
            links: vec![None; n],
            client_id: random_u64() | 1,
            seq: 0,
            timeouts: Timeouts::default(),
            rng: crate::raft::Rng::new(random_u64()),
            last_index: None,
        }
    }

    /// This client's id, which every write it sends carries.
    pub fn client_id(&self) -> u64 {
        self.client_id
    }

    /// The sequence number of the last write this client sent.
    pub fn last_seq(&self) -> u64 {
        self.seq
    }

    /// Sends the next request to `address` first (adding it to the endpoints if new).
    pub fn prefer(&mut self, address: &str) {
        self.current = match self.endpoints.iter().position(|e| e == address) {
            Some(i) => i,
            None => {
                self.endpoints.push(address.to_string());
                self.links.push(None);
                self.endpoints.len() - 1
            }
        };
    }

    /// The connection to endpoint `i`: the open one, or a new one if it closed.
    async fn link(&mut self, i: usize) -> Result<Link, Status> {
        if let Some(link) = &self.links[i]
            && !link.is_closed()
        {
            return Ok(link.clone());
        }
        self.links[i] = None;
        let link = Link::open(&self.endpoints[i]).await?;
        self.links[i] = Some(link.clone());
        Ok(link)
    }

    /// A fresh request id for a write (kept by the caller across its retries).
    pub fn next_id(&mut self) -> pb::RequestId {
        self.seq += 1;
        pb::RequestId {
            client_id: self.client_id,
            seq: self.seq,
        }
    }

    /// Runs `op` until it succeeds, fails for good, or the deadline passes.
    pub async fn call<T, F, Fut>(&mut self, mut op: F) -> Result<T, ClientError>
    where
        F: FnMut(Link) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, Status>>,
    {
        self.last_index = None;
        let started = Instant::now();
        let mut backoff = Duration::from_millis(10);
        let mut last = ClientError {
            code: Code::Unavailable,
            message: "no node answered".into(),
        };
        // What a node said beats what the network did: "no quorum" from a live node tells
        // more than a refused connection to a dead one.
        let mut said: Option<ClientError> = None;
        // A round is one try of every endpoint; if each node that answered in it said it
        // has no quorum, retrying cannot help until the cluster heals: say so now.
        let (mut tried, mut no_quorum, mut other_answer) = (0, 0, false);
        loop {
            let left = self.timeouts.deadline.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Err(ClientError {
                    code: Code::Unavailable,
                    message: format!(
                        "no answer within {:.1}s: {}",
                        self.timeouts.deadline.as_secs_f64(),
                        said.as_ref().unwrap_or(&last).message
                    ),
                });
            }
            let attempt = self.timeouts.attempt.min(left);
            let mut timed_out = false;
            let current = self.current;
            let tried_once = async {
                let link = self.link(current).await?;
                op(link).await
            };
            let status = match tokio::time::timeout(attempt, tried_once).await {
                Ok(Ok(reply)) => {
                    self.last_index = index_of(reply.metadata());
                    return Ok(reply.into_inner());
                }
                Ok(Err(status)) => {
                    self.last_index = index_of(status.metadata());
                    status
                }
                Err(_) => {
                    timed_out = true;
                    Status::unavailable(format!(
                        "{} did not answer within {:.1}s",
                        self.endpoints[self.current],
                        attempt.as_secs_f64()
                    ))
                }
            };
            if !matches!(
                status.code(),
                Code::Unavailable | Code::DeadlineExceeded | Code::Unknown | Code::Cancelled
            ) {
                return Err(ClientError::from_status(&status));
            }
            last = ClientError::from_status(&status);
            if std::error::Error::source(&status).is_none() && !timed_out {
                said = Some(last.clone());
                if status
                    .metadata()
                    .contains_key(crate::proto::metadata::NO_QUORUM)
                {
                    no_quorum += 1;
                } else {
                    other_answer = true;
                }
            }
            tried += 1;
            let round_over = tried >= self.endpoints.len();
            if round_over {
                if no_quorum > 0 && !other_answer {
                    return Err(said.unwrap_or(last));
                }
                (tried, no_quorum, other_answer) = (0, 0, false);
            }
            match status
                .metadata()
                .get(crate::proto::metadata::LEADER)
                .and_then(|v| v.to_str().ok())
            {
                Some(leader) if leader != self.endpoints[self.current] => {
                    let leader = leader.to_string();
                    self.prefer(&leader); // a redirect: go there next
                }
                _ => self.current = (self.current + 1) % self.endpoints.len(),
            }
            if !round_over {
                continue; // a dead node refuses at once: try the next without waiting
            }
            // Every endpoint was tried: back off before the next round. Jitter spreads the
            // retries of many clients after a failover.
            let jitter = self.rng.range(0, backoff.as_millis() as u64 + 1);
            tokio::time::sleep(Duration::from_millis(jitter) + backoff / 2).await;
            // Capped low: an election takes a few hundred ms, and a client that sleeps long
            // past it only adds to the outage it saw.
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    pub async fn register(
        &mut self,
        user: &str,
        password: &str,
    ) -> Result<pb::LoginReply, ClientError> {
        let req = pb::Credentials {
            id: Some(self.next_id()),
            user: user.into(),
            password: password.into(),
        };
        self.call(|c| {
            let req = req.clone();
            async move { c.chat().register(req).await }
        })
        .await
    }

    pub async fn login(
        &mut self,
        user: &str,
        password: &str,
    ) -> Result<pb::LoginReply, ClientError> {
        let req = pb::Credentials {
            id: Some(self.next_id()),
            user: user.into(),
            password: password.into(),
        };
        self.call(|c| {
            let req = req.clone();
            async move { c.chat().login(req).await }
        })
        .await
    }

    fn session(&mut self, user: &str, token: &str) -> pb::Session {
        pb::Session {
            id: Some(self.next_id()),
            user: user.into(),
            token: token.into(),
        }
    }

    pub async fn logout(&mut self, user: &str, token: &str) -> Result<(), ClientError> {
        let req = self.session(user, token);
        self.call(|c| {
            let req = req.clone();
            async move { c.chat().logout(req).await.map(|r| r.map(|_| ())) }
        })
        .await
    }

    pub async fn check_username(&mut self, user: &str) -> Result<bool, ClientError> {
        let req = pb::CheckUsernameRequest { user: user.into() };
        self.call(|c| {
            let req = req.clone();
            async move {
                c.chat()
                    .check_username(req)
                    .await
                    .map(|r| r.map(|x| x.exists))
            }
        })
        .await
    }

    pub async fn list_accounts(
        &mut self,
        pattern: &str,
        after: &str,
        limit: u32,
    ) -> Result<Vec<String>, ClientError> {
        let req = pb::ListAccountsRequest {
            pattern: pattern.into(),
            after: after.into(),
            limit,
        };
        self.call(|c| {
            let req = req.clone();
            async move {
                c.chat()
                    .list_accounts(req)
                    .await
                    .map(|r| r.map(|x| x.users))
            }
        })
        .await
    }

    pub async fn send(
        &mut self,
        user: &str,
        token: &str,
        to: &str,
        text: &str,
    ) -> Result<pb::SendReply, ClientError> {
        let req = pb::SendRequest {
            session: Some(self.session(user, token)),
            to: to.into(),
            text: text.into(),
        };
        self.call(|c| {
            let req = req.clone();
            async move { c.chat().send(req).await }
        })
        .await
    }

    pub async fn read(
        &mut self,
        user: &str,
        token: &str,
        with: &str,
        after: u64,
        limit: u32,
    ) -> Result<Vec<pb::ChatMessage>, ClientError> {
        let req = pb::ReadRequest {
            session: Some(self.session(user, token)),
            with: with.into(),
            after,
            limit,
        };
        self.call(|c| {
            let req = req.clone();
            async move {
                c.chat()
                    .read_messages(req)
                    .await
                    .map(|r| r.map(|x| x.messages))
            }
        })
        .await
    }

    pub async fn delete_messages(
        &mut self,
        user: &str,
        token: &str,
        ids: Vec<u64>,
        all: bool,
    ) -> Result<u64, ClientError> {
        let req = pb::DeleteMessagesRequest {
            session: Some(self.session(user, token)),
            ids,
            all,
        };
        self.call(|c| {
            let req = req.clone();
            async move {
                c.chat()
                    .delete_messages(req)
                    .await
                    .map(|r| r.map(|x| x.deleted))
            }
        })
        .await
    }

    pub async fn delete_account(&mut self, user: &str, token: &str) -> Result<(), ClientError> {
        let req = self.session(user, token);
        self.call(|c| {
            let req = req.clone();
            async move { c.chat().delete_account(req).await.map(|r| r.map(|_| ())) }
        })
        .await
    }

    /// Opens a message stream from whichever node answers, resuming after `after`.
    pub async fn subscribe(
        &mut self,
        user: &str,
        token: &str,
        after: u64,
    ) -> Result<tonic::Streaming<pb::ChatMessage>, ClientError> {
        let req = pb::SubscribeRequest {
            user: user.into(),
            token: token.into(),
            after,
        };
        self.call(|c| {
            let req = req.clone();
            async move { c.chat().subscribe(req).await }
        })
        .await
    }

    /// Follows a user's messages, giving each to `on_message` as it arrives. When the node
    /// serving the stream goes away, the stream resumes on another after the last message
    /// seen. Returns only with a failure: the session refused, or no node within the
    /// deadline.
    pub async fn follow(
        &mut self,
        user: &str,
        token: &str,
        mut on_message: impl FnMut(&pb::ChatMessage),
    ) -> ClientError {
        let mut after = 0;
        loop {
            let mut stream = match self.subscribe(user, token, after).await {
                Ok(stream) => stream,
                Err(e) => return e,
            };
            loop {
                match stream.message().await {
                    Ok(Some(m)) => {
                        after = m.id;
                        on_message(&m);
                    }
                    Ok(None) => break,
                    Err(s) if s.code() == Code::Unauthenticated => {
                        return ClientError::from_status(&s);
                    }
                    Err(_) => break,
                }
            }
            // The node went away: the next subscribe tries the others.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The status of the node at endpoint `i` (for the lab and tests).
    pub async fn status_of(
        &mut self,
        i: usize,
    ) -> Result<crate::proto::admin::StatusReply, ClientError> {
        let attempt = self.timeouts.attempt;
        let call = async {
            let mut admin = self.link(i).await?.admin();
            admin.status(crate::proto::admin::StatusRequest {}).await
        };
        match tokio::time::timeout(attempt, call).await {
            Ok(Ok(r)) => Ok(r.into_inner()),
            Ok(Err(s)) => Err(ClientError::from_status(&s)),
            Err(_) => Err(ClientError {
                code: Code::Unavailable,
                message: format!("{} did not answer", self.endpoints[i]),
            }),
        }
    }
}
