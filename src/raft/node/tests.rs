//! The rules of the Raft paper's §5.1 to §5.4, one test each, plus the persistence contract,
//! ReadIndex, transfer, snapshots and learners. Messages are delivered by hand, so each test
//! controls exactly what every node sees.

use std::collections::{BTreeMap, VecDeque};

use super::*;
use crate::raft::message::{Append, AppendResponse, Campaign};

const ELECTION: (u64, u64) = (10, 20);

fn config(id: &str) -> Config {
    let mut c = Config::new(id);
    c.election_ticks = ELECTION;
    c.heartbeat_ticks = 1;
    c.pre_vote = false;
    c.check_quorum = false;
    c
}

fn voters(ids: &[&str]) -> Membership {
    Membership::with_voters(ids.iter().map(|id| (id.to_string(), format!("addr-{id}"))))
}

fn entries(terms: &[Term]) -> Vec<Entry> {
    terms
        .iter()
        .enumerate()
        .map(|(i, &term)| Entry {
            index: i as u64 + 1,
            term,
            payload: Payload::Command(Bytes::from(format!("{i}@{term}"))),
        })
        .collect()
}

/// A node of the cluster `ids`, restored at `term` with a log of entries of these terms.
fn node_with(id: &str, ids: &[&str], term: Term, log: &[Term]) -> Node {
    node_with_config(config(id), ids, term, log)
}

fn node_with_config(cfg: Config, ids: &[&str], term: Term, log: &[Term]) -> Node {
    let restored = Restored {
        hard_state: HardState { term, vote: None },
        entries: entries(log),
        ..Restored::default()
    };
    Node::new(cfg, restored, Some(voters(ids))).unwrap()
}

fn node(id: &str, ids: &[&str]) -> Node {
    node_with(id, ids, 0, &[])
}

fn msg(from: &str, to: &str, term: Term, body: Body) -> Message {
    Message {
        from: from.into(),
        to: to.into(),
        term,
        body,
    }
}

/// Handles the node's Ready as a driver would (nothing to persist in memory) and returns
/// every message it asked to send, immediate ones first.
fn drain(n: &mut Node) -> Vec<Message> {
    let mut out = Vec::new();
    while n.has_ready() {
        let rd = n.ready();
        out.extend(rd.messages);
        out.extend(rd.persisted_messages);
        n.advance();
    }
    out
}

/// A cluster of nodes in memory with hand-driven delivery.
struct Cluster {
    nodes: BTreeMap<String, Node>,
    /// Reads answered and entries applied, per node.
    reads: BTreeMap<String, Vec<ReadState>>,
    applied: BTreeMap<String, Vec<Entry>>,
    /// Messages are dropped on these links.
    cut: Vec<(String, String)>,
}

impl Cluster {
    fn new(nodes: Vec<Node>) -> Cluster {
        Cluster {
            nodes: nodes.into_iter().map(|n| (n.id().clone(), n)).collect(),
            reads: BTreeMap::new(),
            applied: BTreeMap::new(),
            cut: Vec::new(),
        }
    }

    fn of(ids: &[&str]) -> Cluster {
        Cluster::new(ids.iter().map(|id| node(id, ids)).collect())
    }

    fn get(&mut self, id: &str) -> &mut Node {
        self.nodes.get_mut(id).unwrap()
    }

    /// Delivers messages until none are left.
    fn stabilize(&mut self) {
        let mut queue: VecDeque<Message> = VecDeque::new();
        loop {
            for (id, n) in self.nodes.iter_mut() {
                while n.has_ready() {
                    let rd = n.ready();
                    queue.extend(rd.messages);
                    queue.extend(rd.persisted_messages);
                    self.applied
                        .entry(id.clone())
                        .or_default()
                        .extend(rd.committed_entries);
                    self.reads.entry(id.clone()).or_default().extend(rd.reads);
                    n.advance();
                }
            }
            let Some(m) = queue.pop_front() else { break };
            if self.cut.contains(&(m.from.clone(), m.to.clone())) {
                continue;
            }
            if let Some(n) = self.nodes.get_mut(&m.to) {
                n.step(m);
            }
        }
    }

    fn elect(&mut self, id: &str) {
        self.get(id).campaign();
        self.stabilize();
        assert!(self.get(id).is_leader(), "{id} did not win");
    }

    fn log_terms(&self, id: &str) -> Vec<Term> {
        let n = &self.nodes[id];
        (1..=n.last_index())
            .map(|i| n.entry(i).unwrap().term)
            .collect()
    }
}

