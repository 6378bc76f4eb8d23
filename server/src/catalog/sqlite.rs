//! The catalog in `catalog.db` beside the shards. Written rarely (tenant and key commands, possibly from another
//! process while the server runs), read on every request through a small cache that is dropped whenever any
//! connection commits to the file, so a revoked key stops working on the very next request.

use std::collections::HashMap;
use std::path::Path;

use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, params};
use time::OffsetDateTime;

use super::api_key::{ApiKey, KeyHash, new_key_id};
use super::commit_watch::{CommitStamp, CommitWatch};
use super::{
    Catalog, CatalogError, IssuedKey, KeyInfo, MAX_TENANT_ID, Tenant, TenantId, TenantInfo, validate_tenant_name,
};
use crate::db::{self, Access, Durability};
use crate::time_util::{from_unix_micros, unix_micros};

pub const FILE_NAME: &str = "catalog.db";

const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
-- tenant_id is the tenant's number (rowid): dense, never reused (AUTOINCREMENT), at most 2^23 - 1.
CREATE TABLE tenants (
    tenant_id  INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);
CREATE TABLE api_keys (
    key_id     TEXT PRIMARY KEY,
    tenant_id  INTEGER NOT NULL REFERENCES tenants (tenant_id),
    key_hash   BLOB NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id);
"#];

/// Bounds the memory an attacker can pin by presenting many valid keys; real deployments have far fewer.
const AUTH_CACHE_CAPACITY: usize = 10_000;

pub struct SqliteCatalog {
    inner: Mutex<Inner>,
}

struct Inner {
    conn: Connection,
    /// Sees commits by other processes (`hapnd key revoke`); kept beside `conn`, which keeps the file it reads alive.
    commits: CommitWatch,
    /// The commit stamp when `auth_cache` was last known to be current.
    cached_stamp: Option<CommitStamp>,
    auth_cache: HashMap<KeyHash, Tenant>,
}

impl SqliteCatalog {
    /// Opens the catalog in `data_dir`, creating and migrating it when needed.
    pub fn open(data_dir: &Path, durability: Durability) -> Result<Self, CatalogError> {
        let path = data_dir.join(FILE_NAME);
        let mut conn = db::open(&path, Access::ReadWrite, durability)?;
        db::migrate(&mut conn, MIGRATIONS)?;
        let commits = CommitWatch::open(&path)?;
        Ok(SqliteCatalog {
            inner: Mutex::new(Inner {
                conn,
                commits,
                cached_stamp: None,
                auth_cache: HashMap::new(),
            }),
        })
    }

    /// Reads a layout setting, storing `default` the first time so it stays fixed for this data dir.
    pub fn setting_or_init(&self, key: &str, default: &str) -> Result<String, CatalogError> {
        let inner = self.inner.lock();
        inner.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
            params![key, default],
        )?;
        Ok(inner
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |row| row.get(0))?)
    }

    fn issue_key(conn: &Connection, tenant_id: i64, tenant: &str) -> Result<IssuedKey, CatalogError> {
        let api_key = ApiKey::generate();
        let key_id = new_key_id();
        conn.execute(
            "INSERT INTO api_keys (key_id, tenant_id, key_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![key_id, tenant_id, KeyHash::of(api_key.expose()).0, now_micros()],
        )?;
        Ok(IssuedKey {
            tenant: tenant.to_owned(),
            key_id,
            api_key,
        })
    }

    fn tenant_id(conn: &Connection, name: &str) -> Result<i64, CatalogError> {
        conn.query_row("SELECT tenant_id FROM tenants WHERE name = ?1", [name], |row| {
            row.get(0)
        })
        .optional()?
        .ok_or_else(|| CatalogError::UnknownTenant(name.to_owned()))
    }
}

