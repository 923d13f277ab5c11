//! Principals (CONTRACT.md §4.1): bearer tokens matched by their SHA-256, roles, and the
//! country scope of a field office.

use super::error::ApiError;
use crate::app::App;
use crate::config::{Principal, Role};
use crate::domain::event::EventKind;
use crate::domain::ids::Country;
use crate::domain::validate::Parsed;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Who is calling. With auth off, every request is an anonymous admin.
#[derive(Clone, Debug)]
pub struct Caller {
    pub name: Option<String>,
    pub role: Role,
    /// `None`: every country.
    pub countries: Option<Vec<Country>>,
}

impl FromRequestParts<Arc<App>> for Caller {
    type Rejection = ApiError;

    /// A bearer token; or, for a request that changes nothing (`GET`, `HEAD`), the browser's
    /// session cookie. A `POST` to `/v1` never takes the cookie (CONTRACT.md §4.2).
    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Caller, ApiError> {
        if !app.config.auth_enabled() {
            return Ok(Caller::open());
        }
        if let Some(header) = parts.headers.get(axum::http::header::AUTHORIZATION) {
            let token = header
                .to_str()
                .ok()
                .and_then(|value| value.strip_prefix("Bearer "))
                .map(str::trim)
                .ok_or_else(|| {
                    ApiError::Unauthenticated(
                        "the Authorization header must be \"Bearer <token>\"".into(),
                    )
                })?;
            let principal = principal_with_token(app, token)
                .ok_or_else(|| ApiError::Unauthenticated("unknown token".into()))?;
            return Ok(Caller::of(principal));
        }
        let reads_only = matches!(
            parts.method,
            axum::http::Method::GET | axum::http::Method::HEAD
        );
        if reads_only {
            if let Some((_, session)) = crate::web::session_of(&parts.headers, app) {
                if let Some(principal) = principal_named(app, &session.principal) {
                    return Ok(Caller::of(principal));
                }
            }
        }
        Err(ApiError::Unauthenticated(
            "an Authorization: Bearer <token> header is required".into(),
        ))
    }
}

/// The configured principal whose token this is.
pub fn principal_with_token<'a>(app: &'a App, token: &str) -> Option<&'a Principal> {
    let digest = hex::encode(Sha256::digest(token.as_bytes()));
    app.config
        .principals
        .iter()
        .find(|principal| crate::web::session::same_secret(&principal.token_sha256, &digest))
}

/// The configured principal of this name (a session's).
pub fn principal_named<'a>(app: &'a App, name: &str) -> Option<&'a Principal> {
    app.config
        .principals
        .iter()
        .find(|principal| principal.name == name)
}

impl Caller {
    /// With auth off, every request acts as an admin (loopback only).
    pub fn open() -> Caller {
        Caller {
            name: None,
            role: Role::Admin,
            countries: None,
        }
    }

    pub fn of(principal: &Principal) -> Caller {
        Caller {
            name: Some(principal.name.clone()),
            role: principal.role,
            countries: (principal.role == Role::FieldOffice).then(|| principal.countries.clone()),
        }
    }

    pub fn sees(&self, country: &Country) -> bool {
        self.countries
            .as_ref()
            .is_none_or(|countries| countries.contains(country))
    }

    pub fn require_country(&self, country: &Country) -> Result<(), ApiError> {
        if self.sees(country) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "{} may not read or write Actions in {country}",
                self.display_name()
            )))
        }
    }

    pub fn require_reviewer(&self) -> Result<(), ApiError> {
        match self.role {
            Role::Evaluator | Role::Admin => Ok(()),
            Role::FieldOffice => Err(ApiError::Forbidden(
                "only evaluators and admins may do this".into(),
            )),
        }
    }

    fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or("this caller")
    }

    /// May this caller submit this event? (`review.completed` was refused before, as a type.)
    /// A retraction follows its target's rights (CONTRACT.md §11): `target_type` is the type of
    /// the event it withdraws, when that is known (in the log, or earlier in the same body).
    pub fn may_submit(&self, parsed: &Parsed, target_type: Option<&str>) -> Result<(), ApiError> {
        if self.role == Role::FieldOffice {
            self.require_country(&parsed.envelope.country)?;
        }
        let event_type = parsed.envelope.event_type.as_str();
        if !self.role.may_submit(event_type) {
            return Err(ApiError::Forbidden(format!(
                "{} ({}) may not submit {event_type} events",
                self.display_name(),
                self.role.label()
            )));
        }
        if let (EventKind::Retracted { .. }, Some(target_type)) = (&parsed.kind, target_type) {
            if !self.role.may_retract(target_type) {
                return Err(ApiError::Forbidden(format!(
                    "{} ({}) may not retract a {target_type} event: only a role that may submit \
                     that type may withdraw it",
                    self.display_name(),
                    self.role.label()
                )));
            }
        }
        Ok(())
    }
}
