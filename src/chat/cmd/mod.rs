//! One file per command: its fields and their encoding, its validation, and its effect.
//! Each `apply` checks everything it needs before it writes anything, so a refused command
//! leaves the state as it was.

mod delete_account;
mod delete_messages;
mod login;
mod logout;
mod read;
mod register;
mod send;

pub use delete_account::DeleteAccount;
pub use delete_messages::DeleteMessages;
pub use login::Login;
pub use logout::Logout;
pub use read::Read;
pub use register::Register;
pub use send::Send;
