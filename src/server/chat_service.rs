//! The chat service: each request becomes a command proposed through Raft (writes) or a
//! query run after a ReadIndex (reads). Everything that varies (password hashes with their
//! salts, session tokens, times) is chosen here, once, and travels in the log entry.

use std::pin::Pin;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::{broadcast, mpsc};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::error::chat_status;
use super::handle::NodeHandle;
use crate::chat::cmd::{self, DeleteAccount, DeleteMessages, Login, Logout, Read, Register};
use crate::chat::{self, ChatError, Command, Envelope, Reply, query, validate};
use crate::proto::chat as pb;
use crate::proto::chat::chat_server::Chat;

pub struct ChatService {
    pub node: NodeHandle,
    pub passwords: super::passwords::Passwords,
}

const DEFAULT_PAGE: u32 = 100;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn new_token() -> Result<String, Status> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| Status::internal(format!("no randomness: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn invalid(e: ChatError) -> Status {
    chat_status(e)
}

fn page(limit: u32) -> Result<u32, Status> {
    let limit = if limit == 0 { DEFAULT_PAGE } else { limit };
    validate::page(limit).map_err(invalid)?;
    Ok(limit)
}

fn envelope(id: Option<pb::RequestId>, command: Command) -> Result<Vec<u8>, Status> {
    command.validate().map_err(invalid)?;
    let id = id.unwrap_or_default();
    Ok(Envelope {
        client_id: id.client_id,
        seq: id.seq,
        time_ms: now_ms(),
        command,
    }
    .encode())
}

fn session(s: Option<pb::Session>) -> Result<pb::Session, Status> {
    s.ok_or_else(|| Status::invalid_argument("session: missing"))
}

fn message_to_wire(m: chat::Message) -> pb::ChatMessage {
    pb::ChatMessage {
        id: m.id,
        from: m.from,
        to: m.to,
        text: m.text,
        time_ms: m.time_ms,
        read: m.read,
    }
}

/// The response metadata key that carries the log index a write committed at.
pub const INDEX_KEY: &str = crate::proto::metadata::INDEX;

impl ChatService {
    /// Proposes a command; returns its reply and the log index it committed at.
    async fn run(&self, data: Vec<u8>) -> Result<(Reply, u64), Status> {
        let (outcome, index) = self.node.propose(data).await?;
        let reply = outcome.map_err(|e| {
            let mut s = chat_status(e);
            s.metadata_mut().insert(INDEX_KEY, index_value(index));
            s
        })?;
        Ok((reply, index))
    }
}

/// A response that says which log index it committed at.
fn indexed<T>(reply: T, index: u64) -> Response<T> {
    let mut r = Response::new(reply);
    r.metadata_mut().insert(INDEX_KEY, index_value(index));
    r
}

/// The index as a header value that HPACK never puts in its table. Every reply carries a
/// new one, so indexing them would only fill the connection's table with values never
/// seen again, and h2 compares each new value with every one of them (a few percent of
/// the leader's CPU under load).
fn index_value(index: u64) -> tonic::metadata::MetadataValue<tonic::metadata::Ascii> {
    let mut v = tonic::metadata::MetadataValue::from(index);
    v.set_sensitive(true);
    v
}

type MessageStream = Pin<Box<dyn Stream<Item = Result<pb::ChatMessage, Status>> + Send>>;

#[tonic::async_trait]
impl Chat for ChatService {
    async fn register(
        &self,
        request: Request<pb::Credentials>,
    ) -> Result<Response<pb::LoginReply>, Status> {
        let r = request.into_inner();
        validate::username("user", &r.user).map_err(invalid)?;
        validate::password(&r.password).map_err(invalid)?;
        let password_hash = self.passwords.hash(r.password).await?;
        let token = new_token()?;
        let command = Command::Register(Register {
            user: r.user,
            password_hash,
            token,
        });
        let (reply, index) = self.run(envelope(r.id, command)?).await?;
        match reply {
            Reply::Registered { token } => Ok(indexed(pb::LoginReply { token, unread: 0 }, index)),
            other => Err(Status::internal(format!("unexpected reply {other:?}"))),
        }
    }

    async fn login(
        &self,
        request: Request<pb::Credentials>,
    ) -> Result<Response<pb::LoginReply>, Status> {
        let r = request.into_inner();
        validate::username("user", &r.user).map_err(invalid)?;
        validate::password(&r.password).map_err(invalid)?;
        let user = r.user.clone();
        let account = self
            .node
            .query(move |store| query::account(store, &user))
            .await?;
        let hash = account.map(|a| a.password_hash).unwrap_or_default();
        let matches = self.passwords.verify(r.password, hash).await?;
        if !matches {
            return Err(Status::unauthenticated("wrong username or password"));
        }
        let command = Command::Login(Login {
            user: r.user,
            token: new_token()?,
        });
        let (reply, index) = self.run(envelope(r.id, command)?).await?;
        match reply {
            Reply::LoggedIn { token, unread } => {
                Ok(indexed(pb::LoginReply { token, unread }, index))
            }
            other => Err(Status::internal(format!("unexpected reply {other:?}"))),
        }
    }

    async fn logout(&self, request: Request<pb::Session>) -> Result<Response<pb::Empty>, Status> {
        let s = request.into_inner();
        let command = Command::Logout(Logout {
            user: s.user,
            token: s.token,
        });
        let (_, index) = self.run(envelope(s.id, command)?).await?;
        Ok(indexed(pb::Empty {}, index))
    }

    async fn check_username(
        &self,
        request: Request<pb::CheckUsernameRequest>,
    ) -> Result<Response<pb::CheckUsernameReply>, Status> {
        let user = request.into_inner().user;
        validate::username("user", &user).map_err(invalid)?;
        let exists = self
            .node
            .query(move |store| query::user_exists(store, &user))
            .await?;
        Ok(Response::new(pb::CheckUsernameReply { exists }))
    }

    async fn list_accounts(
        &self,
        request: Request<pb::ListAccountsRequest>,
    ) -> Result<Response<pb::ListAccountsReply>, Status> {
        let r = request.into_inner();
        let limit = page(r.limit)? as usize;
        let pattern = if r.pattern.is_empty() {
            "*".to_string()
        } else {
            r.pattern
        };
        let users = self
            .node
            .query(move |store| query::list_accounts(store, &pattern, &r.after, limit))
            .await?;
        Ok(Response::new(pb::ListAccountsReply { users }))
    }

    async fn send(
        &self,
        request: Request<pb::SendRequest>,
    ) -> Result<Response<pb::SendReply>, Status> {
        let r = request.into_inner();
        let s = session(r.session)?;
        let command = Command::Send(cmd::Send {
            user: s.user,
            token: s.token,
            to: r.to,
            text: r.text,
        });
        let (reply, index) = self.run(envelope(s.id, command)?).await?;
        match reply {
            Reply::Sent { id, time_ms } => Ok(indexed(pb::SendReply { id, time_ms }, index)),
            other => Err(Status::internal(format!("unexpected reply {other:?}"))),
        }
    }

    async fn read_messages(
        &self,
        request: Request<pb::ReadRequest>,
    ) -> Result<Response<pb::ReadReply>, Status> {
        let r = request.into_inner();
        let s = session(r.session)?;
        let read = Read {
            user: s.user,
            token: s.token,
            with: r.with,
            after: r.after,
            limit: page(r.limit)?,
        };
        read.validate().map_err(chat_status)?;
        // Reading marks what it returns as read: a change, so it goes through the log. A
        // read that would mark nothing gets the same answer from a ReadIndex query, with no
        // log entry; that is what keeps reads cheap.
        let probe = read.clone();
        let peeked = self.node.query(move |store| probe.peek(store)).await?;
        match peeked {
            Err(e) => return Err(chat_status(e)),
            Ok(messages) if !messages.iter().any(|m| read.marks(m)) => {
                return Ok(Response::new(pb::ReadReply {
                    messages: messages.into_iter().map(message_to_wire).collect(),
                }));
            }
            Ok(_) => {}
        }
        let (reply, index) = self.run(envelope(s.id, Command::Read(read))?).await?;
        match reply {
            Reply::Messages(ms) => Ok(indexed(
                pb::ReadReply {
                    messages: ms.into_iter().map(message_to_wire).collect(),
                },
                index,
            )),
            other => Err(Status::internal(format!("unexpected reply {other:?}"))),
        }
    }

    async fn delete_messages(
        &self,
        request: Request<pb::DeleteMessagesRequest>,
    ) -> Result<Response<pb::DeleteMessagesReply>, Status> {
        let r = request.into_inner();
        let s = session(r.session)?;
        let command = Command::DeleteMessages(DeleteMessages {
            user: s.user,
            token: s.token,
            ids: r.ids,
            all: r.all,
        });
        let (reply, index) = self.run(envelope(s.id, command)?).await?;
        match reply {
            Reply::Deleted { count } => {
                Ok(indexed(pb::DeleteMessagesReply { deleted: count }, index))
            }
            other => Err(Status::internal(format!("unexpected reply {other:?}"))),
        }
    }

    async fn delete_account(
        &self,
        request: Request<pb::Session>,
    ) -> Result<Response<pb::Empty>, Status> {
        let s = request.into_inner();
        let command = Command::DeleteAccount(DeleteAccount {
            user: s.user,
            token: s.token,
        });
        let (_, index) = self.run(envelope(s.id, command)?).await?;
        Ok(indexed(pb::Empty {}, index))
    }

    type SubscribeStream = MessageStream;

    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let r = request.into_inner();
        validate::username("user", &r.user).map_err(invalid)?;
        let (user, token) = (r.user.clone(), r.token.clone());
        let owner = self
            .node
            .query(move |store| query::session_user(store, &token))
            .await?;
        match owner {
            None => return Err(Status::unauthenticated("not logged in (no such session)")),
            Some(owner) if owner != user => {
                return Err(Status::permission_denied(format!(
                    "this session does not belong to {user}"
                )));
            }
            Some(_) => {}
        }
        // Listen first, then catch up: a message applied in between is seen twice and
        // skipped by id, never missed.
        let live = self.node.subscribe();
        let (tx, rx) = mpsc::channel(256);
        let node = self.node.clone();
        tokio::spawn(forward(node, user, r.after, live, tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// How many missed messages one catch-up query fetches.
const CATCH_UP_PAGE: usize = 1000;

/// Feeds one subscriber: what it missed since `after`, then new messages as they apply.
/// Ends when the subscriber goes away.
async fn forward(
    node: NodeHandle,
    user: String,
    mut after: u64,
    mut live: broadcast::Receiver<chat::Message>,
    tx: mpsc::Sender<Result<pb::ChatMessage, Status>>,
) {
    if !catch_up(&node, &user, &mut after, &tx).await {
        return;
    }
    loop {
        let next = tokio::select! {
            next = live.recv() => next,
            _ = tx.closed() => return,
        };
        match next {
            Ok(m) if m.to == user && m.id > after => {
                after = m.id;
                if tx.send(Ok(message_to_wire(m))).await.is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(_)) => {
                if !catch_up(&node, &user, &mut after, &tx).await {
                    return;
                }
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Sends everything for `user` after `after`, page by page. False if the stream is over.
async fn catch_up(
    node: &NodeHandle,
    user: &str,
    after: &mut u64,
    tx: &mpsc::Sender<Result<pb::ChatMessage, Status>>,
) -> bool {
    loop {
        let (who, from) = (user.to_string(), *after);
        let page = node
            .query(move |store| query::messages_for(store, &who, from, CATCH_UP_PAGE))
            .await;
        let page = match page {
            Ok(page) => page,
            Err(status) => {
                let _ = tx.send(Err(status)).await;
                return false;
            }
        };
        let full = page.len() == CATCH_UP_PAGE;
        for m in page {
            *after = m.id;
            if tx.send(Ok(message_to_wire(m))).await.is_err() {
                return false;
            }
        }
        if !full {
            return true;
        }
    }
}
