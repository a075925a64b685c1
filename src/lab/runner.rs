//! Runs one scenario: starts the nodes as real processes, performs the steps in order,
//! prints one line per step and a status line of the cluster, then stops the nodes and
//! runs the offline checks. A failure names the step (file:line), what was expected and
//! what was seen, and where the node logs are; the run's folder is then kept.

use std::collections::{BTreeMap, HashMap};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::json;
use tonic::transport::Channel;

use super::checks::{self, NodeDir};
use super::cluster::{NodeSettings, NodeState, Supervisor};
use super::history::{Acked, Completion, History};
use super::scenario::{
    ClusterExpect, Expect, LeaderWait, Load, Network, NodeRef, Op, OpKind, Scenario, Step,
    StepKind, WaitFor,
};
use super::view::{self, LiveView, ViewNode};
use super::watch::Watch;
use crate::client::{Admins, Client, ClientError};
use crate::proto::admin::admin_client::AdminClient;
use crate::proto::admin::{self as admin_pb, StatusReply};
use crate::proto::chat::ChatMessage;
use crate::raft::Rng;

/// How a run is made and shown.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The `raftchat` binary that runs the nodes.
    pub binary: PathBuf,
    /// Where run folders go (`target/lab` by default).
    pub out_dir: PathBuf,
    /// Keep the run folder even when the scenario passes.
    pub keep: bool,
    /// Print step lines and status lines as the run goes.
    pub verbose: bool,
    /// Color the output (a terminal, not CI).
    pub color: bool,
    /// Run as a presentation (`raftchat lab demo`).
    pub presentation: Option<Presentation>,
}

/// How a presentation runs: its pace, and whether the presenter drives it.
#[derive(Clone, Debug)]
pub struct Presentation {
    /// The pause after each step (twice as long after narration).
    pub pace: Duration,
    /// Wait for Enter before each step.
    pub step: bool,
    /// Keep the cluster's table at the top of the terminal, refreshed as it changes;
    /// otherwise it is printed as plain text after each step that changes the cluster.
    pub live: bool,
}

impl RunOptions {
    pub fn new(binary: PathBuf) -> RunOptions {
        let color = std::io::stdout().is_terminal() && std::env::var_os("CI").is_none();
        RunOptions {
            binary,
            out_dir: PathBuf::from("target/lab"),
            keep: false,
            verbose: true,
            color,
            presentation: None,
        }
    }
}

/// What a run found.
#[derive(Debug)]
pub struct RunResult {
    pub name: String,
    pub file: PathBuf,
    pub passed: bool,
    pub duration: Duration,
    pub leader_changes: usize,
    pub operations: usize,
    pub failed_checks: Vec<String>,
    pub failure: Option<String>,
    /// Peer messages the network faults lost and held back.
    pub dropped: u64,
    pub delayed: u64,
    /// The dumps recorded by `snapshot:` steps, by label, in order.
    pub dumps: Vec<(String, String)>,
    /// What each node left on disk, read offline by the end checks.
    pub nodes: Vec<checks::NodeSummary>,
    /// The run folder, if kept.
    pub kept: Option<PathBuf>,
}

type StepResult = Result<String, String>;

struct Runner<'a> {
    s: &'a Scenario,
    opts: &'a RunOptions,
    sup: Supervisor,
    dir: PathBuf,
    started: Instant,
    rng: Rng,
    last_killed: Option<String>,
    /// Each user's client and session token.
    users: HashMap<String, (Client, String)>,
    history: History,
    admins: Admins,
    /// Every leader seen, by term: two for one term is a violation.
    leaders: BTreeMap<u64, String>,
    violations: Vec<String>,
    dumps: Vec<(String, String)>,
    /// The network faults in force: each node's rules for its messages to each peer.
    faults: BTreeMap<String, BTreeMap<String, admin_pb::FaultRule>>,
    /// Open `watch` streams, by user.
    watches: HashMap<String, Watch>,
    /// The table at the top of the terminal, in a live presentation.
    view: Option<LiveView>,
}

