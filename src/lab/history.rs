//! The operation history of a run, in the style of Jepsen's: one JSON line when an
//! operation is invoked and one when it completes, `ok`, `fail` (it certainly did not
//! happen) or `info` (its outcome is unknown: it may still commit).

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::{Value, json};

/// A write the cluster acknowledged: the log entry that must hold it.
#[derive(Clone, Debug)]
pub struct Acked {
    pub what: String,
    pub index: u64,
    pub client_id: u64,
    pub seq: u64,
}

#[derive(Default)]
struct Inner {
    lines: Vec<String>,
    next: u64,
    acked: Vec<Acked>,
    operations: usize,
}

/// Shared by the runner and its load clients.
#[derive(Clone)]
pub struct History {
    inner: Arc<Mutex<Inner>>,
    started: Instant,
}

pub enum Completion {
    Ok,
    Fail(String),
    Info(String),
}

impl History {
    pub fn new(started: Instant) -> History {
        History {
            inner: Arc::new(Mutex::new(Inner::default())),
            started,
        }
    }

    fn push(&self, mut v: Value) -> u64 {
        let mut inner = self.inner.lock().expect("history lock");
        inner.next += 1;
        v["id"] = json!(inner.next);
        v["time_ms"] = json!(self.started.elapsed().as_millis() as u64);
        inner.lines.push(v.to_string());
        inner.next
    }

    /// Records an invocation; returns its id for the completion.
    pub fn invoke(&self, process: &str, f: &str, value: Value) -> u64 {
        self.inner.lock().expect("history lock").operations += 1;
        self.push(json!({"type": "invoke", "process": process, "f": f, "value": value}))
    }

    pub fn complete(
        &self,
        invoke: u64,
        process: &str,
        f: &str,
        how: Completion,
        index: Option<u64>,
    ) {
        let (kind, error) = match how {
            Completion::Ok => ("ok", None),
            Completion::Fail(e) => ("fail", Some(e)),
            Completion::Info(e) => ("info", Some(e)),
        };
        self.push(json!({
            "type": kind, "process": process, "f": f, "invoke": invoke,
            "error": error, "raft_index": index,
        }));
    }

    pub fn acked(&self, a: Acked) {
        self.inner.lock().expect("history lock").acked.push(a);
    }

    pub fn acked_writes(&self) -> Vec<Acked> {
        self.inner.lock().expect("history lock").acked.clone()
    }

    pub fn operations(&self) -> usize {
        self.inner.lock().expect("history lock").operations
    }

    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let inner = self.inner.lock().expect("history lock");
        let mut f = std::fs::File::create(path)?;
        for line in &inner.lines {
            writeln!(f, "{line}")?;
        }
        Ok(())
    }
}