// --- §5.1: terms. ---

#[test]
fn any_message_with_a_higher_term_updates_the_term() {
    let bodies = [
        Body::Heartbeat {
            commit: 0,
            read_seq: 0,
        },
        Body::Vote(Campaign {
            last_index: 0,
            last_term: 0,
            transfer: false,
        }),
        Body::VoteResponse { granted: false },
        Body::AppendResponse(AppendResponse::Accepted { last_index: 0 }),
    ];
    for body in bodies {
        let mut n = node("n1", &["n1", "n2", "n3"]);
        n.step(msg("n2", "n1", 5, body.clone()));
        assert_eq!(n.term(), 5, "{body:?}");
        assert_eq!(n.role(), RoleKind::Follower);
    }
}

#[test]
fn a_leader_steps_down_on_a_higher_term() {
    let mut c = Cluster::of(&["n1", "n2", "n3"]);
    c.elect("n1");
    let term = c.get("n1").term();
    c.get("n1").step(msg(
        "n3",
        "n1",
        term + 1,
        Body::AppendResponse(AppendResponse::Accepted { last_index: 0 }),
    ));
    assert_eq!(c.get("n1").role(), RoleKind::Follower);
    assert_eq!(c.get("n1").term(), term + 1);
}

#[test]
fn stale_term_messages_are_rejected() {
    let mut n = node_with("n1", &["n1", "n2", "n3"], 5, &[1]);
    // A stale candidate is refused, and told the newer term.
    n.step(msg(
        "n2",
        "n1",
        3,
        Body::Vote(Campaign {
            last_index: 9,
            last_term: 3,
            transfer: false,
        }),
    ));
    let out = drain(&mut n);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].term, 5);
    assert_eq!(out[0].body, Body::VoteResponse { granted: false });
    // A stale leader's Append changes nothing.
    n.step(msg(
        "n2",
        "n1",
        3,
        Body::Append(Append {
            prev_index: 1,
            prev_term: 1,
            entries: entries(&[1, 3])[1..].to_vec(),
            commit: 2,
        }),
    ));
    drain(&mut n);
    assert_eq!(n.last_index(), 1);
    assert_eq!(n.commit(), 0);
    assert_eq!(n.term(), 5);
}

// --- §5.2: elections. ---

#[test]
fn one_vote_per_term() {
    let mut n = node("n1", &["n1", "n2", "n3"]);
    let ask = |from: &str| {
        msg(
            from,
            "n1",
            1,
            Body::Vote(Campaign {
                last_index: 0,
                last_term: 0,
                transfer: false,
            }),
        )
    };
    n.step(ask("n2"));
    assert_eq!(drain(&mut n)[0].body, Body::VoteResponse { granted: true });
    n.step(ask("n3"));
    assert_eq!(drain(&mut n)[0].body, Body::VoteResponse { granted: false });
    // Asking again (a retry) gets the same answer.
    n.step(ask("n2"));
    assert_eq!(drain(&mut n)[0].body, Body::VoteResponse { granted: true });
}

#[test]
fn votes_go_only_to_up_to_date_logs() {
    // Our log ends at index 3, term 2.
    let cases = [
        (3, 2, true),  // same
        (4, 2, true),  // longer, same last term
        (1, 3, true),  // later last term wins, however short
        (2, 2, false), // shorter with the same last term
        (9, 1, false), // longer but an older last term
    ];
    for (last_index, last_term, granted) in cases {
        let mut n = node_with("n1", &["n1", "n2", "n3"], 2, &[1, 1, 2]);
        let c = Campaign {
            last_index,
            last_term,
            transfer: false,
        };
        n.step(msg("n2", "n1", 3, Body::Vote(c)));
        let out = drain(&mut n);
        assert_eq!(
            out[0].body,
            Body::VoteResponse { granted },
            "candidate at ({last_index}, {last_term})"
        );
    }
}

#[test]
fn election_timeouts_are_randomized_within_the_range() {
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..50 {
        let mut cfg = config("n1");
        cfg.seed = seed;
        let mut n = node_with_config(cfg, &["n1", "n2", "n3"], 0, &[]);
        let mut ticks = 0;
        while n.role() == RoleKind::Follower {
            n.tick();
            ticks += 1;
        }
        assert!(
            (ELECTION.0..ELECTION.1).contains(&ticks),
            "timeout {ticks} outside {ELECTION:?}"
        );
        seen.insert(ticks);
    }
    assert!(seen.len() >= 5, "timeouts barely vary: {seen:?}");
}

