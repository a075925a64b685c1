//! A cluster of real `raftchat node` processes for tests: free loopback ports chosen at
//! run time, a temporary data directory per node, and a guard that kills every process it
//! started, by its own handle, when dropped (on success, failure or panic alike).

#![allow(dead_code)]

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use raftchat::client::Client;

pub struct TestNode {
    pub id: String,
    pub addr: String,
    pub dir: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
}

pub struct TestCluster {
    pub nodes: Vec<TestNode>,
    pub tmp: tempfile::TempDir,
}

/// A port on 127.0.0.1 that nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl TestCluster {
    pub fn start(n: usize) -> TestCluster {
        let tmp = tempfile::tempdir().expect("temp dir");
        let nodes: Vec<TestNode> = (1..=n)
            .map(|i| {
                let id = format!("n{i}");
                TestNode {
                    addr: format!("127.0.0.1:{}", free_port()),
                    dir: tmp.path().join(&id),
                    log: tmp.path().join(format!("{id}.log")),
                    id,
                    child: None,
                }
            })
            .collect();
        let mut cluster = TestCluster { nodes, tmp };
        for i in 0..n {
            cluster.spawn(i);
        }
        cluster
    }

    fn spawn(&mut self, i: usize) {
        let peers: Vec<String> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .flat_map(|(_, n)| ["--peer".to_string(), format!("{}={}", n.id, n.addr)])
            .collect();
        let node = &mut self.nodes[i];
        let log = File::options()
            .create(true)
            .append(true)
            .open(&node.log)
            .expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_raftchat"));
        raftchat::lab::cluster::die_with_parent(&mut cmd);
        let child = cmd
            .args(["node", "--id", &node.id, "--listen", &node.addr])
            .arg("--data-dir")
            .arg(&node.dir)
            .args(["--election-timeout-ms", "300-600", "--heartbeat-ms", "50"])
            .args(&peers)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn raftchat node");
        node.child = Some(child);
    }

    pub fn addrs(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.addr.clone()).collect()
    }

    pub fn client(&self) -> Client {
        Client::new(self.addrs())
    }

    /// SIGKILL: a crash.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        self.spawn(i);
    }

    pub fn is_running(&self, i: usize) -> bool {
        self.nodes[i].child.is_some()
    }

    /// Waits until a node leads and a majority of the running nodes follow it; returns
    /// its position. Fails with what each node reported last.
    pub async fn wait_leader(&self, timeout: Duration) -> usize {
        let started = Instant::now();
        let mut client = self.client();
        client.timeouts.attempt = Duration::from_millis(500);
        let mut seen = Vec::new();
        while started.elapsed() < timeout {
            seen.clear();
            let mut votes = std::collections::HashMap::new();
            for i in 0..self.nodes.len() {
                if !self.is_running(i) {
                    seen.push(format!("{}: down", self.nodes[i].id));
                    continue;
                }
                match client.status_of(i).await {
                    Ok(st) => {
                        seen.push(format!(
                            "{}: {} term {} leader {:?}",
                            st.id, st.role, st.term, st.leader
                        ));
                        if !st.leader.is_empty() {
                            *votes.entry((st.leader, st.term)).or_insert(0) += 1;
                        }
                    }
                    Err(e) => seen.push(format!("{}: {e}", self.nodes[i].id)),
                }
            }
            let majority = self.nodes.len() / 2 + 1;
            if let Some(((leader, _), _)) = votes.into_iter().find(|(_, n)| *n >= majority)
                && let Some(i) = self.nodes.iter().position(|n| n.id == leader)
                && self.is_running(i)
            {
                return i;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "no leader within {timeout:?}; last seen: {seen:?}; logs in {}",
            self.tmp.path().display()
        );
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}
