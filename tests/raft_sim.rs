//! The Raft core under a simulated network (see `sim/mod.rs` for what is checked).
//!
//! `random_runs` drives many seeded runs of random faults and load; the other tests are
//! the behaviours of the MIT 6.5840 Raft tests, replayed in the simulator.
//!
//! `RAFT_SIM_SEEDS=N` sets how many seeds `random_runs` tries (1,000 by default);
//! `RAFT_SIM_SEED=S` replays one seed. It ends with `sim: N seeds, V violations`.

mod sim;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use raftchat::raft::{ConfChange, ProposeError, Rng, RoleKind};
use sim::{Sim, SimConfig, addr};

// ---------------------------------------------------------------------------------------
// Random runs.

/// One seeded run: random cluster size, network quality, snapshot frequency and pipeline
/// limits; a stretch of random crashes, restarts, partitions, membership changes and
/// leadership transfers under writes and reads; then healing, and liveness.
fn random_run(seed: u64) -> [u64; 4] {
    let mut rng = Rng::new(seed);
    let mut pick = |options: &[u64]| options[rng.range(0, options.len() as u64) as usize];
    let nodes = pick(&[1, 3, 3, 3, 5, 5, 5, 7]) as usize;
    let mut cfg = SimConfig::new(nodes, seed);
    cfg.drop = pick(&[0, 0, 1, 5, 10, 20]) as f64 / 100.0;
    cfg.duplicate = pick(&[0, 0, 1, 5]) as f64 / 100.0;
    cfg.delay_ms = (0, pick(&[2, 5, 15, 30]));
    cfg.long_delay = pick(&[0, 0, 1, 3]) as f64 / 100.0;
    cfg.snapshot_every = pick(&[u64::MAX, 5, 20, 100]);
    cfg.crash_in_ready = pick(&[0, 1, 3]) as f64 / 100.0;
    cfg.max_inflight = pick(&[1, 4, 16]) as usize;
    cfg.max_append_bytes = pick(&[40, 1000, 65536]) as usize;
    // Each safety rule must hold on its own, not only behind PreVote's filter.
    cfg.pre_vote = pick(&[0, 1, 1]) == 1;
    cfg.check_quorum = pick(&[0, 1, 1]) == 1;
    cfg.connection_loss = pick(&[0, 1]) == 1;
    let chaos_ms = pick(&[1500, 3000, 4500]);
    let mut sim = Sim::new(cfg);
    sim.crash_enabled = true;
    let mut next_id = nodes + 1;
    let mut rng = Rng::new(seed ^ 0xDEAD_BEEF);
    let end = sim.now + chaos_ms;
    while sim.now < end {
        for _ in 0..rng.range(0, 4) {
            sim.propose_at_leader();
        }
        if rng.range(0, 3) == 0 {
            let ids = sim.ids();
            let at = &ids[rng.range(0, ids.len() as u64) as usize];
            sim.read(at);
        }
        let ids = sim.ids();
        let any = ids[rng.range(0, ids.len() as u64) as usize].clone();
        match rng.range(0, 100) {
            0..=5 if sim.is_up(&any) => {
                sim.crash(&any);
                sim.forget_requests_at(&any);
            }
            6..=17 if !sim.is_up(&any) => sim.restart(&any),
            18..=21 => {
                let mut a = Vec::new();
                let mut b = Vec::new();
                for id in ids {
                    if rng.range(0, 2) == 0 {
                        a.push(id)
                    } else {
                        b.push(id)
                    }
                }
                sim.partition(&[a, b]);
            }
            22..=27 => sim.heal(),
            28..=29 => {
                if let Some(leader) = sim.leader() {
                    sim.disconnect(&leader);
                }
            }
            30..=31 if next_id <= 9 => {
                let id = format!("n{next_id}");
                let change = ConfChange::AddLearner {
                    id: id.clone(),
                    address: addr(&id),
                };
                if sim.change(change).is_ok() {
                    sim.spawn(&id);
                    next_id += 1;
                }
            }
            32 => {
                if let Some(leader) = sim.leader() {
                    let m = sim.node(&leader).membership().clone();
                    if m.voters.len() > 3 || !m.learners.is_empty() {
                        let _ = sim.change(ConfChange::Remove { id: any.clone() });
                    }
                }
            }
            33..=34 => {
                let _ = sim.transfer(&any);
            }
            _ => {}
        }
        sim.run_for(rng.range(5, 60));
    }
    for id in sim.ids() {
        if !sim.is_up(&id) {
            sim.restart(&id);
        }
    }
    sim.check_liveness(20_000);
    [
        sim.acked.len() as u64,
        sim.reads_served,
        sim.elections() as u64,
        sim.sent.get("install_snapshot").copied().unwrap_or(0),
    ]
}

