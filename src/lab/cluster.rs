//! The process supervisor: the lab's node processes as owned values. Each node keeps its
//! data directory for its whole life in the scenario; signals go to its own process id;
//! and every process the lab started is killed when the supervisor is dropped, on
//! success, failure or panic alike. A process-wide registry lets a Ctrl-C handler kill
//! them too.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Every node process alive that any supervisor started, for the signal handler.
static LIVE: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());

/// Kills every node process the lab started (the Ctrl-C path).
pub fn kill_all() {
    let pids: Vec<i32> = LIVE
        .lock()
        .map(|l| l.iter().copied().collect())
        .unwrap_or_default();
    for pid in pids {
        let _ = kill(Pid::from_raw(pid), Signal::SIGCONT);
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeState {
    Down,
    Up,
    Paused,
}

impl NodeState {
    pub fn word(self) -> &'static str {
        match self {
            NodeState::Down => "down",
            NodeState::Up => "up",
            NodeState::Paused => "paused",
        }
    }
}

pub struct LabNode {
    pub name: String,
    pub addr: String,
    pub dir: PathBuf,
    pub log: PathBuf,
    pub state: NodeState,
    child: Option<Child>,
    /// Set for nodes added by `add_node`: they join instead of bootstrapping.
    pub joined: bool,
}

impl LabNode {
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }
}

/// How nodes are started.
#[derive(Clone, Debug)]
pub struct NodeSettings {
    pub binary: PathBuf,
    pub election_timeout_ms: (u64, u64),
    pub heartbeat_ms: u64,
    pub snapshot_every: u64,
}