#[test]
fn a_candidate_with_a_majority_leads_and_appends_a_noop() {
    let mut n = node("n1", &["n1", "n2", "n3"]);
    n.campaign();
    assert_eq!(n.role(), RoleKind::Candidate);
    assert_eq!(n.term(), 1);
    let out = drain(&mut n);
    assert_eq!(out.len(), 2, "asks both peers");
    n.step(msg("n2", "n1", 1, Body::VoteResponse { granted: true }));
    assert!(n.is_leader());
    assert_eq!(n.entry(1).unwrap().payload, Payload::Noop);
    assert_eq!(n.entry(1).unwrap().term, 1);
}

#[test]
fn a_candidate_refused_by_a_majority_steps_down() {
    let mut n = node("n1", &["n1", "n2", "n3"]);
    n.campaign();
    drain(&mut n);
    n.step(msg("n2", "n1", 1, Body::VoteResponse { granted: false }));
    n.step(msg("n3", "n1", 1, Body::VoteResponse { granted: false }));
    assert_eq!(n.role(), RoleKind::Follower);
}

// --- §5.3: log replication. ---

/// Figure 7: a leader of term 8 with log 1 1 1 4 4 5 5 6 6 6 brings each of the
/// followers (a) to (f) to its own log.
#[test]
fn a_leader_repairs_every_follower_of_figure_7() {
    let leader_log = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
    let followers: [(&str, &[Term]); 6] = [
        ("a", &[1, 1, 1, 4, 4, 5, 5, 6, 6]),
        ("b", &[1, 1, 1, 4]),
        ("c", &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6]),
        ("d", &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7]),
        ("e", &[1, 1, 1, 4, 4, 4, 4]),
        ("f", &[1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3]),
    ];
    for (name, log) in followers {
        let ids = ["ld", "v", name];
        let mut c = Cluster::new(vec![
            node_with("ld", &ids, 7, &leader_log),
            node_with("v", &ids, 7, &leader_log),
            node_with(name, &ids, 7, log),
        ]);
        c.elect("ld");
        assert_eq!(c.get("ld").term(), 8);
        // Heartbeats until the follower is repaired.
        for _ in 0..5 {
            c.get("ld").tick();
            c.stabilize();
        }
        let mut expect = leader_log.to_vec();
        expect.push(8);
        assert_eq!(c.log_terms(name), expect, "follower ({name})");
        assert_eq!(
            c.get(name).commit(),
            11,
            "follower ({name}) learns the commit"
        );
    }
}

#[test]
fn a_follower_rejects_an_append_that_does_not_match_and_hints_the_term() {
    let mut n = node_with("n1", &["n1", "n2"], 4, &[1, 2, 2, 2]);
    n.step(msg(
        "n2",
        "n1",
        4,
        Body::Append(Append {
            prev_index: 4,
            prev_term: 3,
            entries: vec![],
            commit: 0,
        }),
    ));
    let out = drain(&mut n);
    assert_eq!(
        out[0].body,
        Body::AppendResponse(AppendResponse::Rejected {
            rejected: 4,
            conflict_term: 2,
            conflict_index: 2,
        })
    );
    // A log too short says where it ends.
    n.step(msg(
        "n2",
        "n1",
        4,
        Body::Append(Append {
            prev_index: 9,
            prev_term: 3,
            entries: vec![],
            commit: 0,
        }),
    ));
    let out = drain(&mut n);
    assert_eq!(
        out[0].body,
        Body::AppendResponse(AppendResponse::Rejected {
            rejected: 9,
            conflict_term: 0,
            conflict_index: 5,
        })
    );
}

#[test]
fn a_follower_a_thousand_entries_behind_is_repaired_in_few_round_trips() {
    let ids = ["ld", "v", "f"];
    let long: Vec<Term> = std::iter::repeat_n(1, 1000)
        .chain(std::iter::repeat_n(2, 1000))
        .collect();
    let diverged: Vec<Term> = std::iter::repeat_n(1, 1000)
        .chain(std::iter::repeat_n(3, 5))
        .collect();
    let mut c = Cluster::new(vec![
        node_with("ld", &ids, 3, &long),
        node_with("v", &ids, 3, &long),
        node_with("f", &ids, 3, &diverged),
    ]);
    // f has term 3 entries (a later last term), so ld needs v's vote only.
    c.cut.push(("f".into(), "ld".into()));
    c.get("ld").campaign();
    c.stabilize();
    assert!(c.get("ld").is_leader());
    c.cut.clear();
    // The first probe's answer was lost; a heartbeat starts the repair.
    c.get("ld").tick();
    let mut rejections = 0;
    let mut queue: VecDeque<Message> = drain(c.get("ld")).into();
    while let Some(m) = queue.pop_front() {
        if matches!(
            m.body,
            Body::AppendResponse(AppendResponse::Rejected { .. })
        ) {
            rejections += 1;
        }
        let to = m.to.clone();
        c.get(&to).step(m);
        queue.extend(drain(c.get(&to)));
    }
    assert!(c.log_terms("f") == c.log_terms("ld"), "f was not repaired");
    assert!(rejections <= 3, "{rejections} rejections");
}

