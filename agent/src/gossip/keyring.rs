//! Gossip encryption keys: Consul's `encrypt` strings, the keyring (primary first), AES-GCM
//! sealing in memberlist's layout (compat §12.2) and the on-disk keyring file.
//!
//! Nothing here ever formats a key into an error or a log line: base64 errors carry an
//! offset only, as Go's decoder reports them.

use std::fmt;
use std::path::Path;

use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM, AES_256_GCM};
use ring::rand::{SecureRandom, SystemRandom};

/// The encryption version byte: 1 = AES-GCM without padding (memberlist protocol ≥ 2).
pub(crate) const VERSION: u8 = 1;
pub(crate) const NONCE_LEN: usize = 12;
pub(crate) const TAG_LEN: usize = 16;
/// Bytes an encrypted message adds to its plaintext: version, nonce, tag.
pub(crate) const OVERHEAD: usize = 1 + NONCE_LEN + TAG_LEN;

/// Why a key or a keyring operation was refused. The texts are memberlist's and Go's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not standard padded base64. Consul wraps it as `encrypt has invalid key: <this>`.
    #[error("illegal base64 data at input byte {0}")]
    Base64(usize),
    #[error("illegal base64 data: bad padding")]
    Padding,
    /// Consul wraps it as `Failed to configure keyring: Invalid key: <this>`.
    #[error("key size must be 16, 24 or 32 bytes")]
    Size,
    #[error("Requested key is not in the keyring")]
    NotInKeyring,
    #[error("Removing the primary key is not allowed")]
    RemovePrimary,
    #[error("keyring contains no keys")]
    Empty,
}

/// Why a message could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum OpenError {
    #[error("message too short to be encrypted")]
    Short,
    #[error("unsupported encryption version {0}")]
    Version(u8),
    #[error("no installed key could decrypt the message")]
    NoKey,
}

/// A fresh key as `tribune keygen` prints it: 32 random bytes, standard base64 (44 chars).
pub fn keygen() -> String {
    let mut key = [0u8; 32];
    fill_random(&mut key);
    base64::engine::general_purpose::STANDARD.encode(key)
}

/// Fills `buf` from the system CSPRNG.
pub(crate) fn fill_random(buf: &mut [u8]) {
    // The system RNG fails only if the OS has no entropy source at all, in which case no
    // key or nonce could be made safely anyway.
    SystemRandom::new()
        .fill(buf)
        .expect("the system random number generator is available");
}

/// Decodes a key string: standard padded base64 of 16, 24 or 32 bytes.
fn decode(encoded: &str) -> Result<Vec<u8>, KeyError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|e| match e {
            base64::DecodeError::InvalidByte(offset, _)
            | base64::DecodeError::InvalidLastSymbol(offset, _) => KeyError::Base64(offset),
            base64::DecodeError::InvalidLength(len) => KeyError::Base64(len),
            base64::DecodeError::InvalidPadding => KeyError::Padding,
        })?;
    match bytes.len() {
        16 | 24 | 32 => Ok(bytes),
        _ => Err(KeyError::Size),
    }
}

/// Checks a key string without keeping it.
pub fn validate_key(encoded: &str) -> Result<(), KeyError> {
    decode(encoded).map(|_| ())
}

/// One installed key: its canonical text and the AEAD key made from it.
#[derive(Clone)]
struct Key {
    encoded: String,
    aead: LessSafeKey,
}

impl Key {
    fn parse(encoded: &str) -> Result<Key, KeyError> {
        let bytes = decode(encoded)?;
        let unbound = match bytes.len() {
            16 => UnboundKey::new(&AES_128_GCM, &bytes),
            32 => UnboundKey::new(&AES_256_GCM, &bytes),
            // ring has no AES-192: a 24-byte key is stretched with HKDF-SHA256 into an
            // AES-256 key. Accepting the same `encrypt` strings is what compat §12.4 asks;
            // the bytes on the wire are ours (no memberlist wire compatibility, §19.1).
            _ => UnboundKey::new(&AES_256_GCM, &stretch_192(&bytes)),
        };
        // The lengths above are exactly the algorithms' key lengths.
        let unbound = unbound.map_err(|_| KeyError::Size)?;
        Ok(Key {
            encoded: encoded.to_string(),
            aead: LessSafeKey::new(unbound),
        })
    }
}

fn stretch_192(key: &[u8]) -> [u8; 32] {
    struct Len32;
    impl ring::hkdf::KeyType for Len32 {
        fn len(&self) -> usize {
            32
        }
    }
    let salt = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, b"tribune gossip aes-192 key");
    let prk = salt.extract(key);
    let mut out = [0u8; 32];
    // 32 bytes is far below HKDF-SHA256's limit of 255 * 32, so expand and fill succeed.
    prk.expand(&[b"aes-256-gcm"], Len32)
        .and_then(|okm| okm.fill(&mut out))
        .expect("HKDF output of 32 bytes");
    out
}

