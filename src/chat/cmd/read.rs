//! Read messages: the unread ones, or one conversation, a page at a time. Reading marks
//! the messages addressed to the reader as read, which is why it goes through the log.

use crate::chat::keys;
use crate::chat::state::{Ctx, Fail};
use crate::chat::{ChatError, Reply, Table, validate};
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
        cx.authenticate(&self.user, &self.token)?;
        let limit = self.limit as usize;
        let after = keys::id_key(self.after.saturating_add(1));
        let (table, prefix) = if self.with.is_empty() {
            (Table::Unread, keys::user_prefix(&self.user))
        } else {
            if cx
                .store
                .get(Table::Accounts, self.with.as_bytes())?
                .is_none()
            {
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
        for (key, _) in cx.store.scan(table, &prefix, &from, limit)? {
            let id = keys::trailing_id(&key);
            messages.push(cx.message(id)?);
        }
        // The reply shows each message as it was before this read marked it, so the
        // reader can tell which ones are new.
        for m in messages.iter().filter(|m| m.to == self.user && !m.read) {
            cx.mark_read(&mut m.clone())?;
        }
        Ok(Reply::Messages(messages))
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
