//! Read messages: the unread ones, or one conversation, a page at a time. Reading marks
//! the messages addressed to the reader as read, which is why it goes through the log.

use crate::chat::keys;
use crate::chat::keys::Message;
use crate::chat::state::{self, Ctx, Fail};
use crate::chat::{ChatError, Reply, Store, StoreError, Table, validate};
use crate::encoding::{Reader, put_bytes, put_u32, put_u64};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Read {
    pub user: String,
    pub token: String,
    /// One conversation, or (if empty) the unread messages.
    pub with: String,
    /// Only messages with a larger id (paging through a conversation).
    pub after: u64,
    pub limit: u32,
}

impl Read {
    pub fn validate(&self) -> Result<(), ChatError> {
        validate::username("user", &self.user)?;
        if !self.with.is_empty() {
            validate::username("with", &self.with)?;
        }
        validate::page(self.limit)
    }

    pub fn apply(&self, cx: &mut Ctx<'_>) -> Result<Reply, Fail> {
        let messages = self.page(&*cx.store)?;
        // The reply shows each message as it was before this read marked it, so the
        // reader can tell which ones are new.
        for m in messages.iter().filter(|m| self.marks(m)) {
            cx.mark_read(&mut m.clone())?;
        }
        Ok(Reply::Messages(messages))
    }

    /// What this read returns now, without marking anything.
    pub fn page(&self, store: &dyn Store) -> Result<Vec<Message>, Fail> {
        state::authenticate(store, &self.user, &self.token)?;
        let limit = self.limit as usize;
        let after = keys::id_key(self.after.saturating_add(1));
        let (table, prefix) = if self.with.is_empty() {
            (Table::Unread, keys::user_prefix(&self.user))
        } else {
            if store.get(Table::Accounts, self.with.as_bytes())?.is_none() {
                let why = format!("with: no user named {}", self.with);
                return Err(ChatError::NotFound(why).into());
            }
            (
                Table::Conversations,
                keys::conversation_prefix(&self.user, &self.with),
            )
        };
        let mut from = prefix.clone();
        from.extend_from_slice(&after);
        let mut messages = Vec::new();
        for (key, _) in store.scan(table, &prefix, &from, limit)? {
            let id = keys::trailing_id(&key);
            messages.push(state::message(store, id)?);
        }
        Ok(messages)
    }

    /// What this read returns now, for a query outside the log: a refusal is the inner
    /// error, a failing store the outer one.
    pub fn peek(&self, store: &dyn Store) -> Result<Result<Vec<Message>, ChatError>, StoreError> {
        match self.page(store) {
            Ok(messages) => Ok(Ok(messages)),
            Err(Fail::Chat(e)) => Ok(Err(e)),
            Err(Fail::Store(e)) => Err(e),
        }
    }

    /// Whether applying this read marks `m` (an unread message to the reader).
    pub fn marks(&self, m: &Message) -> bool {
        m.to == self.user && !m.read
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        put_bytes(out, self.user.as_bytes());
        put_bytes(out, self.token.as_bytes());
        put_bytes(out, self.with.as_bytes());
        put_u64(out, self.after);
        put_u32(out, self.limit);
    }

    pub fn decode(r: &mut Reader<'_>) -> Result<Read, String> {
        Ok(Read {
            user: r.string("user")?,
            token: r.string("token")?,
            with: r.string("with")?,
            after: r.u64("after")?,
            limit: r.u32("limit")?,
        })
    }
}
