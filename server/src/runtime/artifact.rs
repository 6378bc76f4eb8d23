//! A compiled upload, signed by the server: the DLL, its content address, what the compiler found in it, and the
//! hash of the allowlist it was checked against.

use hapnd_policy::signing::{ArtifactPublicKey, ArtifactSigner, SIGNATURE_BYTES, SigningError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArtifactKind {
    Reducer,
    Projection,
}

impl ArtifactKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ArtifactKind::Reducer => "reducer",
            ArtifactKind::Projection => "projection",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "reducer" => Some(ArtifactKind::Reducer),
            "projection" => Some(ArtifactKind::Projection),
            _ => None,
        }
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct Artifact {
    /// SHA-256 of the DLL, lowercase hex.
    pub address: String,
    pub dll: Vec<u8>,
    pub signature: [u8; SIGNATURE_BYTES],
    pub kind: ArtifactKind,
    /// The class's full metadata name, which the worker creates.
    pub class_name: String,
    /// `[ProjectionName]`, else the class's full name.
    pub identity: String,
    pub state_type: String,
    /// SHA-256 of the allowlist the DLL passed.
    pub policy_hash: String,
}

impl std::fmt::Debug for Artifact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Artifact")
            .field("address", &self.address)
            .field("dll_bytes", &self.dll.len())
            .field("kind", &self.kind)
            .field("class_name", &self.class_name)
            .field("identity", &self.identity)
            .field("state_type", &self.state_type)
            .field("policy_hash", &self.policy_hash)
            .finish()
    }
}

/// What the compiler produced, before it is signed.
#[derive(Debug, Clone)]
pub struct Unsigned {
    pub dll: Vec<u8>,
    pub kind: ArtifactKind,
    pub class_name: String,
    pub identity: String,
    pub state_type: String,
    pub policy_hash: String,
}

impl Artifact {
    pub fn sign(unsigned: Unsigned, signer: &ArtifactSigner) -> Artifact {
        Artifact {
            address: content_address(&unsigned.dll),
            signature: signer.sign(&unsigned.dll),
            dll: unsigned.dll,
            kind: unsigned.kind,
            class_name: unsigned.class_name,
            identity: unsigned.identity,
            state_type: unsigned.state_type,
            policy_hash: unsigned.policy_hash,
        }
    }

    /// Checks that the DLL is the one signed and that the address is its hash: before any worker gets its bytes.
    pub fn verify(&self, key: &ArtifactPublicKey) -> Result<(), SigningError> {
        if content_address(&self.dll) != self.address {
            return Err(SigningError::BadSignature);
        }
        key.verify(&self.dll, &self.signature)
    }
}

/// The SHA-256 of `dll`, lowercase hex.
pub fn content_address(dll: &[u8]) -> String {
    hapnd_policy::signing::artifact_id(dll)
}