// --- §5.4: safety. ---

#[test]
fn a_new_leaders_noop_commits_the_entries_of_earlier_terms() {
    let ids = ["n1", "n2", "n3"];
    let mut c = Cluster::new(
        ids.iter()
            .map(|id| node_with(id, &ids, 2, &[1, 2]))
            .collect(),
    );
    c.elect("n1");
    let applied: Vec<(u64, u64)> = c.applied["n1"].iter().map(|e| (e.index, e.term)).collect();
    assert_eq!(applied, [(1, 1), (2, 2), (3, 3)]);
}

/// Figure 8: a leader must not commit an entry of an earlier term by counting the replicas
/// that hold it, since a later leader could still overwrite it.
#[test]
fn an_old_term_entry_is_never_committed_by_counting_replicas() {
    // n1 holds an entry of term 2 at index 2 that it did not commit; it now leads term 4.
    let ids = ["n1", "n2", "n3"];
    let mut n1 = node_with("n1", &ids, 3, &[1, 2]);
    n1.campaign();
    drain(&mut n1);
    n1.step(msg("n2", "n1", 4, Body::VoteResponse { granted: true }));
    assert!(n1.is_leader());
    drain(&mut n1);
    assert_eq!(n1.last_index(), 3, "the no-op of term 4 is at index 3");
    // n2 now holds index 2 as well: a majority holds the term-2 entry.
    let accepted = |last_index| Body::AppendResponse(AppendResponse::Accepted { last_index });
    n1.step(msg("n2", "n1", 4, accepted(2)));
    drain(&mut n1);
    assert_eq!(n1.commit(), 0, "committed an entry of term 2 by counting");
    // Once an entry of its own term is on a majority, everything before it commits too.
    n1.step(msg("n2", "n1", 4, accepted(3)));
    drain(&mut n1);
    assert_eq!(n1.commit(), 3);
}

#[test]
fn a_restarted_node_keeps_its_vote() {
    let restored = Restored {
        hard_state: HardState {
            term: 3,
            vote: Some("n2".into()),
        },
        ..Restored::default()
    };
    let mut n = Node::new(config("n1"), restored, Some(voters(&["n1", "n2", "n3"]))).unwrap();
    let c = Campaign {
        last_index: 0,
        last_term: 0,
        transfer: false,
    };
    n.step(msg("n3", "n1", 3, Body::Vote(c)));
    assert_eq!(drain(&mut n)[0].body, Body::VoteResponse { granted: false });
}

// --- The persistence contract. ---

#[test]
fn promises_about_the_disk_wait_for_the_disk() {
    // A candidate's vote requests wait for its term and vote to be durable.
    let mut n = node("n1", &["n1", "n2", "n3"]);
    n.campaign();
    let rd = n.ready();
    assert!(rd.messages.is_empty());
    assert_eq!(rd.persisted_messages.len(), 2);
    assert_eq!(
        rd.hard_state,
        Some(HardState {
            term: 1,
            vote: Some("n1".into())
        })
    );
    n.advance();
    // A leader's Appends may leave before its own entries are durable...
    n.step(msg("n2", "n1", 1, Body::VoteResponse { granted: true }));
    let rd = n.ready();
    assert!(
        rd.messages
            .iter()
            .all(|m| matches!(m.body, Body::Append(_)))
    );
    assert_eq!(rd.messages.len(), 2);
    assert_eq!(rd.entries.len(), 1);
    // ...but it counts itself toward a commit only after advance() says they are.
    n.step(msg(
        "n2",
        "n1",
        1,
        Body::AppendResponse(AppendResponse::Accepted { last_index: 1 }),
    ));
    n.step(msg(
        "n3",
        "n1",
        1,
        Body::AppendResponse(AppendResponse::Accepted { last_index: 1 }),
    ));
    assert_eq!(n.commit(), 1, "two followers are a majority by themselves");
    n.advance();
    // A follower acknowledges entries only after persisting them.
    let mut f = node("n2", &["n1", "n2"]);
    f.step(msg(
        "n1",
        "n2",
        1,
        Body::Append(Append {
            prev_index: 0,
            prev_term: 0,
            entries: entries(&[1]),
            commit: 0,
        }),
    ));
    let rd = f.ready();
    assert!(rd.messages.is_empty());
    assert_eq!(rd.entries.len(), 1);
    assert_eq!(rd.persisted_messages.len(), 1);
}

