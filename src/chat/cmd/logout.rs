//! End a session.

use crate::chat::keys;
use crate::chat::state::{Ctx, Fail};
use crate::chat::{ChatError, Reply, Table, validate};
use crate::encoding::{Reader, put_bytes};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Logout {
    pub user: String,
    pub token: String,
}

impl Logout {
    pub fn validate(&self) -> Result<(), ChatError> {
        validate::username("user", &self.user)
    }

    pub fn apply(&self, cx: &mut Ctx<'_>) -> Result<Reply, Fail> {
        cx.authenticate(&self.user, &self.token)?;
        cx.store.delete(Table::Sessions, self.token.as_bytes())?;
        let key = keys::user_key(&self.user, self.token.as_bytes());
        cx.store.delete(Table::UserSessions, &key)?;
        Ok(Reply::LoggedOut)
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        put_bytes(out, self.user.as_bytes());
        put_bytes(out, self.token.as_bytes());
    }

    pub fn decode(r: &mut Reader<'_>) -> Result<Logout, String> {
        Ok(Logout {
            user: r.string("user")?,
            token: r.string("token")?,
        })
    }
}
