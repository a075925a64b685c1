//! Conversions between the Raft core's messages and their wire form (proto/raft.proto).
//! A message that does not decode is refused whole, with the field that was wrong.

use std::collections::BTreeMap;

use crate::proto::raft as pb;
use crate::raft::{
    Append, AppendResponse, Body, Campaign, Entry, Membership, Message, Payload, SnapshotMeta,
};

fn members(list: &BTreeMap<String, String>) -> Vec<pb::NodeAddress> {
    list.iter()
        .map(|(id, address)| pb::NodeAddress {
            id: id.clone(),
            address: address.clone(),
        })
        .collect()
}

pub fn membership_to_wire(m: &Membership) -> pb::Membership {
    pb::Membership {
        voters: members(&m.voters),
        learners: members(&m.learners),
    }
}

pub fn membership_from_wire(m: pb::Membership) -> Membership {
    let collect =
        |list: Vec<pb::NodeAddress>| list.into_iter().map(|n| (n.id, n.address)).collect();
    Membership {
        voters: collect(m.voters),
        learners: collect(m.learners),
    }
}

pub fn meta_to_wire(m: &SnapshotMeta) -> pb::SnapshotMeta {
    pb::SnapshotMeta {
        index: m.index,
        term: m.term,
        membership: Some(membership_to_wire(&m.membership)),
    }
}

pub fn meta_from_wire(m: pb::SnapshotMeta) -> SnapshotMeta {
    SnapshotMeta {
        index: m.index,
        term: m.term,
        membership: membership_from_wire(m.membership.unwrap_or_default()),
    }
}

fn entry_to_wire(e: &Entry) -> pb::Entry {
    use pb::entry::Payload as P;
    pb::Entry {
        index: e.index,
        term: e.term,
        payload: Some(match &e.payload {
            Payload::Noop => P::Noop(pb::Noop {}),
            Payload::Command(data) => P::Command(data.clone()),
            Payload::Membership(m) => P::Membership(membership_to_wire(m)),
        }),
    }
}

fn entry_from_wire(e: pb::Entry) -> Result<Entry, String> {
    use pb::entry::Payload as P;
    let payload = match e.payload.ok_or("entry.payload is missing")? {
        P::Noop(_) => Payload::Noop,
        P::Command(data) => Payload::Command(data),
        P::Membership(m) => Payload::Membership(membership_from_wire(m)),
    };
    Ok(Entry {
        index: e.index,
        term: e.term,
        payload,
    })
}

fn campaign(c: &Campaign) -> pb::Campaign {
    pb::Campaign {
        last_index: c.last_index,
        last_term: c.last_term,
        transfer: c.transfer,
    }
}

fn campaign_from(c: pb::Campaign) -> Campaign {
    Campaign {
        last_index: c.last_index,
        last_term: c.last_term,
        transfer: c.transfer,
    }
}

pub fn to_wire(m: &Message) -> pb::Message {
    use pb::message::Body as B;
    let body = match &m.body {
        Body::PreVote(c) => B::PreVote(campaign(c)),
        Body::PreVoteResponse { granted } => {
            B::PreVoteResponse(pb::CampaignResponse { granted: *granted })
        }
        Body::Vote(c) => B::Vote(campaign(c)),
        Body::VoteResponse { granted } => {
            B::VoteResponse(pb::CampaignResponse { granted: *granted })
        }
        Body::Append(a) => B::Append(pb::Append {
            prev_index: a.prev_index,
            prev_term: a.prev_term,
            entries: a.entries.iter().map(entry_to_wire).collect(),
            commit: a.commit,
        }),
        Body::AppendResponse(AppendResponse::Accepted { last_index }) => {
            B::AppendResponse(pb::AppendResponse {
                success: true,
                last_index: *last_index,
                ..Default::default()
            })
        }
        Body::AppendResponse(AppendResponse::Rejected {
            rejected,
            conflict_term,
            conflict_index,
        }) => B::AppendResponse(pb::AppendResponse {
            success: false,
            last_index: 0,
            rejected_index: *rejected,
            conflict_term: *conflict_term,
            conflict_index: *conflict_index,
        }),
        Body::Heartbeat { commit, read_seq } => B::Heartbeat(pb::Heartbeat {
            commit: *commit,
            read_seq: *read_seq,
        }),
        Body::HeartbeatResponse {
            read_seq,
            last_index,
        } => B::HeartbeatResponse(pb::HeartbeatResponse {
            read_seq: *read_seq,
            last_index: *last_index,
        }),
        Body::InstallSnapshot(meta) => B::InstallSnapshot(pb::InstallSnapshot {
            meta: Some(meta_to_wire(meta)),
        }),
        Body::TimeoutNow => B::TimeoutNow(pb::TimeoutNow {}),
        Body::ReadIndex { id } => B::ReadIndex(pb::ReadIndex { id: *id }),
        Body::ReadIndexResponse { id, index } => B::ReadIndexResponse(pb::ReadIndexResponse {
            id: *id,
            index: index.unwrap_or(0),
            ok: index.is_some(),
        }),
    };
    pb::Message {
        from: m.from.clone(),
        to: m.to.clone(),
        term: m.term,
        body: Some(body),
    }
}

