//! What gossip puts on the wire: the foca identity, the custom broadcasts (metadata, user
//! events, leave intents), push-pull state, and the UDP packet and TCP frame envelopes with
//! their encryption (compat §12.2 layout; the payloads are ours, encoded with postcard).
//!
//! UDP packet: `[1][nonce:12][ciphertext][tag:16]` when encrypted, else the plaintext
//! itself, which always starts with a kind byte that is never 1.
//! TCP frame: `[type][length:u32 BE][body]`; type 10 = encrypted body (AAD = the 5 header
//! bytes), 20 = plaintext postcard, 13 = a plaintext error text from the peer.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::keyring::{Keyring, OpenError, VERSION};
use super::{MemberMeta, UserEvent};

/// First byte of a plaintext UDP payload carrying a foca packet.
pub(crate) const KIND_FOCA: u8 = b'F';
/// "Send me your metadata": asked of a member that came up before its metadata arrived.
pub(crate) const KIND_META_REQ: u8 = b'Q';
/// A member's own metadata, the answer to `KIND_META_REQ`.
pub(crate) const KIND_META: u8 = b'M';
/// A joiner introducing itself (identity and metadata) to the members it just learned of.
pub(crate) const KIND_HELLO: u8 = b'H';
/// Anti-entropy probe: a digest of the sender's member table; a receiver whose digest
/// differs starts a TCP push-pull with the sender. Keeps idle push-pull traffic tiny.
pub(crate) const KIND_SYNC: u8 = b'S';
pub(crate) const FRAME_ENCRYPTED: u8 = 10;
pub(crate) const FRAME_ERROR: u8 = 13;
pub(crate) const FRAME_PLAIN: u8 = 20;
/// Largest TCP frame body accepted (memberlist's push/pull limit).
pub(crate) const MAX_FRAME: usize = 20 * 1024 * 1024;
/// Largest UDP datagram we send; larger messages take the TCP path.
pub(crate) const MAX_UDP: usize = 1400;

/// A member's identity in foca: its name (the unique key), its gossip address and a bump
/// that grows on every (re)join, so a restarted or renewed member wins over its past self.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct NodeId {
    pub(crate) name: Arc<str>,
    pub(crate) addr: SocketAddr,
    pub(crate) bump: u64,
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}#{}", self.name, self.addr, self.bump)
    }
}

impl foca::Identity for NodeId {
    type Addr = Arc<str>;

    fn renew(&self) -> Option<Self> {
        Some(NodeId {
            name: self.name.clone(),
            addr: self.addr,
            bump: self.bump.wrapping_add(1),
        })
    }

    fn addr(&self) -> Arc<str> {
        self.name.clone()
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        (self.bump, self.addr) > (adversary.bump, adversary.addr)
    }
}

/// Orders metadata of one member: a later identity first, then the update count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub(crate) struct MetaVersion {
    pub(crate) bump: u64,
    pub(crate) seq: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct MetaItem {
    pub(crate) name: String,
    pub(crate) version: MetaVersion,
    pub(crate) meta: MemberMeta,
}

/// "Member `name` (identity `bump`) is leaving": sent by the member itself before a graceful
/// leave, or by another member for `force-leave` (`by` names the sender).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct LeaveItem {
    pub(crate) name: String,
    pub(crate) bump: u64,
    pub(crate) by: String,
}

impl LeaveItem {
    pub(crate) fn graceful(&self) -> bool {
        self.by == self.name
    }
}

/// A custom broadcast, disseminated by foca alongside its membership updates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum Item {
    Meta(MetaItem),
    Event(UserEvent),
    Leave(LeaveItem),
}

impl Item {
    pub(crate) fn encode(&self) -> Vec<u8> {
        // Encoding into a Vec fails only on serde errors our plain types cannot raise.
        postcard::to_allocvec(self).expect("postcard encodes gossip items")
    }

    pub(crate) fn key(&self) -> ItemKey {
        match self {
            Item::Meta(m) => ItemKey::Meta(m.name.clone(), m.version),
            Item::Event(e) => ItemKey::Event(e.id.clone()),
            Item::Leave(l) => ItemKey::Leave(l.name.clone(), l.bump, l.by.clone()),
        }
    }
}

/// What foca compares to drop broadcasts made stale by newer ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ItemKey {
    Meta(String, MetaVersion),
    Event(String),
    Leave(String, u64, String),
}

impl foca::Invalidates for ItemKey {
    fn invalidates(&self, other: &Self) -> bool {
        match (self, other) {
            (ItemKey::Meta(a, va), ItemKey::Meta(b, vb)) => a == b && va >= vb,
            (a, b) => a == b,
        }
    }
}