#[test]
fn a_single_node_commits_only_what_it_persisted() {
    let mut n = node("n1", &["n1"]);
    n.campaign();
    assert!(n.is_leader());
    let rd = n.ready();
    assert_eq!(rd.entries.len(), 1);
    assert!(rd.committed_entries.is_empty());
    n.advance();
    assert_eq!(n.commit(), 1);
    let rd = n.ready();
    assert_eq!(rd.committed_entries.len(), 1);
    n.advance();
}

// --- ReadIndex. ---

#[test]
fn reads_wait_for_a_new_leader_to_commit_in_its_term() {
    let ids = ["n1", "n2", "n3"];
    let mut c = Cluster::new(
        ids.iter()
            .map(|id| node_with(id, &ids, 1, &[1, 1]))
            .collect(),
    );
    c.get("n1").campaign();
    // Deliver the election but not the no-op's acknowledgements.
    let mut queue: VecDeque<Message> = drain(c.get("n1")).into();
    while let Some(m) = queue.pop_front() {
        if matches!(m.body, Body::AppendResponse(_)) {
            continue;
        }
        let to = m.to.clone();
        c.get(&to).step(m);
        queue.extend(drain(c.get(&to)));
    }
    assert!(c.get("n1").is_leader());
    assert_eq!(c.get("n1").commit(), 0);
    c.get("n1").read_index(7).unwrap();
    c.get("n1").tick();
    let mut answered = Vec::new();
    while c.get("n1").has_ready() {
        let rd = c.get("n1").ready();
        answered.extend(rd.reads);
        c.get("n1").advance();
    }
    assert!(
        answered.is_empty(),
        "read answered before the no-op committed"
    );
    // The next heartbeat round lets the no-op commit, and the read with it.
    c.get("n1").tick();
    c.stabilize();
    let reads = &c.reads["n1"];
    assert_eq!(
        reads,
        &[ReadState {
            id: 7,
            index: Some(3)
        }]
    );
}

#[test]
fn a_follower_forwards_reads_to_the_leader() {
    let mut c = Cluster::of(&["n1", "n2", "n3"]);
    c.elect("n1");
    c.get("n2").read_index(1).unwrap();
    c.stabilize();
    assert_eq!(
        c.reads["n2"],
        [ReadState {
            id: 1,
            index: Some(1)
        }]
    );
}

#[test]
fn a_leader_cut_off_from_the_majority_answers_no_reads() {
    let mut c = Cluster::of(&["n1", "n2", "n3"]);
    c.elect("n1");
    for peer in ["n2", "n3"] {
        c.cut.push((peer.into(), "n1".into()));
    }
    c.get("n1").read_index(1).unwrap();
    c.stabilize();
    assert!(c.reads["n1"].is_empty());
    // When it learns of a newer term, the read fails rather than hang.
    c.get("n1")
        .step(msg("n2", "n1", 5, Body::VoteResponse { granted: false }));
    c.stabilize();
    assert_eq!(c.reads["n1"], [ReadState { id: 1, index: None }]);
}

// --- PreVote and CheckQuorum. ---

#[test]
fn a_pre_vote_changes_no_term() {
    let mut cfg = config("n1");
    cfg.pre_vote = true;
    let mut n = node_with_config(cfg, &["n1", "n2", "n3"], 2, &[]);
    n.campaign();
    assert_eq!(n.role(), RoleKind::PreCandidate);
    assert_eq!(n.term(), 2);
    let out = drain(&mut n);
    assert!(
        out.iter()
            .all(|m| m.term == 3 && matches!(m.body, Body::PreVote(_)))
    );
    n.step(msg("n2", "n1", 3, Body::PreVoteResponse { granted: true }));
    assert_eq!(n.role(), RoleKind::Candidate);
    assert_eq!(n.term(), 3);
}