/// The gossip keyring: the first key is the primary (encrypts), every key may decrypt.
#[derive(Clone)]
pub struct Keyring {
    keys: Vec<Key>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keyring({} keys)", self.keys.len())
    }
}

impl Keyring {
    /// A keyring holding one key, as `encrypt` gives it.
    pub fn new(primary: &str) -> Result<Keyring, KeyError> {
        Ok(Keyring {
            keys: vec![Key::parse(primary.trim())?],
        })
    }

    /// A keyring from keys listed primary first (duplicates dropped).
    pub fn from_keys<S: AsRef<str>>(keys: &[S]) -> Result<Keyring, KeyError> {
        let mut ring = Keyring { keys: Vec::new() };
        for k in keys {
            let k = Key::parse(k.as_ref().trim())?;
            if !ring.keys.iter().any(|have| have.encoded == k.encoded) {
                ring.keys.push(k);
            }
        }
        if ring.keys.is_empty() {
            return Err(KeyError::Empty);
        }
        Ok(ring)
    }

    /// The primary key, base64. A secret: never log it.
    pub fn primary(&self) -> &str {
        // A keyring is never empty: every constructor and `remove` keep one key.
        &self.keys[0].encoded
    }

    /// Every installed key, base64, primary first. Secrets: never log them.
    pub fn keys(&self) -> Vec<String> {
        self.keys.iter().map(|k| k.encoded.clone()).collect()
    }

    /// Adds a key (no-op when present). It decrypts at once; it encrypts after `use_key`.
    pub fn install(&mut self, encoded: &str) -> Result<(), KeyError> {
        let key = Key::parse(encoded.trim())?;
        if !self.keys.iter().any(|k| k.encoded == key.encoded) {
            self.keys.push(key);
        }
        Ok(())
    }

    /// Makes an installed key the primary.
    pub fn use_key(&mut self, encoded: &str) -> Result<(), KeyError> {
        let encoded = canonical(encoded)?;
        let pos = self
            .keys
            .iter()
            .position(|k| k.encoded == encoded)
            .ok_or(KeyError::NotInKeyring)?;
        let key = self.keys.remove(pos);
        self.keys.insert(0, key);
        Ok(())
    }

    /// Removes a key that is not the primary (no-op when absent, as memberlist).
    pub fn remove(&mut self, encoded: &str) -> Result<(), KeyError> {
        let encoded = canonical(encoded)?;
        if self.keys[0].encoded == encoded {
            return Err(KeyError::RemovePrimary);
        }
        self.keys.retain(|k| k.encoded != encoded);
        Ok(())
    }

    /// `[version][nonce][ciphertext][tag]` of `plain`, sealed with the primary key.
    pub(crate) fn seal(&self, plain: &[u8], aad: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce);
        self.seal_with_nonce(nonce, plain, aad)
    }

    pub(crate) fn seal_with_nonce(
        &self,
        nonce: [u8; NONCE_LEN],
        plain: &[u8],
        aad: &[u8],
    ) -> Vec<u8> {
        let mut body = plain.to_vec();
        // Sealing fails only beyond GCM's 64 GiB limit; gossip messages are ≤ 20 MiB.
        let tag = self.keys[0]
            .aead
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut body,
            )
            .expect("gossip message within AES-GCM limits");
        let mut out = Vec::with_capacity(plain.len() + OVERHEAD);
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&body);
        out.extend_from_slice(tag.as_ref());
        out
    }

    /// Opens a sealed message with whichever installed key made it.
    pub(crate) fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, OpenError> {
        if sealed.len() < OVERHEAD {
            return Err(OpenError::Short);
        }
        if sealed[0] != VERSION {
            return Err(OpenError::Version(sealed[0]));
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&sealed[1..1 + NONCE_LEN]);
        let body = &sealed[1 + NONCE_LEN..];
        for key in &self.keys {
            let mut buf = body.to_vec();
            if let Ok(plain) = key.aead.open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut buf,
            ) {
                let n = plain.len();
                buf.truncate(n);
                return Ok(buf);
            }
        }
        Err(OpenError::NoKey)
    }
}

/// Validates `encoded` and returns it trimmed, the form keys are stored in.
fn canonical(encoded: &str) -> Result<String, KeyError> {
    let t = encoded.trim();
    decode(t)?;
    Ok(t.to_string())
}

/// Reads a keyring file: a JSON array of base64 keys, primary first. `Ok(None)` when the
/// file does not exist. Errors name the file and the index of a bad key, never the key.
pub(crate) fn load_file(path: &Path) -> Result<Option<Keyring>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read keyring file {}: {e}", path.display())),
    };
    let keys: Vec<String> = serde_json::from_str(&text).map_err(|e| {
        format!(
            "keyring file {} is not a JSON array of keys (line {}, column {})",
            path.display(),
            e.line(),
            e.column()
        )
    })?;
    if keys.is_empty() {
        return Err(format!("keyring file {} contains no keys", path.display()));
    }
    for (i, k) in keys.iter().enumerate() {
        validate_key(k.trim())
            .map_err(|e| format!("keyring file {} key {i}: {e}", path.display()))?;
    }
    Keyring::from_keys(&keys)
        .map(Some)
        .map_err(|e| format!("keyring file {}: {e}", path.display()))
}

