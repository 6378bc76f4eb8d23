//! `projections.db` beside the shards: each tenant's projections, their versions, every version's states by key
//! (its own state space) with its checkpoint, and the change log of the active versions.
//!
//! The rules the engine relies on, each kept inside one transaction:
//! - a version's states and its checkpoint (`position`) move together ([`ProjectionStore::commit`]), so a restart
//!   resumes exactly after the last event whose state is stored;
//! - a commit only lands while the version still runs, so a superseded or abandoned version's runner cannot write
//!   after it was replaced;
//! - the swap from the active version to the pending one is one update ([`ProjectionStore::swap`]), and never moves
//!   the served position back;
//! - a query reads the active version's id, its position and the state in one read transaction.
//!
//! Everything here can be rebuilt from the event log, so the file is written with `synchronous=NORMAL`: a power loss
//! may take back the last commits, states and checkpoints together, and the engine runs those events again.

use std::collections::BTreeMap;
use std::path::Path;

use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::catalog::TenantId;
use crate::db::{self, Access, Durability, MigrationError};
use crate::time_util::{from_unix_micros, unix_micros};

pub const FILE_NAME: &str = "projections.db";

/// Read connections kept for queries, so a query never waits for a commit.
const READERS: usize = 4;

const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE projections (
    tenant_id       INTEGER NOT NULL,
    projection_id   TEXT NOT NULL,
    identity        TEXT NOT NULL,
    active_version  INTEGER,
    pending_version INTEGER,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, projection_id)
) WITHOUT ROWID;
-- status: catching_up | active | superseded | abandoned | failed. An active version that stopped on a failure keeps
-- serving: it stays active, with `failure` set.
CREATE TABLE versions (
    version_id    INTEGER PRIMARY KEY,
    tenant_id     INTEGER NOT NULL,
    projection_id TEXT NOT NULL,
    upload_id     TEXT NOT NULL UNIQUE,
    address       TEXT NOT NULL,
    class_name    TEXT NOT NULL,
    status        TEXT NOT NULL,
    position      INTEGER NOT NULL DEFAULT 0,
    failure       TEXT,
    uploaded_at   INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    activated_at  INTEGER,
    ended_at      INTEGER,
    states_dropped INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX versions_by_projection ON versions (tenant_id, projection_id);
CREATE TABLE states (
    version_id INTEGER NOT NULL,
    key        TEXT NOT NULL,
    state      TEXT NOT NULL,
    PRIMARY KEY (version_id, key)
) WITHOUT ROWID;
CREATE TABLE changes (
    seq           INTEGER PRIMARY KEY,
    tenant_id     INTEGER NOT NULL,
    projection_id TEXT NOT NULL,
    version_id    INTEGER NOT NULL,
    key           TEXT NOT NULL,
    state         TEXT NOT NULL,
    position      INTEGER NOT NULL,
    recorded_at   INTEGER NOT NULL
);
CREATE INDEX changes_by_projection ON changes (tenant_id, projection_id, seq);
"#];

#[derive(Debug, thiserror::Error)]
pub enum ProjectionStoreError {
    #[error("projection store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error(transparent)]
    Migration(#[from] MigrationError),
    #[error("projection store holds invalid data: {0}")]
    Corrupt(String),
}

type Result<T> = std::result::Result<T, ProjectionStoreError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionStatus {
    CatchingUp,
    Active,
    Superseded,
    Abandoned,
    Failed,
}

impl VersionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            VersionStatus::CatchingUp => "catching_up",
            VersionStatus::Active => "active",
            VersionStatus::Superseded => "superseded",
            VersionStatus::Abandoned => "abandoned",
            VersionStatus::Failed => "failed",
        }
    }

    fn parse(text: &str) -> Result<Self> {
        Ok(match text {
            "catching_up" => VersionStatus::CatchingUp,
            "active" => VersionStatus::Active,
            "superseded" => VersionStatus::Superseded,
            "abandoned" => VersionStatus::Abandoned,
            "failed" => VersionStatus::Failed,
            other => return Err(ProjectionStoreError::Corrupt(format!("version status {other:?}"))),
        })
    }
}

