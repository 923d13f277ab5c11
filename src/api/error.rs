//! API errors and the one place they become HTTP statuses (CONTRACT.md §4).

use crate::bus::BusError;
use crate::domain::validate::{Rejection, RejectionCode};
use crate::store::StoreError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// One or more events of a body were rejected: `(index, rejection)`; nothing was stored.
    #[error("rejected")]
    Rejected(Vec<(usize, Rejection)>),
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    #[error("payload too large: {0}")]
    PayloadTooLarge(String),
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    #[error("bad query: {0}")]
    BadQuery(String),
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// A form post without its session's CSRF token (CONTRACT.md §4.2).
    #[error("csrf: {0}")]
    Csrf(String),
    /// One event of a body that the caller may not submit (named, so a client can set it
    /// aside and send the rest); nothing of the body was stored.
    #[error("forbidden: event {index}: {message}")]
    ForbiddenEvent { index: usize, message: String },
    #[error("not found: {0}")]
    NotFound(String),
    /// A method the path does not take (`405`); the `Allow` header names those it does.
    #[error("method not allowed: {0}")]
    MethodNotAllowed(String),
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("internal: {0}")]
    Internal(String),
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        ApiError::Internal(error.to_string())
    }
}

impl From<crate::exports::ExportError> for ApiError {
    fn from(error: crate::exports::ExportError) -> ApiError {
        match error {
            crate::exports::ExportError::Store(error) => ApiError::from(error),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<BusError> for ApiError {
    fn from(error: BusError) -> ApiError {
        match error {
            BusError::Rejected(failures) => ApiError::Rejected(failures),
            BusError::Unavailable(message) => ApiError::Unavailable(message),
            BusError::Internal(message) => ApiError::Internal(message),
        }
    }
}

pub fn rejection_status(code: RejectionCode) -> StatusCode {
    match code {
        RejectionCode::MalformedJson => StatusCode::BAD_REQUEST,
        RejectionCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        RejectionCode::EventIdConflict => StatusCode::CONFLICT,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

impl ApiError {
    fn status_and_body(&self) -> (StatusCode, Value) {
        let simple = |status: StatusCode, code: &str, message: &str| {
            (
                status,
                json!({"error": {"code": code, "message": message, "details": []}}),
            )
        };
        match self {
            ApiError::Rejected(failures) => {
                let codes: Vec<RejectionCode> = failures.iter().map(|(_, r)| r.code).collect();
                let first = codes
                    .first()
                    .copied()
                    .unwrap_or(RejectionCode::SchemaViolation);
                // One code throughout keeps its own status; a mix of codes is a 422.
                let status = if codes.iter().all(|code| *code == first) {
                    rejection_status(first)
                } else {
                    StatusCode::UNPROCESSABLE_ENTITY
                };
                let mut details = Vec::new();
                for (index, rejection) in failures {
                    if rejection.details.is_empty() {
                        details.push(json!({"index": index, "code": rejection.code, "message": rejection.message}));
                    }
                    for detail in &rejection.details {
                        let mut entry = json!({"index": index, "code": rejection.code, "message": detail.message});
                        if let Some(path) = &detail.path {
                            entry["path"] = json!(path);
                        }
                        details.push(entry);
                    }
                }
                let message = match failures.as_slice() {
                    [(index, rejection)] => format!("event {index}: {}", rejection.message),
                    _ => format!(
                        "{} events were rejected; nothing was stored",
                        failures.len()
                    ),
                };
                (
                    status,
                    json!({"error": {"code": first, "message": message, "details": details}}),
                )
            }
            ApiError::MalformedJson(message) => {
                simple(StatusCode::BAD_REQUEST, "malformed_json", message)
            }
            ApiError::PayloadTooLarge(message) => {
                simple(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
            }
            ApiError::BadQuery(message) => simple(StatusCode::BAD_REQUEST, "bad_query", message),
            ApiError::UnsupportedMediaType(message) => simple(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                message,
            ),
            ApiError::Unauthenticated(message) => {
                simple(StatusCode::UNAUTHORIZED, "unauthenticated", message)
            }
            ApiError::Forbidden(message) => simple(StatusCode::FORBIDDEN, "forbidden", message),
            ApiError::Csrf(message) => simple(StatusCode::FORBIDDEN, "csrf", message),
            ApiError::ForbiddenEvent { index, message } => (
                StatusCode::FORBIDDEN,
                json!({"error": {"code": "forbidden", "message": format!("event {index}: {message}"),
                    "details": [{"index": index, "code": "forbidden", "message": message}]}}),
            ),
            ApiError::NotFound(message) => simple(StatusCode::NOT_FOUND, "not_found", message),
            ApiError::MethodNotAllowed(message) => simple(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                message,
            ),
            ApiError::Unavailable(message) => {
                simple(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
            }
            ApiError::Internal(message) => {
                tracing::error!(%message, "request failed");
                simple(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; see the service log",
                )
            }
        }
    }
}

impl ApiError {
    /// The status, the code and the message of the error body, for a page that shows them.
    pub fn parts(&self) -> (StatusCode, String, String) {
        let (status, body) = self.status_and_body();
        let text = |key: &str| body["error"][key].as_str().unwrap_or_default().to_owned();
        (status, text("code"), text("message"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = self.status_and_body();
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert("WWW-Authenticate", "Bearer".parse().expect("static header"));
        }
        response
    }
}
