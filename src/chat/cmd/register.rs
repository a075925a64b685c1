//! Create an account and log it in.

use crate::chat::keys::Account;
use crate::chat::state::{Ctx, Fail};
use crate::chat::{ChatError, Reply, Table, validate};
use crate::encoding::{Reader, put_bytes};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Register {
    pub user: String,
    /// argon2id PHC string, salted, made by the proposing server.
    pub password_hash: String,
    /// The session token for the new login, chosen by the proposing server.
    pub token: String,
}

impl Register {
    pub fn validate(&self) -> Result<(), ChatError> {
        validate::username("user", &self.user)
    }

    pub fn apply(&self, cx: &mut Ctx<'_>) -> Result<Reply, Fail> {
        if cx
            .store
            .get(Table::Accounts, self.user.as_bytes())?
            .is_some()
        {
            return Err(ChatError::AlreadyExists(format!(
                "user: the username {} is taken",
                self.user
            ))
            .into());
        }
        let account = Account {
            password_hash: self.password_hash.clone(),
            created_ms: cx.time_ms,
        };
        cx.store
            .put(Table::Accounts, self.user.as_bytes(), &account.encode())?;
        cx.open_session(&self.user, &self.token)?;
        Ok(Reply::Registered {
            token: self.token.clone(),
        })
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        put_bytes(out, self.user.as_bytes());
        put_bytes(out, self.password_hash.as_bytes());
        put_bytes(out, self.token.as_bytes());
    }

    pub fn decode(r: &mut Reader<'_>) -> Result<Register, String> {
        Ok(Register {
            user: r.string("user")?,
            password_hash: r.string("password hash")?,
            token: r.string("token")?,
        })
    }
}
