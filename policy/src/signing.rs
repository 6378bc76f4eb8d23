//! Artifact signatures: every compiled DLL is signed by the supervisor's key, and the worker and the supervisor both
//! verify before a DLL is loaded or sent. ECDSA P-256 over the SHA-256 of the DLL, deterministic (RFC 6979), in IEEE
//! P1363 form (`r ‖ s`, 64 bytes), which .NET's `ECDsa.VerifyData` reads directly. Public keys travel as SEC1
//! uncompressed points (`0x04 ‖ X ‖ Y`, 65 bytes). Artifacts are content-addressed by the SHA-256 of the DLL.
//!
//! No I/O and no randomness here: a new key's 32 secret bytes come from the caller.

use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

pub const SIGNATURE_BYTES: usize = 64;
pub const PUBLIC_KEY_BYTES: usize = 65;
pub const SECRET_KEY_BYTES: usize = 32;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SigningError {
    #[error("the secret key is not a valid P-256 scalar")]
    InvalidSecretKey,
    #[error("the public key is not a valid uncompressed P-256 point")]
    InvalidPublicKey,
    #[error("the signature is not 64 bytes of r and s")]
    MalformedSignature,
    #[error("the signature does not match the artifact")]
    BadSignature,
}

/// The supervisor's signing key.
pub struct ArtifactSigner {
    key: SigningKey,
}

impl std::fmt::Debug for ArtifactSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        f.debug_struct("ArtifactSigner")
            .field("public_key", &hex(&self.public_key().to_bytes()))
            .finish()
    }
}

impl ArtifactSigner {
    /// A signer from 32 secret bytes: random ones for a new key (retry on the negligible chance they are not a valid
    /// scalar), or the bytes of a stored key.
    pub fn from_secret_bytes(secret: &[u8]) -> Result<Self, SigningError> {
        SigningKey::from_slice(secret)
            .map(|key| ArtifactSigner { key })
            .map_err(|_| SigningError::InvalidSecretKey)
    }

    /// The secret, to be stored (mode 0600) by the caller.
    pub fn secret_bytes(&self) -> [u8; SECRET_KEY_BYTES] {
        self.key.to_bytes().into()
    }

    pub fn public_key(&self) -> ArtifactPublicKey {
        ArtifactPublicKey {
            key: *self.key.verifying_key(),
        }
    }

    pub fn sign(&self, dll: &[u8]) -> [u8; SIGNATURE_BYTES] {
        let signature: Signature = self.key.sign(dll);
        signature.to_bytes().into()
    }
}

/// What verifies artifacts: handed to workers at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArtifactPublicKey {
    key: VerifyingKey,
}

impl ArtifactPublicKey {
    pub fn from_bytes(point: &[u8]) -> Result<Self, SigningError> {
        if point.len() != PUBLIC_KEY_BYTES || point[0] != 0x04 {
            return Err(SigningError::InvalidPublicKey);
        }
        VerifyingKey::from_sec1_bytes(point)
            .map(|key| ArtifactPublicKey { key })
            .map_err(|_| SigningError::InvalidPublicKey)
    }

    /// The uncompressed SEC1 point.
    pub fn to_bytes(&self) -> [u8; PUBLIC_KEY_BYTES] {
        let mut point = [0_u8; PUBLIC_KEY_BYTES];
        point.copy_from_slice(self.key.to_sec1_point(false).as_bytes());
        point
    }

    pub fn verify(&self, dll: &[u8], signature: &[u8]) -> Result<(), SigningError> {
        let signature = Signature::from_slice(signature).map_err(|_| SigningError::MalformedSignature)?;
        self.key.verify(dll, &signature).map_err(|_| SigningError::BadSignature)
    }
}

/// The content address of an artifact: the SHA-256 of its DLL, in lowercase hex.
pub fn artifact_id(dll: &[u8]) -> String {
    hex(&Sha256::digest(dll))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(seed: u8) -> ArtifactSigner {
        ArtifactSigner::from_secret_bytes(&[seed; 32]).expect("a valid scalar")
    }

    #[test]
    fn a_signature_verifies_only_for_the_same_bytes_and_key() {
        let signer = signer(7);
        let dll = b"MZ\x90\x00 a dll".to_vec();
        let signature = signer.sign(&dll);
        let public = signer.public_key();
        assert_eq!(public.verify(&dll, &signature), Ok(()));

        let mut tampered = dll.clone();
        tampered[3] ^= 1;
        assert_eq!(public.verify(&tampered, &signature), Err(SigningError::BadSignature));
        assert_eq!(
            super::tests::signer(8).public_key().verify(&dll, &signature),
            Err(SigningError::BadSignature)
        );
        assert_eq!(
            public.verify(&dll, &signature[..63]),
            Err(SigningError::MalformedSignature)
        );
        assert_eq!(signer.sign(&dll), signature, "deterministic (RFC 6979)");
    }

    #[test]
    fn keys_round_trip_through_their_byte_forms() {
        let signer = signer(9);
        let again = ArtifactSigner::from_secret_bytes(&signer.secret_bytes()).expect("valid");
        assert_eq!(again.public_key(), signer.public_key());
        let point = signer.public_key().to_bytes();
        assert_eq!(point[0], 0x04);
        assert_eq!(ArtifactPublicKey::from_bytes(&point), Ok(signer.public_key()));
        assert_eq!(
            ArtifactPublicKey::from_bytes(&point[..33]),
            Err(SigningError::InvalidPublicKey)
        );
        assert_eq!(
            ArtifactSigner::from_secret_bytes(&[0; 32]).err(),
            Some(SigningError::InvalidSecretKey)
        );
        assert!(
            !format!("{signer:?}").contains(&hex(&signer.secret_bytes())),
            "Debug hides the secret"
        );
    }

    #[test]
    fn artifacts_are_addressed_by_their_sha256() {
        assert_eq!(
            artifact_id(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
