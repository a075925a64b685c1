//! `raftchat lab run FILE...`: runs scenarios against real node processes; `raftchat lab
//! demo`: runs one as a presentation, with a live view of the cluster and a closing table.
//! Exit status: 0 all passed, 1 a scenario failed, 2 a file or the command line is wrong.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand};

use super::Failure;
use raftchat::lab::runner::{self, Presentation, RunOptions, RunResult};
use raftchat::lab::{cluster, scenario};

#[derive(Args)]
pub struct LabArgs {
    #[command(subcommand)]
    command: LabCommand,
}

#[derive(Subcommand)]
enum LabCommand {
    /// Run scenario files (see SCENARIOS.md) and check what every node persisted.
    Run {
        /// Scenario files (YAML).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Keep each run's folder (node logs and data, history, report) even on success.
        #[arg(long)]
        keep: bool,
        /// Where run folders go.
        #[arg(long, value_name = "DIR", default_value = "target/lab")]
        out: PathBuf,
        /// Print only the summary.
        #[arg(long)]
        quiet: bool,
    },
    /// Tell the story of a cluster surviving failures, for a room watching: a live view of
    /// every node, narration, and at the end every node's disk checked offline.
    Demo {
        /// The scenario to present.
        #[arg(default_value = "scenarios/demo.yaml")]
        file: PathBuf,
        /// The pause after each step (twice as long after narration), e.g. 800ms or 2s.
        #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = duration)]
        pace: Duration,
        /// Wait for Enter before each step: the presenter drives.
        #[arg(long, conflicts_with = "fast")]
        step: bool,
        /// No pauses and no live view (for CI).
        #[arg(long)]
        fast: bool,
        /// Where the run folder goes.
        #[arg(long, value_name = "DIR", default_value = "target/lab")]
        out: PathBuf,
        /// Keep the run folder (node logs and data, history, report) even on success.
        #[arg(long)]
        keep: bool,
    },
}

fn duration(s: &str) -> Result<Duration, String> {
    scenario::parse_duration(s)
}

