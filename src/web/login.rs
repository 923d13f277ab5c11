//! `/login` and `/logout` (CONTRACT.md §4.2).

use super::{render, session, session_of, Chrome};
use crate::api::auth::principal_with_token;
use crate::api::ApiError;
use crate::api::Query;
use crate::app::App;
use askama::Template;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;
use std::sync::Arc;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    chrome: Chrome,
    next: String,
    error: Option<String>,
}

/// Where to go after signing in: a path of this service, never another site.
fn local_path(next: Option<&str>) -> String {
    match next {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.contains('\\')
                && !path.chars().any(char::is_control) =>
        {
            path.to_owned()
        }
        _ => "/".to_owned(),
    }
}

fn page(next: String, error: Option<String>, status: StatusCode) -> Result<Response, ApiError> {
    let chrome = Chrome {
        signed_in: None,
        csrf: String::new(),
        reviewer: false,
    };
    Ok((
        status,
        render(LoginPage {
            chrome,
            next,
            error,
        })?,
    )
        .into_response())
}

pub async fn form(State(app): State<Arc<App>>, query: Query) -> Result<Response, ApiError> {
    let next = local_path(query.get("next").map(String::as_str));
    if !app.config.auth_enabled() {
        // No principal, no sign-in: every page is open (loopback only).
        return Ok(Redirect::to(&next).into_response());
    }
    page(next, None, StatusCode::OK)
}

#[derive(Deserialize)]
pub struct SignIn {
    #[serde(default)]
    token: String,
    next: Option<String>,
}

pub async fn sign_in(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Form(form): Form<SignIn>,
) -> Result<Response, ApiError> {
    let next = local_path(form.next.as_deref());
    if !app.config.auth_enabled() {
        return Ok(Redirect::to(&next).into_response());
    }
    // A sign-in posted from another site would sign the browser in as someone else.
    if from_another_site(&headers) {
        return Err(ApiError::Forbidden(
            "a sign-in must come from this service's own page".into(),
        ));
    }
    let Some(principal) = principal_with_token(&app, form.token.trim()) else {
        return page(
            next,
            Some("That token is not one this service knows. Check it and try again.".into()),
            StatusCode::UNAUTHORIZED,
        );
    };
    let (id, _) = app.sessions.create(&principal.name, super::now(&app));
    with_cookie(&app, Redirect::to(&next), &id, app.sessions.lifetime_secs())
}

/// `redirect` setting the session cookie to `value` for `max_age` seconds (0 ends it), with
/// the attributes of CONTRACT.md §4.2.
fn with_cookie(
    app: &App,
    redirect: Redirect,
    value: &str,
    max_age: i64,
) -> Result<Response, ApiError> {
    let secure = if app.config.cookie_secure {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}",
        session::COOKIE
    );
    let mut response = redirect.into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|e| ApiError::Internal(e.to_string()))?,
    );
    Ok(response)
}

/// `Origin` or `Sec-Fetch-Site` says the form was posted from another site.
fn from_another_site(headers: &HeaderMap) -> bool {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if text("sec-fetch-site") == Some("cross-site") {
        return true;
    }
    match (text("origin"), text("host")) {
        (Some(origin), Some(host)) => {
            origin != format!("http://{host}") && origin != format!("https://{host}")
        }
        _ => false,
    }
}

#[derive(Deserialize)]
pub struct SignOut {
    #[serde(default)]
    csrf: String,
}

pub async fn sign_out(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Form(form): Form<SignOut>,
) -> Result<Response, ApiError> {
    let session = session_of(&headers, &app);
    let expected = match &session {
        Some((_, session)) => session.csrf.clone(),
        None if !app.config.auth_enabled() => app.open_csrf.clone(),
        // Not signed in: nothing to end.
        None => return Ok(Redirect::to("/login").into_response()),
    };
    super::form::check_csrf(&form.csrf, &expected)?;
    let Some((id, _)) = session else {
        return Ok(Redirect::to("/").into_response());
    };
    app.sessions.end(&id);
    with_cookie(&app, Redirect::to("/login"), "", 0)
}

#[cfg(test)]
mod tests {
    use super::local_path;

    #[test]
    fn after_sign_in_only_this_service_s_paths() {
        assert_eq!(
            local_path(Some("/actions/X?as_of=2019-01-01")),
            "/actions/X?as_of=2019-01-01"
        );
        for outside in [
            "https://evil.example/",
            "//evil.example/",
            "/\\evil",
            "javascript:x",
            "",
        ] {
            assert_eq!(local_path(Some(outside)), "/", "{outside}");
        }
        assert_eq!(local_path(None), "/");
    }
}
