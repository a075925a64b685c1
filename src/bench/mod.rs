//! `raftchat bench`: how fast a replicated chat message is, how long the chat is down when
//! a leader dies, how fast a node comes back, and how much memory a node takes, each on a
//! cluster of real node processes the benchmark starts itself on loopback, fsync on, with
//! the nodes' default settings. It prints a table, and writes every figure to a JSON file
//! and the failover run to an SVG plot.
//!
//! Targets live here, in the figures, never in timed tests.

pub mod cluster;
pub mod failover;
pub mod fixture;
pub mod load;
pub mod recovery;
pub mod svg;

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use self::cluster::BenchCluster;
use self::failover::FailoverRun;
use self::load::{LevelResult, Op};
use self::recovery::{CatchUp, Restart};
use crate::lab::cluster::NodeSettings;

/// What to measure, and how much.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    pub binary: PathBuf,
    pub sizes: Vec<u32>,
    pub clients: Vec<usize>,
    /// How long each level of load runs.
    pub duration: Duration,
    pub failovers: usize,
    /// Messages in the state of a restarting member.
    pub restart_messages: u64,
    /// Messages in the state a new node catches up with.
    pub catch_up_messages: u64,
    /// Where the JSON and the SVG go, and the clusters' directories while they run.
    pub out: PathBuf,
    pub parts: Parts,
    pub election_timeout_ms: (u64, u64),
    pub heartbeat_ms: u64,
}

#[derive(Clone, Copy, Debug)]
pub struct Parts {
    pub writes: bool,
    pub reads: bool,
    pub failover: bool,
    pub recovery: bool,
}

impl BenchOptions {
    fn settings(&self) -> NodeSettings {
        NodeSettings {
            binary: self.binary.clone(),
            election_timeout_ms: self.election_timeout_ms,
            heartbeat_ms: self.heartbeat_ms,
            snapshot_every: crate::server::DEFAULT_SNAPSHOT_EVERY,
        }
    }
}

/// Everything measured on one cluster size.
#[derive(Debug, Default)]
pub struct SizeReport {
    pub nodes: u32,
    pub writes: Vec<LevelResult>,
    pub reads: Vec<LevelResult>,
    pub failovers: Vec<FailoverRun>,
    /// Resident memory per node once the cluster is up, and its peak after the load (MiB).
    pub idle_rss_mib: Vec<f64>,
    pub peak_rss_mib: Vec<f64>,
    /// Terms that began while writes and reads ran (0: no spurious election).
    pub elections_under_load: u64,
}

#[derive(Debug, Default)]
pub struct Report {
    pub sizes: Vec<SizeReport>,
    pub restart: Option<Restart>,
    pub catch_up: Option<CatchUp>,
}

/// Runs the benchmark, printing each figure as it comes.
pub async fn run(opts: &BenchOptions) -> Result<Report, String> {
    let mut report = Report::default();
    for &nodes in &opts.sizes {
        report.sizes.push(size(opts, nodes).await?);
    }
    if opts.parts.recovery {
        let nodes = opts.sizes.first().copied().unwrap_or(3);
        println!(
            "recovery ({nodes} nodes): building states of {} and {} messages offline...",
            opts.restart_messages, opts.catch_up_messages
        );
        let r = recovery::restart(&opts.out, opts.settings(), nodes, opts.restart_messages).await?;
        println!(
            "  a member restarting with {} messages ({:.0} MiB database): {:.0} ms from process start to a linearizable read served",
            r.messages, r.db_mib, r.member_ms
        );
        println!(
            "  the whole cluster starting on it at once: {:.0} ms to the first read (an election included)",
            r.cluster_ms
        );
        report.restart = Some(r);
        let c =
            recovery::catch_up(&opts.out, opts.settings(), nodes, opts.catch_up_messages).await?;
        println!(
            "  a new node catching up with {} messages: {:.2} s from process start (snapshot of {:.1} MiB, then the log)",
            c.messages, c.secs, c.snapshot_mib
        );
        report.catch_up = Some(c);
    }
    Ok(report)
}