#[test]
fn a_follower_that_hears_its_leader_ignores_campaigns() {
    let mut cfg = config("n2");
    cfg.check_quorum = true;
    let mut n = node_with_config(cfg, &["n1", "n2", "n3"], 1, &[]);
    n.step(msg(
        "n1",
        "n2",
        1,
        Body::Heartbeat {
            commit: 0,
            read_seq: 0,
        },
    ));
    drain(&mut n);
    let c = Campaign {
        last_index: 5,
        last_term: 1,
        transfer: false,
    };
    n.step(msg("n3", "n2", 2, Body::Vote(c.clone())));
    assert_eq!(n.term(), 1, "the campaign was heeded");
    assert!(drain(&mut n).is_empty());
    // A transfer's campaign is the leader's own wish: it is heeded.
    n.step(msg(
        "n3",
        "n2",
        2,
        Body::Vote(Campaign {
            transfer: true,
            ..c
        }),
    ));
    assert_eq!(n.term(), 2);
}

#[test]
fn a_leader_without_a_quorum_steps_down() {
    let ids = ["n1", "n2", "n3"];
    let mut c = Cluster::new(
        ids.iter()
            .map(|id| {
                let mut cfg = config(id);
                cfg.check_quorum = true;
                node_with_config(cfg, &ids, 0, &[])
            })
            .collect(),
    );
    c.elect("n1");
    for peer in ["n2", "n3"] {
        c.cut.push((peer.into(), "n1".into()));
    }
    for _ in 0..2 * ELECTION.0 {
        c.get("n1").tick();
        c.stabilize();
    }
    assert_eq!(c.get("n1").role(), RoleKind::Follower);
}

// --- Transfer, snapshots, learners. ---

#[test]
fn leadership_moves_to_a_caught_up_target() {
    let mut c = Cluster::of(&["n1", "n2", "n3"]);
    c.elect("n1");
    c.get("n1").propose(Bytes::from("x")).unwrap();
    c.stabilize();
    c.get("n1").transfer_leader("n3").unwrap();
    assert_eq!(
        c.get("n1").propose(Bytes::from("y")),
        Err(ProposeError::Busy("leadership transfer in progress"))
    );
    c.stabilize();
    assert!(c.get("n3").is_leader());
    assert_eq!(c.get("n1").role(), RoleKind::Follower);
}

#[test]
fn a_follower_behind_the_compacted_log_gets_the_snapshot() {
    let mut c = Cluster::of(&["n1", "n2", "n3"]);
    c.elect("n1");
    c.cut.push(("n1".into(), "n3".into()));
    for i in 0..10 {
        c.get("n1").propose(Bytes::from(format!("{i}"))).unwrap();
    }
    c.stabilize();
    let meta = c.get("n1").compact(8).unwrap();
    assert_eq!((meta.index, meta.term), (8, 1));
    assert_eq!(meta.membership, voters(&["n1", "n2", "n3"]));
    assert!(c.get("n1").compact(20).is_err(), "compacted past applied");
    c.cut.clear();
    c.get("n1").tick();
    c.stabilize();
    let n3 = c.get("n3").status();
    assert_eq!(n3.snapshot_index, 8, "n3 installed the snapshot");
    assert_eq!((n3.last_index, n3.applied), (11, 11));
    let applied: Vec<u64> = c.applied["n3"].iter().map(|e| e.index).collect();
    assert_eq!(applied, [1, 9, 10, 11], "the snapshot stands for 2 to 8");
}

#[test]
fn a_learner_neither_votes_nor_counts_until_promoted() {
    let mut c = Cluster::of(&["n1", "n2", "n3"]);
    c.elect("n1");
    let add = ConfChange::AddLearner {
        id: "n4".into(),
        address: "addr-n4".into(),
    };
    c.get("n1").propose_change(add).unwrap();
    assert_eq!(
        c.get("n1")
            .propose_change(ConfChange::Remove { id: "n2".into() }),
        Err(ProposeError::ChangeInProgress)
    );
    c.nodes.insert("n4".into(), {
        let restored = Restored::default();
        Node::new(config("n4"), restored, None).unwrap()
    });
    // The Appends sent before n4 existed were lost; the leader reaches it at its next tick.
    c.stabilize();
    c.get("n1").tick();
    c.stabilize();
    assert!(c.get("n4").membership().learners.contains_key("n4"));
    // A learner never campaigns, however long it waits.
    for _ in 0..3 * ELECTION.1 {
        c.get("n4").tick();
    }
    assert_eq!(c.get("n4").role(), RoleKind::Follower);
    assert_eq!(c.get("n4").term(), 1);
    // Caught up, it is promoted by the leader at its next tick.
    c.get("n1").tick();
    c.stabilize();
    assert!(c.get("n1").membership().is_voter("n4"));
    assert!(c.get("n4").membership().is_voter("n4"));
}

