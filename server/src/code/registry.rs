//! The code registry in `code.db` beside the shards: uploads (their sources, until compiled, and their outcome),
//! signed artifacts, reducers and which aggregate type each is bound to. Written rarely (an upload, a bind), read
//! mostly at start-up: the server keeps bindings and registered artifacts in memory.

use std::collections::BTreeMap;
use std::path::Path;

use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::catalog::TenantId;
use crate::db::{self, Access, Durability, MigrationError};
use crate::runtime::protocol::Diagnostic;
use crate::runtime::{Artifact, ArtifactKind};
use crate::time_util::{from_unix_micros, unix_micros};

pub const FILE_NAME: &str = "code.db";

const MIGRATIONS: &[&str] = &[r#"
-- One row per upload. `files` (JSON: name -> source) is kept until the compile ends, so an upload that was compiling
-- when the server stopped is compiled again at the next start.
CREATE TABLE uploads (
    upload_id      TEXT PRIMARY KEY,
    tenant_id      INTEGER NOT NULL,
    kind           TEXT NOT NULL,
    status         TEXT NOT NULL,
    files          TEXT,
    aggregate_type TEXT,
    message        TEXT,
    diagnostics    TEXT,
    code_id        TEXT,
    created_at     INTEGER NOT NULL,
    finished_at    INTEGER
);
CREATE INDEX uploads_compiling ON uploads (status) WHERE status = 'compiling';
-- Signed DLLs, per tenant: the same bytes uploaded by two tenants are two rows, so nothing is shared.
CREATE TABLE artifacts (
    tenant_id   INTEGER NOT NULL,
    address     TEXT NOT NULL,
    kind        TEXT NOT NULL,
    class_name  TEXT NOT NULL,
    identity    TEXT NOT NULL,
    state_type  TEXT NOT NULL,
    policy_hash TEXT NOT NULL,
    signature   BLOB NOT NULL,
    dll         BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, address)
) WITHOUT ROWID;
CREATE TABLE reducers (
    tenant_id  INTEGER NOT NULL,
    reducer_id TEXT NOT NULL,
    address    TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, reducer_id)
) WITHOUT ROWID;
CREATE TABLE reducer_bindings (
    tenant_id      INTEGER NOT NULL,
    aggregate_type TEXT NOT NULL,
    reducer_id     TEXT NOT NULL,
    bound_at       INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, aggregate_type)
) WITHOUT ROWID;
"#];

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("code registry: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error(transparent)]
    Migration(#[from] MigrationError),
    #[error("code registry holds invalid data: {0}")]
    Corrupt(String),
}

/// Where an upload stands.
#[derive(Debug, Clone, PartialEq)]
pub enum UploadStatus {
    Compiling,
    Failed {
        message: String,
        diagnostics: Vec<Diagnostic>,
    },
    /// Compiled; `code_id` is the reducer's (or projection's) id.
    Ready {
        code_id: String,
    },
}

#[derive(Debug, Clone)]
pub struct Upload {
    pub upload_id: Uuid,
    pub tenant: TenantId,
    pub kind: ArtifactKind,
    pub aggregate_type: Option<String>,
    pub status: UploadStatus,
    pub created_at: OffsetDateTime,
}

/// An upload still to compile (at start-up: one the previous run did not finish).
#[derive(Debug, Clone)]
pub struct PendingUpload {
    pub upload: Upload,
    pub files: BTreeMap<String, String>,
}

/// A reducer as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReducerInfo {
    pub reducer_id: String,
    pub address: String,
    pub class_name: String,
    pub state_type: String,
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub tenant: TenantId,
    pub aggregate_type: String,
    pub reducer_id: String,
    pub bound_at: OffsetDateTime,
}

pub struct Registry {
    conn: Mutex<Connection>,
}

/// A projection's id: stable for the same identity (`[ProjectionName]` or the class's full name) in one tenant.
pub fn projection_id(tenant: TenantId, identity: &str) -> String {
    let digest = Sha256::new()
        .chain_update(tenant.0.to_be_bytes())
        .chain_update(b"projection\0")
        .chain_update(identity.as_bytes())
        .finalize();
    format!("proj_{}", &hex::encode(digest)[..24])
}

/// A reducer's id: stable for the same code (the DLL's address) uploaded by the same tenant.
pub fn reducer_id(tenant: TenantId, address: &str) -> String {
    let digest = Sha256::new()
        .chain_update(tenant.0.to_be_bytes())
        .chain_update(address.as_bytes())
        .finalize();
    format!("red_{}", &hex::encode(digest)[..24])
}