async fn size(opts: &BenchOptions, nodes: u32) -> Result<SizeReport, String> {
    let mut out = SizeReport {
        nodes,
        ..SizeReport::default()
    };
    let mut cluster = BenchCluster::prepare(&opts.out, nodes, opts.settings())?;
    cluster.start().await?;
    let sessions = cluster.sessions(16).await?;
    cluster.converged(Duration::from_secs(10)).await?;
    let names = cluster.sup.names();
    let term_before = max_term(&mut cluster).await;
    out.idle_rss_mib = names
        .iter()
        .map(|n| cluster.memory(n).map_or(0.0, |m| m.0))
        .collect();
    let endpoints = cluster.endpoints();
    for (part, op, on) in [
        ("writes", Op::Send, opts.parts.writes),
        ("reads", Op::Read, opts.parts.reads),
    ] {
        if !on {
            continue;
        }
        println!("{nodes} nodes, {part}:");
        print_level_header();
        for &clients in &opts.clients {
            let leader = cluster.leader(Duration::from_secs(10)).await?;
            let before = cpu_now(&cluster, &names);
            let mut r =
                load::closed_loop(&endpoints, &sessions, op, clients, opts.duration, 2_000_000)
                    .await?;
            r.cpu = cpu_per_op(&before, &cpu_now(&cluster, &names), &leader, r.ok);
            print_level(&r);
            match op {
                Op::Send => out.writes.push(r),
                Op::Read => out.reads.push(r),
            }
        }
    }
    out.peak_rss_mib = names
        .iter()
        .map(|n| cluster.memory(n).map_or(0.0, |m| m.1))
        .collect();
    // Every election bumps the term: an unchanged term means none happened under load.
    out.elections_under_load = max_term(&mut cluster).await.saturating_sub(term_before);
    println!(
        "{nodes} nodes, elections during the load: {}",
        out.elections_under_load
    );
    println!(
        "{nodes} nodes, memory: idle {} MiB; peak under load {} MiB",
        join_mib(&out.idle_rss_mib),
        join_mib(&out.peak_rss_mib)
    );
    if opts.parts.failover {
        println!("{nodes} nodes, failover (one writer, 100 ms per attempt, leader SIGKILLed):");
        for i in 0..opts.failovers {
            let run = failover::run_once(
                &mut cluster,
                &sessions[0],
                &sessions[1].user,
                Duration::from_secs(1),
                Duration::from_millis(1500),
            )
            .await?;
            println!(
                "  run {}: killed {}, longest gap between acknowledged writes {:.0} ms",
                i + 1,
                run.killed,
                run.gap_ms
            );
            out.failovers.push(run);
        }
    }
    cluster.sup.stop_all();
    Ok(out)
}

/// CPU seconds used so far by each node and by this process (the load generator).
struct CpuSample {
    nodes: Vec<(String, Option<f64>)>,
    client: Option<f64>,
}

fn cpu_now(cluster: &BenchCluster, names: &[String]) -> CpuSample {
    CpuSample {
        nodes: names
            .iter()
            .map(|n| (n.clone(), cluster.cpu_seconds(n)))
            .collect(),
        client: cluster::process_cpu_seconds(std::process::id()),
    }
}

/// Microseconds of CPU per request between two samples, the leader's first.
fn cpu_per_op(before: &CpuSample, after: &CpuSample, leader: &str, ops: u64) -> load::CpuPerOp {
    let per_op = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if ops > 0 => Some((b - a) * 1e6 / ops as f64),
        _ => None,
    };
    let mut nodes: Vec<(String, f64)> = before
        .nodes
        .iter()
        .zip(&after.nodes)
        .filter_map(|((name, a), (_, b))| Some((name.clone(), per_op(*a, *b)?)))
        .collect();
    nodes.sort_by_key(|(name, _)| name != leader);
    load::CpuPerOp {
        nodes,
        client: per_op(before.client, after.client).unwrap_or(0.0),
    }
}

async fn max_term(cluster: &mut BenchCluster) -> u64 {
    cluster
        .statuses()
        .await
        .values()
        .map(|s| s.term)
        .max()
        .unwrap_or(0)
}

fn join_mib(v: &[f64]) -> String {
    v.iter()
        .map(|m| format!("{m:.0}"))
        .collect::<Vec<_>>()
        .join("/")
}

fn print_level_header() {
    println!(
        "  {:>7} {:>10} {:>9} {:>9} {:>9} {:>9} {:>7}   cpu µs per request: leader/followers + load generator",
        "clients", "per sec", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "errors"
    );
}

fn print_level(r: &LevelResult) {
    let nodes: Vec<String> = r
        .cpu
        .nodes
        .iter()
        .map(|(_, us)| format!("{us:.0}"))
        .collect();
    println!(
        "  {:>7} {:>10.0} {:>9.3} {:>9.3} {:>9.3} {:>9.1} {:>7}   {} + {:.0}",
        r.clients,
        r.per_sec(),
        r.latency.p50_ms,
        r.latency.p99_ms,
        r.latency.p999_ms,
        r.latency.max_ms,
        r.errors,
        nodes.join("/"),
        r.cpu.client
    );
}