/// Runs a scenario to the end and checks what the nodes left on disk.
pub async fn run(s: &Scenario, opts: &RunOptions) -> RunResult {
    let started = Instant::now();
    let fail_early = |why: String| RunResult {
        name: s.name.clone(),
        file: s.file.clone(),
        passed: false,
        duration: started.elapsed(),
        leader_changes: 0,
        operations: 0,
        failed_checks: Vec::new(),
        failure: Some(why),
        dropped: 0,
        delayed: 0,
        dumps: Vec::new(),
        nodes: Vec::new(),
        kept: None,
    };
    if let Err(e) = std::fs::create_dir_all(&opts.out_dir) {
        return fail_early(format!("{}: {e}", opts.out_dir.display()));
    }
    let tmp = match tempfile::Builder::new()
        .prefix(&format!("{}-", s.name))
        .tempdir_in(&opts.out_dir)
    {
        Ok(t) => t,
        Err(e) => return fail_early(format!("{}: {e}", opts.out_dir.display())),
    };
    let settings = NodeSettings {
        binary: opts.binary.clone(),
        election_timeout_ms: s.election_timeout_ms.unwrap_or((300, 600)),
        heartbeat_ms: s.heartbeat_ms.unwrap_or(50),
        snapshot_every: s.snapshot_every.unwrap_or(10_000),
    };
    let sup = match Supervisor::new(tmp.path(), s.nodes, settings) {
        Ok(sup) => sup,
        Err(e) => return fail_early(format!("cannot prepare the nodes: {e}")),
    };
    let mut r = Runner {
        s,
        opts,
        sup,
        dir: tmp.path().to_path_buf(),
        started,
        rng: Rng::new(s.seed),
        last_killed: None,
        users: HashMap::new(),
        history: History::new(started),
        admins: Admins::default(),
        leaders: BTreeMap::new(),
        violations: Vec::new(),
        dumps: Vec::new(),
        faults: BTreeMap::new(),
        watches: HashMap::new(),
        view: None,
    };
    if opts.presentation.as_ref().is_some_and(|p| p.live) {
        let rows = s.nodes as usize + s.added_nodes().len();
        let title = format!("raftchat lab demo: {}", s.name);
        r.view = Some(LiveView::start(title, rows));
        r.update_view();
    }
    r.say_header();
    let failure = match tokio::time::timeout(s.timeout, r.steps()).await {
        Ok(result) => result.err(),
        Err(_) => Some(format!(
            "{}: the scenario did not finish within its timeout of {:.0}s",
            s.file.display(),
            s.timeout.as_secs_f64()
        )),
    };
    // The live table stops here: the nodes are about to stop.
    r.view = None;
    // What the network faults did, before the counters go with the processes.
    let (dropped, delayed) = r
        .statuses()
        .await
        .values()
        .fold((0, 0), |(d, l), s| (d + s.dropped, l + s.delayed));
    // The end: stop every node, then read what each left on disk.
    r.sup.stop_all();
    let nodes: Vec<NodeDir> = r
        .sup
        .names()
        .into_iter()
        .map(|n| NodeDir {
            dir: r.sup.node(&n).dir.clone(),
            name: n,
        })
        .collect();
    let acked = r.history.acked_writes();
    let checked = tokio::task::spawn_blocking(move || checks::check(&nodes, &acked))
        .await
        .unwrap_or_else(|e| checks::Checked {
            failures: vec![format!("the checks crashed: {e}")],
            nodes: Vec::new(),
        });
    let mut failed_checks = checked.failures;
    failed_checks.extend(r.violations.clone());
    let passed = failure.is_none() && failed_checks.is_empty();
    let _ = r.history.write(&r.dir.join("history.jsonl"));
    let report = json!({
        "scenario": s.name, "file": s.file, "passed": passed,
        "duration_s": started.elapsed().as_secs_f64(),
        "leader_changes": r.leaders.len(), "operations": r.history.operations(),
        "dropped": dropped, "delayed": delayed,
        "failure": failure, "failed_checks": failed_checks,
        "dumps": r.dumps.iter().map(|(l, d)| json!({"label": l, "dump": d})).collect::<Vec<_>>(),
    });
    let _ = std::fs::write(r.dir.join("report.json"), format!("{report:#}\n"));
    let mut result = RunResult {
        name: s.name.clone(),
        file: s.file.clone(),
        passed,
        duration: started.elapsed(),
        leader_changes: r.leaders.len(),
        operations: r.history.operations(),
        failed_checks,
        failure,
        dropped,
        delayed,
        dumps: std::mem::take(&mut r.dumps),
        nodes: checked.nodes,
        kept: None,
    };
    if !passed || opts.keep {
        result.kept = Some(tmp.keep());
    }
    if !result.passed {
        let logs: Vec<String> = r
            .sup
            .names()
            .iter()
            .map(|n| format!("{n}: {}", r.sup.node(n).log.display()))
            .collect();
        let detail = result.failure.clone().unwrap_or_default();
        result.failure = Some(format!("{detail}\n  node logs: {}", logs.join(", ")));
    }
    result
}