/// Full state exchange over TCP: on join (`join`) and periodically (anti-entropy).
/// Metadata travels as a digest of versions; each side then sends what the other lacks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PushPull {
    pub(crate) join: bool,
    pub(crate) from: NodeId,
    pub(crate) members: Vec<foca::Member<NodeId>>,
    pub(crate) digest: Vec<(String, MetaVersion)>,
    /// The request: the sender's own metadata. The reply: what the requester lacked.
    pub(crate) metas: Vec<MetaItem>,
    pub(crate) leaves: Vec<LeaveItem>,
    pub(crate) event_ltime: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum KeyringOp {
    List,
    Install(String),
    Use(String),
    Remove(String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct KeyringReply {
    pub(crate) keys: Vec<String>,
    pub(crate) primary: String,
    pub(crate) error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum TcpMsg {
    PushPull(PushPull),
    PushPullReply(PushPull),
    Metas(Vec<MetaItem>),
    Keyring(KeyringOp),
    KeyringReply(KeyringReply),
    /// A gossip packet too large for one UDP datagram.
    Packet(Vec<u8>),
}

/// Why a packet or frame was refused. Never carries key material.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WireError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Open(#[from] OpenError),
    #[error("encrypted message received but gossip encryption is not configured on this agent")]
    NoKeyring,
    #[error(
        "unencrypted message rejected: gossip encryption is enabled (encrypt_verify_incoming)"
    )]
    Unencrypted,
    #[error("frame of {0} bytes exceeds the limit")]
    TooLarge(usize),
    #[error("unknown frame type {0}")]
    FrameType(u8),
    #[error("malformed message: {0}")]
    Decode(#[from] postcard::Error),
    #[error("empty packet")]
    Empty,
    #[error("the remote agent refused the message: {0}")]
    Remote(String),
    #[error("timed out")]
    Timeout,
    #[error("the gossip pool is shut down")]
    Stopped,
    #[error("unexpected reply")]
    Unexpected,
}

impl WireError {
    /// True when the keys (or their absence) differ between the two agents.
    pub(crate) fn is_key_mismatch(&self) -> bool {
        matches!(
            self,
            WireError::Open(_) | WireError::NoKeyring | WireError::Unencrypted
        )
    }
}

/// How this agent treats encryption, from its keyring and `encrypt_verify_*`.
#[derive(Clone, Copy)]
pub(crate) struct Crypto<'a> {
    pub(crate) keyring: Option<&'a Keyring>,
    pub(crate) verify_incoming: bool,
    pub(crate) verify_outgoing: bool,
}

impl Crypto<'_> {
    fn encrypts(&self) -> Option<&Keyring> {
        self.keyring.filter(|_| self.verify_outgoing)
    }

    /// Seals a UDP payload (already starting with its kind byte).
    pub(crate) fn seal_packet(&self, inner: &[u8]) -> Vec<u8> {
        match self.encrypts() {
            Some(k) => k.seal(inner, &[]),
            None => inner.to_vec(),
        }
    }

    /// Opens a UDP datagram into its payload.
    pub(crate) fn open_packet(&self, data: &[u8]) -> Result<Vec<u8>, WireError> {
        match data.first() {
            None => Err(WireError::Empty),
            Some(&VERSION) => match self.keyring {
                Some(k) => Ok(k.open(data, &[])?),
                None => Err(WireError::NoKeyring),
            },
            Some(_) if self.keyring.is_some() && self.verify_incoming => {
                Err(WireError::Unencrypted)
            }
            Some(_) => Ok(data.to_vec()),
        }
    }

    /// Encodes one TCP frame.
    pub(crate) fn frame(&self, msg: &TcpMsg) -> Vec<u8> {
        // Encoding into a Vec fails only on serde errors our plain types cannot raise.
        let body = postcard::to_allocvec(msg).expect("postcard encodes gossip frames");
        match self.encrypts() {
            Some(k) => {
                let len = body.len() + super::keyring::OVERHEAD;
                let mut out = Vec::with_capacity(5 + len);
                out.push(FRAME_ENCRYPTED);
                out.extend_from_slice(&(len as u32).to_be_bytes());
                let sealed = k.seal(&body, &out[..5]);
                out.extend_from_slice(&sealed);
                out
            }
            None => {
                let mut out = Vec::with_capacity(5 + body.len());
                out.push(FRAME_PLAIN);
                out.extend_from_slice(&(body.len() as u32).to_be_bytes());
                out.extend_from_slice(&body);
                out
            }
        }
    }

    /// Decodes one TCP frame's body given its 5-byte header.
    pub(crate) fn unframe(&self, header: [u8; 5], body: &[u8]) -> Result<TcpMsg, WireError> {
        let plain = match header[0] {
            FRAME_ENCRYPTED => match self.keyring {
                Some(k) => k.open(body, &header)?,
                None => return Err(WireError::NoKeyring),
            },
            FRAME_PLAIN if self.keyring.is_some() && self.verify_incoming => {
                return Err(WireError::Unencrypted)
            }
            FRAME_PLAIN => body.to_vec(),
            FRAME_ERROR => {
                return Err(WireError::Remote(
                    String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned(),
                ))
            }
            other => return Err(WireError::FrameType(other)),
        };
        Ok(postcard::from_bytes(&plain)?)
    }
}