impl Registry {
    /// Opens `code.db` in `data_dir`, creating and migrating it when needed.
    pub fn open(data_dir: &Path, durability: Durability) -> Result<Self, RegistryError> {
        let mut conn = db::open(&data_dir.join(FILE_NAME), Access::ReadWrite, durability)?;
        db::migrate(&mut conn, MIGRATIONS)?;
        Ok(Registry { conn: Mutex::new(conn) })
    }

    pub fn create_upload(
        &self,
        tenant: TenantId,
        kind: ArtifactKind,
        aggregate_type: Option<&str>,
        files: &BTreeMap<String, String>,
    ) -> Result<Upload, RegistryError> {
        let upload = Upload {
            upload_id: Uuid::new_v4(),
            tenant,
            kind,
            aggregate_type: aggregate_type.map(str::to_owned),
            status: UploadStatus::Compiling,
            created_at: OffsetDateTime::now_utc(),
        };
        let files = serde_json::to_string(files).map_err(|e| RegistryError::Corrupt(e.to_string()))?;
        self.conn.lock().execute(
            "INSERT INTO uploads (upload_id, tenant_id, kind, status, files, aggregate_type, created_at)
             VALUES (?1, ?2, ?3, 'compiling', ?4, ?5, ?6)",
            params![
                upload.upload_id.to_string(),
                tenant.0,
                kind.as_str(),
                files,
                aggregate_type,
                unix_micros(upload.created_at)
            ],
        )?;
        Ok(upload)
    }

    /// An upload of `tenant`; `None` when it has none with this id.
    pub fn upload(&self, tenant: TenantId, upload_id: Uuid) -> Result<Option<Upload>, RegistryError> {
        let conn = self.conn.lock();
        let row = conn
            .prepare_cached(
                "SELECT kind, status, aggregate_type, message, diagnostics, code_id, created_at
                 FROM uploads WHERE upload_id = ?1 AND tenant_id = ?2",
            )?
            .query_row(params![upload_id.to_string(), tenant.0], |row| {
                Ok(UploadRow {
                    kind: row.get(0)?,
                    status: row.get(1)?,
                    aggregate_type: row.get(2)?,
                    message: row.get(3)?,
                    diagnostics: row.get(4)?,
                    code_id: row.get(5)?,
                    created_at: row.get(6)?,
                })
            })
            .optional()?;
        row.map(|row| row.into_upload(upload_id, tenant)).transpose()
    }

