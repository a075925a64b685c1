//! The `raftchat` command line. Each subcommand is one job (see DESIGN.md); errors reach
//! the person as one line, never a panic.

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "raftchat",
    version,
    about = "A chat service replicated with Raft, and a lab that proves it survives faults",
    args_override_self = true
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run one cluster member: a Raft peer and a chat server on one gRPC port.
    ///
    /// Options may also come from a file: `--config FILE` with lines `key = value`
    /// (`id = n1`, `peer = n2=127.0.0.1:7002`, ...); the command line overrides it.
    Node(cli::node::NodeArgs),
    /// The chat client: register, login, send, read, list, delete, watch.
    Chat(cli::chat::ChatArgs),
    /// The lab: run scenarios against real node processes and check what they persisted.
    Lab(cli::lab::LabArgs),
    /// Measure: write and read throughput and latency, failover, recovery and memory, on
    /// clusters of real nodes started on loopback (fsync on, default settings).
    ///
    /// Prints a table and writes target/bench/bench.json and target/bench/failover.svg.
    Bench(cli::bench::BenchArgs),
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

/// Expands `node --config FILE` into the options the file holds, before the rest of the
/// command line (which therefore wins).
fn expand_config(args: Vec<String>) -> Result<Vec<String>, String> {
    let Some(at) = args.iter().position(|a| a == "--config") else {
        return Ok(args);
    };
    let path = args.get(at + 1).ok_or("--config needs a file")?.clone();
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    let mut from_file = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| format!("{path}:{}: expected `key = value`", n + 1))?;
        from_file.push(format!("--{}", key.trim().replace('_', "-")));
        from_file.push(value.trim().to_string());
    }
    let mut out = args[..at].to_vec();
    out.extend(from_file);
    out.extend_from_slice(&args[at + 2..]);
    Ok(out)
}

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = match expand_config(std::env::args().collect()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("raftchat: {e}");
            return ExitCode::from(2);
        }
    };
    let cli = Cli::parse_from(args);
    let (name, result) = match cli.command {
        Cmd::Node(args) => ("node", cli::node::run(args)),
        Cmd::Chat(args) => ("chat", cli::chat::run(args)),
        Cmd::Lab(args) => ("lab", cli::lab::run(args)),
        Cmd::Bench(args) => ("bench", cli::bench::run(args)),
        Cmd::Inspect { dir, log } => (
            "inspect",
            raftchat::inspect::read(&dir)
                .map(|report| print!("{}", raftchat::inspect::render(&report, log)))
                .map_err(|e| cli::Failure::new(1, e.to_string())),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("raftchat {name}: {}", f.message);
            ExitCode::from(f.status)
        }
    }
}
