//! How fast a node comes back: a member restarting on a data directory that holds
//! 1,000,000 messages, until it serves a linearizable read; and a new node joining a
//! cluster whose state holds 100,000 messages, until it has applied everything.
//!
//! The states are built offline ([`super::fixture`]) as each member would hold them, so
//! the figures measure recovery, not how long it took to send the messages.

use std::path::Path;
use std::time::{Duration, Instant};

use super::cluster::BenchCluster;
use super::fixture;
use crate::client::Client;
use crate::lab::cluster::NodeSettings;
use crate::raft::Membership;

/// Users in the fixtures; messages go round between them.
const USERS: usize = 100;

/// A cluster of `nodes` whose every member holds `messages` messages, not started.
fn seeded(
    parent: &Path,
    nodes: u32,
    settings: NodeSettings,
    messages: u64,
) -> Result<BenchCluster, String> {
    let cluster = BenchCluster::prepare(parent, nodes, settings)?;
    let names = cluster.sup.names();
    let members = Membership::with_voters(
        names
            .iter()
            .map(|n| (n.clone(), cluster.sup.node(n).addr.clone())),
    );
    let first = cluster.dir_of(&names[0]);
    fixture::build(&first, members, USERS, messages)
        .map_err(|e| format!("cannot build the fixture: {e}"))?;
    for n in &names[1..] {
        fixture::copy(&first, &cluster.dir_of(n))
            .map_err(|e| format!("cannot copy the fixture: {e}"))?;
    }
    Ok(cluster)
}

/// Asks `addr`, and only it, for a linearizable read until one is served; the time at
/// which it was.
async fn first_read(addr: &str, limit: Duration) -> Result<Instant, String> {
    let started = Instant::now();
    loop {
        let mut client = Client::new(vec![addr.to_string()]);
        client.timeouts.attempt = Duration::from_secs(1);
        client.timeouts.deadline = Duration::from_secs(1);
        if client.check_username("user42").await == Ok(true) {
            return Ok(Instant::now());
        }
        if started.elapsed() > limit {
            return Err(format!(
                "{addr} served no read within {:.0}s",
                limit.as_secs_f64()
            ));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[derive(Clone, Debug)]
pub struct Restart {
    pub messages: u64,
    /// The state database's size on disk, in MiB.
    pub db_mib: f64,
    /// A member restarting while the others run: process start to its first read served.
    pub member_ms: f64,
    /// The whole cluster starting at once: first process start to the first read served
    /// (an election included).
    pub cluster_ms: f64,
}

/// Builds `nodes` members holding `messages` messages, starts them all, then restarts one
/// follower; times both.
pub async fn restart(
    parent: &Path,
    settings: NodeSettings,
    nodes: u32,
    messages: u64,
) -> Result<Restart, String> {
    let mut cluster = seeded(parent, nodes, settings, messages)?;
    let names = cluster.sup.names();
    let db = std::fs::metadata(cluster.dir_of(&names[0]).join("state.redb"))
        .map(|m| m.len() as f64 / (1024.0 * 1024.0))
        .unwrap_or(0.0);
    let started = Instant::now();
    for n in &names {
        cluster.sup.start(n, None)?;
    }
    let first = cluster.sup.node(&names[0]).addr.clone();
    let cluster_ms =
        (first_read(&first, Duration::from_secs(60)).await? - started).as_secs_f64() * 1e3;
    let leader = cluster.leader(Duration::from_secs(10)).await?;
    let follower = names
        .iter()
        .find(|n| **n != leader)
        .cloned()
        .ok_or("no follower")?;
    cluster.sup.kill(&follower)?;
    let started = Instant::now();
    cluster.sup.start(&follower, None)?;
    let addr = cluster.sup.node(&follower).addr.clone();
    let member_ms =
        (first_read(&addr, Duration::from_secs(60)).await? - started).as_secs_f64() * 1e3;
    Ok(Restart {
        messages,
        db_mib: db,
        member_ms,
        cluster_ms,
    })
}

#[derive(Clone, Debug)]
pub struct CatchUp {
    pub messages: u64,
    /// From the new node's process start to its having applied the leader's commit index.
    pub secs: f64,
    /// The snapshot it installed, in MiB (0 if it caught up from the log alone).
    pub snapshot_mib: f64,
}

/// Starts `nodes` members holding `messages` messages, then adds a node through consensus
/// and times it until it has caught up.
pub async fn catch_up(
    parent: &Path,
    settings: NodeSettings,
    nodes: u32,
    messages: u64,
) -> Result<CatchUp, String> {
    let mut cluster = seeded(parent, nodes, settings, messages)?;
    cluster.start().await?;
    let seed = cluster.endpoints()[0].clone();
    let name = format!("n{}", nodes + 1);
    let dir = cluster.dir.path().to_path_buf();
    cluster
        .sup
        .add(&dir, &name, true)
        .map_err(|e| format!("cannot prepare {name}: {e}"))?;
    let started = Instant::now();
    cluster.sup.start(&name, Some(seed))?;
    loop {
        let st = cluster.statuses().await;
        if let Some((leader, _)) = crate::lab::runner::agreed_leader(&st)
            && let Some(new) = st.get(&name)
            && new.applied >= st[&leader].commit
            && new.applied > 0
        {
            break;
        }
        if started.elapsed() > Duration::from_secs(120) {
            return Err(format!("{name} did not catch up within 120s"));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    let snapshots = cluster.dir_of(&name).join("snapshots");
    let snapshot_mib = std::fs::read_dir(&snapshots)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .max()
                .unwrap_or(0) as f64
                / (1024.0 * 1024.0)
        })
        .unwrap_or(0.0);
    Ok(CatchUp {
        messages,
        secs,
        snapshot_mib,
    })
}
