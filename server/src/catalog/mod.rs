//! The catalog: tenants and their API keys. It decides who a request is; the event store only ever sees a
//! [`TenantId`].

mod api_key;
mod commit_watch;
pub mod sqlite;

pub use api_key::{ApiKey, KeyHash};

use time::OffsetDateTime;

/// A tenant's number: dense, assigned at creation, never reused. Stores use it to keep tenants apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(pub u32);

/// The highest tenant number; stores may pack it into 23 bits.
pub const MAX_TENANT_ID: u32 = (1 << 23) - 1;

/// An authenticated tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
}

/// A tenant as listed by the operator tools.
#[derive(Debug, Clone)]
pub struct TenantInfo {
    pub name: String,
    pub created_at: OffsetDateTime,
}

/// An API key as listed by the operator tools; the key itself is never stored, only its hash.
#[derive(Debug, Clone)]
pub struct KeyInfo {
    pub key_id: String,
    pub tenant: String,
    pub created_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
}

/// A freshly made key: the only moment the secret exists outside the client.
#[derive(Debug, Clone)]
pub struct IssuedKey {
    pub tenant: String,
    pub key_id: String,
    pub api_key: ApiKey,
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(
        "tenant name {0:?} is invalid: use 1-63 characters from a-z, 0-9, '_' and '-', starting with a letter or digit"
    )]
    InvalidTenantName(String),
    #[error("tenant {0:?} already exists")]
    TenantExists(String),
    #[error("tenant {0:?} does not exist")]
    UnknownTenant(String),
    #[error("api key {0:?} does not exist")]
    UnknownKey(String),
    #[error("the catalog is full ({MAX_TENANT_ID} tenants)")]
    Full,
    #[error("catalog database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error(transparent)]
    Migration(#[from] crate::db::MigrationError),
    #[error("watch the catalog for commits: {0}")]
    CommitWatch(#[from] std::io::Error),
}

/// Tenants and keys. Every method is quick (an indexed lookup at most), so callers may use it from async code.
pub trait Catalog: Send + Sync + 'static {
    /// The tenant an API key belongs to; `None` for an unknown or revoked key.
    fn authenticate(&self, api_key: &str) -> Result<Option<Tenant>, CatalogError>;
    fn create_tenant(&self, name: &str) -> Result<IssuedKey, CatalogError>;
    fn list_tenants(&self) -> Result<Vec<TenantInfo>, CatalogError>;
    fn create_key(&self, tenant: &str) -> Result<IssuedKey, CatalogError>;
    fn revoke_key(&self, key_id: &str) -> Result<(), CatalogError>;
    fn list_keys(&self, tenant: &str) -> Result<Vec<KeyInfo>, CatalogError>;
    fn tenant_count(&self) -> Result<u64, CatalogError>;
}

/// Tenant names appear in commands, logs and (later) URLs, so they are kept to a safe, lowercase alphabet.
pub fn validate_tenant_name(name: &str) -> Result<(), CatalogError> {
    let bytes = name.as_bytes();
    let valid = !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_lowercase() | bytes[0].is_ascii_digit()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_' || *b == b'-');
    if valid {
        Ok(())
    } else {
        Err(CatalogError::InvalidTenantName(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_names() {
        for ok in ["default", "acme", "a", "team-42", "x_y", "0day"] {
            assert!(validate_tenant_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Acme", "-x", "_x", "a b", "a/b", &"a".repeat(64), "é"] {
            assert!(validate_tenant_name(bad).is_err(), "{bad}");
        }
    }
}