/// Where and why a version stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionFailure {
    /// The event the version stopped at (it is not applied).
    pub position: u64,
    pub event_id: Option<String>,
    pub aggregate_id: Option<String>,
    /// `reducer_failed`-style code: `user_exception`, `timeout`, `out_of_memory`, `crashed`, `refused`.
    pub error: String,
    pub exception_type: Option<String>,
    pub message: String,
    /// When it failed, in microseconds since the Unix epoch.
    pub failed_at_micros: i64,
}

/// One version as stored.
#[derive(Debug, Clone)]
pub struct Version {
    pub version_id: i64,
    pub tenant: TenantId,
    pub projection_id: String,
    pub upload_id: Uuid,
    pub address: String,
    pub class_name: String,
    pub status: VersionStatus,
    /// Every event up to here is applied and its state stored.
    pub position: u64,
    pub failure: Option<VersionFailure>,
    pub created_at: OffsetDateTime,
    pub activated_at: Option<OffsetDateTime>,
    pub ended_at: Option<OffsetDateTime>,
}

impl Version {
    /// Whether a runner should be processing events for it.
    pub fn runs(&self) -> bool {
        matches!(self.status, VersionStatus::CatchingUp | VersionStatus::Active) && self.failure.is_none()
    }
}

/// A projection and its versions' roles.
#[derive(Debug, Clone)]
pub struct Projection {
    pub tenant: TenantId,
    pub projection_id: String,
    pub identity: String,
    pub active_version: Option<i64>,
    pub pending_version: Option<i64>,
    pub created_at: OffsetDateTime,
}

/// What deploying a version did.
#[derive(Debug, Clone)]
pub struct Deployed {
    pub version: Version,
    /// The pending version it replaced, now abandoned.
    pub abandoned: Option<i64>,
}

/// How a commit went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Committed {
    Done,
    /// The version no longer runs (superseded, abandoned, failed) or another runner moved it: nothing was written.
    Stopped,
}

/// How a swap went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Swapped {
    /// The version is active; `superseded` is the version it replaced.
    Done {
        superseded: Option<i64>,
    },
    /// The active version is further along: the pending one commits what it has and runs another round.
    Behind {
        active_position: u64,
    },
    Stopped,
}

/// A state change of an active version, for the change log.
#[derive(Debug, Clone)]
pub struct Change {
    pub position: u64,
    pub key: String,
    pub state: Box<RawValue>,
}

/// One change log entry as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedChange {
    pub seq: i64,
    pub version_id: i64,
    pub key: String,
    pub state: String,
    pub position: u64,
    pub recorded_at: OffsetDateTime,
}

/// What a query found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    NoProjection,
    /// No version is active yet: the first one is still catching up.
    CatchingUp,
    /// No version is active and none is catching up: the first one failed.
    NeverActive {
        failure: Option<VersionFailure>,
    },
    NoKey {
        position: u64,
    },
    State {
        state: String,
        position: u64,
    },
}

pub struct ProjectionStore {
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    path: std::path::PathBuf,
}

impl ProjectionStore {
    pub fn open(data_dir: &Path) -> Result<Self> {
        let path = data_dir.join(FILE_NAME);
        let mut conn = db::open(&path, Access::ReadWrite, Durability::Normal)?;
        db::migrate(&mut conn, MIGRATIONS)?;
        Ok(ProjectionStore {
            writer: Mutex::new(conn),
            readers: Mutex::new(Vec::new()),
            path,
        })
    }

