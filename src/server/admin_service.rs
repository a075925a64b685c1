//! The admin service: status, membership changes, leadership transfer, compaction.

use tonic::{Request, Response, Status};

use super::handle::NodeHandle;
use crate::proto::admin as pb;
use crate::proto::admin::admin_server::Admin;
use crate::raft::ConfChange;

pub struct AdminService {
    pub node: NodeHandle,
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn status(
        &self,
        _: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusReply>, Status> {
        let st = self.node.status();
        let leader_address = st.leader_address().map(|(_, a)| a).unwrap_or_default();
        let members = st
            .membership
            .voters
            .iter()
            .map(|(id, a)| (id, a, true))
            .chain(st.membership.learners.iter().map(|(id, a)| (id, a, false)))
            .map(|(id, address, voter)| pb::Member {
                id: id.clone(),
                address: address.clone(),
                voter,
            })
            .collect();
        Ok(Response::new(pb::StatusReply {
            id: st.id.clone(),
            role: st.role.to_string(),
            term: st.term,
            leader: st.leader.clone().unwrap_or_default(),
            leader_address,
            commit: st.commit,
            applied: st.applied,
            last_index: st.last_index,
            snapshot_index: st.snapshot_index,
            members,
            faults: self.node.faults.describe(),
            dropped: self.node.faults.counters().0,
            delayed: self.node.faults.counters().1,
            snapshot_receiving: self
                .node
                .receiving
                .load(std::sync::atomic::Ordering::Relaxed),
            progress: st
                .matched
                .iter()
                .map(|(id, m)| pb::PeerProgress {
                    id: id.clone(),
                    match_index: *m,
                })
                .collect(),
        }))
    }

    async fn add_node(
        &self,
        request: Request<pb::AddNodeRequest>,
    ) -> Result<Response<pb::ChangeReply>, Status> {
        let r = request.into_inner();
        if r.id.is_empty() || r.address.is_empty() {
            return Err(Status::invalid_argument(
                "id and address: both are required",
            ));
        }
        let index = self
            .node
            .change(ConfChange::AddLearner {
                id: r.id,
                address: r.address,
            })
            .await?;
        Ok(Response::new(pb::ChangeReply { index }))
    }

    async fn remove_node(
        &self,
        request: Request<pb::RemoveNodeRequest>,
    ) -> Result<Response<pb::ChangeReply>, Status> {
        let id = request.into_inner().id;
        let index = self.node.change(ConfChange::Remove { id }).await?;
        Ok(Response::new(pb::ChangeReply { index }))
    }

    async fn transfer_leader(
        &self,
        request: Request<pb::TransferLeaderRequest>,
    ) -> Result<Response<pb::ChangeReply>, Status> {
        let index = self.node.transfer(request.into_inner().id).await?;
        Ok(Response::new(pb::ChangeReply { index }))
    }

    async fn dump(&self, _: Request<pb::DumpRequest>) -> Result<Response<pb::DumpReply>, Status> {
        let (applied, dump) = self.node.dump().await?;
        Ok(Response::new(pb::DumpReply { applied, dump }))
    }

    async fn set_faults(
        &self,
        request: Request<pb::FaultsRequest>,
    ) -> Result<Response<pb::FaultsReply>, Status> {
        use crate::server::faults::Rule;
        let r = request.into_inner();
        let mut rules = std::collections::BTreeMap::new();
        for rule in r.rules {
            if !(0.0..=1.0).contains(&rule.drop_rate) {
                return Err(Status::invalid_argument(
                    "drop_rate: must be between 0 and 1",
                ));
            }
            if rule.delay_min_ms > rule.delay_max_ms {
                return Err(Status::invalid_argument(
                    "delay_min_ms: must not exceed delay_max_ms",
                ));
            }
            rules.insert(
                rule.peer,
                Rule {
                    block: rule.block,
                    drop_rate: rule.drop_rate,
                    delay_ms: (rule.delay_min_ms, rule.delay_max_ms),
                },
            );
        }
        self.node.faults.set(rules, r.seed);
        let (dropped, delayed) = self.node.faults.counters();
        Ok(Response::new(pb::FaultsReply { dropped, delayed }))
    }

    async fn compact(
        &self,
        _: Request<pb::CompactRequest>,
    ) -> Result<Response<pb::CompactReply>, Status> {
        let snapshot_index = self.node.compact().await?;
        Ok(Response::new(pb::CompactReply { snapshot_index }))
    }
}
