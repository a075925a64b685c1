//! Closed-loop load: C clients, each on its own connections, each sending one request at a
//! time and recording how long every request took. Bounded in time and in count.

use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch};

use crate::client::Client;

/// 100 bytes of text, the size etcd's benchmark writes.
pub const TEXT: &str = "a chat message of exactly one hundred bytes, sent by the benchmark to measure a replicated write....";

/// The requests a load sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Send a 100-byte message: a write, committed by a majority before it is answered.
    Send,
    /// Read one page of a conversation: a linearizable read (ReadIndex).
    Read,
}

/// A logged-in user a client acts as: name and session token.
#[derive(Clone, Debug)]
pub struct Session {
    pub user: String,
    pub token: String,
}

/// Latencies in microseconds, summarized.
#[derive(Clone, Debug, Default)]
pub struct Latencies {
    pub count: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Latencies {
    pub fn of(mut micros: Vec<u32>) -> Latencies {
        if micros.is_empty() {
            return Latencies::default();
        }
        micros.sort_unstable();
        let at = |p: f64| f64::from(micros[((micros.len() - 1) as f64 * p).round() as usize]) / 1e3;
        Latencies {
            count: micros.len(),
            p50_ms: at(0.5),
            p99_ms: at(0.99),
            p999_ms: at(0.999),
            max_ms: at(1.0),
        }
    }
}

/// What one level of load did.
#[derive(Clone, Debug)]
pub struct LevelResult {
    pub clients: usize,
    pub ok: u64,
    pub errors: u64,
    pub secs: f64,
    pub latency: Latencies,
    /// CPU time per successful request, in microseconds: each node's (by name, leader
    /// first), and the load generator's own.
    pub cpu: CpuPerOp,
}

/// Where the CPU went, per request served, in microseconds.
#[derive(Clone, Debug, Default)]
pub struct CpuPerOp {
    pub nodes: Vec<(String, f64)>,
    pub client: f64,
}

impl CpuPerOp {
    pub fn nodes_total(&self) -> f64 {
        self.nodes.iter().map(|(_, us)| us).sum()
    }
}

impl LevelResult {
    pub fn per_sec(&self) -> f64 {
        if self.secs > 0.0 {
            self.ok as f64 / self.secs
        } else {
            0.0
        }
    }
}

/// Runs `clients` closed loops of `op` for `duration` (or `max_ops` requests in all).
/// Every client first makes one request that is not counted: it opens its connections and
/// finds the leader, as a long-lived client would have done already. The clock starts
/// when every client is ready.
///
/// The clients are spread over one thread per core, each with a single-threaded runtime
/// of its own (as wrk does): a response then wakes the task waiting for it on the thread
/// that read it, never a task on another thread. On this 2-core machine that saved the
/// load generator a third of its CPU per request, and one client 30 µs per write.
pub async fn closed_loop(
    endpoints: &[String],
    sessions: &[Session],
    op: Op,
    clients: usize,
    duration: Duration,
    max_ops: u64,
) -> Result<LevelResult, String> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = cores.min(clients).max(1);
    let per_client = max_ops.div_ceil(clients as u64).max(1);
    let (report, mut reports) = mpsc::unbounded_channel();
    let (start, starting) = watch::channel(Start::Wait);
    // Whatever goes wrong before the start, the clients waiting for it are let go.
    let call_off = |why: String| {
        let _ = start.send(Start::CallOff);
        Err(why)
    };
    let mut done = Vec::with_capacity(threads);
    for t in 0..threads {
        let loops: Vec<Loop> = (t..clients)
            .step_by(threads)
            .map(|i| Loop {
                me: sessions[i % sessions.len()].clone(),
                peer: sessions[(i + 1) % sessions.len()].user.clone(),
                endpoints: endpoints.to_vec(),
                report: report.clone(),
                start: starting.clone(),
            })
            .collect();
        let (tx, rx) = oneshot::channel();
        let report = report.clone();
        let spawned = std::thread::Builder::new()
            .name("bench-load".into())
            .spawn(move || run_thread(loops, op, duration, per_client, report, tx));
        if let Err(e) = spawned {
            return call_off(format!("cannot start a load thread: {e}"));
        }
        done.push(rx);
    }
    drop(report);
    let mut ready = 0;
    while ready < clients {
        match reports.recv().await {
            Some(Report::Ready) => ready += 1,
            Some(Report::Failed(why)) => return call_off(why),
            None => return call_off("the load threads ended before the start".into()),
        }
    }
    let _ = start.send(Start::Go);
    let started = Instant::now();
    let (mut micros, mut errors) = (Vec::new(), 0);
    for rx in done {
        let results = rx
            .await
            .map_err(|_| "a load thread ended without its results".to_string())?;
        for (m, e) in results {
            micros.extend(m);
            errors += e;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    if let Ok(Report::Failed(why)) = reports.try_recv() {
        return Err(why);
    }
    Ok(LevelResult {
        clients,
        ok: micros.len() as u64,
        errors,
        secs,
        latency: Latencies::of(micros),
        cpu: CpuPerOp::default(),
    })
}

/// What a load thread tells the caller.
enum Report {
    /// One client made its first request and waits for the start.
    Ready,
    Failed(String),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Start {
    Wait,
    Go,
    CallOff,
}

/// One load thread: its runtime, its clients, and their results once they are done.
fn run_thread(
    loops: Vec<Loop>,
    op: Op,
    duration: Duration,
    max: u64,
    report: mpsc::UnboundedSender<Report>,
    results: oneshot::Sender<Vec<(Vec<u32>, u64)>>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            let _ = report.send(Report::Failed(format!(
                "cannot start a load thread's runtime: {e}"
            )));
            return;
        }
    };
    let out = runtime.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for one in loops {
            tasks.spawn(one.run(op, duration, max));
        }
        let mut out = Vec::new();
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(r) => out.push(r),
                Err(e) => {
                    let _ = report.send(Report::Failed(format!("a load client failed: {e}")));
                }
            }
        }
        out
    });
    let _ = results.send(out);
}

