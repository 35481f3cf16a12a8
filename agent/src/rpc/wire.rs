//! The server RPC wire format (port `ports.server`, 8300).
//!
//! A connection starts with one protocol byte ([`RPC_PROTOCOL`]), then carries frames in both
//! directions: `[u32 length, big endian][u64 request id][postcard body]`. Requests are
//! multiplexed: responses carry the id of their request and may arrive in any order.
//! Inside the cluster Tribune speaks its own protocol (DESIGN §0); the version lives in the
//! protocol byte.

use crate::raft::TypeConfig;
use crate::structs::{Check, Command, CommandResponse, Node, Service};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// First byte of a connection: Tribune RPC, version 1.
pub const RPC_PROTOCOL: u8 = 0x54;

/// Largest frame accepted (a snapshot chunk or a large append batch fits easily).
pub const MAX_FRAME: usize = 64 << 20;

// Frames live for one request; boxing the large Raft variants would only add allocations.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<u64>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// Apply a command on the leader (a follower or client forwards writes here).
    Apply(Command),
    /// The leader confirms its leadership and answers the index a linearizable read must
    /// wait for.
    ReadIndex,
    /// The catalog's view of one node (a client agent's anti-entropy).
    NodeState {
        node: String,
    },
}

#[allow(clippy::large_enum_variant)]
#[derive(Debug, Serialize, Deserialize)]
pub enum Response {
    AppendEntries(AppendEntriesResponse<u64>),
    Vote(VoteResponse<u64>),
    InstallSnapshot(InstallSnapshotResponse<u64>),
    Apply(CommandResponse),
    ReadIndex(u64),
    NodeState {
        node: Option<Node>,
        services: Vec<Service>,
        checks: Vec<Check>,
    },
    Error(Failure),
}

/// Why the remote side could not serve a request.
#[derive(Debug, Clone, Serialize, Deserialize, thiserror::Error)]
pub enum Failure {
    #[error("{}", crate::structs::msg::NO_LEADER)]
    NoLeader,
    #[error("{0}")]
    Other(String),
}

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("rpc connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("rpc frame of {0} bytes exceeds the limit")]
    TooLarge(usize),
    #[error("rpc decode: {0}")]
    Decode(String),
}

/// Encodes one frame.
pub fn encode<T: Serialize>(id: u64, body: &T) -> Result<Vec<u8>, WireError> {
    let mut out = vec![0u8; 12];
    out[4..12].copy_from_slice(&id.to_be_bytes());
    let mut out = postcard::to_extend(body, out).map_err(|e| WireError::Decode(e.to_string()))?;
    let len = out.len() - 4;
    if len > MAX_FRAME {
        return Err(WireError::TooLarge(len));
    }
    out[0..4].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(out)
}

/// Reads one frame: its id and body.
pub async fn read_frame<R: AsyncReadExt + Unpin, T: serde::de::DeserializeOwned>(
    r: &mut R,
    buf: &mut Vec<u8>,
) -> Result<(u64, T), WireError> {
    let len = r.read_u32().await? as usize;
    if !(8..=MAX_FRAME).contains(&len) {
        return Err(WireError::TooLarge(len));
    }
    buf.resize(len, 0);
    r.read_exact(buf).await?;
    let id = u64::from_be_bytes(
        buf[0..8]
            .try_into()
            .map_err(|_| WireError::Decode("short frame".into()))?,
    );
    let body = postcard::from_bytes(&buf[8..]).map_err(|e| WireError::Decode(e.to_string()))?;
    Ok((id, body))
}

/// Writes the protocol byte that opens a connection.
pub async fn write_preamble<W: AsyncWriteExt + Unpin>(w: &mut W) -> Result<(), WireError> {
    w.write_all(&[RPC_PROTOCOL]).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip() {
        let frame = encode(7, &Request::NodeState { node: "n1".into() }).unwrap();
        let mut cur = std::io::Cursor::new(frame);
        let mut buf = Vec::new();
        let (id, req): (u64, Request) = read_frame(&mut cur, &mut buf).await.unwrap();
        assert_eq!(id, 7);
        assert!(matches!(req, Request::NodeState { node } if node == "n1"));
    }
}