/// The closing table: every figure in one place.
pub fn summary(report: &Report) -> Vec<String> {
    let mut lines = Vec::new();
    for (what, pick) in [("writes/s", true), ("linearizable reads/s", false)] {
        let mut line = format!("{what:<22}");
        let header = report
            .sizes
            .first()
            .map(|s| if pick { &s.writes } else { &s.reads });
        if header.is_none_or(|h| h.is_empty()) {
            continue;
        }
        for s in &report.sizes {
            let levels = if pick { &s.writes } else { &s.reads };
            for l in levels {
                line.push_str(&format!(
                    "  {}n/{}c {:.0} (p99 {:.1} ms)",
                    s.nodes,
                    l.clients,
                    l.per_sec(),
                    l.latency.p99_ms
                ));
            }
        }
        lines.push(line);
    }
    for s in &report.sizes {
        if !s.failovers.is_empty() {
            let gaps: Vec<f64> = s.failovers.iter().map(|f| f.gap_ms).collect();
            lines.push(format!(
                "failover, {} nodes       median gap {:.0} ms, max {:.0} ms over {} runs",
                s.nodes,
                failover::median(&gaps),
                gaps.iter().copied().fold(0.0, f64::max),
                gaps.len()
            ));
        }
        lines.push(format!(
            "memory, {} nodes         idle {} MiB, peak {} MiB",
            s.nodes,
            join_mib(&s.idle_rss_mib),
            join_mib(&s.peak_rss_mib)
        ));
        lines.push(format!(
            "elections, {} nodes      {} during the writes and reads",
            s.nodes, s.elections_under_load
        ));
    }
    if let Some(r) = &report.restart {
        lines.push(format!(
            "restart, {} messages  {:.0} ms to serving",
            r.messages, r.member_ms
        ));
    }
    if let Some(c) = &report.catch_up {
        lines.push(format!(
            "new node, {} messages   {:.2} s to caught up",
            c.messages, c.secs
        ));
    }
    lines
}

fn level_json(l: &LevelResult) -> Value {
    json!({
        "clients": l.clients,
        "ops": l.ok,
        "errors": l.errors,
        "seconds": l.secs,
        "per_sec": l.per_sec(),
        "p50_ms": l.latency.p50_ms,
        "p99_ms": l.latency.p99_ms,
        "p999_ms": l.latency.p999_ms,
        "max_ms": l.latency.max_ms,
        "cpu_us_per_op": {
            "nodes": l.cpu.nodes.iter().map(|(n, us)| json!({"node": n, "us": us})).collect::<Vec<_>>(),
            "nodes_total": l.cpu.nodes_total(),
            "load_generator": l.cpu.client,
        },
    })
}

/// Every figure, for machines.
pub fn to_json(report: &Report, opts: &BenchOptions) -> Value {
    let sizes: Vec<Value> = report
        .sizes
        .iter()
        .map(|s| {
            let gaps: Vec<f64> = s.failovers.iter().map(|f| f.gap_ms).collect();
            json!({
                "nodes": s.nodes,
                "writes": s.writes.iter().map(level_json).collect::<Vec<_>>(),
                "reads": s.reads.iter().map(level_json).collect::<Vec<_>>(),
                "failover": {
                    "runs": s.failovers.iter().map(|f| json!({
                        "killed": f.killed,
                        "kill_at_s": f.kill_at_s,
                        "gap_ms": f.gap_ms,
                        "writes": f.samples.len(),
                    })).collect::<Vec<_>>(),
                    "median_gap_ms": failover::median(&gaps),
                    "max_gap_ms": gaps.iter().copied().fold(0.0, f64::max),
                },
                "memory_mib": {"idle": s.idle_rss_mib, "peak": s.peak_rss_mib},
                "elections_under_load": s.elections_under_load,
            })
        })
        .collect();
    json!({
        "settings": {
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "election_timeout_ms": [opts.election_timeout_ms.0, opts.election_timeout_ms.1],
            "heartbeat_ms": opts.heartbeat_ms,
            "seconds_per_level": opts.duration.as_secs_f64(),
            "message_bytes": load::TEXT.len(),
            "fsync": true,
        },
        "sizes": sizes,
        "restart": report.restart.as_ref().map(|r| json!({
            "messages": r.messages,
            "database_mib": r.db_mib,
            "member_to_serving_ms": r.member_ms,
            "cluster_to_first_read_ms": r.cluster_ms,
        })),
        "catch_up": report.catch_up.as_ref().map(|c| json!({
            "messages": c.messages,
            "seconds": c.secs,
            "snapshot_mib": c.snapshot_mib,
        })),
    })
}

/// The failover run to plot: the one with the median gap, on the smallest cluster.
pub fn plotted(report: &Report) -> Option<(&FailoverRun, u32)> {
    let s = report.sizes.iter().find(|s| !s.failovers.is_empty())?;
    let mut runs: Vec<&FailoverRun> = s.failovers.iter().collect();
    runs.sort_by(|a, b| a.gap_ms.total_cmp(&b.gap_ms));
    Some((runs[runs.len() / 2], s.nodes))
}
