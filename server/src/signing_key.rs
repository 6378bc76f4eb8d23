//! The artifact signing key on disk: 32 secret bytes in a file only its owner can read (mode 0600), created on first
//! start in the data dir unless the operator supplies one. A key file that others could read is refused, as ssh
//! refuses a private key with loose permissions: whoever reads it can sign code the workers will run.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use hapnd_policy::signing::{ArtifactSigner, SECRET_KEY_BYTES, SigningError};

/// `DATA_DIR/keys/artifact-signing.key`.
pub fn default_path(data_dir: &Path) -> PathBuf {
    data_dir.join("keys").join("artifact-signing.key")
}

#[derive(Debug, thiserror::Error)]
pub enum SigningKeyError {
    #[error("{action} the signing key {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the signing key {path} is readable by others (mode {mode:o}); run `chmod 600 {path}`")]
    LoosePermissions { path: PathBuf, mode: u32 },
    #[error("the signing key {path} is not {SECRET_KEY_BYTES} bytes of a P-256 secret: {source}")]
    Invalid { path: PathBuf, source: SigningError },
    #[error(
        "the signing key {0} does not exist (an operator-supplied key must exist; omit the option to have one created)"
    )]
    Missing(PathBuf),
}

/// Loads the key at `path`, creating it first when `create` and it does not exist yet.
pub fn load_or_create(path: &Path, create: bool) -> Result<ArtifactSigner, SigningKeyError> {
    let io = |action, source| SigningKeyError::Io {
        action,
        path: path.to_owned(),
        source,
    };
    if !path.exists() {
        if !create {
            return Err(SigningKeyError::Missing(path.to_owned()));
        }
        let signer = new_signer();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io("create the folder of", e))?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| io("restrict the folder of", e))?;
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| io("create", e))?;
        file.write_all(&signer.secret_bytes()).map_err(|e| io("write", e))?;
        file.sync_all().map_err(|e| io("sync", e))?;
        return Ok(signer);
    }
    let mode = std::fs::metadata(path)
        .map_err(|e| io("inspect", e))?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        return Err(SigningKeyError::LoosePermissions {
            path: path.to_owned(),
            mode,
        });
    }
    let secret = std::fs::read(path).map_err(|e| io("read", e))?;
    ArtifactSigner::from_secret_bytes(&secret).map_err(|source| SigningKeyError::Invalid {
        path: path.to_owned(),
        source,
    })
}

fn new_signer() -> ArtifactSigner {
    loop {
        let secret: [u8; SECRET_KEY_BYTES] = rand::random();
        // A random 32-byte string is a valid scalar but for a chance of about 2^-128.
        if let Ok(signer) = ArtifactSigner::from_secret_bytes(&secret) {
            return signer;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_created_once_with_mode_0600_and_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = default_path(dir.path());
        let created = load_or_create(&path, true).expect("create");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let loaded = load_or_create(&path, true).expect("load");
        assert_eq!(loaded.public_key(), created.public_key(), "the same key, not a new one");
    }

    #[test]
    fn a_loose_missing_or_broken_key_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("operator.key");
        assert!(matches!(load_or_create(&path, false), Err(SigningKeyError::Missing(_))));

        std::fs::write(&path, [7_u8; 32]).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(matches!(
            load_or_create(&path, false),
            Err(SigningKeyError::LoosePermissions { mode: 0o644, .. })
        ));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert!(load_or_create(&path, false).is_ok());

        std::fs::write(&path, [0_u8; 5]).expect("write");
        assert!(matches!(
            load_or_create(&path, false),
            Err(SigningKeyError::Invalid { .. })
        ));
    }
}