/// A plaintext error frame: tells a peer why its message was refused (fixed texts only).
pub(crate) fn error_frame(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + text.len());
    out.push(FRAME_ERROR);
    out.extend_from_slice(&(text.len() as u32).to_be_bytes());
    out.extend_from_slice(text.as_bytes());
    out
}

/// Reads one frame's header and body.
pub(crate) async fn read_frame<R: tokio::io::AsyncRead + Unpin>(
    r: &mut R,
) -> Result<([u8; 5], Vec<u8>), WireError> {
    let mut header = [0u8; 5];
    r.read_exact(&mut header).await?;
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    if len > MAX_FRAME {
        return Err(WireError::TooLarge(len));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    Ok((header, body))
}

pub(crate) async fn write_all<W: tokio::io::AsyncWrite + Unpin>(
    w: &mut W,
    bytes: &[u8],
) -> Result<(), WireError> {
    w.write_all(bytes).await?;
    w.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    #[test]
    fn packets_and_frames_honour_verify_flags() {
        let ring = Keyring::new(K).unwrap();
        let other = Keyring::new("AAECAwQFBgcICQoLDA0ODw==").unwrap();
        let enc = Crypto {
            keyring: Some(&ring),
            verify_incoming: true,
            verify_outgoing: true,
        };
        let lax = Crypto {
            keyring: Some(&ring),
            verify_incoming: false,
            verify_outgoing: false,
        };
        let plain = Crypto {
            keyring: None,
            verify_incoming: true,
            verify_outgoing: true,
        };
        let wrong = Crypto {
            keyring: Some(&other),
            ..enc
        };
        let inner = [KIND_FOCA, 1, 2, 3];
        let sealed = enc.seal_packet(&inner);
        assert_eq!(sealed.len(), inner.len() + super::super::keyring::OVERHEAD);
        assert_eq!(enc.open_packet(&sealed).unwrap(), inner);
        assert_eq!(lax.open_packet(&sealed).unwrap(), inner);
        assert!(matches!(
            plain.open_packet(&sealed),
            Err(WireError::NoKeyring)
        ));
        assert!(matches!(
            wrong.open_packet(&sealed),
            Err(WireError::Open(OpenError::NoKey))
        ));
        // Outgoing false sends plaintext; incoming true refuses it, incoming false takes it.
        let clear = lax.seal_packet(&inner);
        assert_eq!(clear, inner);
        assert!(matches!(
            enc.open_packet(&clear),
            Err(WireError::Unencrypted)
        ));
        assert_eq!(lax.open_packet(&clear).unwrap(), inner);

        let msg = TcpMsg::Packet(vec![9; 40]);
        let f = enc.frame(&msg);
        assert_eq!(f[0], FRAME_ENCRYPTED);
        assert_eq!(
            u32::from_be_bytes([f[1], f[2], f[3], f[4]]) as usize,
            f.len() - 5
        );
        let header: [u8; 5] = f[..5].try_into().unwrap();
        assert!(matches!(enc.unframe(header, &f[5..]), Ok(TcpMsg::Packet(p)) if p == vec![9; 40]));
        // The length is authenticated: a forged header does not open.
        let mut forged = header;
        forged[4] ^= 1;
        assert!(enc.unframe(forged, &f[5..]).is_err());
        let e = error_frame("nope");
        let header: [u8; 5] = e[..5].try_into().unwrap();
        assert!(matches!(enc.unframe(header, &e[5..]), Err(WireError::Remote(t)) if t == "nope"));
    }

    #[test]
    fn identity_conflicts_prefer_the_later_bump() {
        use foca::Identity as _;
        let a = NodeId {
            name: "n1".into(),
            addr: "127.0.0.1:1".parse().unwrap(),
            bump: 5,
        };
        let b = a.renew().unwrap();
        assert_eq!(b.bump, 6);
        assert!(b.win_addr_conflict(&a) && !a.win_addr_conflict(&b));
        assert_eq!(a.addr(), b.addr());
    }
}
