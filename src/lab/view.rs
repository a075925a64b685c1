//! The demo's view of the cluster: one row per node with its state, role, term, commit and
//! applied index, and a bar for how far behind it is. On a terminal the rows stay at the
//! top of the screen and refresh several times a second while the narration scrolls
//! below them; elsewhere the same table is printed as plain text between steps.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;

use super::cluster::NodeState;
use crate::client::Admins;
use crate::proto::admin::StatusReply;

/// Columns of the bar that shows how much of the log a node has applied.
const BAR: usize = 24;

/// A node as the lab knows it: where it listens and whether it runs.
#[derive(Clone, Debug)]
pub struct ViewNode {
    pub name: String,
    pub addr: String,
    pub state: NodeState,
}

/// The table's lines: a header, then one row per node. A node that runs but did not
/// answer shows as such; the highest commit index seen is the bar's full length.
pub fn render(
    nodes: &[ViewNode],
    statuses: &BTreeMap<String, StatusReply>,
    color: bool,
) -> Vec<String> {
    let paint = |code: &str, text: String| {
        if color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text
        }
    };
    let top = statuses.values().map(|s| s.commit).max().unwrap_or(0);
    let mut lines = vec![format!(
        "  {:<5} {:<7} {:<10} {:>5} {:>7} {:>8}  {}",
        "node", "state", "role", "term", "commit", "applied", "applied of the log"
    )];
    for n in nodes {
        let row = match (n.state, statuses.get(&n.name)) {
            (NodeState::Up, Some(s)) => {
                // A pre-candidate asks whether it could win before it starts an election.
                let shown = if s.role == "precandidate" {
                    "pre-vote"
                } else {
                    &s.role
                };
                let role = format!("{shown:<10}");
                let role = if s.role == "leader" {
                    paint("1;33", role.to_uppercase())
                } else {
                    role
                };
                let filled = (s.applied.min(top) * BAR as u64)
                    .checked_div(top)
                    .map_or(BAR, |f| f as usize);
                let (full, empty) = if color { ('█', '░') } else { ('#', '.') };
                let mut bar: String = std::iter::repeat_n(full, filled).collect();
                bar.extend(std::iter::repeat_n(empty, BAR - filled));
                let behind = top.saturating_sub(s.applied);
                let bar = if behind > 0 {
                    format!("{} {behind} behind", paint("33", bar))
                } else {
                    paint("32", bar)
                };
                format!(
                    "  {:<5} {:<7} {role} {:>5} {:>7} {:>8}  {bar}",
                    n.name, "up", s.term, s.commit, s.applied
                )
            }
            (NodeState::Up, None) => format!("  {:<5} {:<7} (not answering)", n.name, "up"),
            (state, _) => paint("2", format!("  {:<5} {}", n.name, state.word())),
        };
        lines.push(row);
    }
    lines
}

/// The table kept at the top of a terminal, refreshed from the nodes' status.
pub struct LiveView {
    nodes: Arc<Mutex<Vec<ViewNode>>>,
    task: JoinHandle<()>,
}

impl LiveView {
    /// Clears the screen, keeps `rows` node rows (plus a header and a rule) at the top, and
    /// lets everything printed afterwards scroll beneath them.
    pub fn start(title: String, rows: usize) -> LiveView {
        let height = rows + 3;
        let mut out = std::io::stdout().lock();
        // Clear, then a scrolling region from below the table to the bottom of the screen.
        let _ = write!(out, "\x1b[2J\x1b[{};r\x1b[{};1H", height + 1, height + 1);
        let _ = out.flush();
        drop(out);
        let nodes: Arc<Mutex<Vec<ViewNode>>> = Arc::default();
        let shared = nodes.clone();
        let task = tokio::spawn(async move {
            let mut admins = Admins::default();
            loop {
                let known = shared.lock().expect("view lock").clone();
                let statuses = poll(&known, &mut admins).await;
                let mut screen = String::from("\x1b7\x1b[1;1H");
                screen.push_str(&format!("\x1b[2K\x1b[1m{title}\x1b[0m\r\n"));
                let lines = render(&known, &statuses, true);
                for i in 0..=rows {
                    screen.push_str("\x1b[2K");
                    if let Some(line) = lines.get(i) {
                        screen.push_str(line);
                    }
                    screen.push_str("\r\n");
                }
                screen.push_str(&format!("\x1b[2K\x1b[2m{}\x1b[0m\x1b8", "─".repeat(78)));
                {
                    let mut out = std::io::stdout().lock();
                    let _ = out.write_all(screen.as_bytes());
                    let _ = out.flush();
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        LiveView { nodes, task }
    }

    /// What the lab knows of its nodes now (they come and go as steps run).
    pub fn update(&self, nodes: Vec<ViewNode>) {
        *self.nodes.lock().expect("view lock") = nodes;
    }
}

impl Drop for LiveView {
    fn drop(&mut self) {
        self.task.abort();
        // Give the whole screen back to scrolling, and keep the cursor where it was.
        let mut out = std::io::stdout().lock();
        let _ = write!(out, "\x1b7\x1b[r\x1b8");
        let _ = out.flush();
    }
}

/// The status of every running node that answers within a short time.
pub async fn poll(nodes: &[ViewNode], admins: &mut Admins) -> BTreeMap<String, StatusReply> {
    let mut out = BTreeMap::new();
    for n in nodes.iter().filter(|n| n.state == NodeState::Up) {
        if let Some(st) = admins.status(&n.addr).await {
            out.insert(n.name.clone(), st);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(id: &str, role: &str, commit: u64, applied: u64) -> StatusReply {
        StatusReply {
            id: id.into(),
            role: role.into(),
            term: 3,
            commit,
            applied,
            ..Default::default()
        }
    }

    #[test]
    fn rows_show_roles_and_how_far_behind_each_node_is() {
        let node = |name: &str, state| ViewNode {
            name: name.into(),
            addr: String::new(),
            state,
        };
        let nodes = vec![
            node("n1", NodeState::Up),
            node("n2", NodeState::Up),
            node("n3", NodeState::Down),
        ];
        let statuses = BTreeMap::from([
            ("n1".to_string(), status("n1", "leader", 40, 40)),
            ("n2".to_string(), status("n2", "follower", 20, 10)),
        ]);
        let lines = render(&nodes, &statuses, false);
        assert_eq!(
            lines,
            vec![
                "  node  state   role        term  commit  applied  applied of the log",
                "  n1    up      LEADER         3      40       40  ########################",
                "  n2    up      follower       3      20       10  ######.................. 30 behind",
                "  n3    down",
            ]
        );
    }
}
