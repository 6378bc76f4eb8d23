//! API keys: 256 random bits, shown once, stored only as a SHA-256 hash. A key is high-entropy, so a fast hash is
//! enough: there is nothing to brute-force that a slow hash would protect.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Every key starts with this, so secret scanners and humans can recognise one.
pub const KEY_PREFIX: &str = "hpd_";

/// A secret API key. Its `Debug` does not print the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl ApiKey {
    pub fn generate() -> Self {
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        ApiKey(format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(secret)))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// The stored form of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyHash(pub [u8; 32]);

impl KeyHash {
    pub fn of(api_key: &str) -> Self {
        KeyHash(Sha256::digest(api_key.as_bytes()).into())
    }
}

/// A short public name for a key, for listing and revoking without handling the secret.
pub fn new_key_id() -> String {
    let mut id = [0u8; 8];
    rand::rng().fill_bytes(&mut id);
    format!("key_{}", hex::encode(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_prefixed_and_hash_stably() {
        let a = ApiKey::generate();
        let b = ApiKey::generate();
        assert_ne!(a, b);
        assert!(a.expose().starts_with(KEY_PREFIX));
        assert_eq!(a.expose().len(), KEY_PREFIX.len() + 43);
        assert_eq!(KeyHash::of(a.expose()), KeyHash::of(a.expose()));
        assert_ne!(KeyHash::of(a.expose()), KeyHash::of(b.expose()));
        assert!(!format!("{a:?}").contains(a.expose()));
    }
}
