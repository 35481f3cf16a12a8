//! The network between Raft servers: openraft's RPCs over the server RPC transport
//! ([`crate::rpc::Pool`]), addressed by each member's `BasicNode.addr` (its server RPC
//! address).

use super::TypeConfig;
use crate::rpc::{CallError, Pool, Request, Response};
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use std::sync::Arc;

type NodeId = u64;

/// Creates connections to peers.
pub struct Network {
    pub pool: Arc<Pool>,
}

/// A connection to one peer.
pub struct Peer {
    addr: String,
    pool: Arc<Pool>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, _target: NodeId, node: &BasicNode) -> Peer {
        Peer {
            addr: node.addr.clone(),
            pool: self.pool.clone(),
        }
    }
}

fn to_rpc_error<E: std::error::Error>(e: CallError) -> RPCError<NodeId, BasicNode, E> {
    match e {
        CallError::Connect { .. } | CallError::Closed(_) => {
            RPCError::Unreachable(Unreachable::new(&e))
        }
        other => RPCError::Network(NetworkError::new(&other)),
    }
}

fn unexpected<E: std::error::Error>(what: &str, resp: Response) -> RPCError<NodeId, BasicNode, E> {
    let e = std::io::Error::other(format!("unexpected answer to {what}: {resp:?}"));
    RPCError::Network(NetworkError::new(&e))
}

impl Peer {
    async fn call<E: std::error::Error>(
        &self,
        req: Request,
        option: &RPCOption,
    ) -> Result<Response, RPCError<NodeId, BasicNode, E>> {
        self.pool
            .call(&self.addr, &req, option.hard_ttl())
            .await
            .map_err(to_rpc_error)
    }
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        match self.call(Request::AppendEntries(rpc), &option).await? {
            Response::AppendEntries(r) => Ok(r),
            other => Err(unexpected("append_entries", other)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        match self.call(Request::InstallSnapshot(rpc), &option).await? {
            Response::InstallSnapshot(r) => Ok(r),
            other => Err(unexpected("install_snapshot", other)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        match self.call(Request::Vote(rpc), &option).await? {
            Response::Vote(r) => Ok(r),
            other => Err(unexpected("vote", other)),
        }
    }
}
