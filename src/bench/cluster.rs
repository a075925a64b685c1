//! A cluster the benchmark starts for itself: real node processes on loopback with the
//! production settings (fsync on, default timeouts), under the lab's supervisor, which
//! kills them however the benchmark ends.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::load::Session;
use crate::client::{Admins, Client};
use crate::lab::cluster::{NodeSettings, Supervisor};
use crate::lab::runner::agreed_leader;
use crate::proto::admin::StatusReply;

pub struct BenchCluster {
    pub sup: Supervisor,
    /// Where the node directories are (removed when the cluster is dropped).
    pub dir: tempfile::TempDir,
    admins: Admins,
}

impl BenchCluster {
    /// Prepares `nodes` nodes under a fresh directory in `parent`; nothing runs yet.
    pub fn prepare(parent: &Path, nodes: u32, settings: NodeSettings) -> Result<Self, String> {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        let dir = tempfile::Builder::new()
            .prefix("cluster-")
            .tempdir_in(parent)
            .map_err(|e| format!("{}: {e}", parent.display()))?;
        let sup = Supervisor::new(dir.path(), nodes, settings)
            .map_err(|e| format!("cannot prepare the nodes: {e}"))?;
        Ok(BenchCluster {
            sup,
            dir,
            admins: Admins::default(),
        })
    }

    /// Starts every prepared node and waits for a leader.
    pub async fn start(&mut self) -> Result<String, String> {
        for name in self.sup.names() {
            self.sup.start(&name, None)?;
        }
        self.leader(Duration::from_secs(20)).await
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.sup
            .names()
            .iter()
            .map(|n| self.sup.node(n).addr.clone())
            .collect()
    }

    pub fn dir_of(&self, name: &str) -> PathBuf {
        self.sup.node(name).dir.clone()
    }

    pub async fn status(&mut self, name: &str) -> Option<StatusReply> {
        let addr = self.sup.node(name).addr.clone();
        self.admins.status(&addr).await
    }

    pub async fn statuses(&mut self) -> BTreeMap<String, StatusReply> {
        let mut out = BTreeMap::new();
        for name in self.sup.names() {
            if !self.sup.check_alive(&name) {
                continue;
            }
            if let Some(st) = self.status(&name).await {
                out.insert(name, st);
            }
        }
        out
    }

    /// Waits until a majority follows one leader; its name.
    pub async fn leader(&mut self, timeout: Duration) -> Result<String, String> {
        let started = Instant::now();
        loop {
            let st = self.statuses().await;
            if let Some((l, _)) = agreed_leader(&st) {
                return Ok(l);
            }
            if started.elapsed() > timeout {
                return Err(format!("no leader within {:.0}s", timeout.as_secs_f64()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until every running node has applied the leader's commit index.
    pub async fn converged(&mut self, timeout: Duration) -> Result<(), String> {
        let started = Instant::now();
        loop {
            let st = self.statuses().await;
            if let Some((l, _)) = agreed_leader(&st) {
                let commit = st[&l].commit;
                if st.values().all(|s| s.applied >= commit) && st.len() == self.running().len() {
                    return Ok(());
                }
            }
            if started.elapsed() > timeout {
                return Err(format!(
                    "the nodes did not converge within {:.0}s",
                    timeout.as_secs_f64()
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn running(&mut self) -> Vec<String> {
        self.sup
            .names()
            .into_iter()
            .filter(|n| self.sup.check_alive(n))
            .collect()
    }

    /// Registers `count` users (`bench1`, ...) and returns their sessions.
    pub async fn sessions(&self, count: usize) -> Result<Vec<Session>, String> {
        let mut client = Client::new(self.endpoints());
        let mut out = Vec::new();
        for i in 1..=count {
            let user = format!("bench{i}");
            let reply = client
                .register(&user, "benchmark password")
                .await
                .map_err(|e| format!("register {user}: {}", e.message))?;
            out.push(Session {
                user,
                token: reply.token,
            });
        }
        Ok(out)
    }

    /// Resident memory of a node's process now and at its peak, in MiB.
    pub fn memory(&self, name: &str) -> Option<(f64, f64)> {
        let pid = self.sup.node(name).pid()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let field = |key: &str| -> Option<f64> {
            let line = status.lines().find(|l| l.starts_with(key))?;
            let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kb / 1024.0)
        };
        Some((field("VmRSS:")?, field("VmHWM:")?))
    }

    /// CPU time a node's process has used so far, user and system, in seconds.
    pub fn cpu_seconds(&self, name: &str) -> Option<f64> {
        process_cpu_seconds(self.sup.node(name).pid()?)
    }
}

/// CPU time (user and system, every thread) a process has used, from `/proc/PID/stat`.
pub fn process_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; the fields that follow it do not.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    // utime and stime are the 12th and 13th fields after the name.
    let utime: f64 = fields.nth(11)?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    // In clock ticks of USER_HZ, which Linux fixes at 100 for user space.
    Some((utime + stime) / 100.0)
}
