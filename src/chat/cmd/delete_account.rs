//! Delete one's account, with its sessions and every message it sent or received.

use crate::chat::keys;
use crate::chat::state::{Ctx, Fail};
use crate::chat::{ChatError, Reply, Table, validate};
use crate::encoding::{Reader, put_bytes};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeleteAccount {
    pub user: String,
    pub token: String,
}

impl DeleteAccount {
    pub fn validate(&self) -> Result<(), ChatError> {
        validate::username("user", &self.user)
    }

    pub fn apply(&self, cx: &mut Ctx<'_>) -> Result<Reply, Fail> {
        cx.authenticate(&self.user, &self.token)?;
        let prefix = keys::user_prefix(&self.user);
        for (key, _) in cx
            .store
            .scan(Table::UserMessages, &prefix, &prefix, usize::MAX)?
        {
            let m = cx.message(keys::trailing_id(&key))?;
            cx.remove_message(&m)?;
        }
        for (key, _) in cx
            .store
            .scan(Table::UserSessions, &prefix, &prefix, usize::MAX)?
        {
            cx.store.delete(Table::Sessions, &key[prefix.len()..])?;
            cx.store.delete(Table::UserSessions, &key)?;
        }
        cx.store.delete(Table::Accounts, self.user.as_bytes())?;
        Ok(Reply::AccountDeleted)
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        put_bytes(out, self.user.as_bytes());
        put_bytes(out, self.token.as_bytes());
    }

    pub fn decode(r: &mut Reader<'_>) -> Result<DeleteAccount, String> {
        Ok(DeleteAccount {
            user: r.string("user")?,
            token: r.string("token")?,
        })
    }
}
