//! Applying a committed entry: decode it, deduplicate it by client, run its command.

use super::command::{Command, Envelope};
use super::keys::{self, Message};
use super::reply::{self, ChatError, Outcome};
use super::{Store, StoreError, Table};
use crate::encoding::{Reader, put_u64};

/// Why a command stopped: a refusal for the client, or a store failure for the node.
pub enum Fail {
    Chat(ChatError),
    Store(StoreError),
}

impl From<ChatError> for Fail {
    fn from(e: ChatError) -> Fail {
        Fail::Chat(e)
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Fail {
        Fail::Store(e)
    }
}

/// What a command sees while it applies: the store, and the entry's index and time.
pub struct Ctx<'a> {
    pub store: &'a mut dyn Store,
    pub index: u64,
    pub time_ms: u64,
}

/// Applies the command in a committed entry at `index`. A client's repeated request (same
/// client id and sequence number) is answered with the stored outcome and not applied
/// again. Only a store failure is an `Err`; every refusal is an `Outcome`.
pub fn apply(store: &mut dyn Store, index: u64, data: &[u8]) -> Result<Outcome, StoreError> {
    let envelope = match Envelope::decode(data) {
        Ok(e) => e,
        Err(why) => {
            return Ok(Err(ChatError::InvalidArgument(format!(
                "undecodable command at index {index}: {why}"
            ))));
        }
    };
    let client_key = envelope.client_id.to_be_bytes();
    if envelope.client_id != 0
        && let Some(stored) = store.get(Table::Clients, &client_key)?
    {
        let mut r = Reader::new(&stored);
        let seq = r.u64("sequence number").map_err(StoreError)?;
        if envelope.seq == seq {
            return reply::decode_outcome(&mut r).map_err(StoreError);
        }
        if envelope.seq < seq {
            return Ok(Err(ChatError::FailedPrecondition(format!(
                "request {} of this client was superseded by request {seq}",
                envelope.seq
            ))));
        }
    }
    let mut cx = Ctx {
        store,
        index,
        time_ms: envelope.time_ms,
    };
    let result = match envelope.command.validate() {
        Err(e) => Err(Fail::Chat(e)),
        Ok(()) => match &envelope.command {
            Command::Register(c) => c.apply(&mut cx),
            Command::Login(c) => c.apply(&mut cx),
            Command::Logout(c) => c.apply(&mut cx),
            Command::Send(c) => c.apply(&mut cx),
            Command::Read(c) => c.apply(&mut cx),
            Command::DeleteMessages(c) => c.apply(&mut cx),
            Command::DeleteAccount(c) => c.apply(&mut cx),
        },
    };
    let outcome = match result {
        Ok(reply) => Ok(reply),
        Err(Fail::Chat(e)) => Err(e),
        Err(Fail::Store(e)) => return Err(e),
    };
    if envelope.client_id != 0 {
        let mut stored = Vec::new();
        put_u64(&mut stored, envelope.seq);
        reply::encode_outcome(&outcome, &mut stored);
        cx.store.put(Table::Clients, &client_key, &stored)?;
    }
    Ok(outcome)
}

impl Ctx<'_> {
    /// The session token must be a live session of `user`.
    pub fn authenticate(&self, user: &str, token: &str) -> Result<(), Fail> {
        authenticate(&*self.store, user, token)
    }

    pub fn open_session(&mut self, user: &str, token: &str) -> Result<(), Fail> {
        if self.store.get(Table::Sessions, token.as_bytes())?.is_some() {
            return Err(ChatError::FailedPrecondition("session token reused".into()).into());
        }
        self.store
            .put(Table::Sessions, token.as_bytes(), user.as_bytes())?;
        let key = keys::user_key(user, token.as_bytes());
        self.store.put(Table::UserSessions, &key, &[])?;
        Ok(())
    }

    pub fn unread_count(&self, user: &str) -> Result<u64, Fail> {
        let prefix = keys::user_prefix(user);
        Ok(self
            .store
            .scan(Table::Unread, &prefix, &prefix, usize::MAX)?
            .len() as u64)
    }

    pub fn find_message(&self, id: u64) -> Result<Option<Message>, Fail> {
        find_message(&*self.store, id)
    }

    /// A message an index points at; its absence means the indexes are broken.
    pub fn message(&self, id: u64) -> Result<Message, Fail> {
        message(&*self.store, id)
    }

    pub fn store_message(&mut self, m: &Message) -> Result<(), Fail> {
        let mut data = Vec::new();
        m.encode(&mut data);
        self.store
            .put(Table::Messages, &keys::id_key(m.id), &data)?;
        for (table, key) in keys::index_keys(m) {
            self.store.put(table, &key, &[])?;
        }
        Ok(())
    }

    pub fn mark_read(&mut self, m: &mut Message) -> Result<(), Fail> {
        m.read = true;
        let id = keys::id_key(m.id);
        let mut data = Vec::new();
        m.encode(&mut data);
        self.store.put(Table::Messages, &id, &data)?;
        self.store
            .delete(Table::Unread, &keys::user_key(&m.to, &id))?;
        Ok(())
    }

    pub fn remove_message(&mut self, m: &Message) -> Result<(), Fail> {
        self.store.delete(Table::Messages, &keys::id_key(m.id))?;
        for (table, key) in keys::index_keys(m) {
            self.store.delete(table, &key)?;
        }
        Ok(())
    }
}

/// Checks that `token` is a session of `user`.
pub fn authenticate(store: &dyn Store, user: &str, token: &str) -> Result<(), Fail> {
    match store.get(Table::Sessions, token.as_bytes())? {
        None => Err(ChatError::Unauthenticated("not logged in (no such session)".into()).into()),
        Some(owner) if owner != user.as_bytes() => Err(ChatError::PermissionDenied(format!(
            "this session does not belong to {user}"
        ))
        .into()),
        Some(_) => Ok(()),
    }
}

pub fn find_message(store: &dyn Store, id: u64) -> Result<Option<Message>, Fail> {
    let Some(data) = store.get(Table::Messages, &keys::id_key(id))? else {
        return Ok(None);
    };
    Message::decode_one(&data)
        .map(Some)
        .map_err(|e| Fail::Store(StoreError(format!("message {id}: {e}"))))
}

/// A message an index points at; its absence means the indexes are broken.
pub fn message(store: &dyn Store, id: u64) -> Result<Message, Fail> {
    find_message(store, id)?.ok_or_else(|| {
        Fail::Store(StoreError(format!(
            "index names message {id}, which is missing"
        )))
    })
}
