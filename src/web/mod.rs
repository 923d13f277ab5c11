//! The pages people meet (CONTRACT.md §4.2, §4.3): server-rendered HTML from askama templates
//! (`templates/`, escaping by default), one base layout, a stylesheet and one script (the forms'
//! outbox, `outbox.js`: every page works without it) served here, no asset from another origin. Sign-in gives a browser a server-held session; a page without
//! one answers `303` to `/login`.

mod compare;
mod error;
mod form;
pub mod known_reviews;
mod login;
mod pages;
mod rejections;
mod reviews;
pub mod session;
pub mod submit;
pub mod words;

pub use error::PageError;

use crate::api::{ApiError, Caller};
use crate::app::App;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use session::Session;
use std::sync::Arc;

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/", get(pages::index))
        .route("/actions/{id}", get(pages::action))
        .route("/actions/{id}/compare", get(compare::page))
        .route("/reviews", get(reviews::list).post(reviews::run))
        .route("/reviews/{id}", get(reviews::one))
        .route("/rejections", get(rejections::page))
        .route("/submit", get(submit::page).post(submit::post))
        .route("/login", get(login::form).post(login::sign_in))
        .route("/logout", post(login::sign_out))
        .route("/style.css", get(stylesheet))
        .route("/outbox.js", get(outbox_script))
}

/// The browser's live session and its id, from the `impact_session` cookie.
pub fn session_of(headers: &axum::http::HeaderMap, app: &App) -> Option<(String, Session)> {
    let header = headers.get(header::COOKIE)?.to_str().ok()?;
    let id = session::cookie(header, session::COOKIE)?;
    let session = app.sessions.get(id, now(app))?;
    Some((id.to_owned(), session))
}

/// The time sessions are held to. A test build can move it ahead: a file `fault-clock-ahead-s`
/// in the data directory holding a number of seconds (src/store/fault.rs has the store's fault
/// points), so a test sees a session expire without waiting hours.
pub fn now(app: &App) -> chrono::DateTime<chrono::Utc> {
    let now = chrono::Utc::now();
    #[cfg(feature = "fault-injection")]
    if let Ok(text) = std::fs::read_to_string(app.config.data_dir.join("fault-clock-ahead-s")) {
        if let Ok(seconds) = text.trim().parse::<i64>() {
            return now + chrono::Duration::seconds(seconds);
        }
    }
    #[cfg(not(feature = "fault-injection"))]
    let _ = app;
    now
}

/// What every page's layout shows: who is signed in (and how to sign out), and the CSRF token
/// its forms carry.
#[derive(Clone, Default)]
pub struct Chrome {
    pub signed_in: Option<String>,
    pub csrf: String,
    /// Links to the reviews and the rejections (evaluators and admins).
    pub reviewer: bool,
}

/// The caller of a page: from the session cookie (or a bearer token, for scripts), or, without
/// one, a redirect to the sign-in page that comes back here.
pub struct PageCaller {
    pub caller: Caller,
    pub chrome: Chrome,
}

impl FromRequestParts<Arc<App>> for PageCaller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<PageCaller, Response> {
        if !app.config.auth_enabled() {
            return Ok(PageCaller {
                caller: Caller::open(),
                chrome: Chrome {
                    signed_in: None,
                    csrf: app.open_csrf.clone(),
                    reviewer: true,
                },
            });
        }
        if let Some((caller, chrome)) = signed_in(&parts.headers, app) {
            return Ok(PageCaller { caller, chrome });
        }
        if parts.headers.contains_key(header::AUTHORIZATION) {
            let caller = Caller::from_request_parts(parts, app)
                .await
                .map_err(IntoResponse::into_response)?;
            return Ok(PageCaller {
                chrome: Chrome {
                    signed_in: None,
                    csrf: String::new(),
                    reviewer: caller.require_reviewer().is_ok(),
                },
                caller,
            });
        }
        let next = parts.uri.path_and_query().map_or("/", |path| path.as_str());
        Err(Redirect::to(&format!("/login?next={}", words::url_encode(next))).into_response())
    }
}

/// The browser's signed-in principal, from its session cookie, and the chrome its pages show.
fn signed_in(headers: &axum::http::HeaderMap, app: &App) -> Option<(Caller, Chrome)> {
    let (_, session) = session_of(headers, app)?;
    let principal = crate::api::auth::principal_named(app, &session.principal)?;
    Some((
        Caller::of(principal),
        Chrome {
            signed_in: Some(format!("{} ({})", principal.name, principal.role.label())),
            csrf: session.csrf.clone(),
            reviewer: principal.role != crate::domain::rights::Role::FieldOffice,
        },
    ))
}

/// Gives an error page the chrome of the browser's session (who is signed in, the way to sign
/// out), which the error itself does not know: the page is drawn again with it.
pub async fn error_chrome(
    axum::extract::State(app): axum::extract::State<Arc<App>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    // Only the cookie is kept: the session is looked up only when the answer is an error page.
    let mut cookie = axum::http::HeaderMap::new();
    if let Some(value) = request.headers().get(header::COOKIE) {
        cookie.insert(header::COOKIE, value.clone());
    }
    let mut response = next.run(request).await;
    let Some(drawn) = response.extensions_mut().remove::<error::Drawn>() else {
        return response;
    };
    match signed_in(&cookie, &app) {
        Some((_, chrome)) => drawn.with(chrome),
        None => response,
    }
}

/// A page, or the error page for what went wrong (in words, with its status).
pub fn render(template: impl askama::Template) -> Result<Html<String>, ApiError> {
    template
        .render()
        .map(Html)
        .map_err(|e| ApiError::Internal(format!("render a page: {e}")))
}

const STYLE: &str = include_str!("style.css");
const OUTBOX: &str = include_str!("outbox.js");

/// The forms' outbox for poor connections (progressive enhancement: every form works without
/// it), served by the service like the stylesheet.
async fn outbox_script() -> impl IntoResponse {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        OUTBOX,
    )
}

/// The pages' stylesheet, served by the service (the Content-Security-Policy allows no inline
/// style and no other origin).
async fn stylesheet() -> impl IntoResponse {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        STYLE,
    )
}
