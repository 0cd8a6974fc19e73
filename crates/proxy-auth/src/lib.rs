//! `proxy-auth`: API key material. Keys are `sk-` followed by 32 random bytes from the operating
//! system's CSPRNG in base62 (43 characters); the store keeps only their SHA-256 (hex), a `key_id`
//! and a short displayable prefix. Comparisons do not stop at the first differing byte.
//!
//! Not yet here: the hot-path key cache (positive and bounded negative) and the token-bucket rate
//! limits, which arrive with the server's key checks.

use sha2::{Digest, Sha256};

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A freshly generated key: shown once, then only its hash is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewKey {
    /// The key itself (`sk-` + 43 base62 characters).
    pub key: String,
    /// Its id (`key_` + 16 hex characters).
    pub key_id: String,
    /// SHA-256 of the key, lowercase hex.
    pub key_hash: String,
    /// What may be displayed: `sk-` and the next 6 characters.
    pub prefix: String,
}

/// Why no key could be generated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RandomnessUnavailable(pub String);

impl std::fmt::Display for RandomnessUnavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the operating system's random source failed: {}", self.0)
    }
}

impl std::error::Error for RandomnessUnavailable {}

/// Base62 of a big-endian number given as bytes (leading zero bytes keep their weight).
fn base62(bytes: &[u8], width: usize) -> String {
    let mut digits = bytes.to_vec();
    let mut out = Vec::with_capacity(width);
    while out.len() < width {
        let mut rem = 0u32;
        for d in digits.iter_mut() {
            let acc = (rem << 8) | u32::from(*d);
            *d = (acc / 62) as u8;
            rem = acc % 62;
        }
        out.push(BASE62[rem as usize]);
    }
    out.reverse();
    String::from_utf8(out).expect("base62 is ASCII")
}

/// Generates a new key from the OS CSPRNG.
pub fn generate_key() -> Result<NewKey, RandomnessUnavailable> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| RandomnessUnavailable(e.to_string()))?;
    let mut id = [0u8; 8];
    getrandom::fill(&mut id).map_err(|e| RandomnessUnavailable(e.to_string()))?;
    // 62^43 > 2^256, so 43 digits hold every 32-byte value.
    let key = format!("sk-{}", base62(&secret, 43));
    Ok(NewKey {
        key_hash: hash_key(&key),
        prefix: key.chars().take(9).collect(),
        key_id: format!(
            "key_{}",
            id.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ),
        key,
    })
}

/// SHA-256 of a presented key, lowercase hex (what the store is searched by).
pub fn hash_key(key: &str) -> String {
    // Runs on every request: hex by table, not by `format!` per byte.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(key.as_bytes());
    let mut out = String::with_capacity(digest.len() * 2);
    for b in digest.iter() {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 0xf)] as char);
    }
    out
}

/// Equality that takes the same time wherever the inputs differ (lengths are not secret).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A key as logs may show it: its first 6 and last 4 characters.
pub fn mask(key: &str) -> String {
    let n = key.chars().count();
    if n <= 10 {
        return "***".into();
    }
    let head: String = key.chars().take(6).collect();
    let tail: String = key.chars().skip(n - 4).collect();
    format!("{head}...{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_the_documented_shape_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let k = generate_key().unwrap();
            assert!(k.key.starts_with("sk-") && k.key.len() == 46, "{}", k.key);
            assert!(k.key[3..].bytes().all(|b| BASE62.contains(&b)));
            assert_eq!(k.key_hash, hash_key(&k.key));
            assert_eq!(k.key_hash.len(), 64);
            assert!(k.key.starts_with(&k.prefix) && k.prefix.len() == 9);
            assert!(k.key_id.starts_with("key_") && k.key_id.len() == 20);
            assert!(seen.insert(k.key));
        }
    }

    #[test]
    fn hashing_and_comparison() {
        assert_eq!(
            hash_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(constant_time_eq(b"same", b"same"));
        assert!(!constant_time_eq(b"same", b"sane"));
        assert!(!constant_time_eq(b"same", b"same!"));
        assert_eq!(mask("sk-abcdefghijklmnop"), "sk-abc...mnop");
        assert_eq!(mask("short"), "***");
    }

    #[test]
    fn base62_keeps_width_and_value() {
        assert_eq!(base62(&[0, 0], 3), "000");
        assert_eq!(base62(&[0, 62], 2), "10");
        assert_eq!(base62(&[255; 32], 43).len(), 43);
    }
}
