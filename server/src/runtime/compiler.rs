//! Uploads to signed artifacts: the jailed C# compiler (kept warm in a pool), the allowlist from the policy crate,
//! and the server's signing key. The compiler's answer is checked (its allowlist hash must be the one sent) before
//! the DLL is signed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use hapnd_executor::worker::protocol::UserError;
use hapnd_executor::{Pool, PoolConfig, PoolError, Sandbox, WorkerConfig};
use hapnd_policy::signing::ArtifactSigner;

use super::artifact::{Artifact, ArtifactKind, Unsigned};
use super::dotnet::DotnetHost;
use super::protocol::{CompileRequest, CompileResponse, Diagnostic};

/// A compile that succeeded.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub artifact: Artifact,
    /// Warnings.
    pub diagnostics: Vec<Diagnostic>,
    pub timings_ms: BTreeMap<String, f64>,
}

/// The upload was refused: compile errors, or a gate said no. Every diagnostic names its reason.
#[derive(Debug, Clone)]
pub struct CompileRejection {
    pub diagnostics: Vec<Diagnostic>,
}

/// The compile could not be done: a fault of the compiler or the host, not of the upload.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error("the compiler failed: {0}")]
    Worker(#[from] PoolError),
    #[error("the compiler refused the request: {}: {}", .0.kind, .0.message)]
    Refused(UserError),
    #[error("the compiler's answer cannot be read: {0}")]
    Malformed(String),
    #[error("the compiler checked against allowlist {got}, not the server's {expected}")]
    PolicyMismatch { expected: String, got: String },
}

/// The one compiler key: every compile may use any compiler process (they keep no state between compiles).
type CompilerKey = ();

pub struct Compiler {
    pool: Pool<CompilerKey>,
    signer: Arc<ArtifactSigner>,
}

impl Compiler {
    /// Compilers of `host` in `sandbox`, `ready` of them kept warm.
    pub fn new(sandbox: Arc<Sandbox>, host: &DotnetHost, signer: Arc<ArtifactSigner>, ready: usize) -> Self {
        let spec = host.compiler_spec();
        let config = PoolConfig {
            ready_per_key: ready,
            max_per_key: ready.max(1) * 2,
            max_total: ready.max(1) * 2,
            idle_timeout: Duration::from_secs(3600),
            acquire_timeout: Duration::from_secs(60),
            worker: WorkerConfig {
                // The first compile (Roslyn's JIT) happens before the hello.
                handshake_timeout: Duration::from_secs(60),
                ..WorkerConfig::default()
            },
        };
        Compiler {
            pool: Pool::new(sandbox, config, move |_: &CompilerKey| spec.clone()),
            signer,
        }
    }

    /// Starts the warm compilers and waits until they are ready.
    pub async fn prewarm(&self) {
        self.pool.prewarm(&()).await;
    }

    /// Compiles an upload (file name → source) and signs the DLL.
    pub async fn compile(
        &self,
        files: &BTreeMap<String, String>,
    ) -> Result<Result<Compiled, CompileRejection>, CompileError> {
        let allowlist = hapnd_policy::csharp::ALLOWLIST;
        let answer = self
            .pool
            .call(&(), &CompileRequest { files, allowlist })
            .await?
            .map_err(CompileError::Refused)?;
        let response: CompileResponse =
            serde_json::from_str(answer.get()).map_err(|e| CompileError::Malformed(e.to_string()))?;
        let expected = hapnd_policy::csharp::allowlist_hash();
        if response.policy_hash != expected {
            return Err(CompileError::PolicyMismatch {
                expected,
                got: response.policy_hash,
            });
        }
        if !response.compiled {
            return Ok(Err(CompileRejection {
                diagnostics: response.diagnostics,
            }));
        }
        let missing = |field: &str| CompileError::Malformed(format!("a compiled answer without `{field}`"));
        let dll = base64::engine::general_purpose::STANDARD
            .decode(response.dll.as_deref().ok_or_else(|| missing("dll"))?)
            .map_err(|e| CompileError::Malformed(format!("the DLL is not base64: {e}")))?;
        let kind = response
            .kind
            .as_deref()
            .and_then(ArtifactKind::parse)
            .ok_or_else(|| missing("kind"))?;
        let unsigned = Unsigned {
            dll,
            kind,
            class_name: response.class_name.ok_or_else(|| missing("className"))?,
            identity: response.identity.ok_or_else(|| missing("identity"))?,
            state_type: response.state_type.ok_or_else(|| missing("stateType"))?,
            policy_hash: response.policy_hash,
        };
        Ok(Ok(Compiled {
            artifact: Artifact::sign(unsigned, &self.signer),
            diagnostics: response.diagnostics,
            timings_ms: response.timings_ms,
        }))
    }
}
