//! `raftchat node`: run one cluster member.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::Failure;
use raftchat::server::{self, NodeConfig};

#[derive(Args)]
pub struct NodeArgs {
    /// This node's name in the cluster (n1, n2, ...).
    #[arg(long)]
    id: String,
    /// Where this node keeps its log, term and vote, snapshots and chat state.
    #[arg(long)]
    data_dir: PathBuf,
    /// The address to listen on, which peers and clients use to reach this node.
    #[arg(long)]
    listen: String,
    /// Another member of a new cluster, as ID=ADDRESS (repeat for each).
    #[arg(long = "peer", value_name = "ID=ADDRESS", value_parser = parse_peer)]
    peers: Vec<(String, String)>,
    /// Join an existing cluster through the node at ADDRESS instead of starting one.
    #[arg(long, value_name = "ADDRESS", conflicts_with = "peers")]
    join: Option<String>,
    /// The election timeout range in ms, as MIN-MAX (a single value means MIN-2×MIN).
    #[arg(long, value_name = "MS", default_value = "300-600", value_parser = parse_range)]
    election_timeout_ms: (u64, u64),
    /// How often a leader sends heartbeats, in ms.
    #[arg(long, value_name = "MS", default_value_t = 50)]
    heartbeat_ms: u64,
    /// Entries applied between automatic snapshots.
    #[arg(long, value_name = "N", default_value_t = server::DEFAULT_SNAPSHOT_EVERY)]
    snapshot_every: u64,
    /// How long a request waits for a quorum before it fails as unavailable, in ms.
    #[arg(long, value_name = "MS", default_value_t = 5_000)]
    request_timeout_ms: u64,
    /// Log lines as text for people or JSON for machines.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn parse_peer(s: &str) -> Result<(String, String), String> {
    let (id, address) = s
        .split_once('=')
        .ok_or_else(|| format!("expected ID=ADDRESS, got {s:?}"))?;
    if id.is_empty() || address.is_empty() {
        return Err(format!("expected ID=ADDRESS, got {s:?}"));
    }
    Ok((id.to_string(), address.to_string()))
}

fn parse_range(s: &str) -> Result<(u64, u64), String> {
    let number = |x: &str| {
        x.trim()
            .parse::<u64>()
            .map_err(|_| format!("expected a number of ms, got {x:?}"))
    };
    let (min, max) = match s.split_once('-') {
        Some((a, b)) => (number(a)?, number(b)?),
        None => {
            let min = number(s)?;
            (min, min * 2)
        }
    };
    if min == 0 || max <= min {
        return Err(format!("expected MIN-MAX with 0 < MIN < MAX, got {s:?}"));
    }
    Ok((min, max))
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("RAFTCHAT_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(false).init(),
        LogFormat::Json => builder.json().init(),
    }
}

pub fn run(args: NodeArgs) -> Result<(), Failure> {
    init_logging(args.log_format);
    let mut cfg = NodeConfig::new(&args.id, args.data_dir, &args.listen);
    cfg.peers = args.peers;
    cfg.join = args.join;
    cfg.election_ms = args.election_timeout_ms;
    cfg.heartbeat_ms = args.heartbeat_ms;
    cfg.snapshot_every = args.snapshot_every.max(1);
    cfg.request_timeout = Duration::from_millis(args.request_timeout_ms.max(1));
    // Every line this process logs names the node, whichever thread writes it.
    let span = tracing::info_span!("node", id = %cfg.id);
    let thread_span = span.clone();
    // One thread for the whole node: see `server::driver` for why.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .on_thread_start(move || std::mem::forget(thread_span.clone().entered()))
        .build()
        .map_err(|e| Failure::new(1, format!("cannot start the runtime: {e}")))?;
    let _entered = span.enter();
    runtime
        .block_on(server::run(cfg))
        .map_err(|e| Failure::new(1, e))
}
