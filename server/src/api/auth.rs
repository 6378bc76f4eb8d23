//! `Authorization: Bearer <key>` → the tenant the key belongs to. Every tenant-scoped handler takes [`Authenticated`].

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::AppState;
use super::error::ApiError;
use crate::catalog::Tenant;

pub struct Authenticated(pub Tenant);

impl FromRequestParts<Arc<AppState>> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or_else(|| ApiError::unauthorized("send the API key as Authorization: Bearer <key>"))?;
        let key = header
            .to_str()
            .ok()
            .and_then(|value| {
                let (scheme, key) = value.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
            })
            .filter(|key| !key.is_empty())
            .ok_or_else(|| ApiError::unauthorized("the Authorization header must be \"Bearer <key>\""))?;
        match state.catalog.authenticate(key) {
            Ok(Some(tenant)) => {
                tracing::Span::current().record("tenant", tenant.name.as_str());
                Ok(Authenticated(tenant))
            }
            Ok(None) => Err(ApiError::unauthorized("unknown or revoked API key")),
            Err(error) => {
                tracing::error!(%error, "authenticate");
                Err(ApiError::internal())
            }
        }
    }
}