    /// Records a compiled upload as the projection's pending version (creating the projection on its first upload),
    /// abandoning the pending version it replaces. Uploads compile in parallel, so the newest *upload* wins: one
    /// that finished compiling after a newer one was deployed is recorded abandoned at once. The same upload
    /// recorded twice (a compile run again after a restart) gives the version recorded first.
    #[allow(clippy::too_many_arguments)]
    pub fn deploy(
        &self,
        tenant: TenantId,
        projection_id: &str,
        identity: &str,
        upload_id: Uuid,
        uploaded_at: OffsetDateTime,
        address: &str,
        class_name: &str,
    ) -> Result<Deployed> {
        let now = unix_micros(OffsetDateTime::now_utc());
        let mut conn = self.writer.lock();
        let tx = conn.transaction()?;
        if let Some(version) = version_by_upload(&tx, upload_id)? {
            return Ok(Deployed {
                version,
                abandoned: None,
            });
        }
        tx.execute(
            "INSERT INTO projections (tenant_id, projection_id, identity, created_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT DO NOTHING",
            params![tenant.0, projection_id, identity, now],
        )?;
        let uploaded_at = unix_micros(uploaded_at);
        let newer: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM versions WHERE tenant_id = ?1 AND projection_id = ?2 AND uploaded_at > ?3)",
            params![tenant.0, projection_id, uploaded_at],
            |row| row.get(0),
        )?;
        // An upload older than the newest one deployed is recorded, abandoned at once.
        let status = if newer { "abandoned" } else { "catching_up" };
        tx.execute(
            "INSERT INTO versions (tenant_id, projection_id, upload_id, address, class_name, status, uploaded_at,
                                   created_at, ended_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                tenant.0,
                projection_id,
                upload_id.to_string(),
                address,
                class_name,
                status,
                uploaded_at,
                now,
                newer.then_some(now)
            ],
        )?;
        let version_id = tx.last_insert_rowid();
        if newer {
            let version = version_by_id(&tx, version_id)?
                .ok_or_else(|| ProjectionStoreError::Corrupt(format!("version {version_id} vanished")))?;
            tx.commit()?;
            return Ok(Deployed {
                version,
                abandoned: None,
            });
        }
        let previous: Option<i64> = tx.query_row(
            "SELECT pending_version FROM projections WHERE tenant_id = ?1 AND projection_id = ?2",
            params![tenant.0, projection_id],
            |row| row.get(0),
        )?;
        let abandoned = match previous {
            Some(pending) => {
                let changed = tx.execute(
                    "UPDATE versions SET status = 'abandoned', ended_at = ?2
                     WHERE version_id = ?1 AND status = 'catching_up'",
                    params![pending, now],
                )?;
                (changed > 0).then_some(pending)
            }
            None => None,
        };
        tx.execute(
            "UPDATE projections SET pending_version = ?3 WHERE tenant_id = ?1 AND projection_id = ?2",
            params![tenant.0, projection_id, version_id],
        )?;
        let version = version_by_id(&tx, version_id)?
            .ok_or_else(|| ProjectionStoreError::Corrupt(format!("version {version_id} vanished")))?;
        tx.commit()?;
        Ok(Deployed { version, abandoned })
    }

    /// Versions a runner should be processing (catching up, or active and not stopped).
    pub fn runnable(&self) -> Result<Vec<Version>> {
        let conn = self.writer.lock();
        let mut stmt = conn.prepare(&format!(
            "{VERSION_COLUMNS} WHERE status IN ('catching_up', 'active') AND failure IS NULL ORDER BY version_id"
        ))?;
        let rows = stmt.query_map([], version_row)?;
        rows.map(|row| row?).collect()
    }

    pub fn version(&self, version_id: i64) -> Result<Option<Version>> {
        version_by_id(&self.writer.lock(), version_id)
    }

    /// The version an upload became, if it did.
    pub fn version_of_upload(&self, tenant: TenantId, upload_id: Uuid) -> Result<Option<Version>> {
        let version = self.read(|conn| version_by_upload(conn, upload_id))?;
        Ok(version.filter(|version| version.tenant == tenant))
    }

    pub fn projection(&self, tenant: TenantId, projection_id: &str) -> Result<Option<Projection>> {
        self.read(|conn| projection_row(conn, tenant, projection_id))
    }

    /// A tenant's projections, oldest first.
    pub fn projections(&self, tenant: TenantId) -> Result<Vec<Projection>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT tenant_id, projection_id, identity, active_version, pending_version, created_at
                 FROM projections WHERE tenant_id = ?1 ORDER BY created_at, projection_id",
            )?;
            let rows = stmt.query_map(params![tenant.0], projection_from_row)?;
            Ok(rows.collect::<std::result::Result<_, _>>()?)
        })
    }

    /// Stores `states` and moves the checkpoint from `from` to `to`, with the `changes` (active versions only), if
    /// the version still runs at `from`.
    pub fn commit(
        &self,
        version_id: i64,
        from: u64,
        to: u64,
        states: &BTreeMap<String, Box<RawValue>>,
        changes: &[Change],
    ) -> Result<Committed> {
        let mut conn = self.writer.lock();
        let tx = conn.transaction()?;
        let Some(version) = running_at(&tx, version_id, from)? else {
            return Ok(Committed::Stopped);
        };
        write_states(&tx, version_id, states)?;
        tx.execute(
            "UPDATE versions SET position = ?2 WHERE version_id = ?1",
            params![version_id, to as i64],
        )?;
        if version.status == VersionStatus::Active {
            record_changes(&tx, &version, changes.iter())?;
        }
        tx.commit()?;
        Ok(Committed::Done)
    }

    /// Makes the pending version active in one update, with its last states and checkpoint: the active version
    /// (if any) is superseded, and the changes after its position are recorded as the new version's. Refused
    /// ([`Swapped::Behind`]) while the active version is further along, so the served position never moves back; the
    /// states and checkpoint are then committed all the same.
    pub fn swap(
        &self,
        version_id: i64,
        from: u64,
        to: u64,
        states: &BTreeMap<String, Box<RawValue>>,
        changes: &[Change],
    ) -> Result<Swapped> {
        let now = unix_micros(OffsetDateTime::now_utc());
        let mut conn = self.writer.lock();
        let tx = conn.transaction()?;
        let Some(version) = running_at(&tx, version_id, from)? else {
            return Ok(Swapped::Stopped);
        };
        let projection = projection_row(&tx, version.tenant, &version.projection_id)?
            .ok_or_else(|| ProjectionStoreError::Corrupt(format!("version {version_id} of a missing projection")))?;
        write_states(&tx, version_id, states)?;
        tx.execute(
            "UPDATE versions SET position = ?2 WHERE version_id = ?1",
            params![version_id, to as i64],
        )?;
        if version.status == VersionStatus::Active || projection.pending_version != Some(version_id) {
            tx.commit()?;
            return Ok(Swapped::Stopped);
        }
        let active = match projection.active_version {
            Some(active) => version_by_id(&tx, active)?,
            None => None,
        };
        if let Some(active) = &active
            && active.position > to
        {
            tx.commit()?;
            return Ok(Swapped::Behind {
                active_position: active.position,
            });
        }
        if let Some(active) = &active {
            tx.execute(
                "UPDATE versions SET status = 'superseded', ended_at = ?2 WHERE version_id = ?1",
                params![active.version_id, now],
            )?;
        }
        tx.execute(
            "UPDATE versions SET status = 'active', activated_at = ?2 WHERE version_id = ?1",
            params![version_id, now],
        )?;
        tx.execute(
            "UPDATE projections SET active_version = ?3, pending_version = NULL
             WHERE tenant_id = ?1 AND projection_id = ?2",
            params![version.tenant.0, version.projection_id, version_id],
        )?;
        let served_from = active.as_ref().map_or(0, |active| active.position);
        let active_version = Version {
            status: VersionStatus::Active,
            ..version
        };
        record_changes(
            &tx,
            &active_version,
            changes.iter().filter(|change| change.position > served_from),
        )?;
        tx.commit()?;
        Ok(Swapped::Done {
            superseded: active.map(|active| active.version_id),
        })
    }

    /// Stops a version at a failure: a catching-up one fails (and stops being the pending one); an active one keeps
    /// serving its states, stopped.
    pub fn fail(&self, version_id: i64, failure: &VersionFailure) -> Result<()> {
        let text = serde_json::to_string(failure).map_err(|e| ProjectionStoreError::Corrupt(e.to_string()))?;
        let now = unix_micros(OffsetDateTime::now_utc());
        let mut conn = self.writer.lock();
        let tx = conn.transaction()?;
        tx.execute(
            "UPDATE versions SET failure = ?2 WHERE version_id = ?1 AND status IN ('catching_up', 'active')",
            params![version_id, text],
        )?;
        let failed = tx.execute(
            "UPDATE versions SET status = 'failed', ended_at = ?2 WHERE version_id = ?1 AND status = 'catching_up'",
            params![version_id, now],
        )?;
        if failed > 0 {
            tx.execute(
                "UPDATE projections SET pending_version = NULL WHERE pending_version = ?1",
                params![version_id],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The stored states of `keys` in a version (absent keys have none).
    pub fn states(&self, version_id: i64, keys: &[String]) -> Result<BTreeMap<String, Box<RawValue>>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached("SELECT state FROM states WHERE version_id = ?1 AND key = ?2")?;
            let mut found = BTreeMap::new();
            for key in keys {
                let state: Option<String> = stmt.query_row(params![version_id, key], |row| row.get(0)).optional()?;
                if let Some(state) = state {
                    let state = RawValue::from_string(state)
                        .map_err(|e| ProjectionStoreError::Corrupt(format!("state of {key:?}: {e}")))?;
                    found.insert(key.clone(), state);
                }
            }
            Ok(found)
        })
    }

    /// A key's state in the projection's active version, read with that version's position in one snapshot.
    pub fn lookup(&self, tenant: TenantId, projection_id: &str, key: &str) -> Result<Lookup> {
        self.read(|conn| {
            let tx = conn.unchecked_transaction()?;
            let Some(projection) = projection_row(&tx, tenant, projection_id)? else {
                return Ok(Lookup::NoProjection);
            };
            let Some(active) = projection.active_version else {
                if projection.pending_version.is_some() {
                    return Ok(Lookup::CatchingUp);
                }
                let failure = last_failure(&tx, tenant, projection_id)?;
                return Ok(Lookup::NeverActive { failure });
            };
            let position: i64 = tx.query_row(
                "SELECT position FROM versions WHERE version_id = ?1",
                params![active],
                |row| row.get(0),
            )?;
            let state: Option<String> = tx
                .prepare_cached("SELECT state FROM states WHERE version_id = ?1 AND key = ?2")?
                .query_row(params![active, key], |row| row.get(0))
                .optional()?;
            let position = position as u64;
            Ok(match state {
                Some(state) => Lookup::State { state, position },
                None => Lookup::NoKey { position },
            })
        })
    }

    /// Versions whose states are to be deleted: replaced, abandoned or failed before they were active.
    pub fn retired_with_states(&self) -> Result<Vec<i64>> {
        let conn = self.writer.lock();
        let mut stmt = conn.prepare(
            "SELECT version_id FROM versions
             WHERE status IN ('superseded', 'abandoned', 'failed') AND states_dropped = 0 ORDER BY version_id",
        )?;
        let rows = stmt.query_map([], |row| row.get(0))?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Deletes up to `limit` states of a retired version; 0 once none are left (the version is then marked).
    pub fn drop_states(&self, version_id: i64, limit: usize) -> Result<usize> {
        let conn = self.writer.lock();
        let deleted = conn.execute(
            "DELETE FROM states WHERE version_id = ?1 AND key IN
               (SELECT key FROM states WHERE version_id = ?1 LIMIT ?2)",
            params![version_id, limit as i64],
        )?;
        if deleted == 0 {
            conn.execute(
                "UPDATE versions SET states_dropped = 1 WHERE version_id = ?1",
                params![version_id],
            )?;
        }
        Ok(deleted)
    }

    /// Keeps the last `keep` changes of every projection; returns how many were deleted.
    pub fn prune_changes(&self, keep: u64) -> Result<usize> {
        let conn = self.writer.lock();
        let deleted = conn.execute(
            "DELETE FROM changes WHERE seq IN (
               SELECT c.seq FROM changes c
               JOIN (SELECT tenant_id, projection_id, MAX(seq) AS last FROM changes
                     GROUP BY tenant_id, projection_id) m
                 ON m.tenant_id = c.tenant_id AND m.projection_id = c.projection_id
               WHERE c.seq <= m.last - ?1)",
            params![keep as i64],
        )?;
        Ok(deleted)
    }

    /// Up to `limit` changes of a projection after `after` (a `seq`), in the order they were recorded.
    pub fn changes_after(
        &self,
        tenant: TenantId,
        projection_id: &str,
        after: i64,
        limit: u32,
    ) -> Result<Vec<RecordedChange>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT seq, version_id, key, state, position, recorded_at FROM changes
                 WHERE tenant_id = ?1 AND projection_id = ?2 AND seq > ?3 ORDER BY seq LIMIT ?4",
            )?;
            let rows = stmt.query_map(params![tenant.0, projection_id, after, limit], |row| {
                Ok(RecordedChange {
                    seq: row.get(0)?,
                    version_id: row.get(1)?,
                    key: row.get(2)?,
                    state: row.get(3)?,
                    position: row.get::<_, i64>(4)? as u64,
                    recorded_at: from_unix_micros(row.get(5)?),
                })
            })?;
            Ok(rows.collect::<std::result::Result<_, _>>()?)
        })
    }

    /// Runs `read` on a pooled read connection (opened on first need).
    fn read<T>(&self, read: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let pooled = self.readers.lock().pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => db::open(&self.path, Access::ReadOnly, Durability::Normal)?,
        };
        let result = read(&conn);
        let mut readers = self.readers.lock();
        if readers.len() < READERS {
            readers.push(conn);
        }
        result
    }
}

