//! Open a session for an account whose password the proposing server has checked.

use crate::chat::state::{Ctx, Fail};
use crate::chat::{ChatError, Reply, Table, validate};
use crate::encoding::{Reader, put_bytes};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Login {
    pub user: String,
    pub token: String,
}

impl Login {
    pub fn validate(&self) -> Result<(), ChatError> {
        validate::username("user", &self.user)
    }

    pub fn apply(&self, cx: &mut Ctx<'_>) -> Result<Reply, Fail> {
        // The account may have gone between the password check and this entry.
        if cx
            .store
            .get(Table::Accounts, self.user.as_bytes())?
            .is_none()
        {
            return Err(ChatError::Unauthenticated("wrong username or password".into()).into());
        }
        cx.open_session(&self.user, &self.token)?;
        let unread = cx.unread_count(&self.user)?;
        Ok(Reply::LoggedIn {
            token: self.token.clone(),
            unread,
        })
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        put_bytes(out, self.user.as_bytes());
        put_bytes(out, self.token.as_bytes());
    }

    pub fn decode(r: &mut Reader<'_>) -> Result<Login, String> {
        Ok(Login {
            user: r.string("user")?,
            token: r.string("token")?,
        })
    }
}