impl Catalog for SqliteCatalog {
    fn authenticate(&self, api_key: &str) -> Result<Option<Tenant>, CatalogError> {
        let hash = KeyHash::of(api_key);
        let mut inner = self.inner.lock();
        // Unreadable counts as changed: the cache is then bypassed, never trusted.
        let stamp = inner.commits.stamp().ok();
        if stamp.is_none() || stamp != inner.cached_stamp {
            inner.auth_cache.clear();
            inner.cached_stamp = stamp;
        }
        if let Some(tenant) = inner.auth_cache.get(&hash) {
            return Ok(Some(tenant.clone()));
        }
        let found: Option<(i64, String)> = inner
            .conn
            .prepare_cached(
                "SELECT t.tenant_id, t.name FROM api_keys k JOIN tenants t USING (tenant_id)
                 WHERE k.key_hash = ?1 AND k.revoked_at IS NULL",
            )?
            .query_row([&hash.0[..]], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()?;
        let Some((id, name)) = found else {
            return Ok(None);
        };
        let id = u32::try_from(id)
            .ok()
            .filter(|id| *id <= MAX_TENANT_ID)
            .ok_or(CatalogError::Full)?;
        let tenant = Tenant { id: TenantId(id), name };
        if inner.auth_cache.len() >= AUTH_CACHE_CAPACITY {
            inner.auth_cache.clear();
        }
        inner.auth_cache.insert(hash, tenant.clone());
        Ok(Some(tenant))
    }

    fn create_tenant(&self, name: &str) -> Result<IssuedKey, CatalogError> {
        validate_tenant_name(name)?;
        let mut inner = self.inner.lock();
        let tx = inner.conn.transaction()?;
        let inserted = tx.execute(
            "INSERT INTO tenants (name, created_at) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
            params![name, now_micros()],
        )?;
        if inserted == 0 {
            return Err(CatalogError::TenantExists(name.to_owned()));
        }
        let tenant_id = tx.last_insert_rowid();
        if tenant_id > i64::from(MAX_TENANT_ID) {
            return Err(CatalogError::Full);
        }
        let issued = Self::issue_key(&tx, tenant_id, name)?;
        tx.commit()?;
        Ok(issued)
    }

    fn list_tenants(&self) -> Result<Vec<TenantInfo>, CatalogError> {
        let inner = self.inner.lock();
        let mut stmt = inner
            .conn
            .prepare("SELECT name, created_at FROM tenants ORDER BY tenant_id")?;
        let rows = stmt.query_map([], |row| {
            Ok(TenantInfo {
                name: row.get(0)?,
                created_at: from_unix_micros(row.get(1)?),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn create_key(&self, tenant: &str) -> Result<IssuedKey, CatalogError> {
        let mut inner = self.inner.lock();
        let tx = inner.conn.transaction()?;
        let tenant_id = Self::tenant_id(&tx, tenant)?;
        let issued = Self::issue_key(&tx, tenant_id, tenant)?;
        tx.commit()?;
        Ok(issued)
    }

    fn revoke_key(&self, key_id: &str) -> Result<(), CatalogError> {
        let inner = self.inner.lock();
        let changed = inner.conn.execute(
            "UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?2) WHERE key_id = ?1",
            params![key_id, now_micros()],
        )?;
        if changed == 0 {
            return Err(CatalogError::UnknownKey(key_id.to_owned()));
        }
        Ok(())
    }

    fn list_keys(&self, tenant: &str) -> Result<Vec<KeyInfo>, CatalogError> {
        let inner = self.inner.lock();
        let tenant_id = Self::tenant_id(&inner.conn, tenant)?;
        let mut stmt = inner.conn.prepare(
            "SELECT key_id, created_at, revoked_at FROM api_keys WHERE tenant_id = ?1 ORDER BY created_at, key_id",
        )?;
        let rows = stmt.query_map([tenant_id], |row| {
            Ok(KeyInfo {
                key_id: row.get(0)?,
                tenant: tenant.to_owned(),
                created_at: from_unix_micros(row.get(1)?),
                revoked_at: row.get::<_, Option<i64>>(2)?.map(from_unix_micros),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn tenant_count(&self) -> Result<u64, CatalogError> {
        let inner = self.inner.lock();
        Ok(inner
            .conn
            .query_row("SELECT count(*) FROM tenants", [], |row| row.get::<_, i64>(0))?
            .unsigned_abs())
    }
}

fn now_micros() -> i64 {
    unix_micros(OffsetDateTime::now_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> (tempfile::TempDir, SqliteCatalog) {
        let dir = tempfile::tempdir().expect("tempdir");
        let catalog = SqliteCatalog::open(dir.path(), Durability::Normal).expect("open");
        (dir, catalog)
    }

    #[test]
    fn keys_authenticate_their_tenant_until_revoked() {
        let (_dir, catalog) = catalog();
        let a = catalog.create_tenant("a").expect("a");
        let b = catalog.create_tenant("b").expect("b");
        let tenant_a = catalog.authenticate(a.api_key.expose()).expect("auth").expect("known");
        let tenant_b = catalog.authenticate(b.api_key.expose()).expect("auth").expect("known");
        assert_eq!(tenant_a.name, "a");
        assert_eq!(tenant_b.name, "b");
        assert_ne!(tenant_a.id, tenant_b.id);
        assert_eq!(catalog.authenticate("hpd_nope").expect("auth"), None);

        let second = catalog.create_key("a").expect("second key");
        assert_eq!(
            catalog.authenticate(second.api_key.expose()).expect("auth"),
            Some(tenant_a.clone())
        );
        catalog.revoke_key(&a.key_id).expect("revoke");
        assert_eq!(catalog.authenticate(a.api_key.expose()).expect("auth"), None);
        assert_eq!(
            catalog.authenticate(second.api_key.expose()).expect("auth"),
            Some(tenant_a)
        );
        assert!(matches!(
            catalog.revoke_key("key_missing"),
            Err(CatalogError::UnknownKey(_))
        ));
    }

    #[test]
    fn a_revocation_from_another_process_is_seen_on_the_next_request() {
        let (dir, server_side) = catalog();
        let issued = server_side.create_tenant("t").expect("tenant");
        assert!(
            server_side
                .authenticate(issued.api_key.expose())
                .expect("auth")
                .is_some()
        );
        // A second connection stands for the `hapnd key revoke` command run beside the server.
        let command_side = SqliteCatalog::open(dir.path(), Durability::Normal).expect("open");
        command_side.revoke_key(&issued.key_id).expect("revoke");
        assert_eq!(server_side.authenticate(issued.api_key.expose()).expect("auth"), None);
    }

    #[test]
    fn tenant_names_are_unique_and_valid() {
        let (_dir, catalog) = catalog();
        catalog.create_tenant("acme").expect("first");
        assert!(matches!(
            catalog.create_tenant("acme"),
            Err(CatalogError::TenantExists(_))
        ));
        assert!(matches!(
            catalog.create_tenant("Bad Name"),
            Err(CatalogError::InvalidTenantName(_))
        ));
        assert!(matches!(
            catalog.create_key("ghost"),
            Err(CatalogError::UnknownTenant(_))
        ));
        assert_eq!(catalog.tenant_count().expect("count"), 1);
        let keys = catalog.list_keys("acme").expect("keys");
        assert_eq!(keys.len(), 1);
        assert!(keys[0].revoked_at.is_none());
    }

    #[test]
    fn settings_keep_their_first_value() {
        let (_dir, catalog) = catalog();
        assert_eq!(catalog.setting_or_init("shards", "4").expect("init"), "4");
        assert_eq!(catalog.setting_or_init("shards", "8").expect("again"), "4");
    }
}