/// Writes the keyring file atomically (temp file, fsync, rename), readable by owner only.
pub(crate) fn save_file(path: &Path, ring: &Keyring) -> std::io::Result<()> {
    use std::io::Write as _;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("keyring.tmp");
    let body = serde_json::to_vec(&ring.keys()).map_err(std::io::Error::other)?;
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp)?;
        f.write_all(&body)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const K16: &str = "AAECAwQFBgcICQoLDA0ODw==";
    const K32: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    #[test]
    fn parses_consul_keys_and_reports_errors_without_the_key() {
        assert!(Keyring::new(K16).is_ok());
        assert!(Keyring::new(K32).is_ok());
        assert!(Keyring::new("AAECAwQFBgcICQoLDA0ODxAREhMUFRYX").is_ok()); // 24 bytes
        let e = Keyring::new("!!S3CRET!!").unwrap_err();
        assert_eq!(e.to_string(), "illegal base64 data at input byte 0");
        let e = Keyring::new("c2hvcnRrZXk=").unwrap_err();
        assert_eq!(e.to_string(), "key size must be 16, 24 or 32 bytes");
        assert!(!format!("{:?}", Keyring::new(K32).unwrap()).contains(K32));
        assert_eq!(keygen().len(), 44);
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(keygen())
                .unwrap()
                .len(),
            32
        );
    }

    /// The framing of compat §12.2 with a fixed key and nonce: version byte, the nonce in
    /// clear, ciphertext as long as the plaintext, a 16-byte tag; AAD bound in.
    #[test]
    fn seal_layout_with_fixed_key_and_nonce() {
        let ring = Keyring::new(K32).unwrap();
        let nonce = [7u8; NONCE_LEN];
        let sealed = ring.seal_with_nonce(nonce, b"hello gossip", b"hdr");
        assert_eq!(sealed.len(), 1 + 12 + 12 + 16);
        assert_eq!(sealed[0], 1);
        assert_eq!(&sealed[1..13], &nonce);
        assert_ne!(&sealed[13..25], b"hello gossip");
        // Deterministic for a fixed key and nonce (AES-256-GCM known answer, self-consistent).
        assert_eq!(sealed, ring.seal_with_nonce(nonce, b"hello gossip", b"hdr"));
        assert_eq!(ring.open(&sealed, b"hdr").unwrap(), b"hello gossip");
        assert_eq!(ring.open(&sealed, b"other"), Err(OpenError::NoKey));
        let mut bad = sealed.clone();
        bad[20] ^= 1;
        assert_eq!(ring.open(&bad, b"hdr"), Err(OpenError::NoKey));
        bad[0] = 0;
        assert_eq!(ring.open(&bad, b"hdr"), Err(OpenError::Version(0)));
        assert_eq!(ring.open(&sealed[..20], b"hdr"), Err(OpenError::Short));
    }

    #[test]
    fn ring_semantics_install_use_remove() {
        let mut ring = Keyring::new(K16).unwrap();
        let old = ring.seal(b"x", b"");
        ring.install(K32).unwrap();
        assert_eq!(ring.keys(), vec![K16.to_string(), K32.to_string()]);
        assert_eq!(ring.remove(K16), Err(KeyError::RemovePrimary));
        ring.use_key(K32).unwrap();
        assert_eq!(ring.primary(), K32);
        // Decryption tries every key: a message under the old primary still opens.
        assert_eq!(ring.open(&old, b"").unwrap(), b"x");
        ring.remove(K16).unwrap();
        assert_eq!(ring.open(&old, b""), Err(OpenError::NoKey));
        assert_eq!(
            ring.use_key("AAECAwQFBgcICQoLDA0ODw=="),
            Err(KeyError::NotInKeyring)
        );
    }

    #[test]
    fn keyring_file_round_trip_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("serf/local.keyring");
        assert!(load_file(&path).unwrap().is_none());
        let mut ring = Keyring::new(K16).unwrap();
        ring.install(K32).unwrap();
        save_file(&path, &ring).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, format!("[\"{K16}\",\"{K32}\"]"));
        assert_eq!(load_file(&path).unwrap().unwrap().keys(), ring.keys());
        std::fs::write(&path, "[\"c2VjcmV0LWtleQ==\"]").unwrap();
        let e = load_file(&path).unwrap_err();
        assert!(
            e.ends_with("key 0: key size must be 16, 24 or 32 bytes"),
            "{e}"
        );
        assert!(!e.contains("c2VjcmV0LWtleQ"));
    }
}
