//! The command a log entry carries, in its envelope: who sent it (client id and sequence
//! number, for exactly-once) and when (chosen by the proposing server).

use super::cmd::{DeleteAccount, DeleteMessages, Login, Logout, Read, Register, Send};
use super::reply::ChatError;
use crate::encoding::{Reader, put_u64};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// A random id per client; 0 means "no deduplication".
    pub client_id: u64,
    /// Increases by one with each request of that client.
    pub seq: u64,
    /// Wall-clock time at the proposing server, in ms since the Unix epoch.
    pub time_ms: u64,
    pub command: Command,
}

/// The dispatch enum: one variant per command, each in its own file under `cmd/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Register(Register),
    Login(Login),
    Logout(Logout),
    Send(Send),
    Read(Read),
    DeleteMessages(DeleteMessages),
    DeleteAccount(DeleteAccount),
}

impl Command {
    /// Checks what can be checked without the state (limits), before proposing.
    pub fn validate(&self) -> Result<(), ChatError> {
        match self {
            Command::Register(c) => c.validate(),
            Command::Login(c) => c.validate(),
            Command::Logout(c) => c.validate(),
            Command::Send(c) => c.validate(),
            Command::Read(c) => c.validate(),
            Command::DeleteMessages(c) => c.validate(),
            Command::DeleteAccount(c) => c.validate(),
        }
    }

    fn tag(&self) -> u8 {
        match self {
            Command::Register(_) => 1,
            Command::Login(_) => 2,
            Command::Logout(_) => 3,
            Command::Send(_) => 4,
            Command::Read(_) => 5,
            Command::DeleteMessages(_) => 6,
            Command::DeleteAccount(_) => 7,
        }
    }
}

impl Envelope {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_u64(&mut out, self.client_id);
        put_u64(&mut out, self.seq);
        put_u64(&mut out, self.time_ms);
        out.push(self.command.tag());
        match &self.command {
            Command::Register(c) => c.encode(&mut out),
            Command::Login(c) => c.encode(&mut out),
            Command::Logout(c) => c.encode(&mut out),
            Command::Send(c) => c.encode(&mut out),
            Command::Read(c) => c.encode(&mut out),
            Command::DeleteMessages(c) => c.encode(&mut out),
            Command::DeleteAccount(c) => c.encode(&mut out),
        }
        out
    }

    pub fn decode(data: &[u8]) -> Result<Envelope, String> {
        let mut r = Reader::new(data);
        let client_id = r.u64("client id")?;
        let seq = r.u64("sequence number")?;
        let time_ms = r.u64("time")?;
        let command = match r.u8("command")? {
            1 => Command::Register(Register::decode(&mut r)?),
            2 => Command::Login(Login::decode(&mut r)?),
            3 => Command::Logout(Logout::decode(&mut r)?),
            4 => Command::Send(Send::decode(&mut r)?),
            5 => Command::Read(Read::decode(&mut r)?),
            6 => Command::DeleteMessages(DeleteMessages::decode(&mut r)?),
            7 => Command::DeleteAccount(DeleteAccount::decode(&mut r)?),
            t => return Err(format!("unknown command {t}")),
        };
        r.finish("command")?;
        Ok(Envelope {
            client_id,
            seq,
            time_ms,
            command,
        })
    }
}