const VERSION_COLUMNS: &str = "SELECT version_id, tenant_id, projection_id, upload_id, address, class_name, status,
    position, failure, created_at, activated_at, ended_at FROM versions";

fn version_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Version>> {
    let upload_id: String = row.get(3)?;
    let status: String = row.get(6)?;
    let failure: Option<String> = row.get(8)?;
    let parsed = (|| -> Result<Version> {
        Ok(Version {
            version_id: row.get(0)?,
            tenant: TenantId(row.get(1)?),
            projection_id: row.get(2)?,
            upload_id: Uuid::parse_str(&upload_id)
                .map_err(|e| ProjectionStoreError::Corrupt(format!("upload id {upload_id:?}: {e}")))?,
            address: row.get(4)?,
            class_name: row.get(5)?,
            status: VersionStatus::parse(&status)?,
            position: row.get::<_, i64>(7)? as u64,
            failure: failure
                .map(|text| serde_json::from_str(&text))
                .transpose()
                .map_err(|e| ProjectionStoreError::Corrupt(format!("a version's failure: {e}")))?,
            created_at: from_unix_micros(row.get(9)?),
            activated_at: row.get::<_, Option<i64>>(10)?.map(from_unix_micros),
            ended_at: row.get::<_, Option<i64>>(11)?.map(from_unix_micros),
        })
    })();
    Ok(parsed)
}

