//! How chat records are laid out as keys and values. Usernames cannot hold a zero byte
//! (see `validate`), so `\0` separates the parts of composite keys; ids are big-endian so
//! that keys sort in id order.

use super::Table;
use crate::encoding::{Reader, put_bytes, put_u64};

pub const SEP: u8 = 0;

/// A stored account. The hash is a PHC string (argon2id), made by the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub password_hash: String,
    pub created_ms: u64,
}

/// A stored message; its id is the index of the log entry that sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub id: u64,
    pub from: String,
    pub to: String,
    pub text: String,
    pub time_ms: u64,
    pub read: bool,
}

/// A stored message read in place, without copying or checking its strings: what
/// rebuilding the indexes of a million messages needs, at a fraction of the cost.
pub struct MessageRef<'a> {
    pub id: u64,
    pub from: &'a [u8],
    pub to: &'a [u8],
    pub text: &'a [u8],
    pub time_ms: u64,
    pub read: bool,
}

impl<'a> MessageRef<'a> {
    pub fn decode(r: &mut Reader<'a>) -> Result<MessageRef<'a>, String> {
        Ok(MessageRef {
            id: r.u64("message id")?,
            from: r.bytes("sender")?,
            to: r.bytes("recipient")?,
            text: r.bytes("text")?,
            time_ms: r.u64("time")?,
            read: r.u8("read flag")? != 0,
        })
    }
}

impl Account {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_bytes(&mut out, self.password_hash.as_bytes());
        put_u64(&mut out, self.created_ms);
        out
    }

    pub fn decode(data: &[u8]) -> Result<Account, String> {
        let mut r = Reader::new(data);
        Ok(Account {
            password_hash: r.string("password hash")?,
            created_ms: r.u64("created time")?,
        })
    }
}

impl Message {
    pub fn encode(&self, out: &mut Vec<u8>) {
        put_u64(out, self.id);
        put_bytes(out, self.from.as_bytes());
        put_bytes(out, self.to.as_bytes());
        put_bytes(out, self.text.as_bytes());
        put_u64(out, self.time_ms);
        out.push(u8::from(self.read));
    }

    pub fn decode(r: &mut Reader<'_>) -> Result<Message, String> {
        let m = MessageRef::decode(r)?;
        let string = |bytes: &[u8], what: &str| {
            String::from_utf8(bytes.to_vec()).map_err(|_| format!("{what} is not UTF-8"))
        };
        Ok(Message {
            id: m.id,
            from: string(m.from, "sender")?,
            to: string(m.to, "recipient")?,
            text: string(m.text, "text")?,
            time_ms: m.time_ms,
            read: m.read,
        })
    }

    pub fn decode_one(data: &[u8]) -> Result<Message, String> {
        Message::decode(&mut Reader::new(data))
    }

    /// The other party, seen from `user`.
    pub fn peer(&self, user: &str) -> &str {
        if self.from == user {
            &self.to
        } else {
            &self.from
        }
    }
}

pub fn id_key(id: u64) -> [u8; 8] {
    id.to_be_bytes()
}

/// `user \0`: the prefix of a user's entries in a per-user index.
pub fn user_prefix(user: &str) -> Vec<u8> {
    let mut key = user.as_bytes().to_vec();
    key.push(SEP);
    key
}

/// `user \0 suffix`.
pub fn user_key(user: &str, suffix: &[u8]) -> Vec<u8> {
    let mut key = user_prefix(user);
    key.extend_from_slice(suffix);
    key
}

/// `a \0 b \0` with a <= b: the prefix of a conversation.
pub fn conversation_prefix(x: &str, y: &str) -> Vec<u8> {
    let (a, b) = if x <= y { (x, y) } else { (y, x) };
    let mut key = user_prefix(a);
    key.extend_from_slice(b.as_bytes());
    key.push(SEP);
    key
}

/// Calls `f` with each index row that a stored message implies, a key with an empty
/// value: its id under the sender and under the recipient, in its conversation, and among
/// the recipient's unread messages until it is read. Writing a message and rebuilding the
/// indexes from the messages table both go through here, so the two cannot disagree.
pub fn each_index_key(m: &MessageRef<'_>, mut f: impl FnMut(Table, &[u8])) {
    let id = id_key(m.id);
    let mut key = Vec::with_capacity(m.from.len() + m.to.len() + 10);
    let mut row = |table: Table, names: &[&[u8]]| {
        key.clear();
        for name in names {
            key.extend_from_slice(name);
            key.push(SEP);
        }
        key.extend_from_slice(&id);
        f(table, &key);
    };
    row(Table::UserMessages, &[m.from]);
    row(Table::UserMessages, &[m.to]);
    let pair = if m.from <= m.to {
        [m.from, m.to]
    } else {
        [m.to, m.from]
    };
    row(Table::Conversations, &pair);
    if !m.read {
        row(Table::Unread, &[m.to]);
    }
}

/// [`each_index_key`] of a message, collected.
pub fn index_keys(m: &Message) -> Vec<(Table, Vec<u8>)> {
    let m = MessageRef {
        id: m.id,
        from: m.from.as_bytes(),
        to: m.to.as_bytes(),
        text: m.text.as_bytes(),
        time_ms: m.time_ms,
        read: m.read,
    };
    let mut rows = Vec::with_capacity(4);
    each_index_key(&m, |table, key| rows.push((table, key.to_vec())));
    rows
}

/// The id at the end of an index key.
pub fn trailing_id(key: &[u8]) -> u64 {
    let tail: [u8; 8] = key[key.len() - 8..]
        .try_into()
        .expect("index keys end in an id");
    u64::from_be_bytes(tail)
}
