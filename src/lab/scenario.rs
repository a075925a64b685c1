//! The scenario language, version 1 (../shared/SCENARIOS.md): a YAML file parsed into a
//! [`Scenario`] of typed steps, each with its line, or refused with `file:line:column` and
//! the offending key. Unknown keys are errors, never ignored.
//!
//! Parsing is two passes: serde reads the YAML into raw types that mirror the language
//! (refusing unknown keys), then `validate` checks what serde cannot (durations, node
//! names, which fields each operation takes) and builds the typed steps.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

/// A parse or validation error: where, and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub file: PathBuf,
    pub line: u64,
    pub column: u64,
    pub message: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.message
        )
    }
}

/// Which nodes a step acts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeRef {
    Node(String),
    All,
    Leader,
    Follower,
    Followers,
    Majority,
    Minority,
    LastKilled,
    List(Vec<String>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaderWait {
    Any,
    /// No running node claims to lead (a minority's leader has stepped down).
    None,
    Is(NodeRef),
    Not(NodeRef),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WaitFor {
    Leader(LeaderWait),
    Converged(NodeRef),
    CaughtUp(NodeRef),
    /// Until that node is partway through receiving a snapshot.
    ReceivingSnapshot(NodeRef),
    /// Until a `watch` of that user has seen that many messages arrive.
    Watched {
        user: String,
        count: u64,
    },
}

/// What an operation is expected to give.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    Ok,
    Error(String),
    Messages(Vec<MessageMatch>),
    Accounts(Vec<String>),
    Count(u64),
}

/// A message compared on the fields given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MessageMatch {
    pub from: Option<String>,
    pub to: Option<String>,
    pub text: Option<String>,
    pub read: Option<bool>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpKind {
    Register {
        user: String,
        password: String,
    },
    Login {
        user: String,
        password: String,
    },
    Logout {
        user: String,
    },
    Send {
        from: String,
        to: String,
        text: String,
    },
    Read {
        user: String,
        limit: Option<u32>,
        with: Option<String>,
    },
    DeleteMessages {
        user: String,
        ids: Vec<u64>,
        all: bool,
    },
    DeleteAccount {
        user: String,
    },
    ListAccounts {
        pattern: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Op {
    pub kind: OpKind,
    pub via: Option<NodeRef>,
    pub timeout: Option<Duration>,
    pub expect: Expect,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Load {
    pub clients: u32,
    /// The bound in time (the load stops at whichever bound comes first).
    pub duration: Duration,
    /// The bound in operations per client, registration not counted.
    pub count: u64,
    /// Bytes in each sent message's text.
    pub size: usize,
    /// Weights of each operation (send, read).
    pub mix: BTreeMap<String, u32>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClusterExpect {
    Leader(Option<String>),
    Running(Vec<String>),
    TermAtLeast(u64),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Network {
    Partition(Vec<Vec<String>>),
    Isolate(NodeRef),
    Drop {
        from: NodeRef,
        to: NodeRef,
        rate: f64,
    },
    Delay {
        between: (NodeRef, NodeRef),
        ms: (u64, u64),
    },
    Heal,
}

impl Network {
    pub fn name(&self) -> &'static str {
        match self {
            Network::Partition(_) | Network::Isolate(_) => "partition",
            Network::Drop { .. } => "drop",
            Network::Delay { .. } => "delay",
            Network::Heal => "heal",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum StepKind {
    Start(NodeRef),
    Kill(NodeRef),
    Stop(NodeRef),
    Restart(NodeRef),
    Pause(NodeRef),
    Resume(NodeRef),
    AddNode {
        name: String,
        wait: bool,
    },
    RemoveNode(NodeRef),
    TransferLeader(NodeRef),
    Compact(NodeRef),
    /// A network fault: parsed and checked, not runnable yet (see the network issue).
    Network(Network),
    Wait {
        what: WaitFor,
        timeout: Duration,
    },
    Sleep(Duration),
    Op(Op),
    Load(Load),
    Expect(ClusterExpect),
    CheckInvariants,
    Snapshot(String),
    Say(String),
    /// A user's live view of their messages, kept open on one node (`via`), as a chat
    /// screen would be; what arrives is printed as it arrives.
    Watch {
        user: String,
        via: Option<NodeRef>,
    },
}

impl Scenario {
    /// The names `add_node` steps give, in order.
    pub fn added_nodes(&self) -> Vec<&str> {
        self.steps
            .iter()
            .filter_map(|s| match &s.kind {
                StepKind::AddNode { name, .. } => Some(name.as_str()),
                _ => None,
            })
            .collect()
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub line: u64,
    /// The step as written (its first line), for reports.
    pub text: String,
    pub kind: StepKind,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    pub file: PathBuf,
    pub name: String,
    pub description: String,
    pub nodes: u32,
    pub election_timeout_ms: Option<(u64, u64)>,
    pub heartbeat_ms: Option<u64>,
    pub snapshot_every: Option<u64>,
    pub seed: u64,
    pub timeout: Duration,
    pub steps: Vec<Step>,
}

// ----- The raw YAML shapes. -----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: Spanned<String>,
    #[serde(default)]
    description: Option<String>,
    cluster: Spanned<RawCluster>,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    timeout: Option<Spanned<String>>,
    steps: Vec<Spanned<RawStep>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    nodes: u32,
    #[serde(default)]
    election_timeout_ms: Option<(u64, u64)>,
    #[serde(default)]
    heartbeat_ms: Option<u64>,
    #[serde(default)]
    snapshot_every: Option<u64>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawRef {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawAddNode {
    Name(String),
    Spec(RawAddNodeSpec),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAddNodeSpec {
    name: String,
    #[serde(default)]
    wait: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWatch {
    user: String,
    #[serde(default)]
    via: Option<RawRef>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWait {
    #[serde(default)]
    leader: Option<String>,
    #[serde(default)]
    converged: Option<RawRef>,
    #[serde(default)]
    caught_up: Option<RawRef>,
    #[serde(default)]
    receiving_snapshot: Option<RawRef>,
    #[serde(default)]
    watched: Option<String>,
    #[serde(default)]
    count: Option<u64>,
    #[serde(default)]
    timeout: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawExpect {
    Word(String),
    Map(RawExpectMap),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpectMap {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    messages: Option<Vec<RawMessage>>,
    #[serde(default)]
    accounts: Option<Vec<String>>,
    #[serde(default)]
    count: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMessage {
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    read: Option<bool>,
}

/// Every field any operation takes; `validate` checks which belong to which.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawOp {
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    with: Option<String>,
    #[serde(default)]
    ids: Option<Vec<u64>>,
    #[serde(default)]
    all: Option<bool>,
    #[serde(default)]
    pattern: Option<String>,
    #[serde(default)]
    via: Option<RawRef>,
    #[serde(default)]
    timeout: Option<String>,
    #[serde(default)]
    expect: Option<RawExpect>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLoad {
    clients: u32,
    #[serde(default)]
    duration: Option<String>,
    #[serde(default)]
    count: Option<u64>,
    #[serde(default)]
    size: Option<usize>,
    #[serde(default)]
    mix: Option<BTreeMap<String, u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClusterExpect {
    #[serde(default)]
    leader: Option<String>,
    #[serde(default)]
    running: Option<Vec<String>>,
    #[serde(default)]
    term_at_least: Option<u64>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawPartition {
    Groups(Vec<Vec<String>>),
    Isolate(RawIsolate),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIsolate {
    isolate: RawRef,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDrop {
    from: RawRef,
    to: RawRef,
    rate: f64,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawMs {
    Fixed(u64),
    Range((u64, u64)),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDelay {
    between: (RawRef, RawRef),
    ms: RawMs,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum RawStep {
    Start(RawRef),
    Kill(RawRef),
    Stop(RawRef),
    Restart(RawRef),
    Pause(RawRef),
    Resume(RawRef),
    AddNode(RawAddNode),
    RemoveNode(RawRef),
    TransferLeader(RawRef),
    Compact(RawRef),
    Partition(RawPartition),
    Drop(RawDrop),
    Delay(RawDelay),
    Heal(String),
    Wait(RawWait),
    Sleep(String),
    Register(RawOp),
    Login(RawOp),
    Logout(RawOp),
    Send(RawOp),
    Read(RawOp),
    DeleteMessages(RawOp),
    DeleteAccount(RawOp),
    ListAccounts(RawOp),
    Load(RawLoad),
    Watch(RawWatch),
    Expect(RawClusterExpect),
    Check(String),
    Snapshot(String),
    Say(String),
}

/// Operations per client in a `load`, at most (and when no count is given).
const LOAD_COUNT_BOUND: u64 = 100_000;
/// How long a `load` given only a count may run.
const LOAD_COUNT_TIME_BOUND: Duration = Duration::from_secs(120);

/// Parses `250ms`, `5s`, `2m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map(|at| s.split_at(at))
        .ok_or_else(|| format!("duration {s:?} needs a unit: ms, s or m"))?;
    let n: f64 = number
        .parse()
        .map_err(|_| format!("duration {s:?} does not start with a number"))?;
    let ms = match unit {
        "ms" => n,
        "s" => n * 1e3,
        "m" => n * 60e3,
        _ => return Err(format!("duration {s:?}: the unit is ms, s or m")),
    };
    Ok(Duration::from_millis(ms as u64))
}

/// Reads and checks a scenario file. Nothing is run.
pub fn load(path: &Path) -> Result<Scenario, ParseError> {
    let text = std::fs::read_to_string(path).map_err(|e| ParseError {
        file: path.to_path_buf(),
        line: 0,
        column: 0,
        message: format!("cannot read: {e}"),
    })?;
    parse(path, &text)
}

/// Parses scenario text (named `path` in errors).
pub fn parse(path: &Path, text: &str) -> Result<Scenario, ParseError> {
    let raw: RawScenario = serde_saphyr::from_str(text).map_err(|e| {
        let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
        let message = e.without_snippet().to_string();
        // The message may carry its own position and context lines: keep the first line.
        let message = message.lines().next().unwrap_or("").trim().to_string();
        ParseError {
            file: path.to_path_buf(),
            line,
            column,
            message,
        }
    })?;
    Validator {
        path,
        lines: text.lines().collect(),
        nodes: BTreeSet::new(),
    }
    .scenario(raw)
}

struct Validator<'a> {
    path: &'a Path,
    lines: Vec<&'a str>,
    /// Every node name a step may use: n1..nN and those `add_node` introduces.
    nodes: BTreeSet<String>,
}

impl Validator<'_> {
    fn err(&self, line: u64, column: u64, message: impl Into<String>) -> ParseError {
        ParseError {
            file: self.path.to_path_buf(),
            line,
            column,
            message: message.into(),
        }
    }

    fn scenario(mut self, raw: RawScenario) -> Result<Scenario, ParseError> {
        let name = raw.name.value.clone();
        let (nl, nc) = (raw.name.referenced.line(), raw.name.referenced.column());
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(self.err(nl, nc, format!("name: {name:?} must be [a-z0-9-]")));
        }
        let cluster = &raw.cluster.value;
        let (cl, cc) = (
            raw.cluster.referenced.line(),
            raw.cluster.referenced.column(),
        );
        if cluster.nodes == 0 || cluster.nodes > 15 {
            return Err(self.err(cl, cc, "cluster.nodes: must be 1 to 15"));
        }
        if let Some((min, max)) = cluster.election_timeout_ms
            && (min == 0 || max <= min)
        {
            return Err(self.err(
                cl,
                cc,
                "cluster.election_timeout_ms: must be [MIN, MAX] with MIN < MAX",
            ));
        }
        for i in 1..=cluster.nodes {
            self.nodes.insert(format!("n{i}"));
        }
        // Names that add_node introduces may be used anywhere after it (and before, to
        // wait for them): collect them first.
        for step in &raw.steps {
            if let RawStep::AddNode(a) = &step.value {
                let n = match a {
                    RawAddNode::Name(n) => n.clone(),
                    RawAddNode::Spec(s) => s.name.clone(),
                };
                self.nodes.insert(n);
            }
        }
        let timeout = match &raw.timeout {
            None => Duration::from_secs(120),
            Some(t) => parse_duration(&t.value).map_err(|e| {
                self.err(
                    t.referenced.line(),
                    t.referenced.column(),
                    format!("timeout: {e}"),
                )
            })?,
        };
        let mut steps = Vec::new();
        for step in raw.steps {
            steps.push(self.step(step)?);
        }
        if steps.is_empty() {
            return Err(self.err(cl, 1, "steps: a scenario needs at least one step"));
        }
        Ok(Scenario {
            file: self.path.to_path_buf(),
            name,
            description: raw.description.unwrap_or_default().trim().to_string(),
            nodes: cluster.nodes,
            election_timeout_ms: cluster.election_timeout_ms,
            heartbeat_ms: cluster.heartbeat_ms,
            snapshot_every: cluster.snapshot_every,
            seed: raw.seed.unwrap_or(1),
            timeout,
            steps,
        })
    }

    fn node_ref(&self, line: u64, raw: RawRef) -> Result<NodeRef, ParseError> {
        match raw {
            RawRef::Many(list) => {
                for n in &list {
                    self.known(line, n)?;
                }
                Ok(NodeRef::List(list))
            }
            RawRef::One(s) => Ok(match s.as_str() {
                "all" => NodeRef::All,
                "leader" => NodeRef::Leader,
                "follower" => NodeRef::Follower,
                "followers" => NodeRef::Followers,
                "majority" => NodeRef::Majority,
                "minority" => NodeRef::Minority,
                "last_killed" => NodeRef::LastKilled,
                n => {
                    self.known(line, n)?;
                    NodeRef::Node(n.to_string())
                }
            }),
        }
    }

    fn known(&self, line: u64, name: &str) -> Result<(), ParseError> {
        if self.nodes.contains(name) {
            return Ok(());
        }
        let known: Vec<&str> = self.nodes.iter().map(String::as_str).collect();
        Err(self.err(
            line,
            1,
            format!(
                "no node named {name:?} (the cluster has {})",
                known.join(", ")
            ),
        ))
    }

    fn duration(&self, line: u64, field: &str, s: &str) -> Result<Duration, ParseError> {
        parse_duration(s).map_err(|e| self.err(line, 1, format!("{field}: {e}")))
    }

    fn step(&self, raw: Spanned<RawStep>) -> Result<Step, ParseError> {
        let line = raw.referenced.line();
        let text = self
            .lines
            .get(line.saturating_sub(1) as usize)
            .map(|l| l.trim().trim_start_matches("- ").to_string())
            .unwrap_or_default();
        let kind = match raw.value {
            RawStep::Start(r) => StepKind::Start(self.node_ref(line, r)?),
            RawStep::Kill(r) => StepKind::Kill(self.node_ref(line, r)?),
            RawStep::Stop(r) => StepKind::Stop(self.node_ref(line, r)?),
            RawStep::Restart(r) => StepKind::Restart(self.node_ref(line, r)?),
            RawStep::Pause(r) => StepKind::Pause(self.node_ref(line, r)?),
            RawStep::Resume(r) => StepKind::Resume(self.node_ref(line, r)?),
            RawStep::AddNode(a) => match a {
                RawAddNode::Name(name) => StepKind::AddNode { name, wait: false },
                RawAddNode::Spec(s) => StepKind::AddNode {
                    name: s.name,
                    wait: s.wait,
                },
            },
            RawStep::RemoveNode(r) => StepKind::RemoveNode(self.node_ref(line, r)?),
            RawStep::TransferLeader(r) => StepKind::TransferLeader(self.node_ref(line, r)?),
            RawStep::Compact(r) => StepKind::Compact(self.node_ref(line, r)?),
            RawStep::Partition(RawPartition::Groups(groups)) => {
                for n in groups.iter().flatten() {
                    self.known(line, n)?;
                }
                StepKind::Network(Network::Partition(groups))
            }
            RawStep::Partition(RawPartition::Isolate(i)) => {
                StepKind::Network(Network::Isolate(self.node_ref(line, i.isolate)?))
            }
            RawStep::Drop(d) => {
                if !(0.0..=1.0).contains(&d.rate) {
                    return Err(self.err(line, 1, "drop.rate: must be between 0 and 1"));
                }
                StepKind::Network(Network::Drop {
                    from: self.node_ref(line, d.from)?,
                    to: self.node_ref(line, d.to)?,
                    rate: d.rate,
                })
            }
            RawStep::Delay(d) => {
                let ms = match d.ms {
                    RawMs::Fixed(ms) => (ms, ms),
                    RawMs::Range((lo, hi)) if lo <= hi => (lo, hi),
                    RawMs::Range(_) => {
                        return Err(self.err(
                            line,
                            1,
                            "delay.ms: write [MIN, MAX] with MIN <= MAX",
                        ));
                    }
                };
                StepKind::Network(Network::Delay {
                    between: (
                        self.node_ref(line, d.between.0)?,
                        self.node_ref(line, d.between.1)?,
                    ),
                    ms,
                })
            }
            RawStep::Heal(what) if what == "all" => StepKind::Network(Network::Heal),
            RawStep::Heal(what) => {
                return Err(self.err(line, 1, format!("heal: {what:?}: write `heal: all`")));
            }
            RawStep::Wait(w) => self.wait(line, w)?,
            RawStep::Sleep(d) => StepKind::Sleep(self.duration(line, "sleep", &d)?),
            RawStep::Register(o) => self.op(line, "register", o)?,
            RawStep::Login(o) => self.op(line, "login", o)?,
            RawStep::Logout(o) => self.op(line, "logout", o)?,
            RawStep::Send(o) => self.op(line, "send", o)?,
            RawStep::Read(o) => self.op(line, "read", o)?,
            RawStep::DeleteMessages(o) => self.op(line, "delete_messages", o)?,
            RawStep::DeleteAccount(o) => self.op(line, "delete_account", o)?,
            RawStep::ListAccounts(o) => self.op(line, "list_accounts", o)?,
            RawStep::Load(l) => StepKind::Load(self.load(line, l)?),
            RawStep::Expect(e) => StepKind::Expect(self.cluster_expect(line, e)?),
            RawStep::Check(what) if what == "invariants" => StepKind::CheckInvariants,
            RawStep::Check(what) => {
                return Err(self.err(
                    line,
                    1,
                    format!("check: {what:?}: the only check is `invariants`"),
                ));
            }
            RawStep::Snapshot(label) => StepKind::Snapshot(label),
            RawStep::Say(text) => StepKind::Say(text),
            RawStep::Watch(w) => StepKind::Watch {
                user: w.user,
                via: w.via.map(|r| self.node_ref(line, r)).transpose()?,
            },
        };
        Ok(Step { line, text, kind })
    }

    fn wait(&self, line: u64, w: RawWait) -> Result<StepKind, ParseError> {
        let timeout = match &w.timeout {
            Some(t) => self.duration(line, "wait.timeout", t)?,
            None => Duration::from_secs(10),
        };
        if w.count.is_some() != w.watched.is_some() {
            return Err(self.err(
                line,
                1,
                "wait: count goes with watched, and watched needs it",
            ));
        }
        if let (Some(user), Some(count)) = (w.watched, w.count) {
            if w.leader.is_some()
                || w.converged.is_some()
                || w.caught_up.is_some()
                || w.receiving_snapshot.is_some()
            {
                return Err(self.err(line, 1, "wait: watched goes alone (with count)"));
            }
            let what = WaitFor::Watched { user, count };
            return Ok(StepKind::Wait { what, timeout });
        }
        let what = match (w.leader, w.converged, w.caught_up, w.receiving_snapshot) {
            (Some(l), None, None, None) => WaitFor::Leader(match l.as_str() {
                "any" => LeaderWait::Any,
                "none" => LeaderWait::None,
                other => match other.strip_prefix("not ") {
                    Some(r) => LeaderWait::Not(self.node_ref(line, RawRef::One(r.trim().into()))?),
                    None => LeaderWait::Is(self.node_ref(line, RawRef::One(other.into()))?),
                },
            }),
            (None, Some(r), None, None) => WaitFor::Converged(self.node_ref(line, r)?),
            (None, None, Some(r), None) => WaitFor::CaughtUp(self.node_ref(line, r)?),
            (None, None, None, Some(r)) => WaitFor::ReceivingSnapshot(self.node_ref(line, r)?),
            _ => {
                return Err(self.err(
                    line,
                    1,
                    "wait: give exactly one of leader, converged, caught_up, receiving_snapshot, watched",
                ));
            }
        };
        Ok(StepKind::Wait { what, timeout })
    }

    fn op(&self, line: u64, name: &str, o: RawOp) -> Result<StepKind, ParseError> {
        // Which fields each operation takes, beyond via, timeout and expect.
        let allowed: &[&str] = match name {
            "register" | "login" => &["user", "password"],
            "logout" | "delete_account" => &["user"],
            "send" => &["from", "to", "text"],
            "read" => &["user", "limit", "with"],
            "delete_messages" => &["user", "ids", "all"],
            "list_accounts" => &["pattern"],
            _ => unreachable!("every operation is listed"),
        };
        let given: [(&str, bool); 10] = [
            ("user", o.user.is_some()),
            ("password", o.password.is_some()),
            ("from", o.from.is_some()),
            ("to", o.to.is_some()),
            ("text", o.text.is_some()),
            ("limit", o.limit.is_some()),
            ("with", o.with.is_some()),
            ("ids", o.ids.is_some()),
            ("all", o.all.is_some()),
            ("pattern", o.pattern.is_some()),
        ];
        for (field, present) in given {
            if present && !allowed.contains(&field) {
                return Err(self.err(
                    line,
                    1,
                    format!(
                        "{name}: unknown key `{field}` (it takes {})",
                        allowed.join(", ")
                    ),
                ));
            }
        }
        let need = |v: Option<String>, field: &str| {
            v.ok_or_else(|| self.err(line, 1, format!("{name}: `{field}` is required")))
        };
        let kind = match name {
            "register" => OpKind::Register {
                user: need(o.user, "user")?,
                password: need(o.password, "password")?,
            },
            "login" => OpKind::Login {
                user: need(o.user, "user")?,
                password: need(o.password, "password")?,
            },
            "logout" => OpKind::Logout {
                user: need(o.user, "user")?,
            },
            "delete_account" => OpKind::DeleteAccount {
                user: need(o.user, "user")?,
            },
            "send" => OpKind::Send {
                from: need(o.from, "from")?,
                to: need(o.to, "to")?,
                text: need(o.text, "text")?,
            },
            "read" => OpKind::Read {
                user: need(o.user, "user")?,
                limit: o.limit,
                with: o.with,
            },
            "delete_messages" => {
                let all = o.all.unwrap_or(false);
                let ids = o.ids.unwrap_or_default();
                if all != ids.is_empty() {
                    return Err(self.err(line, 1, "delete_messages: give `ids` or `all: true`"));
                }
                OpKind::DeleteMessages {
                    user: need(o.user, "user")?,
                    ids,
                    all,
                }
            }
            "list_accounts" => OpKind::ListAccounts {
                pattern: o.pattern.unwrap_or_else(|| "*".into()),
            },
            _ => unreachable!(),
        };
        let via = o.via.map(|r| self.node_ref(line, r)).transpose()?;
        let timeout = o
            .timeout
            .map(|t| self.duration(line, "timeout", &t))
            .transpose()?;
        let expect = match o.expect {
            None => Expect::Ok,
            Some(RawExpect::Word(w)) if w == "ok" => Expect::Ok,
            Some(RawExpect::Word(w)) => {
                return Err(self.err(line, 1, format!("expect: {w:?}: write `ok` or a map")));
            }
            Some(RawExpect::Map(m)) => self.expect(line, m)?,
        };
        Ok(StepKind::Op(Op {
            kind,
            via,
            timeout,
            expect,
        }))
    }

    fn expect(&self, line: u64, m: RawExpectMap) -> Result<Expect, ParseError> {
        const CODES: [&str; 7] = [
            "already_exists",
            "not_found",
            "unauthenticated",
            "permission_denied",
            "invalid_argument",
            "failed_precondition",
            "unavailable",
        ];
        let given = [
            m.error.is_some(),
            m.messages.is_some(),
            m.accounts.is_some(),
            m.count.is_some(),
        ];
        if given.iter().filter(|g| **g).count() != 1 {
            return Err(self.err(
                line,
                1,
                "expect: give one of error, messages, accounts, count",
            ));
        }
        if let Some(code) = m.error {
            if !CODES.contains(&code.as_str()) {
                return Err(self.err(
                    line,
                    1,
                    format!(
                        "expect.error: {code:?} is not a code ({})",
                        CODES.join(", ")
                    ),
                ));
            }
            return Ok(Expect::Error(code));
        }
        if let Some(ms) = m.messages {
            return Ok(Expect::Messages(
                ms.into_iter()
                    .map(|m| MessageMatch {
                        from: m.from,
                        to: m.to,
                        text: m.text,
                        read: m.read,
                    })
                    .collect(),
            ));
        }
        if let Some(a) = m.accounts {
            return Ok(Expect::Accounts(a));
        }
        Ok(Expect::Count(m.count.expect("one was given")))
    }

    fn load(&self, line: u64, l: RawLoad) -> Result<Load, ParseError> {
        let duration = match (&l.duration, l.count) {
            (Some(d), _) => self.duration(line, "load.duration", d)?,
            // A load bounded by count still gets a bound in time.
            (None, Some(_)) => LOAD_COUNT_TIME_BOUND,
            (None, None) => {
                return Err(self.err(line, 1, "load: give duration, count or both"));
            }
        };
        let count = l.count.unwrap_or(LOAD_COUNT_BOUND);
        if count == 0 || count > LOAD_COUNT_BOUND {
            return Err(self.err(
                line,
                1,
                format!("load.count: must be 1 to {LOAD_COUNT_BOUND}"),
            ));
        }
        let size = l.size.unwrap_or(0);
        if size > crate::chat::validate::MAX_TEXT {
            return Err(self.err(
                line,
                1,
                format!(
                    "load.size: a message holds at most {} bytes",
                    crate::chat::validate::MAX_TEXT
                ),
            ));
        }
        if l.clients == 0 || l.clients > 256 {
            return Err(self.err(line, 1, "load.clients: must be 1 to 256"));
        }
        let mix = l.mix.unwrap_or_else(|| {
            BTreeMap::from([("send".to_string(), 80), ("read".to_string(), 20)])
        });
        for op in mix.keys() {
            if op != "send" && op != "read" {
                return Err(self.err(
                    line,
                    1,
                    format!("load.mix: unknown key `{op}` (send, read)"),
                ));
            }
        }
        if mix.values().sum::<u32>() == 0 {
            return Err(self.err(line, 1, "load.mix: the weights add up to 0"));
        }
        Ok(Load {
            clients: l.clients,
            duration,
            count,
            size,
            mix,
        })
    }

    fn cluster_expect(&self, line: u64, e: RawClusterExpect) -> Result<ClusterExpect, ParseError> {
        match (e.leader, e.running, e.term_at_least) {
            (Some(l), None, None) if l == "none" => Ok(ClusterExpect::Leader(None)),
            (Some(l), None, None) => {
                self.known(line, &l)?;
                Ok(ClusterExpect::Leader(Some(l)))
            }
            (None, Some(r), None) => {
                for n in &r {
                    self.known(line, n)?;
                }
                Ok(ClusterExpect::Running(r))
            }
            (None, None, Some(t)) => Ok(ClusterExpect::TermAtLeast(t)),
            _ => Err(self.err(
                line,
                1,
                "expect: give one of leader, running, term_at_least",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"name: leader-failover
description: >
  The leader dies mid-conversation.
cluster:
  nodes: 5
  election_timeout_ms: [150, 300]
  heartbeat_ms: 50
  snapshot_every: 1000
seed: 7
timeout: 60s
steps:
  - start: all
  - wait: {leader: any, timeout: 5s}
  - register: {user: alice, password: s3cret}
  - register: {user: bob, password: hunter2}
  - send: {from: alice, to: bob, text: hello bob}
  - kill: leader
  - wait: {leader: any, timeout: 5s}
  - send: {from: bob, to: alice, text: still here}
  - read: {user: alice, expect: {messages: [{from: bob, text: still here}]}}
  - restart: last_killed
  - wait: {converged: all, timeout: 10s}
  - snapshot: final
"#;

    #[test]
    fn the_example_of_the_language_parses() {
        let s = parse(Path::new("x.yaml"), EXAMPLE).unwrap();
        assert_eq!(s.name, "leader-failover");
        assert_eq!(s.nodes, 5);
        assert_eq!(s.election_timeout_ms, Some((150, 300)));
        assert_eq!(s.timeout, Duration::from_secs(60));
        assert_eq!(s.steps.len(), 12);
        assert_eq!(s.steps[0].line, 12);
        assert_eq!(s.steps[0].kind, StepKind::Start(NodeRef::All));
        assert_eq!(s.steps[5].text, "kill: leader");
        match &s.steps[8].kind {
            StepKind::Op(op) => assert_eq!(
                op.expect,
                Expect::Messages(vec![MessageMatch {
                    from: Some("bob".into()),
                    text: Some("still here".into()),
                    ..Default::default()
                }])
            ),
            other => panic!("{other:?}"),
        }
    }

    fn error_of(text: &str) -> String {
        parse(Path::new("s.yaml"), text).unwrap_err().to_string()
    }

    #[test]
    fn an_unknown_key_is_named_with_its_position() {
        let text = EXAMPLE.replace("text: hello bob", "txt: hello bob");
        let e = error_of(&text);
        assert!(e.starts_with("s.yaml:16:"), "{e}");
        assert!(e.contains("txt"), "{e}");
        let e = error_of(&EXAMPLE.replace("seed: 7", "seeds: 7"));
        assert!(e.starts_with("s.yaml:9:"), "{e}");
        assert!(e.contains("seeds"), "{e}");
        let e = error_of(&EXAMPLE.replace("- kill: leader", "- explode: leader"));
        assert!(e.starts_with("s.yaml:17:"), "{e}");
        assert!(e.contains("explode"), "{e}");
    }

    #[test]
    fn validation_errors_name_the_line_and_field() {
        let e = error_of(&EXAMPLE.replace("- kill: leader", "- kill: n9"));
        assert_eq!(
            e,
            "s.yaml:17:1: no node named \"n9\" (the cluster has n1, n2, n3, n4, n5)"
        );
        let e = error_of(&EXAMPLE.replace("timeout: 5s}", "timeout: 5 parsecs}"));
        assert!(e.starts_with("s.yaml:13:1: wait.timeout: duration"), "{e}");
        let e = error_of(&EXAMPLE.replace(
            "{user: bob, password: hunter2}",
            "{user: bob, to: x, password: p}",
        ));
        assert_eq!(
            e,
            "s.yaml:15:1: register: unknown key `to` (it takes user, password)"
        );
    }

    #[test]
    fn durations_read_as_written() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5h").is_err());
    }
}