pub fn run(args: LabArgs) -> Result<(), Failure> {
    let (files, keep, out, quiet) = match args.command {
        LabCommand::Run {
            files,
            keep,
            out,
            quiet,
        } => (files, keep, out, quiet),
        LabCommand::Demo {
            file,
            pace,
            step,
            fast,
            out,
            keep,
        } => {
            let live = !fast && std::io::stdout().is_terminal() && std::env::var_os("CI").is_none();
            let presentation = Presentation {
                pace: if fast { Duration::ZERO } else { pace },
                step,
                live,
            };
            return demo(&file, presentation, out, keep);
        }
    };
    // Every file is read and checked before anything runs.
    let mut scenarios = Vec::new();
    let mut errors = Vec::new();
    for f in &files {
        match scenario::load(f) {
            Ok(s) => scenarios.push(s),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if !errors.is_empty() {
        return Err(Failure::new(2, errors.join("\nraftchat lab: ")));
    }
    let binary = std::env::current_exe()
        .map_err(|e| Failure::new(1, format!("cannot find the raftchat binary: {e}")))?;
    let mut opts = RunOptions::new(binary);
    opts.out_dir = out;
    opts.keep = keep;
    opts.verbose = !quiet;
    let runtime = runtime()?;
    let results = runtime.block_on(async {
        tokio::select! {
            results = run_all(&scenarios, &opts) => Some(results),
            _ = interrupted() => None,
        }
    });
    let Some(results) = results else {
        // The scenario's supervisor was dropped with the future; make sure of it anyway.
        cluster::kill_all();
        return Err(Failure::new(
            130,
            "interrupted: every node the lab started was killed",
        ));
    };
    print_summary(&results);
    if results.iter().all(|r| r.passed) {
        Ok(())
    } else {
        let failed = results.iter().filter(|r| !r.passed).count();
        Err(Failure::new(
            1,
            format!("{failed} of {} scenarios failed", results.len()),
        ))
    }
}

fn demo(file: &Path, presentation: Presentation, out: PathBuf, keep: bool) -> Result<(), Failure> {
    let s = scenario::load(file).map_err(|e| Failure::new(2, e.to_string()))?;
    let binary = std::env::current_exe()
        .map_err(|e| Failure::new(1, format!("cannot find the raftchat binary: {e}")))?;
    let mut opts = RunOptions::new(binary);
    opts.out_dir = out;
    opts.keep = keep;
    opts.color = presentation.live;
    opts.presentation = Some(presentation);
    let runtime = runtime()?;
    let result = runtime.block_on(async {
        tokio::select! {
            r = runner::run(&s, &opts) => Some(r),
            _ = interrupted() => None,
        }
    });
    let Some(r) = result else {
        cluster::kill_all();
        // Give the terminal back whole, whatever the view did with it.
        print!("\x1b[r");
        return Err(Failure::new(
            130,
            "interrupted: every node the demo started was killed",
        ));
    };
    println!();
    println!("What each node left on disk, read back offline with every checksum verified:");
    println!();
    for line in demo_table(&r) {
        println!("  {line}");
    }
    println!();
    if let Some(f) = &r.failure {
        // One line: what failed and where; the node logs are in the run folder.
        let first = f.lines().next().unwrap_or_default();
        let kept = r
            .kept
            .as_ref()
            .map(|d| format!(" (node logs in {})", d.display()))
            .unwrap_or_default();
        return Err(Failure::new(1, format!("demo failed: {first}{kept}")));
    }
    if let Some(c) = r.failed_checks.first() {
        return Err(Failure::new(1, format!("demo failed a check: {c}")));
    }
    println!(
        "demo passed in {:.0}s: {} leader changes, {} chat operations, nothing acknowledged was lost.",
        r.duration.as_secs_f64(),
        r.leader_changes,
        r.operations
    );
    Ok(())
}

/// The closing table: every node's log and state as read offline, and whether they agree.
fn demo_table(r: &RunResult) -> Vec<String> {
    let mut lines = vec![format!(
        "{:<5}  {:<9}  {:>11}  {:>11}  {:>10}  {:>9}  {:>8}  {}",
        "node",
        "checksums",
        "log entries",
        "snapshot at",
        "last index",
        "last term",
        "applied",
        "chat state fingerprint"
    )];
    for n in &r.nodes {
        let (last_index, last_term) = n
            .last
            .map(|(i, t)| (i.to_string(), t.to_string()))
            .unwrap_or(("-".into(), "-".into()));
        lines.push(format!(
            "{:<5}  {:<9}  {:>11}  {:>11}  {:>10}  {:>9}  {:>8}  {:08x}",
            n.name,
            if n.checksums.is_ok() { "ok" } else { "FAILED" },
            n.entries,
            n.snapshot.map_or("-".to_string(), |i| i.to_string()),
            last_index,
            last_term,
            n.applied,
            n.fingerprint
        ));
    }
    let prints: std::collections::BTreeSet<u32> = r.nodes.iter().map(|n| n.fingerprint).collect();
    let applied: std::collections::BTreeSet<u64> = r.nodes.iter().map(|n| n.applied).collect();
    lines.push(String::new());
    lines.push(match (prints.len(), applied.len()) {
        (1, 1) => format!(
            "all {} nodes applied entry {} and hold the same chat state",
            r.nodes.len(),
            applied.first().copied().unwrap_or(0)
        ),
        _ => format!(
            "the nodes differ: {} fingerprints at {} applied indexes",
            prints.len(),
            applied.len()
        ),
    });
    lines
}

/// Two workers are plenty for the lab's clients, and leave the cores to the nodes.
fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failure::new(1, format!("cannot start the runtime: {e}")))
}

async fn run_all(scenarios: &[scenario::Scenario], opts: &RunOptions) -> Vec<RunResult> {
    let mut results = Vec::new();
    for s in scenarios {
        let r = runner::run(s, opts).await;
        if let Some(f) = &r.failure {
            eprintln!("raftchat lab: {}: FAILED: {f}", r.name);
        }
        for c in &r.failed_checks {
            eprintln!("raftchat lab: {}: check failed: {c}", r.name);
        }
        if let Some(dir) = &r.kept {
            eprintln!(
                "raftchat lab: {}: run folder kept at {}",
                r.name,
                dir.display()
            );
        }
        results.push(r);
    }
    results
}

async fn interrupted() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a signal handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

fn print_summary(results: &[RunResult]) {
    let width = results
        .iter()
        .map(|r| r.name.len())
        .max()
        .unwrap_or(8)
        .max(8);
    println!();
    println!(
        "{:<width$}  {:<6}  {:>8}  {:>14}  {:>10}  {:>8}  {:>8}  failed checks",
        "scenario", "result", "duration", "leader changes", "operations", "dropped", "delayed"
    );
    for r in results {
        let checks = if r.failed_checks.is_empty() {
            "-".to_string()
        } else {
            r.failed_checks.len().to_string()
        };
        println!(
            "{:<width$}  {:<6}  {:>7.1}s  {:>14}  {:>10}  {:>8}  {:>8}  {checks}",
            r.name,
            if r.passed { "pass" } else { "FAIL" },
            r.duration.as_secs_f64(),
            r.leader_changes,
            r.operations,
            r.dropped,
            r.delayed,
        );
    }
}