impl Runner<'_> {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.opts.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    fn say_header(&self) {
        if !self.opts.verbose {
            return;
        }
        println!(
            "{} {} ({} nodes, {})",
            self.paint("1", "scenario"),
            self.paint("1", &self.s.name),
            self.s.nodes,
            self.s.file.display()
        );
        if !self.s.description.is_empty() {
            println!("  {}", self.s.description);
        }
    }

    async fn steps(&mut self) -> Result<(), String> {
        let presentation = self.opts.presentation.clone();
        for step in &self.s.steps {
            let is_say = matches!(step.kind, StepKind::Say(_));
            if presentation.as_ref().is_some_and(|p| p.step) && !is_say {
                wait_for_enter(&format!("next: {}", step.text)).await;
            }
            let result = self.step(step).await;
            self.update_view();
            let at = self.started.elapsed().as_secs_f64();
            if self.opts.verbose && !(is_say && presentation.is_some()) {
                let (mark, detail) = match &result {
                    Ok(d) => (self.paint("32", "ok"), d.clone()),
                    Err(e) => (self.paint("31", "FAILED"), e.clone()),
                };
                let detail = if detail.is_empty() {
                    String::new()
                } else {
                    format!(": {detail}")
                };
                println!(
                    "{at:>7.2}s  line {:<4} {}  {mark}{detail}",
                    step.line, step.text
                );
                match &presentation {
                    None => println!("           {}", self.status_line().await),
                    Some(p) if !p.live && changes_cluster(&step.kind) => {
                        println!();
                        for line in self.table().await {
                            println!("         {line}");
                        }
                        println!();
                    }
                    Some(_) => {}
                }
                let _ = std::io::stdout().flush();
            }
            if let Err(e) = result {
                return Err(format!(
                    "{}:{}: {}: {e}",
                    self.s.file.display(),
                    step.line,
                    step.text
                ));
            }
            if let Some(p) = &presentation
                && !p.pace.is_zero()
            {
                tokio::time::sleep(if is_say { p.pace * 2 } else { p.pace }).await;
            }
        }
        Ok(())
    }

    /// The nodes as the view shows them.
    fn view_nodes(&self) -> Vec<ViewNode> {
        self.sup
            .names()
            .into_iter()
            .map(|n| {
                let node = self.sup.node(&n);
                ViewNode {
                    name: n.clone(),
                    addr: node.addr.clone(),
                    state: node.state,
                }
            })
            .collect()
    }

    fn update_view(&self) {
        if let Some(view) = &self.view {
            view.update(self.view_nodes());
        }
    }

    /// The cluster's table as plain text.
    async fn table(&mut self) -> Vec<String> {
        let statuses = self.statuses().await;
        view::render(&self.view_nodes(), &statuses, self.opts.color)
    }

    // ----- Looking at the cluster. -----

    fn admin(&mut self, name: &str) -> AdminClient<Channel> {
        let addr = self.sup.node(name).addr.clone();
        self.admins.get(&addr)
    }

    /// The status of every node that can answer (not down, not paused).
    async fn statuses(&mut self) -> BTreeMap<String, StatusReply> {
        let mut out = BTreeMap::new();
        for name in self.sup.names() {
            if !self.sup.check_alive(&name) || self.sup.node(&name).state != NodeState::Up {
                continue;
            }
            let addr = self.sup.node(&name).addr.clone();
            if let Some(st) = self.admins.status(&addr).await {
                if st.role == "leader" {
                    let prior = self.leaders.entry(st.term).or_insert_with(|| st.id.clone());
                    if *prior != st.id {
                        let v = format!(
                            "election safety: {} and {} both led term {}",
                            prior, st.id, st.term
                        );
                        if !self.violations.contains(&v) {
                            self.violations.push(v);
                        }
                    }
                }
                out.insert(name, st);
            }
        }
        out
    }

    async fn status_line(&mut self) -> String {
        let statuses = self.statuses().await;
        let mut parts = Vec::new();
        for name in self.sup.names() {
            let state = self.sup.node(&name).state;
            let part = match (state, statuses.get(&name)) {
                (NodeState::Up, Some(s)) => {
                    let role = match s.role.as_str() {
                        "leader" => self.paint("1;33", "leader"),
                        other => other.to_string(),
                    };
                    format!("{name} up {role} t{} {}/{}", s.term, s.commit, s.applied)
                }
                (NodeState::Up, None) => format!("{name} up (no answer)"),
                (other, _) => format!("{name} {}", self.paint("2", other.word())),
            };
            parts.push(part);
        }
        parts.join(" | ")
    }

    fn seen(statuses: &BTreeMap<String, StatusReply>) -> String {
        if statuses.is_empty() {
            return "no node answered".into();
        }
        statuses
            .values()
            .map(|s| {
                format!(
                    "{} {} t{} leader {} commit {} applied {}",
                    s.id,
                    s.role,
                    s.term,
                    if s.leader.is_empty() { "-" } else { &s.leader },
                    s.commit,
                    s.applied
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The nodes a reference names, now.
    async fn resolve(&mut self, r: &NodeRef) -> Result<Vec<String>, String> {
        let all = self.sup.names();
        Ok(match r {
            NodeRef::Node(n) => vec![n.clone()],
            NodeRef::List(l) => l.clone(),
            NodeRef::All => all
                .into_iter()
                .filter(|n| !self.sup.node(n).joined || self.sup.node(n).dir.exists())
                .collect(),
            NodeRef::LastKilled => vec![
                self.last_killed
                    .clone()
                    .ok_or("no node was killed, stopped or paused yet")?,
            ],
            NodeRef::Leader => {
                let st = self.statuses().await;
                let (leader, _) = agreed_leader(&st)
                    .ok_or_else(|| format!("there is no leader ({})", Self::seen(&st)))?;
                vec![leader]
            }
            NodeRef::Follower | NodeRef::Followers => {
                let st = self.statuses().await;
                let (leader, _) = agreed_leader(&st)
                    .ok_or_else(|| format!("there is no leader ({})", Self::seen(&st)))?;
                let followers: Vec<String> = all
                    .into_iter()
                    .filter(|n| *n != leader && self.sup.node(n).state != NodeState::Down)
                    .collect();
                if followers.is_empty() {
                    return Err("there is no follower".into());
                }
                if matches!(r, NodeRef::Followers) {
                    followers
                } else {
                    let i = self.rng.range(0, followers.len() as u64) as usize;
                    vec![followers[i].clone()]
                }
            }
            NodeRef::Majority | NodeRef::Minority => {
                let mut shuffled = all.clone();
                for i in (1..shuffled.len()).rev() {
                    let j = self.rng.range(0, i as u64 + 1) as usize;
                    shuffled.swap(i, j);
                }
                let majority = shuffled.len() / 2 + 1;
                if matches!(r, NodeRef::Majority) {
                    shuffled[..majority].to_vec()
                } else {
                    shuffled[majority..].to_vec()
                }
            }
        })
    }

    /// Polls until `done` holds, or fails after `timeout` with what it saw last.
    async fn wait_for(
        &mut self,
        timeout: Duration,
        mut done: impl FnMut(&BTreeMap<String, StatusReply>) -> Option<String>,
    ) -> StepResult {
        let started = Instant::now();
        loop {
            let st = self.statuses().await;
            if let Some(what) = done(&st) {
                return Ok(what);
            }
            if started.elapsed() >= timeout {
                return Err(format!(
                    "timed out after {:.1}s; last seen: {}",
                    timeout.as_secs_f64(),
                    Self::seen(&st)
                ));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    // ----- Steps. -----

    async fn step(&mut self, step: &Step) -> StepResult {
        match &step.kind {
            StepKind::Start(r) => {
                let names = self.resolve(r).await?;
                let mut started = Vec::new();
                for n in names {
                    if self.sup.node(&n).state == NodeState::Down {
                        let seed = self.any_up_address();
                        let pid = self.sup.start(&n, seed)?;
                        self.apply_faults(&n).await?;
                        started.push(format!("{n} (pid {pid})"));
                    }
                }
                Ok(format!("started {}", started.join(", ")))
            }
            StepKind::Kill(r) => self.signal_nodes(r, "killed", |sup, n| sup.kill(n)).await,
            StepKind::Stop(r) => self.signal_nodes(r, "stopped", |sup, n| sup.stop(n)).await,
            StepKind::Pause(r) => self.signal_nodes(r, "paused", |sup, n| sup.pause(n)).await,
            StepKind::Resume(r) => {
                let names = self.resolve(r).await?;
                for n in &names {
                    self.sup.resume(n)?;
                    self.apply_faults(n).await?;
                }
                Ok(format!("resumed {}", names.join(", ")))
            }
            StepKind::Restart(r) => {
                let names = self.resolve(r).await?;
                for n in &names {
                    self.sup.kill(n)?;
                    let seed = self.any_up_address();
                    self.sup.start(n, seed)?;
                    self.apply_faults(n).await?;
                }
                Ok(format!("restarted {}", names.join(", ")))
            }
            StepKind::Wait { what, timeout } => self.wait(what, *timeout).await,
            StepKind::Sleep(d) => {
                tokio::time::sleep(*d).await;
                Ok(String::new())
            }
            StepKind::Op(op) => self.op(op).await,
            StepKind::Load(load) => self.load(load).await,
            StepKind::Expect(e) => self.expect_cluster(e).await,
            StepKind::CheckInvariants => self.check_invariants().await,
            StepKind::Snapshot(label) => self.snapshot(label).await,
            StepKind::Say(text) => {
                if self.opts.verbose {
                    println!();
                    for (i, line) in wrap(text, 92).iter().enumerate() {
                        let lead = if i == 0 { ">> " } else { "   " };
                        println!("  {}", self.paint("1;36", &format!("{lead}{line}")));
                    }
                    println!();
                }
                Ok(String::new())
            }
            StepKind::Watch { user, via } => self.watch(user, via.as_ref()).await,
            StepKind::AddNode { name, wait } => self.add_node(name, *wait).await,
            StepKind::RemoveNode(r) => self.remove_node(r).await,
            StepKind::TransferLeader(r) => self.transfer_leader(r).await,
            StepKind::Compact(r) => {
                let names = self.resolve(r).await?;
                let mut done = Vec::new();
                for n in names {
                    if self.sup.node(&n).state != NodeState::Up {
                        done.push(format!("{n} skipped ({})", self.sup.node(&n).state.word()));
                        continue;
                    }
                    let mut admin = self.admin(&n);
                    let reply = admin
                        .compact(admin_pb::CompactRequest {})
                        .await
                        .map_err(|s| format!("compact {n}: {}", s.message()))?;
                    done.push(format!("{n} at {}", reply.into_inner().snapshot_index));
                }
                Ok(format!("snapshots: {}", done.join(", ")))
            }
            StepKind::Network(n) => self.network(n).await,
        }
    }

    /// Changes the network faults, then sends every running node its new rules.
    async fn network(&mut self, n: &Network) -> StepResult {
        let all = self.sup.names();
        let summary = match n {
            Network::Heal => {
                self.faults.clear();
                "healed every link".to_string()
            }
            Network::Partition(groups) => {
                self.faults.clear();
                let group_of = |n: &str| groups.iter().position(|g| g.iter().any(|m| m == n));
                for a in &all {
                    for b in &all {
                        if a != b && (group_of(a).is_none() || group_of(a) != group_of(b)) {
                            self.rule(a, b).block = true;
                        }
                    }
                }
                let shown: Vec<String> = groups
                    .iter()
                    .map(|g| format!("[{}]", g.join(", ")))
                    .collect();
                format!("partitioned {}", shown.join(" | "))
            }
            Network::Isolate(r) => {
                let cut = self.resolve(r).await?;
                for c in &cut {
                    for other in &all {
                        if c != other {
                            self.rule(c, other).block = true;
                            self.rule(other, c).block = true;
                        }
                    }
                }
                format!("isolated {}", cut.join(", "))
            }
            Network::Drop { from, to, rate } => {
                let (from, to) = (self.resolve(from).await?, self.resolve(to).await?);
                for f in &from {
                    for t in &to {
                        if f != t {
                            self.rule(f, t).drop_rate = *rate;
                        }
                    }
                }
                format!(
                    "{}: {:.0}% lost to {}",
                    from.join(", "),
                    rate * 100.0,
                    to.join(", ")
                )
            }
            Network::Delay { between, ms } => {
                let (a, b) = (
                    self.resolve(&between.0).await?,
                    self.resolve(&between.1).await?,
                );
                for x in &a {
                    for y in &b {
                        if x == y {
                            continue;
                        }
                        for (from, to) in [(x, y), (y, x)] {
                            let r = self.rule(from, to);
                            r.delay_min_ms = ms.0;
                            r.delay_max_ms = ms.1;
                        }
                    }
                }
                format!(
                    "{}-{} ms between {} and {}",
                    ms.0,
                    ms.1,
                    a.join(", "),
                    b.join(", ")
                )
            }
        };
        for name in all {
            if self.sup.node(&name).state == NodeState::Up {
                self.apply_faults(&name).await?;
            }
        }
        Ok(summary)
    }

    /// The rule for messages from `from` to `to` (a new, harmless one if none).
    fn rule(&mut self, from: &str, to: &str) -> &mut admin_pb::FaultRule {
        self.faults
            .entry(from.to_string())
            .or_default()
            .entry(to.to_string())
            .or_insert_with(|| admin_pb::FaultRule {
                peer: to.to_string(),
                ..Default::default()
            })
    }

    /// Sends a node its fault rules (it forgets them when it restarts), retrying while it
    /// starts up.
    async fn apply_faults(&mut self, name: &str) -> Result<(), String> {
        let rules: Vec<admin_pb::FaultRule> = self
            .faults
            .get(name)
            .map(|m| m.values().filter(|r| r.peer != name).cloned().collect())
            .unwrap_or_default();
        let fresh = self.sup.node(name).state == NodeState::Up;
        if rules.is_empty() && !fresh {
            return Ok(());
        }
        let seed = self.s.seed ^ crate::raft::hash_seed(name);
        let started = Instant::now();
        loop {
            let mut admin = self.admin(name);
            let request = admin_pb::FaultsRequest {
                rules: rules.clone(),
                seed,
            };
            let call = admin.set_faults(request);
            match tokio::time::timeout(Duration::from_millis(500), call).await {
                Ok(Ok(_)) => return Ok(()),
                _ if started.elapsed() > Duration::from_secs(10) => {
                    return Err(format!("{name} did not take its network faults"));
                }
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    fn any_up_address(&self) -> Option<String> {
        self.sup
            .names()
            .into_iter()
            .find(|n| self.sup.node(n).state == NodeState::Up && !self.sup.node(n).joined)
            .map(|n| self.sup.node(&n).addr.clone())
    }

    async fn signal_nodes(
        &mut self,
        r: &NodeRef,
        verb: &str,
        act: impl Fn(&mut Supervisor, &str) -> Result<(), String>,
    ) -> StepResult {
        let names = self.resolve(r).await?;
        for n in &names {
            act(&mut self.sup, n)?;
            self.last_killed = Some(n.clone());
        }
        Ok(format!("{verb} {}", names.join(", ")))
    }

    /// Until no running node claims to lead: a leader without a majority steps down.
    async fn wait_no_leader(&mut self, timeout: Duration) -> StepResult {
        self.wait_for(timeout, |st| {
            st.values()
                .all(|s| s.role != "leader")
                .then(|| "no node leads".to_string())
        })
        .await
    }

    async fn wait(&mut self, what: &WaitFor, timeout: Duration) -> StepResult {
        match what {
            WaitFor::Leader(w) => {
                let (want, not) = match w {
                    LeaderWait::None => return self.wait_no_leader(timeout).await,
                    LeaderWait::Any => (None, None),
                    LeaderWait::Is(r) => (Some(self.resolve(r).await?), None),
                    LeaderWait::Not(r) => (None, Some(self.resolve(r).await?)),
                };
                self.wait_for(timeout, |st| {
                    let (leader, term) = agreed_leader(st)?;
                    if want.as_ref().is_some_and(|w| !w.contains(&leader))
                        || not.as_ref().is_some_and(|n| n.contains(&leader))
                    {
                        return None;
                    }
                    Some(format!("{leader} leads term {term}"))
                })
                .await
            }
            WaitFor::Converged(r) => {
                let names = self.resolve(r).await?;
                let running: Vec<String> = names
                    .into_iter()
                    .filter(|n| self.sup.node(n).state == NodeState::Up)
                    .collect();
                self.wait_for(timeout, |st| {
                    let leader_commit = agreed_leader(st)
                        .and_then(|(l, _)| st.values().find(|s| s.id == l).map(|s| s.commit))?;
                    let all = running.iter().all(|n| {
                        st.get(n).is_some_and(|s| {
                            s.commit == leader_commit && s.applied == leader_commit
                        })
                    });
                    all.then(|| format!("{} at entry {leader_commit}", running.join(", ")))
                })
                .await
            }
            WaitFor::CaughtUp(r) => {
                let names = self.resolve(r).await?;
                self.wait_for(timeout, |st| {
                    let (leader, _) = agreed_leader(st)?;
                    let commit = st.values().find(|s| s.id == leader)?.commit;
                    let all = names
                        .iter()
                        .all(|n| st.get(n).is_some_and(|s| s.applied >= commit));
                    all.then(|| format!("{} applied entry {commit}", names.join(", ")))
                })
                .await
            }
            WaitFor::Watched { user, count } => {
                let Some(w) = self.watches.get(user) else {
                    return Err(format!("no watch of {user} is open"));
                };
                let started = Instant::now();
                loop {
                    let seen = w.seen();
                    if seen >= *count {
                        return Ok(format!("{user}'s screen showed {seen} messages"));
                    }
                    if started.elapsed() >= timeout {
                        return Err(format!(
                            "timed out after {:.1}s: {user}'s screen showed {seen} of {count} messages",
                            timeout.as_secs_f64()
                        ));
                    }
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
            }
            WaitFor::ReceivingSnapshot(r) => {
                let names = self.resolve(r).await?;
                self.wait_for(timeout, |st| {
                    let got: Vec<String> = names
                        .iter()
                        .filter_map(|n| {
                            let bytes = st.get(n)?.snapshot_receiving;
                            (bytes > 0).then(|| format!("{n} has {} KiB", bytes / 1024))
                        })
                        .collect();
                    (got.len() == names.len())
                        .then(|| format!("receiving a snapshot: {}", got.join(", ")))
                })
                .await
            }
        }
    }

    async fn expect_cluster(&mut self, e: &ClusterExpect) -> StepResult {
        let st = self.statuses().await;
        match e {
            ClusterExpect::Leader(want) => {
                let got = agreed_leader(&st).map(|(l, _)| l);
                if got == *want {
                    Ok(format!("leader {}", want.as_deref().unwrap_or("none")))
                } else {
                    Err(format!(
                        "expected leader {}, saw {}; {}",
                        want.as_deref().unwrap_or("none"),
                        got.as_deref().unwrap_or("none"),
                        Self::seen(&st)
                    ))
                }
            }
            ClusterExpect::Running(want) => {
                let mut got: Vec<String> = self
                    .sup
                    .names()
                    .into_iter()
                    .filter(|n| self.sup.check_alive(n))
                    .collect();
                got.sort();
                let mut want = want.clone();
                want.sort();
                if got == want {
                    Ok(format!("running {}", got.join(", ")))
                } else {
                    Err(format!(
                        "expected running [{}], saw [{}]",
                        want.join(", "),
                        got.join(", ")
                    ))
                }
            }
            ClusterExpect::TermAtLeast(t) => {
                let top = st.values().map(|s| s.term).max().unwrap_or(0);
                if top >= *t {
                    Ok(format!("term {top}"))
                } else {
                    Err(format!("expected a term of at least {t}, saw {top}"))
                }
            }
        }
    }

    async fn dumps(&mut self) -> Vec<(String, u64, String)> {
        let mut out = Vec::new();
        for name in self.sup.names() {
            if self.sup.node(&name).state != NodeState::Up {
                continue;
            }
            let mut admin = self.admin(&name);
            let call = admin.dump(admin_pb::DumpRequest {});
            if let Ok(Ok(r)) = tokio::time::timeout(Duration::from_secs(2), call).await {
                let r = r.into_inner();
                out.push((name, r.applied, r.dump));
            }
        }
        out
    }

    async fn check_invariants(&mut self) -> StepResult {
        self.statuses().await;
        if let Some(v) = self.violations.first() {
            return Err(v.clone());
        }
        let dumps = self.dumps().await;
        let mut by_index: BTreeMap<u64, (&str, &str)> = BTreeMap::new();
        for (name, applied, dump) in &dumps {
            if let Some((other, d)) = by_index.get(applied) {
                if d != dump {
                    return Err(format!(
                        "{name} and {other} applied entry {applied} but differ"
                    ));
                }
            } else {
                by_index.insert(*applied, (name, dump));
            }
        }
        Ok(format!(
            "{} terms, one leader each; states agree",
            self.leaders.len()
        ))
    }

    async fn snapshot(&mut self, label: &str) -> StepResult {
        // Every running member first catches up with the leader.
        let running: Vec<String> = self
            .sup
            .names()
            .into_iter()
            .filter(|n| self.sup.node(n).state == NodeState::Up)
            .collect();
        let _ = self
            .wait_for(Duration::from_secs(10), |st| {
                let (leader, _) = agreed_leader(st)?;
                let commit = st.get(&leader).map(|s| s.commit)?;
                running
                    .iter()
                    .filter(|n| {
                        st.get(*n)
                            .is_some_and(|s| s.members.iter().any(|m| &m.id == *n))
                    })
                    .all(|n| st.get(n).is_some_and(|s| s.applied == commit))
                    .then(String::new)
            })
            .await;
        let dumps = self.dumps().await;
        let Some((first, applied, reference)) = dumps.first().cloned() else {
            return Err("no node answered with its state".into());
        };
        for (name, at, dump) in &dumps[1..] {
            if dump != &reference {
                let diff = reference
                    .lines()
                    .zip(dump.lines())
                    .find(|(a, b)| a != b)
                    .map(|(a, b)| format!("{first}: {a:?} vs {name}: {b:?}"))
                    .unwrap_or_else(|| "one state is longer".into());
                return Err(format!(
                    "states differ ({first} at entry {applied}, {name} at entry {at}): {diff}"
                ));
            }
        }
        self.dumps.push((label.to_string(), reference));
        Ok(format!("{} nodes agree at entry {applied}", dumps.len()))
    }

    async fn add_node(&mut self, name: &str, wait: bool) -> StepResult {
        let seed = self
            .any_up_address()
            .ok_or("no running node to join through")?;
        self.sup
            .add(&self.dir.clone(), name, true)
            .map_err(|e| format!("cannot prepare {name}: {e}"))?;
        let pid = self.sup.start(name, Some(seed))?;
        if !wait {
            return Ok(format!("started {name} (pid {pid}), joining"));
        }
        let name = name.to_string();
        self.wait_for(Duration::from_secs(60), |st| {
            let (leader, _) = agreed_leader(st)?;
            let l = st.get(&leader)?;
            let voter = l.members.iter().any(|m| m.id == name && m.voter);
            let caught_up = st.get(&name).is_some_and(|s| s.applied >= l.commit);
            (voter && caught_up).then(|| format!("{name} joined as a voter and caught up"))
        })
        .await
    }

    /// The leader's admin service, once there is a leader: a membership step right after
    /// a crash waits out the election, as a client would.
    async fn watch(&mut self, user: &str, via: Option<&NodeRef>) -> StepResult {
        let Some((_, token)) = self.users.get(user).filter(|(_, t)| !t.is_empty()) else {
            return Err(format!(
                "{user} is not logged in (register or log in first)"
            ));
        };
        let token = token.clone();
        let node = match via {
            Some(r) => self.resolve(r).await?.first().cloned(),
            None => None,
        };
        let via_addr = node.as_ref().map(|n| self.sup.node(n).addr.clone());
        let label = format!("{user}'s screen");
        let color = self.opts.color;
        let show = move |line: &str| {
            let text = format!("{label} shows  {line}");
            if color {
                format!("{:>11}\x1b[35m{text}\x1b[0m", "")
            } else {
                format!("{:>11}{text}", "")
            }
        };
        let client = Client::new(self.addresses());
        let w = Watch::start(client, via_addr, user.to_string(), token, show);
        self.watches.insert(user.to_string(), w);
        Ok(match node {
            Some(n) => format!("{user}'s screen is open on {n}"),
            None => format!("{user}'s screen is open"),
        })
    }

    async fn leader_admin(&mut self) -> Result<(String, AdminClient<Channel>), String> {
        let leader = self
            .wait_for(Duration::from_secs(10), |st| {
                agreed_leader(st).map(|(leader, _)| leader)
            })
            .await
            .map_err(|e| format!("there is no leader: {e}"))?;
        Ok((leader.clone(), self.admin(&leader)))
    }

    async fn remove_node(&mut self, r: &NodeRef) -> StepResult {
        let names = self.resolve(r).await?;
        for n in &names {
            let (_, mut admin) = self.leader_admin().await?;
            admin
                .remove_node(admin_pb::RemoveNodeRequest { id: n.clone() })
                .await
                .map_err(|s| format!("remove {n}: {}", s.message()))?;
            let gone = n.clone();
            self.wait_for(Duration::from_secs(10), |st| {
                let (leader, _) = agreed_leader(st)?;
                let l = st.get(&leader)?;
                (leader != gone && l.members.iter().all(|m| m.id != gone)).then(String::new)
            })
            .await?;
            self.sup.stop(n)?;
        }
        Ok(format!("removed and stopped {}", names.join(", ")))
    }

    async fn transfer_leader(&mut self, r: &NodeRef) -> StepResult {
        let names = self.resolve(r).await?;
        let [target] = names.as_slice() else {
            return Err("transfer_leader names one node".into());
        };
        let (_, mut admin) = self.leader_admin().await?;
        admin
            .transfer_leader(admin_pb::TransferLeaderRequest { id: target.clone() })
            .await
            .map_err(|s| format!("transfer to {target}: {}", s.message()))?;
        let target = target.clone();
        self.wait_for(Duration::from_secs(5), |st| {
            let (leader, term) = agreed_leader(st)?;
            (leader == target).then(|| format!("{leader} leads term {term}"))
        })
        .await
    }

    // ----- Chat operations. -----

    fn addresses(&self) -> Vec<String> {
        self.sup
            .names()
            .into_iter()
            .map(|n| self.sup.node(&n).addr.clone())
            .collect()
    }

    async fn op(&mut self, op: &Op) -> StepResult {
        let user = match &op.kind {
            OpKind::Register { user, .. }
            | OpKind::Login { user, .. }
            | OpKind::Logout { user }
            | OpKind::Read { user, .. }
            | OpKind::DeleteMessages { user, .. }
            | OpKind::DeleteAccount { user } => user.clone(),
            OpKind::Send { from, .. } => from.clone(),
            OpKind::ListAccounts { .. } => "lab".to_string(),
        };
        let via = match &op.via {
            Some(r) => self
                .resolve(r)
                .await?
                .first()
                .map(|n| self.sup.node(n).addr.clone()),
            None => None,
        };
        let addrs = self.addresses();
        let (client, token) = self
            .users
            .entry(user.clone())
            .or_insert_with(|| (Client::new(addrs), String::new()));
        client.timeouts.deadline = op.timeout.unwrap_or(Duration::from_secs(10));
        client.timeouts.attempt = client.timeouts.deadline.min(Duration::from_secs(2));
        if let Some(addr) = via {
            client.prefer(&addr);
        }
        let outcome = perform(client, token, &op.kind, &self.history, &user).await;
        judge(&op.expect, outcome)
    }

    async fn load(&mut self, load: &Load) -> StepResult {
        let addrs = self.addresses();
        let mut tasks = tokio::task::JoinSet::new();
        let total: u32 = load.mix.values().sum();
        let send_weight = load.mix.get("send").copied().unwrap_or(0);
        // Every load user exists before anyone sends, so no send meets a missing recipient
        // and a load without faults gives the same state on every run.
        let ready = std::sync::Arc::new(tokio::sync::Barrier::new(load.clients as usize));
        let deadline = Instant::now() + load.duration;
        for i in 1..=load.clients {
            let history = self.history.clone();
            let addrs = addrs.clone();
            let ready = ready.clone();
            let (clients, count, size) = (load.clients, load.count, load.size);
            let mut rng = Rng::new(self.s.seed ^ (u64::from(i) << 32));
            tasks.spawn(async move {
                let user = format!("load{i}");
                let mut client = Client::new(addrs);
                client.timeouts.deadline = Duration::from_secs(2);
                client.timeouts.attempt = Duration::from_millis(500);
                let mut token = String::new();
                while token.is_empty() && Instant::now() < deadline {
                    let register = OpKind::Register {
                        user: user.clone(),
                        password: "load".into(),
                    };
                    let outcome =
                        perform(&mut client, &mut token, &register, &history, &user).await;
                    if let Err(e) = &outcome
                        && e.code_name() == "already_exists"
                    {
                        let login = OpKind::Login {
                            user: user.clone(),
                            password: "load".into(),
                        };
                        let _ = perform(&mut client, &mut token, &login, &history, &user).await;
                    }
                    if token.is_empty() {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                ready.wait().await;
                let mut done = 0u64;
                while !token.is_empty() && Instant::now() < deadline && done < count {
                    let kind = if rng.range(0, u64::from(total)) < u64::from(send_weight) {
                        let to = format!("load{}", 1 + rng.range(0, u64::from(clients)));
                        OpKind::Send {
                            from: user.clone(),
                            to,
                            text: load_text(done, &user, size),
                        }
                    } else {
                        OpKind::Read {
                            user: user.clone(),
                            limit: Some(10),
                            with: None,
                        }
                    };
                    let outcome = perform(&mut client, &mut token, &kind, &history, &user).await;
                    if outcome.is_err() {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    done += 1;
                }
                done
            });
        }
        let mut ops = 0;
        while let Some(done) = tasks.join_next().await {
            ops += done.unwrap_or(0);
        }
        Ok(format!("{ops} operations by {} clients", load.clients))
    }
}

/// The leader a majority of the cluster's voters follow, with its term, as the nodes'
/// statuses tell it (the lab's and the benchmark's notion of "there is a leader").
pub fn agreed_leader(statuses: &BTreeMap<String, StatusReply>) -> Option<(String, u64)> {
    let claimant = statuses
        .values()
        .filter(|s| s.role == "leader")
        .max_by_key(|s| s.term)?;
    let voters = claimant.members.iter().filter(|m| m.voter).count().max(1);
    let following = statuses
        .values()
        .filter(|s| s.term == claimant.term && s.leader == claimant.id)
        .count();
    (following > voters / 2).then(|| (claimant.id.clone(), claimant.term))
}

/// Cuts text into lines of at most `width` characters, at spaces.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// Whether a step changes which nodes run or what they hold, so a plain presentation
/// shows the table after it.
fn changes_cluster(kind: &StepKind) -> bool {
    !matches!(
        kind,
        StepKind::Say(_) | StepKind::Op(_) | StepKind::Watch { .. } | StepKind::Sleep(_)
    )
}

/// Waits for the presenter to press Enter (at once if there is no one to press it).
async fn wait_for_enter(prompt: &str) {
    println!("           [Enter] {prompt}");
    let _ = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)
    })
    .await;
}

/// The text of a load's message: its number and sender, padded to `size` bytes.
fn load_text(n: u64, user: &str, size: usize) -> String {
    let mut text = format!("load message {n} from {user}");
    if text.len() < size {
        let pad = size - text.len();
        text.push(' ');
        text.extend(std::iter::repeat_n('.', pad - 1));
    }
    text
}

/// What an operation returned.
enum Outcome {
    Done,
    Messages(Vec<ChatMessage>),
    Accounts(Vec<String>),
}

/// Performs one operation through the client library, recording it in the history.
async fn perform(
    client: &mut Client,
    token: &mut String,
    kind: &OpKind,
    history: &History,
    process: &str,
) -> Result<Outcome, ClientError> {
    let (f, value) = match kind {
        OpKind::Register { user, .. } => ("register", json!({"user": user})),
        OpKind::Login { user, .. } => ("login", json!({"user": user})),
        OpKind::Logout { user } => ("logout", json!({"user": user})),
        OpKind::Send { from, to, text } => ("send", json!({"from": from, "to": to, "text": text})),
        OpKind::Read { user, limit, with } => {
            ("read", json!({"user": user, "limit": limit, "with": with}))
        }
        OpKind::DeleteMessages { user, ids, all } => (
            "delete_messages",
            json!({"user": user, "ids": ids, "all": all}),
        ),
        OpKind::DeleteAccount { user } => ("delete_account", json!({"user": user})),
        OpKind::ListAccounts { pattern } => ("list_accounts", json!({"pattern": pattern})),
    };
    let invoke = history.invoke(process, f, value);
    let result = match kind {
        OpKind::Register { user, password } => client.register(user, password).await.map(|r| {
            *token = r.token;
            Outcome::Done
        }),
        OpKind::Login { user, password } => client.login(user, password).await.map(|r| {
            *token = r.token;
            Outcome::Done
        }),
        OpKind::Logout { user } => client.logout(user, token).await.map(|()| {
            token.clear();
            Outcome::Done
        }),
        OpKind::Send { from, to, text } => client
            .send(from, token, to, text)
            .await
            .map(|_| Outcome::Done),
        OpKind::Read { user, limit, with } => client
            .read(
                user,
                token,
                with.as_deref().unwrap_or(""),
                0,
                limit.unwrap_or(100),
            )
            .await
            .map(Outcome::Messages),
        OpKind::DeleteMessages { user, ids, all } => client
            .delete_messages(user, token, ids.clone(), *all)
            .await
            .map(|_| Outcome::Done),
        OpKind::DeleteAccount { user } => client.delete_account(user, token).await.map(|()| {
            token.clear();
            Outcome::Done
        }),
        OpKind::ListAccounts { pattern } => client
            .list_accounts(pattern, "", 1000)
            .await
            .map(Outcome::Accounts),
    };
    let index = client.last_index;
    let is_write = !matches!(kind, OpKind::ListAccounts { .. });
    match &result {
        Ok(_) => {
            history.complete(invoke, process, f, Completion::Ok, index);
            if is_write && let Some(index) = index {
                history.acked(Acked {
                    what: format!("{f} by {process}"),
                    index,
                    client_id: client.client_id(),
                    seq: client.last_seq(),
                });
            }
        }
        Err(e) if e.code_name() == "unavailable" => history.complete(
            invoke,
            process,
            f,
            Completion::Info(e.message.clone()),
            index,
        ),
        Err(e) => history.complete(
            invoke,
            process,
            f,
            Completion::Fail(e.message.clone()),
            index,
        ),
    }
    result
}

/// Compares an operation's outcome with what the step expects.
fn judge(expect: &Expect, outcome: Result<Outcome, ClientError>) -> StepResult {
    match (expect, outcome) {
        (Expect::Error(code), Err(e)) if e.code_name() == code => {
            Ok(format!("{code}: {}", e.message))
        }
        (Expect::Error(code), Err(e)) => Err(format!(
            "expected {code}, got {}: {}",
            e.code_name(),
            e.message
        )),
        (Expect::Error(code), Ok(_)) => Err(format!("expected {code}, but it succeeded")),
        (_, Err(e)) => Err(format!(
            "expected success, got {}: {}",
            e.code_name(),
            e.message
        )),
        (Expect::Ok, Ok(Outcome::Messages(ms))) => Ok(format!("{} messages", ms.len())),
        (Expect::Ok, Ok(Outcome::Accounts(a))) => Ok(format!("{} accounts", a.len())),
        (Expect::Ok, Ok(Outcome::Done)) => Ok(String::new()),
        (Expect::Count(n), Ok(Outcome::Messages(ms))) if ms.len() as u64 == *n => {
            Ok(format!("{n}"))
        }
        (Expect::Count(n), Ok(Outcome::Accounts(a))) if a.len() as u64 == *n => Ok(format!("{n}")),
        (Expect::Count(n), Ok(Outcome::Messages(ms))) => {
            Err(format!("expected {n}, got {} messages", ms.len()))
        }
        (Expect::Count(n), Ok(Outcome::Accounts(a))) => {
            Err(format!("expected {n}, got {} accounts", a.len()))
        }
        (Expect::Accounts(want), Ok(Outcome::Accounts(got))) => {
            if *want == got {
                Ok(format!("accounts {}", got.join(", ")))
            } else {
                Err(format!("expected accounts {want:?}, got {got:?}"))
            }
        }
        (Expect::Messages(want), Ok(Outcome::Messages(got))) => {
            let show = |ms: &[ChatMessage]| {
                ms.iter()
                    .map(|m| format!("{} -> {}: {:?}", m.from, m.to, m.text))
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            let fits = want.len() == got.len()
                && want.iter().zip(&got).all(|(w, g)| {
                    w.from.as_ref().is_none_or(|f| *f == g.from)
                        && w.to.as_ref().is_none_or(|t| *t == g.to)
                        && w.text.as_ref().is_none_or(|t| *t == g.text)
                        && w.read.is_none_or(|r| r == g.read)
                });
            if fits {
                Ok(format!("{} messages as expected", got.len()))
            } else {
                Err(format!(
                    "expected {} messages matching the step, got [{}]",
                    want.len(),
                    show(&got)
                ))
            }
        }
        (expect, Ok(_)) => Err(format!("{expect:?} does not apply to this operation")),
    }
}
