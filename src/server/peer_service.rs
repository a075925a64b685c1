//! The peer (Raft) service: messages from other nodes, handed to the driver in order; and
//! snapshots streamed in chunks, stored durably before the message that installs them.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use super::aside::Aside;
use super::handle::{Input, NodeHandle};
use super::wire;
use crate::proto::raft as pb;
use crate::proto::raft::raft_server::Raft;
use crate::storage::snapshot::SnapshotWriter;

pub struct PeerService {
    pub node: NodeHandle,
    pub snapshots: PathBuf,
}

#[tonic::async_trait]
impl Raft for PeerService {
    async fn deliver(
        &self,
        request: Request<Streaming<pb::Message>>,
    ) -> Result<Response<pb::DeliverAck>, Status> {
        let address = request
            .metadata()
            .get(super::transport::ADDRESS_KEY)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut stream = request.into_inner();
        let mut announced = false;
        while let Some(msg) = stream.next().await {
            let msg = wire::from_wire(msg?).map_err(Status::invalid_argument)?;
            if !announced && let Some(address) = &address {
                announced = true;
                self.node.send(Input::PeerAddress {
                    peer: msg.from.clone(),
                    address: address.clone(),
                });
            }
            if matches!(msg.body, crate::raft::Body::InstallSnapshot(_)) {
                // Only the snapshot stream may carry it, with its data.
                return Err(Status::invalid_argument(
                    "body: install_snapshot travels on InstallSnapshot, with its data",
                ));
            }
            if !self.node.send(Input::Peer(msg)) {
                return Err(Status::unavailable("the node is shutting down"));
            }
        }
        Ok(Response::new(pb::DeliverAck {}))
    }

    async fn install_snapshot(
        &self,
        request: Request<Streaming<pb::SnapshotChunk>>,
    ) -> Result<Response<pb::SnapshotAck>, Status> {
        let mut stream = request.into_inner();
        let _progress = Receiving(self.node.receiving.clone());
        let mut writer: Option<SnapshotWriter> = None;
        let mut received = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            if let Some(meta) = chunk.meta {
                let meta = wire::meta_from_wire(meta);
                // A snapshot no newer than what we hold is not stored; its message still
                // goes to the core, which acknowledges it.
                if meta.index > self.node.status().commit {
                    let dir = self.snapshots.clone();
                    let w = off_thread(&self.snapshots, move || {
                        SnapshotWriter::create_incoming(&dir, meta)
                    })
                    .await?;
                    writer = Some(w);
                }
            }
            if chunk.offset != received {
                return Err(Status::invalid_argument(format!(
                    "offset: expected chunk at {received}, got {}",
                    chunk.offset
                )));
            }
            received += chunk.data.len() as u64;
            self.node.receiving.store(received, Ordering::Relaxed);
            if let Some(mut w) = writer.take() {
                let data = chunk.data;
                writer = Some(
                    off_thread(&self.snapshots, move || {
                        w.write(&data)?;
                        Ok(w)
                    })
                    .await?,
                );
            }
            if chunk.done {
                let msg = chunk.message.ok_or_else(|| {
                    Status::invalid_argument("message: missing on the last chunk")
                })?;
                let msg = wire::from_wire(msg).map_err(Status::invalid_argument)?;
                let crate::raft::Body::InstallSnapshot(meta) = &msg.body else {
                    return Err(Status::invalid_argument("message: not an install_snapshot"));
                };
                match writer.take() {
                    Some(w) => {
                        if w.meta() != meta {
                            return Err(Status::invalid_argument(
                                "message: its snapshot is not the one streamed",
                            ));
                        }
                        let staged = off_thread(&self.snapshots, move || w.finish()).await?;
                        self.node.send(Input::Snapshot { msg, staged });
                    }
                    None => {
                        // Not stored (we are past it): the core only acknowledges it.
                        if meta.index > self.node.status().commit {
                            return Err(Status::invalid_argument("message: no snapshot data came"));
                        }
                        self.node.send(Input::Peer(msg));
                    }
                }
                return Ok(Response::new(pb::SnapshotAck { received }));
            }
        }
        // Cut off before the end: the temporary file is dropped unfinished, and the
        // leader will try again.
        Err(Status::aborted(
            "the snapshot stream ended before its last chunk",
        ))
    }
}

/// Runs file work off the node's one thread: a snapshot's chunks and its final fsync can
/// take long enough to hold up heartbeats.
async fn off_thread<T: Send + 'static>(
    dir: &Path,
    work: impl FnOnce() -> crate::storage::Result<T> + Send + 'static,
) -> Result<T, Status> {
    Aside::start(dir.to_path_buf(), work)
        .wait()
        .await
        .map_err(|e| Status::internal(e.to_string()))
}

/// Shows a transfer's progress in the node's status while it runs, and clears it however
/// the transfer ends.
struct Receiving(Arc<AtomicU64>);

impl Drop for Receiving {
    fn drop(&mut self) {
        self.0.store(0, Ordering::Relaxed);
    }
}