pub fn from_wire(m: pb::Message) -> Result<Message, String> {
    use pb::message::Body as B;
    let body = match m.body.ok_or("message.body is missing")? {
        B::PreVote(c) => Body::PreVote(campaign_from(c)),
        B::PreVoteResponse(r) => Body::PreVoteResponse { granted: r.granted },
        B::Vote(c) => Body::Vote(campaign_from(c)),
        B::VoteResponse(r) => Body::VoteResponse { granted: r.granted },
        B::Append(a) => Body::Append(Append {
            prev_index: a.prev_index,
            prev_term: a.prev_term,
            entries: a
                .entries
                .into_iter()
                .map(entry_from_wire)
                .collect::<Result<_, _>>()?,
            commit: a.commit,
        }),
        B::AppendResponse(r) if r.success => Body::AppendResponse(AppendResponse::Accepted {
            last_index: r.last_index,
        }),
        B::AppendResponse(r) => Body::AppendResponse(AppendResponse::Rejected {
            rejected: r.rejected_index,
            conflict_term: r.conflict_term,
            conflict_index: r.conflict_index,
        }),
        B::Heartbeat(h) => Body::Heartbeat {
            commit: h.commit,
            read_seq: h.read_seq,
        },
        B::HeartbeatResponse(h) => Body::HeartbeatResponse {
            read_seq: h.read_seq,
            last_index: h.last_index,
        },
        B::InstallSnapshot(s) => Body::InstallSnapshot(meta_from_wire(
            s.meta.ok_or("install_snapshot.meta is missing")?,
        )),
        B::TimeoutNow(_) => Body::TimeoutNow,
        B::ReadIndex(r) => Body::ReadIndex { id: r.id },
        B::ReadIndexResponse(r) => Body::ReadIndexResponse {
            id: r.id,
            index: r.ok.then_some(r.index),
        },
    };
    Ok(Message {
        from: m.from,
        to: m.to,
        term: m.term,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn every_message_round_trips() {
        let m = Membership::with_voters([("n1", "127.0.0.1:1".to_string())]);
        let c = Campaign {
            last_index: 4,
            last_term: 2,
            transfer: true,
        };
        let bodies = vec![
            Body::PreVote(c.clone()),
            Body::PreVoteResponse { granted: true },
            Body::Vote(c),
            Body::VoteResponse { granted: false },
            Body::Append(Append {
                prev_index: 3,
                prev_term: 1,
                entries: vec![
                    Entry {
                        index: 4,
                        term: 2,
                        payload: Payload::Command(Bytes::from_static(b"x")),
                    },
                    Entry {
                        index: 5,
                        term: 2,
                        payload: Payload::Membership(m.clone()),
                    },
                    Entry {
                        index: 6,
                        term: 2,
                        payload: Payload::Noop,
                    },
                ],
                commit: 3,
            }),
            Body::AppendResponse(AppendResponse::Accepted { last_index: 6 }),
            Body::AppendResponse(AppendResponse::Rejected {
                rejected: 6,
                conflict_term: 1,
                conflict_index: 2,
            }),
            Body::Heartbeat {
                commit: 5,
                read_seq: 9,
            },
            Body::HeartbeatResponse {
                read_seq: 9,
                last_index: 6,
            },
            Body::InstallSnapshot(SnapshotMeta {
                index: 10,
                term: 2,
                membership: m,
            }),
            Body::TimeoutNow,
            Body::ReadIndex { id: 7 },
            Body::ReadIndexResponse {
                id: 7,
                index: Some(4),
            },
            Body::ReadIndexResponse { id: 8, index: None },
        ];
        for body in bodies {
            let msg = Message {
                from: "n1".into(),
                to: "n2".into(),
                term: 3,
                body,
            };
            assert_eq!(from_wire(to_wire(&msg)).unwrap(), msg);
        }
    }
}
