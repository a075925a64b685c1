//! The command line's subcommands, each in its own file. Errors come back as one line for
//! the person at the terminal; `main` prints it and picks the exit status.

pub mod bench;
pub mod chat;
pub mod lab;
pub mod node;

/// A failure to report: the line to print and the exit status.
pub struct Failure {
    pub message: String,
    pub status: u8,
}

impl Failure {
    pub fn new(status: u8, message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            status,
        }
    }
}