    /// Uploads whose compile did not finish, oldest first.
    pub fn pending_uploads(&self) -> Result<Vec<PendingUpload>, RegistryError> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare(
            "SELECT upload_id, tenant_id, kind, aggregate_type, files, created_at
             FROM uploads WHERE status = 'compiling' ORDER BY created_at",
        )?;
        let rows = stmt.query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, u32>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, Option<String>>(3)?,
                row.get::<_, Option<String>>(4)?,
                row.get::<_, i64>(5)?,
            ))
        })?;
        let mut pending = Vec::new();
        for row in rows {
            let (id, tenant, kind, aggregate_type, files, created_at) = row?;
            let files: BTreeMap<String, String> = serde_json::from_str(files.as_deref().unwrap_or("{}"))
                .map_err(|e| RegistryError::Corrupt(format!("upload {id} files: {e}")))?;
            pending.push(PendingUpload {
                upload: Upload {
                    upload_id: parse_uuid(&id)?,
                    tenant: TenantId(tenant),
                    kind: parse_kind(&kind)?,
                    aggregate_type,
                    status: UploadStatus::Compiling,
                    created_at: from_unix_micros(created_at),
                },
                files,
            });
        }
        Ok(pending)
    }

    pub fn fail_upload(&self, upload_id: Uuid, message: &str, diagnostics: &[Diagnostic]) -> Result<(), RegistryError> {
        let diagnostics = serde_json::to_string(diagnostics).map_err(|e| RegistryError::Corrupt(e.to_string()))?;
        self.conn.lock().execute(
            "UPDATE uploads SET status = 'failed', files = NULL, message = ?2, diagnostics = ?3, finished_at = ?4
             WHERE upload_id = ?1",
            params![
                upload_id.to_string(),
                message,
                diagnostics,
                unix_micros(OffsetDateTime::now_utc())
            ],
        )?;
        Ok(())
    }

    /// Records a compiled reducer: its artifact, the reducer (the same code keeps its id), the upload's outcome and,
    /// when the upload named one, the binding (returned as stored); all in one transaction.
    pub fn finish_reducer_upload(
        &self,
        upload: &Upload,
        artifact: &Artifact,
    ) -> Result<(ReducerInfo, Option<Binding>), RegistryError> {
        let tenant = upload.tenant;
        let id = reducer_id(tenant, &artifact.address);
        let now = unix_micros(OffsetDateTime::now_utc());
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        insert_artifact(&tx, tenant, artifact, now)?;
        tx.execute(
            "INSERT INTO reducers (tenant_id, reducer_id, address, created_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT DO NOTHING",
            params![tenant.0, id, artifact.address, now],
        )?;
        mark_ready(&tx, upload.upload_id, &id, now)?;
        let binding = match &upload.aggregate_type {
            Some(aggregate_type) => {
                upsert_binding(&tx, tenant, aggregate_type, &id, now)?;
                Some(Binding {
                    tenant,
                    aggregate_type: aggregate_type.clone(),
                    reducer_id: id.clone(),
                    bound_at: from_unix_micros(now),
                })
            }
            None => None,
        };
        let info = load_reducer(&tx, tenant, &id)?
            .ok_or_else(|| RegistryError::Corrupt(format!("reducer {id} vanished while being recorded")))?;
        tx.commit()?;
        Ok((info, binding))
    }

    /// Stores a tenant's signed artifact (again: a no-op).
    pub fn store_artifact(&self, tenant: TenantId, artifact: &Artifact) -> Result<(), RegistryError> {
        insert_artifact(
            &self.conn.lock(),
            tenant,
            artifact,
            unix_micros(OffsetDateTime::now_utc()),
        )
    }

    /// Records that an upload compiled into the projection `projection_id` (its artifact stored before).
    pub fn finish_projection_upload(&self, upload_id: Uuid, projection_id: &str) -> Result<(), RegistryError> {
        mark_ready(
            &self.conn.lock(),
            upload_id,
            projection_id,
            unix_micros(OffsetDateTime::now_utc()),
        )
    }

    pub fn reducer(&self, tenant: TenantId, reducer_id: &str) -> Result<Option<ReducerInfo>, RegistryError> {
        load_reducer(&self.conn.lock(), tenant, reducer_id)
    }

    pub fn reducers(&self, tenant: TenantId) -> Result<Vec<ReducerInfo>, RegistryError> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT r.reducer_id, r.address, a.class_name, a.state_type, r.created_at
             FROM reducers r JOIN artifacts a ON a.tenant_id = r.tenant_id AND a.address = r.address
             WHERE r.tenant_id = ?1 ORDER BY r.created_at, r.reducer_id",
        )?;
        let rows = stmt.query_map(params![tenant.0], reducer_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The signed artifact of `tenant` at `address`.
    pub fn artifact(&self, tenant: TenantId, address: &str) -> Result<Option<Artifact>, RegistryError> {
        let conn = self.conn.lock();
        let row = conn
            .prepare_cached(
                "SELECT kind, class_name, identity, state_type, policy_hash, signature, dll
                 FROM artifacts WHERE tenant_id = ?1 AND address = ?2",
            )?
            .query_row(params![tenant.0, address], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, String>(3)?,
                    row.get::<_, String>(4)?,
                    row.get::<_, Vec<u8>>(5)?,
                    row.get::<_, Vec<u8>>(6)?,
                ))
            })
            .optional()?;
        let Some((kind, class_name, identity, state_type, policy_hash, signature, dll)) = row else {
            return Ok(None);
        };
        let signature = signature
            .try_into()
            .map_err(|bytes: Vec<u8>| RegistryError::Corrupt(format!("a signature of {} bytes", bytes.len())))?;
        Ok(Some(Artifact {
            address: address.to_owned(),
            dll,
            signature,
            kind: parse_kind(&kind)?,
            class_name,
            identity,
            state_type,
            policy_hash,
        }))
    }

    pub fn bind(&self, tenant: TenantId, aggregate_type: &str, reducer_id: &str) -> Result<Binding, RegistryError> {
        let now = OffsetDateTime::now_utc();
        upsert_binding(&self.conn.lock(), tenant, aggregate_type, reducer_id, unix_micros(now))?;
        Ok(Binding {
            tenant,
            aggregate_type: aggregate_type.to_owned(),
            reducer_id: reducer_id.to_owned(),
            bound_at: from_unix_micros(unix_micros(now)),
        })
    }

    /// Removes a binding; false when there was none.
    pub fn unbind(&self, tenant: TenantId, aggregate_type: &str) -> Result<bool, RegistryError> {
        let removed = self.conn.lock().execute(
            "DELETE FROM reducer_bindings WHERE tenant_id = ?1 AND aggregate_type = ?2",
            params![tenant.0, aggregate_type],
        )?;
        Ok(removed > 0)
    }

    /// Every binding of every tenant, loaded at start-up.
    pub fn bindings(&self) -> Result<Vec<Binding>, RegistryError> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare("SELECT tenant_id, aggregate_type, reducer_id, bound_at FROM reducer_bindings")?;
        let rows = stmt.query_map([], |row| {
            Ok(Binding {
                tenant: TenantId(row.get(0)?),
                aggregate_type: row.get(1)?,
                reducer_id: row.get(2)?,
                bound_at: from_unix_micros(row.get(3)?),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

struct UploadRow {
    kind: String,
    status: String,
    aggregate_type: Option<String>,
    message: Option<String>,
    diagnostics: Option<String>,
    code_id: Option<String>,
    created_at: i64,
}

impl UploadRow {
    fn into_upload(self, upload_id: Uuid, tenant: TenantId) -> Result<Upload, RegistryError> {
        let status = match self.status.as_str() {
            "compiling" => UploadStatus::Compiling,
            "failed" => UploadStatus::Failed {
                message: self.message.unwrap_or_default(),
                diagnostics: serde_json::from_str(self.diagnostics.as_deref().unwrap_or("[]"))
                    .map_err(|e| RegistryError::Corrupt(format!("upload {upload_id} diagnostics: {e}")))?,
            },
            "ready" => UploadStatus::Ready {
                code_id: self
                    .code_id
                    .ok_or_else(|| RegistryError::Corrupt(format!("ready upload {upload_id} without an id")))?,
            },
            other => return Err(RegistryError::Corrupt(format!("upload status {other:?}"))),
        };
        Ok(Upload {
            upload_id,
            tenant,
            kind: parse_kind(&self.kind)?,
            aggregate_type: self.aggregate_type,
            status,
            created_at: from_unix_micros(self.created_at),
        })
    }
}

/// An upload's compile ended with the reducer or projection `code_id`; its sources are dropped.
fn mark_ready(conn: &Connection, upload_id: Uuid, code_id: &str, now: i64) -> Result<(), RegistryError> {
    conn.execute(
        "UPDATE uploads SET status = 'ready', files = NULL, code_id = ?2, finished_at = ?3 WHERE upload_id = ?1",
        params![upload_id.to_string(), code_id, now],
    )?;
    Ok(())
}

fn insert_artifact(conn: &Connection, tenant: TenantId, artifact: &Artifact, now: i64) -> Result<(), RegistryError> {
    conn.execute(
        "INSERT INTO artifacts (tenant_id, address, kind, class_name, identity, state_type, policy_hash, signature,
                                dll, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT DO NOTHING",
        params![
            tenant.0,
            artifact.address,
            artifact.kind.as_str(),
            artifact.class_name,
            artifact.identity,
            artifact.state_type,
            artifact.policy_hash,
            artifact.signature.as_slice(),
            artifact.dll,
            now
        ],
    )?;
    Ok(())
}

fn upsert_binding(
    conn: &Connection,
    tenant: TenantId,
    aggregate_type: &str,
    reducer_id: &str,
    now: i64,
) -> Result<(), RegistryError> {
    conn.execute(
        "INSERT INTO reducer_bindings (tenant_id, aggregate_type, reducer_id, bound_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (tenant_id, aggregate_type) DO UPDATE SET reducer_id = excluded.reducer_id,
             bound_at = excluded.bound_at",
        params![tenant.0, aggregate_type, reducer_id, now],
    )?;
    Ok(())
}

fn load_reducer(conn: &Connection, tenant: TenantId, reducer_id: &str) -> Result<Option<ReducerInfo>, RegistryError> {
    Ok(conn
        .prepare_cached(
            "SELECT r.reducer_id, r.address, a.class_name, a.state_type, r.created_at
             FROM reducers r JOIN artifacts a ON a.tenant_id = r.tenant_id AND a.address = r.address
             WHERE r.tenant_id = ?1 AND r.reducer_id = ?2",
        )?
        .query_row(params![tenant.0, reducer_id], reducer_row)
        .optional()?)
}

fn reducer_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ReducerInfo> {
    Ok(ReducerInfo {
        reducer_id: row.get(0)?,
        address: row.get(1)?,
        class_name: row.get(2)?,
        state_type: row.get(3)?,
        created_at: from_unix_micros(row.get(4)?),
    })
}

fn parse_kind(text: &str) -> Result<ArtifactKind, RegistryError> {
    ArtifactKind::parse(text).ok_or_else(|| RegistryError::Corrupt(format!("artifact kind {text:?}")))
}

fn parse_uuid(text: &str) -> Result<Uuid, RegistryError> {
    Uuid::parse_str(text).map_err(|_| RegistryError::Corrupt(format!("upload id {text:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn artifact(address: &str) -> Artifact {
        Artifact {
            address: address.into(),
            dll: vec![1, 2, 3],
            signature: [7; 64],
            kind: ArtifactKind::Reducer,
            class_name: "OrderReducer".into(),
            identity: "OrderReducer".into(),
            state_type: "OrderState".into(),
            policy_hash: "p".into(),
        }
    }

    #[test]
    fn an_upload_goes_from_compiling_to_a_bound_reducer_and_survives_reopening() {
        let dir = tempfile::tempdir().expect("registry call");
        let tenant = TenantId(3);
        let files = BTreeMap::from([("A.cs".to_string(), "class A {}".to_string())]);
        let id;
        let bound_at;
        {
            let registry = Registry::open(dir.path(), Durability::Normal).expect("registry call");
            let upload = registry
                .create_upload(tenant, ArtifactKind::Reducer, Some("order"), &files)
                .expect("registry call");
            id = upload.upload_id;
            assert_eq!(registry.pending_uploads().expect("registry call")[0].files, files);
            let (info, binding) = registry
                .finish_reducer_upload(&upload, &artifact("abc"))
                .expect("registry call");
            bound_at = binding.expect("bound").bound_at;
            assert_eq!(info.reducer_id, reducer_id(tenant, "abc"));
            assert_eq!(info.class_name, "OrderReducer");
            // The same code again keeps its id.
            let again = registry
                .create_upload(tenant, ArtifactKind::Reducer, None, &files)
                .expect("registry call");
            assert_eq!(
                registry
                    .finish_reducer_upload(&again, &artifact("abc"))
                    .expect("registry call")
                    .0
                    .reducer_id,
                info.reducer_id
            );
        }
        let registry = Registry::open(dir.path(), Durability::Normal).expect("registry call");
        assert!(registry.pending_uploads().expect("registry call").is_empty());
        let upload = registry
            .upload(tenant, id)
            .expect("registry call")
            .expect("registry call");
        assert_eq!(
            upload.status,
            UploadStatus::Ready {
                code_id: reducer_id(tenant, "abc")
            }
        );
        assert!(
            registry.upload(TenantId(4), id).expect("registry call").is_none(),
            "another tenant's upload"
        );
        let bindings = registry.bindings().expect("registry call");
        assert_eq!(bindings.len(), 1);
        assert_eq!(bindings[0].aggregate_type, "order");
        assert_eq!(bindings[0].bound_at, bound_at, "the binding as it was returned");
        assert_eq!(
            registry
                .artifact(tenant, "abc")
                .expect("registry call")
                .expect("registry call"),
            artifact("abc")
        );
        assert!(registry.artifact(TenantId(4), "abc").expect("registry call").is_none());
        assert!(registry.unbind(tenant, "order").expect("registry call"));
        assert!(!registry.unbind(tenant, "order").expect("registry call"));
    }

    #[test]
    fn a_failed_upload_keeps_its_diagnostics_and_drops_its_sources() {
        let dir = tempfile::tempdir().expect("registry call");
        let registry = Registry::open(dir.path(), Durability::Normal).expect("registry call");
        let files = BTreeMap::from([("A.cs".to_string(), "class A {".to_string())]);
        let upload = registry
            .create_upload(TenantId(1), ArtifactKind::Reducer, None, &files)
            .expect("registry call");
        let diagnostic = Diagnostic {
            severity: "error".into(),
            code: "CS1513".into(),
            message: "} expected".into(),
            file: Some("A.cs".into()),
            line: Some(1),
            column: Some(10),
        };
        registry
            .fail_upload(upload.upload_id, "compile errors", std::slice::from_ref(&diagnostic))
            .expect("registry call");
        assert!(registry.pending_uploads().expect("registry call").is_empty());
        let UploadStatus::Failed { diagnostics, .. } = registry
            .upload(TenantId(1), upload.upload_id)
            .expect("registry call")
            .expect("registry call")
            .status
        else {
            panic!("failed upload");
        };
        assert_eq!(diagnostics.len(), 1);
        assert_eq!(diagnostics[0].line, Some(1));
    }
}
