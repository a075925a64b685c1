//! `raftchat lab run FILE...`: runs scenarios against real node processes.
//! Exit status: 0 all passed, 1 a scenario failed, 2 a file or the command line is wrong.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::Failure;
use raftchat::lab::runner::{self, RunOptions, RunResult};
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
}

pub fn run(args: LabArgs) -> Result<(), Failure> {
    let LabCommand::Run {
        files,
        keep,
        out,
        quiet,
    } = args.command;
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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failure::new(1, format!("cannot start the runtime: {e}")))?;
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