fn version_by_id(conn: &Connection, version_id: i64) -> Result<Option<Version>> {
    conn.prepare_cached(&format!("{VERSION_COLUMNS} WHERE version_id = ?1"))?
        .query_row(params![version_id], version_row)
        .optional()?
        .transpose()
}

fn version_by_upload(conn: &Connection, upload_id: Uuid) -> Result<Option<Version>> {
    conn.prepare_cached(&format!("{VERSION_COLUMNS} WHERE upload_id = ?1"))?
        .query_row(params![upload_id.to_string()], version_row)
        .optional()?
        .transpose()
}

/// The version, if it still runs and its checkpoint is `position`.
fn running_at(tx: &Transaction<'_>, version_id: i64, position: u64) -> Result<Option<Version>> {
    Ok(version_by_id(tx, version_id)?.filter(|version| version.runs() && version.position == position))
}

fn projection_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Projection> {
    Ok(Projection {
        tenant: TenantId(row.get(0)?),
        projection_id: row.get(1)?,
        identity: row.get(2)?,
        active_version: row.get(3)?,
        pending_version: row.get(4)?,
        created_at: from_unix_micros(row.get(5)?),
    })
}

fn projection_row(conn: &Connection, tenant: TenantId, projection_id: &str) -> Result<Option<Projection>> {
    Ok(conn
        .prepare_cached(
            "SELECT tenant_id, projection_id, identity, active_version, pending_version, created_at
             FROM projections WHERE tenant_id = ?1 AND projection_id = ?2",
        )?
        .query_row(params![tenant.0, projection_id], projection_from_row)
        .optional()?)
}