#[test]
fn a_removed_leader_steps_down_once_the_change_commits() {
    let mut c = Cluster::of(&["n1", "n2", "n3"]);
    c.elect("n1");
    c.get("n1")
        .propose_change(ConfChange::Remove { id: "n1".into() })
        .unwrap();
    c.stabilize();
    assert_eq!(c.get("n1").role(), RoleKind::Follower);
    let leaders: Vec<_> = ["n2", "n3"]
        .into_iter()
        .filter(|id| c.get(id).is_leader())
        .collect();
    assert_eq!(leaders.len(), 1, "the successor took over at once");
}

#[test]
fn membership_changes_wait_for_the_leaders_first_commit() {
    let ids = ["n1", "n2", "n3"];
    let mut n1 = node("n1", &ids);
    n1.campaign();
    drain(&mut n1);
    n1.step(msg("n2", "n1", 1, Body::VoteResponse { granted: true }));
    assert!(n1.is_leader());
    assert!(matches!(
        n1.propose_change(ConfChange::Remove { id: "n3".into() }),
        Err(ProposeError::Busy(_))
    ));
}

#[test]
fn a_leader_that_removed_itself_and_crashed_does_not_stall_the_cluster() {
    // n1 leads {n1, n2} and removes itself; the change reaches no one, then n1 restarts.
    let mut c = Cluster::of(&["n1", "n2"]);
    c.elect("n1");
    c.cut.push(("n1".into(), "n2".into()));
    c.get("n1")
        .propose_change(ConfChange::Remove { id: "n1".into() })
        .unwrap();
    c.stabilize();
    let old = c.nodes.remove("n1").unwrap();
    let restored = Restored {
        hard_state: HardState {
            term: old.term(),
            vote: Some("n1".into()),
        },
        entries: (1..=old.last_index())
            .map(|i| old.entry(i).unwrap().clone())
            .collect(),
        ..Restored::default()
    };
    let n1 = Node::new(config("n1"), restored, Some(voters(&["n1", "n2"]))).unwrap();
    assert!(
        !n1.membership().is_voter("n1"),
        "its log says it was removed"
    );
    c.nodes.insert("n1".into(), n1);
    c.cut.clear();
    // n2 cannot win (its log is shorter); n1 must stand, commit its removal and hand over.
    for _ in 0..10 * ELECTION.1 {
        for id in ["n1", "n2"] {
            c.get(id).tick();
        }
        c.stabilize();
        if c.get("n2").is_leader() {
            break;
        }
    }
    assert!(c.get("n2").is_leader(), "the cluster stalled");
    assert!(!c.get("n2").membership().is_voter("n1"));
}

#[test]
fn a_single_voter_leads_only_once_its_term_is_durable() {
    // n1 votes alone; n2 learns. An election and a proposal share one Ready.
    let mut m = voters(&["n1"]);
    m.learners.insert("n2".into(), "addr-n2".into());
    let mut n1 = Node::new(config("n1"), Restored::default(), Some(m)).unwrap();
    n1.campaign();
    assert!(n1.is_leader(), "a single voter wins at once");
    n1.propose(Bytes::from("A")).unwrap();
    let rd = n1.ready();
    assert!(rd.hard_state.is_some());
    assert!(
        rd.messages.is_empty(),
        "an Append left before the new term was durable"
    );
    assert!(
        rd.persisted_messages
            .iter()
            .any(|m| m.to == "n2" && matches!(m.body, Body::Append(_)))
    );
}

#[test]
fn a_single_voter_answers_reads() {
    let mut n = node("n1", &["n1"]);
    n.campaign();
    drain(&mut n);
    n.read_index(3).unwrap();
    let rd = n.ready();
    assert_eq!(
        rd.reads,
        [ReadState {
            id: 3,
            index: Some(1)
        }]
    );
    n.advance();
}

