//! `hapnd tenant ...` and `hapnd key ...`: catalog changes made directly in the data dir. They are safe while the
//! server runs: SQLite serialises the writes and the server notices them on its next request.

use std::path::Path;

use anyhow::Context;
use hapnd_server::catalog::sqlite::SqliteCatalog;
use hapnd_server::catalog::{Catalog, IssuedKey};
use hapnd_server::db::Durability;
use hapnd_server::time_util::rfc3339;
use serde_json::json;

fn open(data_dir: &Path) -> anyhow::Result<SqliteCatalog> {
    std::fs::create_dir_all(data_dir).with_context(|| format!("create data dir {}", data_dir.display()))?;
    SqliteCatalog::open(data_dir, Durability::Full).with_context(|| format!("open catalog in {}", data_dir.display()))
}

fn print_issued(issued: &IssuedKey, json: bool) {
    if json {
        println!(
            "{}",
            json!({"tenantId": issued.tenant, "keyId": issued.key_id, "apiKey": issued.api_key.expose()})
        );
    } else {
        println!("tenant:  {}", issued.tenant);
        println!("key id:  {}", issued.key_id);
        println!("api key: {}", issued.api_key.expose());
        println!("The key is shown only this once; store it now.");
    }
}

pub fn create_tenant(data_dir: &Path, name: &str, json: bool) -> anyhow::Result<()> {
    let issued = open(data_dir)?.create_tenant(name)?;
    print_issued(&issued, json);
    Ok(())
}

pub fn list_tenants(data_dir: &Path, json: bool) -> anyhow::Result<()> {
    let tenants = open(data_dir)?.list_tenants()?;
    if json {
        let list: Vec<_> = tenants
            .iter()
            .map(|t| json!({"tenantId": t.name, "createdAt": rfc3339(t.created_at)}))
            .collect();
        println!("{}", serde_json::Value::from(list));
    } else {
        for tenant in tenants {
            println!("{}\t{}", tenant.name, rfc3339(tenant.created_at));
        }
    }
    Ok(())
}

pub fn create_key(data_dir: &Path, tenant: &str, json: bool) -> anyhow::Result<()> {
    let issued = open(data_dir)?.create_key(tenant)?;
    print_issued(&issued, json);
    Ok(())
}

pub fn revoke_key(data_dir: &Path, key_id: &str, json: bool) -> anyhow::Result<()> {
    open(data_dir)?.revoke_key(key_id)?;
    if json {
        println!("{}", json!({"keyId": key_id, "revoked": true}));
    } else {
        println!("revoked {key_id}");
    }
    Ok(())
}

pub fn list_keys(data_dir: &Path, tenant: &str, json: bool) -> anyhow::Result<()> {
    let keys = open(data_dir)?.list_keys(tenant)?;
    if json {
        let list: Vec<_> = keys
            .iter()
            .map(|k| {
                json!({"keyId": k.key_id, "tenantId": k.tenant, "createdAt": rfc3339(k.created_at),
                       "revokedAt": k.revoked_at.map(rfc3339)})
            })
            .collect();
        println!("{}", serde_json::Value::from(list));
    } else {
        for key in keys {
            let state = key
                .revoked_at
                .map_or_else(|| "active".to_owned(), |at| format!("revoked {}", rfc3339(at)));
            println!("{}\t{}\t{}", key.key_id, rfc3339(key.created_at), state);
        }
    }
    Ok(())
}
