//! The `raftchat` command line. Each subcommand is one job (see DESIGN.md); errors reach
//! the person as one line, never a panic.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "raftchat",
    version,
    about = "A chat service replicated with Raft, and a lab that proves it survives faults"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Show what a stopped node left in its data directory (never changes it).
    ///
    /// Prints the term and vote, the snapshot, the log's first and last entries, the
    /// applied index and the chat state, after verifying every checksum. A corrupt file
    /// is named with the byte offset where the damage starts, and the exit status is 1.
    Inspect {
        /// The node's data directory.
        dir: PathBuf,
        /// Also list every log entry after the snapshot.
        #[arg(long)]
        log: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Inspect { dir, log } => match raftchat::inspect::read(&dir) {
            Ok(report) => {
                print!("{}", raftchat::inspect::render(&report, log));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("raftchat inspect: {e}");
                ExitCode::from(1)
            }
        },
    }
}