#[test]
fn a_removed_follower_learns_of_its_removal_and_stays_quiet() {
    // No PreVote, no CheckQuorum: only knowing it was removed keeps n3 from campaigning.
    let mut c = Cluster::of(&["n1", "n2", "n3"]);
    c.elect("n1");
    c.get("n1")
        .propose_change(ConfChange::Remove { id: "n3".into() })
        .unwrap();
    for _ in 0..3 {
        c.get("n1").tick();
        c.stabilize();
    }
    assert!(
        !c.get("n3").membership().contains("n3"),
        "n3 never received its removal"
    );
    let term = c.get("n1").term();
    for _ in 0..5 * ELECTION.1 {
        c.get("n3").tick();
        c.stabilize();
    }
    assert_eq!(
        c.get("n1").term(),
        term,
        "the removed node disturbed the leader"
    );
    assert!(c.get("n1").is_leader());
    // Once it holds the removal and knows it committed, the leader forgets it.
    for _ in 0..2 {
        c.get("n1").tick();
        c.stabilize();
    }
    assert!(!c.get("n1").status().matched.contains_key("n3"));
}

// --- Losing the leader's connection. ---

/// Nodes with PreVote and CheckQuorum, as in production.
fn guarded_cluster(ids: &[&str]) -> Cluster {
    Cluster::new(
        ids.iter()
            .map(|id| {
                let mut cfg = config(id);
                cfg.pre_vote = true;
                cfg.check_quorum = true;
                node_with_config(cfg, ids, 1, &[])
            })
            .collect(),
    )
}

#[test]
fn followers_that_lose_the_leaders_connection_elect_another_at_once() {
    let ids = ["n1", "n2", "n3"];
    let mut c = guarded_cluster(&ids);
    c.elect("n1");
    c.get("n2").tick();
    c.get("n3").tick();
    // Connection refused: a dead leader. Within two heartbeats, not an election timeout,
    // one of them campaigns, and the other, having lost the leader too, votes for it.
    c.get("n2").peer_lost("n1");
    c.get("n3").peer_lost("n1");
    c.cut = vec![
        ("n2".into(), "n1".into()),
        ("n3".into(), "n1".into()),
        ("n1".into(), "n2".into()),
        ("n1".into(), "n3".into()),
    ];
    // n2's short timer fires first (if both fired in the same tick, the votes could
    // split, as in any election, and the normal timeout would follow).
    for _ in 0..2 {
        c.get("n2").tick();
        c.stabilize();
    }
    let leaders: Vec<&str> = ["n2", "n3"]
        .into_iter()
        .filter(|id| c.nodes[*id].is_leader())
        .collect();
    assert_eq!(leaders.len(), 1, "a new leader within two ticks");
    // n1 led term 2 (the nodes start in term 1).
    assert_eq!(c.nodes[leaders[0]].term(), 3);
}

#[test]
fn a_lost_connection_to_a_live_leader_disturbs_nothing() {
    let ids = ["n1", "n2", "n3"];
    let mut c = guarded_cluster(&ids);
    c.elect("n1");
    // Only n2's link broke; n3 still hears the leader and refuses n2's pre-vote.
    c.get("n2").peer_lost("n1");
    for _ in 0..5 {
        c.get("n2").tick();
        c.stabilize();
    }
    assert!(c.nodes["n1"].is_leader());
    assert_eq!(c.nodes["n1"].term(), 2, "no new term");
    // A peer that is not the leader: nothing happens.
    c.get("n3").peer_lost("n2");
    assert_eq!(c.nodes["n3"].leader().map(String::as_str), Some("n1"));
}

#[test]
fn followers_learn_a_commit_from_the_next_append_or_at_the_next_tick() {
    let ids = ["n1", "n2", "n3"];
    // Heartbeats far apart, so that only the commit update can tell a tick's news.
    let nodes = ids.iter().map(|id| {
        let mut cfg = config(id);
        cfg.heartbeat_ticks = 5;
        node_with_config(cfg, &ids, 0, &[])
    });
    let mut c = Cluster::new(nodes.collect());
    c.elect("n1");
    c.get("n1").tick();
    c.stabilize();
    let known = c.get("n1").commit();
    assert_eq!(
        c.get("n2").commit(),
        known,
        "the noop's commit went out at the tick"
    );
    c.get("n1").propose(Bytes::from("x")).unwrap();
    c.stabilize();
    assert_eq!(c.get("n1").commit(), known + 1);
    assert_eq!(
        c.get("n2").commit(),
        known,
        "no Append of its own for a commit"
    );
    c.get("n1").propose(Bytes::from("y")).unwrap();
    c.stabilize();
    assert_eq!(
        c.get("n2").commit(),
        known + 1,
        "the next Append carried it"
    );
    c.get("n1").tick();
    c.stabilize();
    assert_eq!(
        c.get("n2").commit(),
        known + 2,
        "and the next tick the last one"
    );
    assert_eq!(c.get("n3").commit(), known + 2);
}
