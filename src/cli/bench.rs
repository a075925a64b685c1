//! `raftchat bench`: the benchmark, on clusters it starts itself (see `raftchat::bench`).
//! Exit status: 0 when every part ran, 1 when one could not, 2 for a wrong command line.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::Failure;
use raftchat::bench::{self, BenchOptions, Parts};
use raftchat::lab::cluster;

#[derive(Args)]
pub struct BenchArgs {
    /// Cluster sizes to measure.
    #[arg(long, value_delimiter = ',', default_value = "3,5")]
    nodes: Vec<u32>,
    /// Concurrent clients, each sending one request at a time, for writes and reads.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64,256")]
    clients: Vec<usize>,
    /// How long each level of load runs, e.g. 3s.
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = duration)]
    duration: Duration,
    /// Leader kills per cluster size.
    #[arg(long, value_name = "N", default_value_t = 5)]
    failovers: usize,
    /// Messages held by the member that restarts.
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    restart_messages: u64,
    /// Messages in the state a new node catches up with.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    catch_up_messages: u64,
    /// Only these parts: writes, reads, failover, recovery (default: all).
    #[arg(long, value_delimiter = ',', value_name = "PART")]
    only: Vec<String>,
    /// Where bench.json and failover.svg go (and the clusters' data while they run).
    #[arg(long, value_name = "DIR", default_value = "target/bench")]
    out: PathBuf,
    /// The nodes' election timeout, MIN-MAX in ms (their default unless given).
    #[arg(long, value_name = "MS", default_value = "300-600", value_parser = range)]
    election_timeout_ms: (u64, u64),
    /// The nodes' heartbeat interval in ms.
    #[arg(long, value_name = "MS", default_value_t = 50)]
    heartbeat_ms: u64,
}

fn duration(s: &str) -> Result<Duration, String> {
    raftchat::lab::scenario::parse_duration(s)
}

fn range(s: &str) -> Result<(u64, u64), String> {
    let (a, b) = s.split_once('-').ok_or("expected MIN-MAX, e.g. 300-600")?;
    let a: u64 = a.trim().parse().map_err(|_| format!("not a number: {a}"))?;
    let b: u64 = b.trim().parse().map_err(|_| format!("not a number: {b}"))?;
    if a == 0 || b < a {
        return Err("MIN must be at least 1 and MAX at least MIN".into());
    }
    Ok((a, b))
}

pub fn run(args: BenchArgs) -> Result<(), Failure> {
    let mut parts = Parts {
        writes: true,
        reads: true,
        failover: true,
        recovery: true,
    };
    if !args.only.is_empty() {
        parts = Parts {
            writes: false,
            reads: false,
            failover: false,
            recovery: false,
        };
        for p in &args.only {
            match p.as_str() {
                "writes" => parts.writes = true,
                "reads" => parts.reads = true,
                "failover" => parts.failover = true,
                "recovery" => parts.recovery = true,
                other => {
                    return Err(Failure::new(
                        2,
                        format!(
                            "--only: no part named {other:?} (writes, reads, failover, recovery)"
                        ),
                    ));
                }
            }
        }
    }
    if args.nodes.iter().any(|n| *n == 0 || *n > 9) {
        return Err(Failure::new(2, "--nodes: each size must be 1 to 9"));
    }
    if args.clients.iter().any(|c| *c == 0 || *c > 1024) {
        return Err(Failure::new(2, "--clients: each level must be 1 to 1024"));
    }
    let binary = std::env::current_exe()
        .map_err(|e| Failure::new(1, format!("cannot find the raftchat binary: {e}")))?;
    let opts = BenchOptions {
        binary,
        sizes: args.nodes,
        clients: args.clients,
        duration: args.duration,
        failovers: args.failovers,
        restart_messages: args.restart_messages,
        catch_up_messages: args.catch_up_messages,
        out: args.out,
        parts,
        election_timeout_ms: args.election_timeout_ms,
        heartbeat_ms: args.heartbeat_ms,
    };
    std::fs::create_dir_all(&opts.out)
        .map_err(|e| Failure::new(1, format!("{}: {e}", opts.out.display())))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(1, format!("cannot start the runtime: {e}")))?;
    println!(
        "raftchat bench: {} cpus, fsync on, 100-byte messages, election timeout {}-{} ms, heartbeat {} ms",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        opts.election_timeout_ms.0,
        opts.election_timeout_ms.1,
        opts.heartbeat_ms
    );
    let result = runtime.block_on(async {
        tokio::select! {
            r = bench::run(&opts) => Some(r),
            _ = tokio::signal::ctrl_c() => None,
        }
    });
    let Some(result) = result else {
        cluster::kill_all();
        return Err(Failure::new(
            130,
            "interrupted: every node the benchmark started was killed",
        ));
    };
    let report = result.map_err(|e| Failure::new(1, e))?;
    println!();
    println!("summary:");
    for line in bench::summary(&report) {
        println!("  {line}");
    }
    let json_path = opts.out.join("bench.json");
    let json = bench::to_json(&report, &opts);
    std::fs::write(&json_path, format!("{json:#}\n"))
        .map_err(|e| Failure::new(1, format!("{}: {e}", json_path.display())))?;
    println!("figures: {}", json_path.display());
    if let Some((run, nodes)) = bench::plotted(&report) {
        let svg_path = opts.out.join("failover.svg");
        std::fs::write(&svg_path, bench::svg::failover(run, nodes))
            .map_err(|e| Failure::new(1, format!("{}: {e}", svg_path.display())))?;
        println!("failover plot: {}", svg_path.display());
    }
    Ok(())
}