/// One client's closed loop.
struct Loop {
    me: Session,
    peer: String,
    endpoints: Vec<String>,
    report: mpsc::UnboundedSender<Report>,
    start: watch::Receiver<Start>,
}

impl Loop {
    /// Latencies in microseconds of the requests that succeeded, and how many failed
    /// (nothing if the start was called off).
    async fn run(mut self, op: Op, duration: Duration, max: u64) -> (Vec<u32>, u64) {
        let mut client = Client::new(self.endpoints);
        client.timeouts.attempt = Duration::from_secs(2);
        client.timeouts.deadline = Duration::from_secs(5);
        let _ = request(&mut client, op, &self.me, &self.peer).await;
        let _ = self.report.send(Report::Ready);
        match self.start.wait_for(|s| *s != Start::Wait).await {
            Ok(s) if *s == Start::Go => {}
            _ => return (Vec::new(), 0),
        }
        let started = Instant::now();
        let (mut micros, mut errors) = (Vec::with_capacity(4096), 0u64);
        while started.elapsed() < duration && (micros.len() as u64) + errors < max {
            let t = Instant::now();
            match request(&mut client, op, &self.me, &self.peer).await {
                Ok(()) => micros.push(t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32),
                Err(_) => errors += 1,
            }
        }
        (micros, errors)
    }
}

async fn request(client: &mut Client, op: Op, me: &Session, peer: &str) -> Result<(), ()> {
    match op {
        Op::Send => client
            .send(&me.user, &me.token, peer, TEXT)
            .await
            .map(|_| ())
            .map_err(|_| ()),
        Op::Read => client
            .read(&me.user, &me.token, peer, 0, 10)
            .await
            .map(|_| ())
            .map_err(|_| ()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_is_one_hundred_bytes() {
        assert_eq!(TEXT.len(), 100);
    }

    #[test]
    fn percentiles_come_from_the_sorted_samples() {
        let l = Latencies::of((1..=1000).rev().map(|ms| ms * 1000).collect());
        assert_eq!(l.count, 1000);
        assert_eq!(l.p50_ms, 501.0);
        assert_eq!(l.p99_ms, 990.0);
        assert_eq!(l.max_ms, 1000.0);
    }
}
