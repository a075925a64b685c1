//! Send a message to another user, online or not.

use crate::chat::keys::Message;
use crate::chat::state::{Ctx, Fail};
use crate::chat::{ChatError, Reply, Table, validate};
use crate::encoding::{Reader, put_bytes};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Send {
    pub user: String,
    pub token: String,
    pub to: String,
    pub text: String,
}

impl Send {
    pub fn validate(&self) -> Result<(), ChatError> {
        validate::username("user", &self.user)?;
        validate::username("to", &self.to)?;
        validate::text(&self.text)
    }

    pub fn apply(&self, cx: &mut Ctx<'_>) -> Result<Reply, Fail> {
        cx.authenticate(&self.user, &self.token)?;
        if cx.store.get(Table::Accounts, self.to.as_bytes())?.is_none() {
            return Err(ChatError::NotFound(format!("to: no user named {}", self.to)).into());
        }
        let message = Message {
            id: cx.index,
            from: self.user.clone(),
            to: self.to.clone(),
            text: self.text.clone(),
            time_ms: cx.time_ms,
            read: false,
        };
        cx.store_message(&message)?;
        Ok(Reply::Sent {
            id: message.id,
            time_ms: message.time_ms,
        })
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        put_bytes(out, self.user.as_bytes());
        put_bytes(out, self.token.as_bytes());
        put_bytes(out, self.to.as_bytes());
        put_bytes(out, self.text.as_bytes());
    }

    pub fn decode(r: &mut Reader<'_>) -> Result<Send, String> {
        Ok(Send {
            user: r.string("user")?,
            token: r.string("token")?,
            to: r.string("to")?,
            text: r.string("text")?,
        })
    }
}
