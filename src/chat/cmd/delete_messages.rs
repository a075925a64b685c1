//! Delete some of one's messages (sent or received) by id, or all of them.

use crate::chat::keys;
use crate::chat::state::{Ctx, Fail};
use crate::chat::{ChatError, Reply, Table, validate};
use crate::encoding::{Reader, put_bytes, put_u32, put_u64};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeleteMessages {
    pub user: String,
    pub token: String,
    pub ids: Vec<u64>,
    pub all: bool,
}

impl DeleteMessages {
    pub fn validate(&self) -> Result<(), ChatError> {
        validate::username("user", &self.user)?;
        if self.all != self.ids.is_empty() {
            let why = "ids: give message ids, or all, but not both";
            return Err(ChatError::InvalidArgument(why.into()));
        }
        if self.ids.len() > validate::MAX_PAGE as usize {
            let why = format!("ids: at most {} at a time", validate::MAX_PAGE);
            return Err(ChatError::InvalidArgument(why));
        }
        Ok(())
    }

    pub fn apply(&self, cx: &mut Ctx<'_>) -> Result<Reply, Fail> {
        cx.authenticate(&self.user, &self.token)?;
        let ids: Vec<u64> = if self.all {
            let prefix = keys::user_prefix(&self.user);
            cx.store
                .scan(Table::UserMessages, &prefix, &prefix, usize::MAX)?
                .iter()
                .map(|(k, _)| keys::trailing_id(k))
                .collect()
        } else {
            self.ids.clone()
        };
        let mut doomed = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(m) = cx.find_message(id)? else {
                return Err(ChatError::NotFound(format!("ids: no message {id}")).into());
            };
            if m.from != self.user && m.to != self.user {
                let why = format!("ids: message {id} is not yours");
                return Err(ChatError::PermissionDenied(why).into());
            }
            doomed.push(m);
        }
        for m in &doomed {
            cx.remove_message(m)?;
        }
        Ok(Reply::Deleted {
            count: doomed.len() as u64,
        })
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        put_bytes(out, self.user.as_bytes());
        put_bytes(out, self.token.as_bytes());
        out.push(u8::from(self.all));
        put_u32(out, self.ids.len() as u32);
        for id in &self.ids {
            put_u64(out, *id);
        }
    }

    pub fn decode(r: &mut Reader<'_>) -> Result<DeleteMessages, String> {
        let user = r.string("user")?;
        let token = r.string("token")?;
        let all = r.u8("all")? != 0;
        let n = r.u32("id count")?;
        let ids = (0..n).map(|_| r.u64("id")).collect::<Result<_, _>>()?;
        Ok(DeleteMessages {
            user,
            token,
            ids,
            all,
        })
    }
}