#[test]
fn random_runs() {
    let (seeds, label): (Vec<u64>, String) = match std::env::var("RAFT_SIM_SEED") {
        Ok(s) => {
            let seed = s.parse().expect("RAFT_SIM_SEED must be a number");
            (vec![seed], format!("seed {seed}"))
        }
        Err(_) => {
            let n: u64 = std::env::var("RAFT_SIM_SEEDS")
                .ok()
                .map(|s| s.parse().expect("RAFT_SIM_SEEDS must be a number"))
                .unwrap_or(1000);
            ((1..=n).collect(), format!("{n} seeds"))
        }
    };
    let started = Instant::now();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let failures = std::sync::Mutex::new(Vec::new());
    let totals = std::sync::Mutex::new([0u64; 4]);
    std::thread::scope(|scope| {
        for t in 0..threads {
            let seeds = &seeds;
            let failures = &failures;
            let totals = &totals;
            scope.spawn(move || {
                for seed in seeds.iter().skip(t).step_by(threads) {
                    let outcome = catch_unwind(AssertUnwindSafe(|| random_run(*seed)));
                    if let Ok(counts) = &outcome {
                        let mut t = totals.lock().unwrap();
                        for (total, n) in t.iter_mut().zip(counts) {
                            *total += n;
                        }
                    }
                    if let Err(panic) = outcome {
                        let why = panic
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_default();
                        eprintln!("sim: seed {seed} failed: {why}");
                        eprintln!("sim: replay with RAFT_SIM_SEED={seed}");
                        failures.lock().unwrap().push(*seed);
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    let [writes, reads, elections, snapshots] = totals.into_inner().unwrap();
    eprintln!(
        "sim: {} seeds in {:.1}s: {writes} writes acknowledged, {reads} reads served, \
         {elections} terms with a leader, {snapshots} snapshots sent",
        seeds.len(),
        started.elapsed().as_secs_f64()
    );
    println!("sim: {label}, {} violations", failures.len());
    assert!(failures.is_empty(), "failing seeds: {failures:?}");
}

// ---------------------------------------------------------------------------------------
// The MIT 6.5840 behaviours.

fn cluster(nodes: usize, seed: u64) -> Sim {
    Sim::new(SimConfig::new(nodes, seed))
}

fn wait_leader(sim: &mut Sim) -> String {
    wait_leader_except(sim, &[])
}

/// Waits for a leader that a majority follows, other than the nodes in `not`.
fn wait_leader_except(sim: &mut Sim, not: &[String]) -> String {
    assert!(
        sim.run_until(5_000, |s| s
            .stable_leader()
            .is_some_and(|l| !not.contains(&l))),
        "no leader elected (other than {not:?})"
    );
    sim.stable_leader().unwrap()
}

/// Proposes at the leader until one write is acknowledged.
fn write(sim: &mut Sim) -> u64 {
    for _ in 0..50 {
        if let Some((index, _)) = sim.propose_at_leader() {
            if sim.run_until(3_000, |s| s.acked.contains_key(&index)) {
                return index;
            }
        } else {
            sim.run_for(100);
        }
    }
    panic!("no write was acknowledged");
}

fn converge(sim: &mut Sim) {
    assert!(sim.run_until(10_000, |s| s.converged()), "no convergence");
    sim.check_log_matching();
}

#[test]
fn initial_election() {
    let mut sim = cluster(3, 1);
    let leader = wait_leader(&mut sim);
    let term = sim.term_of(&leader);
    assert!(term >= 1);
    // No spurious elections while nothing fails.
    sim.run_for(3_000);
    assert_eq!(sim.stable_leader().as_ref(), Some(&leader));
    assert_eq!(sim.term_of(&leader), term, "term changed without a failure");
}

#[test]
fn reelection() {
    let mut sim = cluster(3, 2);
    let first = wait_leader(&mut sim);
    sim.disconnect(&first);
    let second = wait_leader_except(&mut sim, std::slice::from_ref(&first));
    // The old leader rejoins: it must not disturb the new one.
    sim.connect(&first);
    sim.run_for(1_000);
    assert_eq!(sim.stable_leader(), Some(second.clone()));
    // No majority, no leader.
    let other = sim.ids().into_iter().find(|id| *id != second).unwrap();
    sim.disconnect(&second);
    sim.disconnect(&other);
    sim.run_for(3_000);
    assert_eq!(sim.stable_leader(), None, "a leader without a majority");
    sim.connect(&other);
    wait_leader(&mut sim);
    sim.connect(&second);
    wait_leader(&mut sim);
}

#[test]
fn many_elections_with_seven_nodes() {
    let mut sim = cluster(7, 3);
    wait_leader(&mut sim);
    let mut rng = Rng::new(3);
    for _ in 0..10 {
        let ids = sim.ids();
        let mut out = Vec::new();
        while out.len() < 3 {
            let id = ids[rng.range(0, 7) as usize].clone();
            if !out.contains(&id) {
                out.push(id);
            }
        }
        for id in &out {
            sim.disconnect(id);
        }
        wait_leader_except(&mut sim, &out);
        for id in &out {
            sim.connect(id);
        }
    }
    wait_leader(&mut sim);
}

#[test]
fn basic_agreement() {
    let mut sim = cluster(3, 4);
    wait_leader(&mut sim);
    let mut last = 0;
    for _ in 0..3 {
        let index = write(&mut sim);
        assert!(index > last);
        last = index;
        converge(&mut sim);
    }
}

#[test]
fn agreement_despite_follower_failure() {
    let mut sim = cluster(3, 5);
    let leader = wait_leader(&mut sim);
    write(&mut sim);
    let follower = sim.ids().into_iter().find(|id| *id != leader).unwrap();
    sim.disconnect(&follower);
    for _ in 0..3 {
        write(&mut sim);
    }
    sim.connect(&follower);
    write(&mut sim);
    converge(&mut sim);
}

#[test]
fn no_agreement_without_majority() {
    let mut sim = cluster(5, 6);
    let leader = wait_leader(&mut sim);
    write(&mut sim);
    let followers: Vec<_> = sim.ids().into_iter().filter(|id| *id != leader).collect();
    for f in &followers[..3] {
        sim.disconnect(f);
    }
    let (index, _) = sim.propose(&leader).expect("still believes it leads");
    sim.run_for(2_000);
    assert!(
        !sim.acked.contains_key(&index),
        "committed without a majority"
    );
    for f in &followers[..3] {
        sim.connect(f);
    }
    write(&mut sim);
    converge(&mut sim);
}

#[test]
fn concurrent_proposals() {
    let mut sim = cluster(3, 7);
    let leader = wait_leader(&mut sim);
    let indexes: Vec<u64> = (0..10).map(|_| sim.propose(&leader).unwrap().0).collect();
    assert!(sim.run_until(3_000, |s| indexes.iter().all(|i| s.acked.contains_key(i))));
    let mut sorted = indexes.clone();
    sorted.dedup();
    assert_eq!(sorted.len(), 10, "two proposals got one index");
    converge(&mut sim);
}

#[test]
fn rejoin_of_partitioned_leader() {
    let mut sim = cluster(3, 8);
    write(&mut sim);
    let leader1 = sim.stable_leader().unwrap();
    sim.disconnect(&leader1);
    // The old leader takes proposals it can never commit.
    for _ in 0..3 {
        let _ = sim.propose(&leader1);
    }
    let leader2 = wait_leader(&mut sim);
    write(&mut sim);
    sim.disconnect(&leader2);
    sim.connect(&leader1);
    write(&mut sim);
    sim.connect(&leader2);
    write(&mut sim);
    converge(&mut sim);
    assert!(
        sim.lost_writes >= 3,
        "the stale leader's entries were overwritten"
    );
}

#[test]
fn fast_backup_past_divergent_entries() {
    let mut sim = cluster(5, 9);
    write(&mut sim);
    let l1 = sim.stable_leader().unwrap();
    let others: Vec<_> = sim.ids().into_iter().filter(|id| *id != l1).collect();
    let (f1, rest) = (others[0].clone(), others[1..].to_vec());
    // The leader and one follower are cut off and take 50 entries that cannot commit.
    sim.partition(&[vec![l1.clone(), f1.clone()]]);
    for _ in 0..50 {
        let _ = sim.propose(&l1);
    }
    sim.run_for(200);
    // The other three elect a leader and commit 50 entries.
    sim.partition(std::slice::from_ref(&rest));
    for _ in 0..50 {
        write(&mut sim);
    }
    // Their leader and one follower take 50 more that cannot commit.
    let l2 = sim.stable_leader().unwrap();
    let other = rest.iter().find(|id| **id != l2).unwrap().clone();
    let third = rest
        .iter()
        .find(|id| **id != l2 && **id != other)
        .unwrap()
        .clone();
    sim.partition(&[vec![l2.clone(), third.clone()]]);
    for _ in 0..50 {
        let _ = sim.propose(&l2);
    }
    sim.run_for(200);
    // The first pair comes back with the node that saw the 50 commits: 50 entries of
    // theirs diverge and must be repaired.
    let before = sim.sent.get("append_reject").copied().unwrap_or(0);
    sim.partition(&[vec![l1.clone(), f1.clone(), other.clone()]]);
    for _ in 0..50 {
        write(&mut sim);
    }
    sim.heal();
    write(&mut sim);
    converge(&mut sim);
    let rejects = sim.sent.get("append_reject").copied().unwrap_or(0) - before;
    // One rejection per entry would take hundreds; skipping by term takes a few per node.
    assert!(
        rejects <= 20,
        "{rejects} rejections to repair logs 50 entries apart"
    );
}

#[test]
fn bounded_message_counts() {
    let mut sim = cluster(3, 10);
    assert!(sim.run_until(5_000, |s| s.stable_leader().is_some()));
    let election = sim.total_sent();
    assert!(
        election <= 30,
        "an election of 3 nodes took {election} messages"
    );
    converge(&mut sim);
    // An idle leader sends one heartbeat per interval per follower, and no more.
    let before = sim.total_sent();
    sim.run_for(1_000);
    let idle = sim.total_sent() - before;
    let beats_per_second = 1_000 / (sim.cfg.heartbeat_ticks * sim.cfg.tick_ms);
    // (+2 rounds: the second may start and end mid-interval.)
    let bound = 2 * 2 * (beats_per_second + 2);
    assert!(
        idle <= bound,
        "an idle second cost {idle} messages (bound {bound})"
    );
    // Ten proposals that arrive together travel together: one Append per follower, its
    // answer, and one more round to tell the followers the new commit index.
    let before = sim.total_sent();
    let leader = sim.stable_leader().unwrap();
    assert_eq!(sim.propose_many(&leader, 10).len(), 10);
    converge(&mut sim);
    let used = sim.total_sent() - before;
    assert!(used <= 12, "ten proposals cost {used} messages");
}

#[test]
fn persistence_across_whole_cluster_crashes() {
    let mut sim = cluster(3, 11);
    for round in 0..5 {
        write(&mut sim);
        for id in sim.ids() {
            sim.crash(&id);
        }
        for id in sim.ids() {
            sim.restart(&id);
        }
        let index = write(&mut sim);
        assert!(index > round, "state lost across restart");
        converge(&mut sim);
    }
    let leader = sim.stable_leader().unwrap();
    let max_acked = *sim.acked.keys().next_back().unwrap();
    assert!(sim.applied(&leader) >= max_acked);
}

#[test]
fn persistence_of_leader_and_followers_crashing_in_turn() {
    let mut sim = cluster(5, 12);
    for _ in 0..5 {
        write(&mut sim);
        let leader = sim.stable_leader().unwrap();
        let follower = sim.ids().into_iter().find(|id| *id != leader).unwrap();
        sim.crash(&leader);
        sim.crash(&follower);
        write(&mut sim);
        sim.restart(&leader);
        sim.restart(&follower);
    }
    write(&mut sim);
    converge(&mut sim);
}

/// Figure 8 of the paper: leaders crash at random over many rounds, with entries of old
/// terms lying around; an old-term entry must never be committed by counting replicas.
fn figure8(seed: u64, unreliable: bool) {
    let mut cfg = SimConfig::new(5, seed);
    if unreliable {
        cfg = cfg.unreliable();
    }
    let mut sim = Sim::new(cfg);
    let mut rng = Rng::new(seed);
    for _ in 0..1000 {
        if let Some(leader) = sim.leader() {
            let _ = sim.propose(&leader);
        }
        sim.run_for(if rng.range(0, 10) == 0 {
            rng.range(0, 500)
        } else {
            rng.range(0, 13)
        });
        if let Some(leader) = sim.leader()
            && rng.range(0, 4) == 0
        {
            sim.crash(&leader);
            sim.forget_requests_at(&leader);
        }
        let up = sim.ids().into_iter().filter(|id| sim.is_up(id)).count();
        if up < 3 {
            let down: Vec<_> = sim.ids().into_iter().filter(|id| !sim.is_up(id)).collect();
            let id = &down[rng.range(0, down.len() as u64) as usize];
            sim.restart(id);
        }
    }
    for id in sim.ids() {
        if !sim.is_up(&id) {
            sim.restart(&id);
        }
    }
    sim.check_liveness(20_000);
}

#[test]
fn figure8_reliable() {
    figure8(13, false);
}

#[test]
fn figure8_unreliable() {
    figure8(14, true);
}

#[test]
fn churn_with_crashes_and_restarts() {
    let mut sim = Sim::new(SimConfig::new(5, 15).unreliable());
    let mut rng = Rng::new(15);
    for _ in 0..300 {
        let ids = sim.ids();
        let id = ids[rng.range(0, 5) as usize].clone();
        match rng.range(0, 10) {
            0 if sim.is_up(&id) => {
                sim.crash(&id);
                sim.forget_requests_at(&id);
            }
            1..=2 if !sim.is_up(&id) => sim.restart(&id),
            _ => {
                let _ = sim.propose(&id);
            }
        }
        sim.run_for(rng.range(5, 40));
    }
    for id in sim.ids() {
        if !sim.is_up(&id) {
            sim.restart(&id);
        }
    }
    sim.check_liveness(20_000);
    assert!(sim.acked.len() > 20, "churn let too few writes through");
}

fn lagging_follower_gets_snapshot(crash_mid_install: bool) {
    let mut cfg = SimConfig::new(3, 16);
    cfg.snapshot_every = 10;
    let mut sim = Sim::new(cfg);
    let leader = wait_leader(&mut sim);
    let follower = sim.ids().into_iter().find(|id| *id != leader).unwrap();
    sim.disconnect(&follower);
    for _ in 0..100 {
        let _ = sim.propose(&leader);
    }
    sim.run_for(1_000);
    sim.connect(&follower);
    assert!(
        sim.run_until(3_000, |s| s.sent.contains_key("install_snapshot")),
        "no snapshot was sent to the lagging follower"
    );
    if crash_mid_install {
        // The snapshot is on the wire: the follower dies before it lands.
        sim.crash(&follower);
        sim.run_for(300);
        sim.restart(&follower);
    }
    write(&mut sim);
    converge(&mut sim);
    assert!(sim.app(&follower).index >= 100);
}

#[test]
fn snapshot_install() {
    lagging_follower_gets_snapshot(false);
}

#[test]
fn snapshot_install_with_crash_in_the_middle() {
    lagging_follower_gets_snapshot(true);
}

#[test]
fn membership_grows_and_shrinks() {
    let mut sim = cluster(3, 17);
    write(&mut sim);
    for id in ["n4", "n5"] {
        let change = ConfChange::AddLearner {
            id: id.into(),
            address: addr(id),
        };
        sim.change(change).unwrap();
        sim.spawn(id);
        // The learner catches up, then the leader promotes it by itself.
        assert!(sim.run_until(5_000, |s| {
            s.stable_leader()
                .is_some_and(|l| s.node(&l).membership().is_voter(id))
        }));
        write(&mut sim);
    }
    converge(&mut sim);
    let leader = sim.stable_leader().unwrap();
    assert_eq!(sim.node(&leader).membership().voters.len(), 5);
    // A second change while one is in flight is refused.
    sim.change(ConfChange::Remove { id: "n5".into() }).unwrap();
    assert_eq!(
        sim.change(ConfChange::Remove { id: "n4".into() }),
        Err(ProposeError::ChangeInProgress)
    );
    sim.run_for(500);
    sim.change(ConfChange::Remove { id: "n4".into() }).unwrap();
    write(&mut sim);
    converge(&mut sim);
    let leader = sim.stable_leader().unwrap();
    assert_eq!(sim.node(&leader).membership().voters.len(), 3);
}

#[test]
fn removing_the_leader() {
    let mut sim = cluster(3, 18);
    write(&mut sim);
    let leader = sim.stable_leader().unwrap();
    sim.change(ConfChange::Remove { id: leader.clone() })
        .unwrap();
    assert!(sim.run_until(5_000, |s| s.stable_leader().is_some_and(|l| l != leader)));
    assert_ne!(sim.node(&leader).role(), RoleKind::Leader);
    write(&mut sim);
    // The removed node stays quiet: no election disturbs the new leader.
    let new_leader = sim.stable_leader().unwrap();
    let term = sim.term_of(&new_leader);
    sim.run_for(3_000);
    assert_eq!(sim.term_of(&new_leader), term);
}

#[test]
fn membership_changes_under_faults() {
    let mut sim = Sim::new(SimConfig::new(3, 19).unreliable());
    let mut rng = Rng::new(19);
    let mut next = 4;
    for _ in 0..40 {
        let _ = sim.propose_at_leader();
        match rng.range(0, 4) {
            0 if next <= 7 => {
                let id = format!("n{next}");
                let add = ConfChange::AddLearner {
                    id: id.clone(),
                    address: addr(&id),
                };
                if sim.change(add).is_ok() {
                    sim.spawn(&id);
                    next += 1;
                }
            }
            1 => {
                if let Some(l) = sim.leader() {
                    let voters: Vec<_> = sim.node(&l).membership().voters.keys().cloned().collect();
                    if voters.len() > 3 {
                        let id = voters[rng.range(0, voters.len() as u64) as usize].clone();
                        let _ = sim.change(ConfChange::Remove { id });
                    }
                }
            }
            2 => {
                let ids = sim.ids();
                let id = ids[rng.range(0, ids.len() as u64) as usize].clone();
                if sim.is_up(&id) {
                    sim.crash(&id);
                    sim.forget_requests_at(&id);
                    sim.run_for(200);
                    sim.restart(&id);
                }
            }
            _ => {}
        }
        sim.run_for(rng.range(50, 300));
    }
    sim.check_liveness(20_000);
}

#[test]
fn leadership_transfer() {
    let mut sim = cluster(5, 20);
    write(&mut sim);
    let leader = sim.stable_leader().unwrap();
    let target = sim.ids().into_iter().find(|id| *id != leader).unwrap();
    sim.transfer(&target).unwrap();
    let timeout = sim.cfg.election_ticks.0 * sim.cfg.tick_ms;
    assert!(
        sim.run_until(timeout, |s| s.stable_leader().as_ref() == Some(&target)),
        "leadership did not move to {target} within an election timeout"
    );
    write(&mut sim);
}

#[test]
fn prevote_keeps_a_returning_node_from_deposing_the_leader() {
    let mut sim = cluster(5, 21);
    write(&mut sim);
    let leader = sim.stable_leader().unwrap();
    let term = sim.term_of(&leader);
    let loner = sim.ids().into_iter().find(|id| *id != leader).unwrap();
    sim.disconnect(&loner);
    sim.run_for(5_000);
    assert_eq!(
        sim.term_of(&loner),
        term,
        "pre-vote must not raise the term"
    );
    sim.connect(&loner);
    sim.run_for(2_000);
    assert_eq!(sim.stable_leader(), Some(leader.clone()));
    assert_eq!(sim.term_of(&leader), term);
}

#[test]
fn check_quorum_makes_an_isolated_leader_step_down() {
    let mut sim = cluster(3, 22);
    write(&mut sim);
    let leader = sim.stable_leader().unwrap();
    sim.disconnect(&leader);
    let within = 3 * sim.cfg.election_ticks.1 * sim.cfg.tick_ms;
    assert!(
        sim.run_until(within, |s| s.node(&leader).role() != RoleKind::Leader),
        "an isolated leader kept leading"
    );
}

#[test]
fn one_way_partition_heals() {
    let mut sim = cluster(3, 23);
    write(&mut sim);
    let leader = sim.stable_leader().unwrap();
    let follower = sim.ids().into_iter().find(|id| *id != leader).unwrap();
    // The follower hears the leader but its answers are lost.
    sim.cut_link(&follower, &leader);
    for _ in 0..5 {
        write(&mut sim);
    }
    sim.heal();
    write(&mut sim);
    converge(&mut sim);
}

#[test]
fn linearizable_reads_on_every_node() {
    let mut sim = cluster(3, 24);
    write(&mut sim);
    for round in 0..20 {
        write(&mut sim);
        for id in sim.ids() {
            assert!(sim.read(&id), "read refused at {id}");
        }
        if round % 5 == 4 {
            let leader = sim.stable_leader().unwrap();
            sim.crash(&leader);
            sim.forget_requests_at(&leader);
            wait_leader(&mut sim);
            sim.restart(&leader);
        }
        sim.run_for(200);
    }
    assert!(
        sim.reads_served >= 40,
        "only {} reads served",
        sim.reads_served
    );
}