pub struct Supervisor {
    pub nodes: BTreeMap<String, LabNode>,
    settings: NodeSettings,
    /// The initial members, in order.
    initial: Vec<String>,
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Supervisor {
    /// Prepares `count` nodes n1..nN under `dir` (nothing runs yet).
    pub fn new(dir: &Path, count: u32, settings: NodeSettings) -> std::io::Result<Supervisor> {
        let mut sup = Supervisor {
            nodes: BTreeMap::new(),
            settings,
            initial: Vec::new(),
        };
        for i in 1..=count {
            let name = format!("n{i}");
            sup.add(dir, &name, false)?;
            sup.initial.push(name);
        }
        Ok(sup)
    }

    /// Prepares one more node (for `add_node`); it will join the running cluster.
    pub fn add(&mut self, dir: &Path, name: &str, joined: bool) -> std::io::Result<()> {
        let node = LabNode {
            name: name.to_string(),
            addr: format!("127.0.0.1:{}", free_port()?),
            dir: dir.join(name),
            log: dir.join(format!("{name}.log")),
            state: NodeState::Down,
            child: None,
            joined,
        };
        self.nodes.insert(name.to_string(), node);
        Ok(())
    }

    pub fn names(&self) -> Vec<String> {
        // n1, n2, ..., n10 in numeric order, then added names.
        let mut names: Vec<String> = self.nodes.keys().cloned().collect();
        names.sort_by_key(|n| {
            let num = n.strip_prefix('n').and_then(|d| d.parse::<u64>().ok());
            (num.is_none(), num, n.clone())
        });
        names
    }

    pub fn node(&self, name: &str) -> &LabNode {
        &self.nodes[name]
    }

    /// Starts a node on its data directory. `join` names a running node to join through.
    pub fn start(&mut self, name: &str, join: Option<String>) -> Result<u32, String> {
        let peers: Vec<(String, String)> = self
            .initial
            .iter()
            .filter(|n| *n != name)
            .map(|n| (n.clone(), self.nodes[n].addr.clone()))
            .collect();
        let s = self.settings.clone();
        let node = self.nodes.get_mut(name).ok_or(format!("no node {name}"))?;
        if node.child.is_some() {
            return Ok(node.pid().unwrap_or(0));
        }
        let log = File::options()
            .create(true)
            .append(true)
            .open(&node.log)
            .map_err(|e| format!("{}: {e}", node.log.display()))?;
        let mut cmd = Command::new(&s.binary);
        cmd.args(["node", "--id", name, "--listen", &node.addr])
            .arg("--data-dir")
            .arg(&node.dir)
            .arg("--election-timeout-ms")
            .arg(format!(
                "{}-{}",
                s.election_timeout_ms.0, s.election_timeout_ms.1
            ))
            .arg("--heartbeat-ms")
            .arg(s.heartbeat_ms.to_string())
            .arg("--snapshot-every")
            .arg(s.snapshot_every.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        if node.joined {
            if let Some(seed) = join {
                cmd.arg("--join").arg(seed);
            }
        } else {
            for (id, addr) in &peers {
                cmd.arg("--peer").arg(format!("{id}={addr}"));
            }
        }
        die_with_parent(&mut cmd);
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", s.binary.display()))?;
        let pid = child.id();
        if let Ok(mut live) = LIVE.lock() {
            live.insert(pid as i32);
        }
        node.child = Some(child);
        node.state = NodeState::Up;
        Ok(pid)
    }

    fn signal(&self, name: &str, signal: Signal) -> Result<(), String> {
        let pid = self.nodes[name]
            .pid()
            .ok_or_else(|| format!("{name} is not running"))?;
        kill(Pid::from_raw(pid as i32), signal).map_err(|e| format!("{signal} to {name}: {e}"))
    }

    fn reap(&mut self, name: &str, wait_for: Duration) -> bool {
        let node = self.nodes.get_mut(name).expect("known node");
        let Some(child) = node.child.as_mut() else {
            return true;
        };
        let started = Instant::now();
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            if started.elapsed() >= wait_for {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        if let Some(child) = node.child.take()
            && let Ok(mut live) = LIVE.lock()
        {
            live.remove(&(child.id() as i32));
        }
        node.state = NodeState::Down;
        true
    }

    /// SIGKILL: a crash; nothing is flushed that was not already durable.
    pub fn kill(&mut self, name: &str) -> Result<(), String> {
        if self.nodes[name].child.is_none() {
            return Ok(());
        }
        let _ = self.signal(name, Signal::SIGCONT);
        self.signal(name, Signal::SIGKILL)?;
        self.reap(name, Duration::from_secs(10));
        Ok(())
    }

    /// SIGTERM: a clean shutdown (SIGKILL if it does not end within 10 s).
    pub fn stop(&mut self, name: &str) -> Result<(), String> {
        if self.nodes[name].child.is_none() {
            return Ok(());
        }
        let _ = self.signal(name, Signal::SIGCONT);
        self.signal(name, Signal::SIGTERM)?;
        if !self.reap(name, Duration::from_secs(10)) {
            self.kill(name)?;
        }
        Ok(())
    }

    /// SIGSTOP: a hung node.
    pub fn pause(&mut self, name: &str) -> Result<(), String> {
        self.signal(name, Signal::SIGSTOP)?;
        self.nodes.get_mut(name).expect("known").state = NodeState::Paused;
        Ok(())
    }

    pub fn resume(&mut self, name: &str) -> Result<(), String> {
        self.signal(name, Signal::SIGCONT)?;
        self.nodes.get_mut(name).expect("known").state = NodeState::Up;
        Ok(())
    }

    /// Whether a node's process is still alive (a node can die on its own).
    pub fn check_alive(&mut self, name: &str) -> bool {
        let node = self.nodes.get_mut(name).expect("known");
        match node.child.as_mut().map(|c| c.try_wait()) {
            Some(Ok(None)) => true,
            Some(_) => {
                if let Some(c) = node.child.take()
                    && let Ok(mut live) = LIVE.lock()
                {
                    live.remove(&(c.id() as i32));
                }
                node.state = NodeState::Down;
                false
            }
            None => false,
        }
    }

    /// Stops every node, cleanly where it can: all are signalled at once, then each is
    /// waited for (and killed if it does not end within 10 s).
    pub fn stop_all(&mut self) {
        let running: Vec<String> = self
            .names()
            .into_iter()
            .filter(|n| self.nodes[n].child.is_some())
            .collect();
        for n in &running {
            let _ = self.signal(n, Signal::SIGCONT);
            let _ = self.signal(n, Signal::SIGTERM);
        }
        for n in &running {
            if !self.reap(n, Duration::from_secs(10)) {
                let _ = self.kill(n);
            }
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        for name in self.names() {
            let _ = self.kill(&name);
        }
    }
}

/// Makes the process `cmd` starts die (SIGKILL) when the thread that started it ends,
/// which is when the lab, a test or a benchmark ends, however it ends: even killed
/// outright, it leaves no node behind. Start nodes from a thread that lives as long as they
/// should (the main thread, or the test's own), not from a pool's worker.
pub fn die_with_parent(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the child between fork and exec, where only
    // async-signal-safe calls are allowed; prctl is a plain system call.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Some(Signal::SIGKILL)).map_err(std::io::Error::from)
        });
    }
}