/// The failure of a projection's most recent version, if it failed.
fn last_failure(conn: &Connection, tenant: TenantId, projection_id: &str) -> Result<Option<VersionFailure>> {
    let text: Option<Option<String>> = conn
        .prepare_cached(
            "SELECT failure FROM versions WHERE tenant_id = ?1 AND projection_id = ?2
             ORDER BY version_id DESC LIMIT 1",
        )?
        .query_row(params![tenant.0, projection_id], |row| row.get(0))
        .optional()?;
    text.flatten()
        .map(|text| serde_json::from_str(&text))
        .transpose()
        .map_err(|e| ProjectionStoreError::Corrupt(format!("a version's failure: {e}")))
}

fn write_states(tx: &Transaction<'_>, version_id: i64, states: &BTreeMap<String, Box<RawValue>>) -> Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO states (version_id, key, state) VALUES (?1, ?2, ?3)
         ON CONFLICT (version_id, key) DO UPDATE SET state = excluded.state",
    )?;
    for (key, state) in states {
        stmt.execute(params![version_id, key, state.get()])?;
    }
    Ok(())
}

fn record_changes<'a>(
    tx: &Transaction<'_>,
    version: &Version,
    changes: impl Iterator<Item = &'a Change>,
) -> Result<()> {
    let now = unix_micros(OffsetDateTime::now_utc());
    let mut stmt = tx.prepare_cached(
        "INSERT INTO changes (tenant_id, projection_id, version_id, key, state, position, recorded_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for change in changes {
        stmt.execute(params![
            version.tenant.0,
            version.projection_id,
            version.version_id,
            change.key,
            change.state.get(),
            change.position as i64,
            now
        ])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(json: &str) -> Box<RawValue> {
        RawValue::from_string(json.to_owned()).expect("json")
    }

    fn states(pairs: &[(&str, &str)]) -> BTreeMap<String, Box<RawValue>> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), raw(v))).collect()
    }

    fn change(position: u64, key: &str, state: &str) -> Change {
        Change {
            position,
            key: key.to_owned(),
            state: raw(state),
        }
    }

    const T: TenantId = TenantId(7);

    fn deploy(store: &ProjectionStore, uploaded_at: i64) -> Deployed {
        store
            .deploy(
                T,
                "proj_x",
                "x",
                Uuid::new_v4(),
                from_unix_micros(uploaded_at),
                "addr",
                "X",
            )
            .expect("deploy")
    }

    #[test]
    fn a_first_version_serves_once_swapped_in_and_records_changes_only_while_active() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ProjectionStore::open(dir.path()).expect("open");
        let v1 = deploy(&store, 1).version;
        assert_eq!(store.lookup(T, "proj_x", "a").expect("lookup"), Lookup::CatchingUp);
        assert_eq!(
            store.lookup(TenantId(8), "proj_x", "a").expect("lookup"),
            Lookup::NoProjection
        );

        let pending_changes = [change(1, "a", "1")];
        assert_eq!(
            store
                .commit(v1.version_id, 0, 2, &states(&[("a", "1")]), &pending_changes)
                .expect("commit"),
            Committed::Done
        );
        // A commit from a stale checkpoint (another runner moved it) writes nothing.
        assert_eq!(
            store
                .commit(v1.version_id, 0, 3, &states(&[("a", "9")]), &[])
                .expect("commit"),
            Committed::Stopped
        );
        let swapped = store
            .swap(v1.version_id, 2, 2, &BTreeMap::new(), &[change(2, "a", "1")])
            .expect("swap");
        assert_eq!(swapped, Swapped::Done { superseded: None });
        assert_eq!(
            store.lookup(T, "proj_x", "a").expect("lookup"),
            Lookup::State {
                state: "1".into(),
                position: 2
            }
        );
        assert_eq!(
            store.lookup(T, "proj_x", "b").expect("lookup"),
            Lookup::NoKey { position: 2 }
        );

        store
            .commit(
                v1.version_id,
                2,
                4,
                &states(&[("a", "3")]),
                &[change(3, "a", "2"), change(4, "a", "3")],
            )
            .expect("commit");
        let recorded = store.changes_after(T, "proj_x", 0, 10).expect("changes");
        let seen: Vec<(u64, &str, &str)> = recorded
            .iter()
            .map(|c| (c.position, c.key.as_str(), c.state.as_str()))
            .collect();
        assert_eq!(
            seen,
            [(2, "a", "1"), (3, "a", "2"), (4, "a", "3")],
            "the pending version's commits recorded nothing"
        );
        assert_eq!(
            store
                .changes_after(T, "proj_x", recorded[0].seq, 10)
                .expect("changes")
                .len(),
            2
        );
        assert_eq!(store.prune_changes(1).expect("prune"), 2);
        assert_eq!(store.changes_after(T, "proj_x", 0, 10).expect("changes").len(), 1);
    }

    #[test]
    fn a_redeploy_swaps_in_only_once_caught_up_and_a_newer_upload_abandons_the_pending_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ProjectionStore::open(dir.path()).expect("open");
        let v1 = deploy(&store, 1).version;
        store.swap(v1.version_id, 0, 0, &BTreeMap::new(), &[]).expect("swap");
        store
            .commit(v1.version_id, 0, 10, &states(&[("a", "10")]), &[])
            .expect("commit");

        let v2 = deploy(&store, 2).version;
        let v3 = deploy(&store, 3);
        assert_eq!(v3.abandoned, Some(v2.version_id));
        let v3 = v3.version;
        assert_eq!(
            store.version(v2.version_id).expect("read").expect("v2").status,
            VersionStatus::Abandoned
        );
        // An upload older than the newest one deployed is abandoned as it arrives.
        let late = deploy(&store, 2).version;
        assert_eq!(late.status, VersionStatus::Abandoned);
        assert!(!late.runs());

        // Behind the active version, the swap waits for another round, but keeps what the pending one did.
        assert_eq!(
            store
                .swap(v3.version_id, 0, 8, &states(&[("a", "108")]), &[])
                .expect("swap"),
            Swapped::Behind { active_position: 10 }
        );
        assert_eq!(
            store.lookup(T, "proj_x", "a").expect("lookup"),
            Lookup::State {
                state: "10".into(),
                position: 10
            }
        );
        let swapped = store
            .swap(
                v3.version_id,
                8,
                12,
                &states(&[("a", "112")]),
                &[change(9, "a", "109"), change(11, "a", "111")],
            )
            .expect("swap");
        assert_eq!(
            swapped,
            Swapped::Done {
                superseded: Some(v1.version_id)
            }
        );
        assert_eq!(
            store.lookup(T, "proj_x", "a").expect("lookup"),
            Lookup::State {
                state: "112".into(),
                position: 12
            }
        );
        let recorded: Vec<u64> = store
            .changes_after(T, "proj_x", 0, 10)
            .expect("changes")
            .iter()
            .map(|c| c.position)
            .collect();
        assert_eq!(recorded, [11], "changes after the replaced version's position only");
        // The replaced version runs no more, and its states are dropped in slices.
        assert_eq!(
            store
                .commit(v1.version_id, 10, 13, &BTreeMap::new(), &[])
                .expect("commit"),
            Committed::Stopped
        );
        let retired = store.retired_with_states().expect("retired");
        assert!(
            retired.contains(&v1.version_id) && retired.contains(&v2.version_id),
            "{retired:?}"
        );
        assert_eq!(store.drop_states(v1.version_id, 10).expect("drop"), 1);
        assert_eq!(store.drop_states(v1.version_id, 10).expect("drop"), 0);
        assert!(!store.retired_with_states().expect("retired").contains(&v1.version_id));
    }

    #[test]
    fn a_failure_stops_a_pending_version_and_leaves_an_active_one_serving() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ProjectionStore::open(dir.path()).expect("open");
        let failure = VersionFailure {
            position: 3,
            event_id: Some("e".into()),
            aggregate_id: Some("email-1".into()),
            error: "user_exception".into(),
            exception_type: Some("System.Exception".into()),
            message: "no".into(),
            failed_at_micros: 1,
        };
        let v1 = deploy(&store, 1).version;
        store.fail(v1.version_id, &failure).expect("fail");
        let failed = store.version(v1.version_id).expect("read").expect("v1");
        assert_eq!(failed.status, VersionStatus::Failed);
        assert_eq!(failed.failure.as_ref(), Some(&failure));
        assert_eq!(
            store.lookup(T, "proj_x", "a").expect("lookup"),
            Lookup::NeverActive {
                failure: Some(failure.clone())
            }
        );

        let v2 = deploy(&store, 2).version;
        store
            .swap(v2.version_id, 0, 5, &states(&[("a", "5")]), &[])
            .expect("swap");
        store.fail(v2.version_id, &failure).expect("fail");
        let stopped = store.version(v2.version_id).expect("read").expect("v2");
        assert_eq!(stopped.status, VersionStatus::Active);
        assert!(!stopped.runs());
        assert!(store.runnable().expect("runnable").is_empty());
        assert_eq!(
            store.lookup(T, "proj_x", "a").expect("lookup"),
            Lookup::State {
                state: "5".into(),
                position: 5
            }
        );
    }
}
