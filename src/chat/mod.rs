//! The chat service's replicated state machine: accounts, sessions and messages.
//!
//! It is pure: [`apply`] takes a committed log entry's bytes and changes tables through the
//! small [`Store`] interface, which `storage` implements over the on-disk database and
//! [`MemoryStore`] implements in memory. Applying is deterministic on every replica:
//! whatever varies (password hashes and salts, session tokens, times) is chosen once when
//! a request is proposed and travels in the entry, and message ids are log indexes.
//!
//! Every write carries a client id and a sequence number ([`Envelope`]); the state machine
//! keeps each client's last result, so a retry after a leader crash is applied once and
//! answered with the first result.
//!
//! It does not hash or check passwords (the server does, before proposing, so that the
//! slow hash runs once), stream messages (the server does, from [`query`]), or keep time.

pub mod cmd;
mod command;
mod keys;
mod memory;
pub mod query;
mod reply;
mod state;
pub mod validate;

#[cfg(test)]
mod tests;

pub use command::{Command, Envelope};
pub use keys::{Account, Message};
pub use memory::MemoryStore;
pub use reply::{ChatError, Outcome, Reply};
pub use state::apply;

/// The tables of the chat state. Keys and values are bytes encoded by `keys`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Table {
    /// username -> account
    Accounts,
    /// token -> username
    Sessions,
    /// username \0 token -> ()
    UserSessions,
    /// id -> message
    Messages,
    /// username \0 id -> () for every message a user sent or received
    UserMessages,
    /// recipient \0 id -> () for every unread message
    Unread,
    /// a \0 b \0 id -> () with a <= b, for conversations
    Conversations,
    /// client id -> last sequence number and its outcome
    Clients,
}

impl Table {
    pub const ALL: [Table; 8] = [
        Table::Accounts,
        Table::Sessions,
        Table::UserSessions,
        Table::Messages,
        Table::UserMessages,
        Table::Unread,
        Table::Conversations,
        Table::Clients,
    ];

    /// Whether the table is an index that follows from the messages table alone (see
    /// [`each_index_key_of`]). A store may keep such a table in memory and rebuild it from the
    /// messages when it opens, rather than write it to disk with every message.
    pub fn is_derived(self) -> bool {
        matches!(
            self,
            Table::UserMessages | Table::Unread | Table::Conversations
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            Table::Accounts => "accounts",
            Table::Sessions => "sessions",
            Table::UserSessions => "user_sessions",
            Table::Messages => "messages",
            Table::UserMessages => "user_messages",
            Table::Unread => "unread",
            Table::Conversations => "conversations",
            Table::Clients => "clients",
        }
    }
}

/// Calls `f` with each row of the derived tables that a row of the messages table
/// implies (its key; the value is empty).
pub fn each_index_key_of(message: &[u8], f: impl FnMut(Table, &[u8])) -> Result<(), StoreError> {
    let mut r = crate::encoding::Reader::new(message);
    let m = keys::MessageRef::decode(&mut r).map_err(|e| StoreError(format!("message: {e}")))?;
    keys::each_index_key(&m, f);
    Ok(())
}

/// A failure of the store under the state machine (a disk error): fatal for the node.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

/// Key-value pairs, in key order.
pub type Rows = Vec<(Vec<u8>, Vec<u8>)>;

/// Tables of bytes, the interface the state machine is written against.
pub trait Store {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Entries whose key starts with `prefix` and is at least `from`, in key order, at
    /// most `limit` of them.
    fn scan(
        &self,
        table: Table,
        prefix: &[u8],
        from: &[u8],
        limit: usize,
    ) -> Result<Rows, StoreError>;
    fn put(&mut self, table: Table, key: &[u8], value: &[u8]) -> Result<(), StoreError>;
    fn delete(&mut self, table: Table, key: &[u8]) -> Result<(), StoreError>;
}
