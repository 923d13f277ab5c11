//! A page that cannot be shown answers with a page too: what went wrong in words, with the
//! status of CONTRACT.md §4 and its code, never a JSON body in a browser tab.

use super::render;
use crate::api::ApiError;
use askama::Template;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// An [`ApiError`] met while making a page.
pub struct PageError(pub ApiError);

impl From<ApiError> for PageError {
    fn from(error: ApiError) -> PageError {
        PageError(error)
    }
}

#[derive(Template, Clone)]
#[template(path = "error.html")]
struct ErrorPage {
    chrome: super::Chrome,
    heading: &'static str,
    message: String,
    code: String,
    status: u16,
    /// "Sign in as someone else" where a sign-in could help.
    sign_in: bool,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, code, message) = self.0.parts();
        let heading = match status {
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::FORBIDDEN if code == "csrf" => "This form has expired",
            StatusCode::FORBIDDEN => "You may not open this",
            StatusCode::UNAUTHORIZED => "Sign in first",
            StatusCode::BAD_REQUEST => "That request did not read",
            StatusCode::SERVICE_UNAVAILABLE => "The service cannot do this just now",
            _ => "Something went wrong",
        };
        let page = ErrorPage {
            chrome: super::Chrome::default(),
            heading,
            sign_in: matches!(status, StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED)
                && code != "csrf",
            message,
            code,
            status: status.as_u16(),
        };
        let drawn = Drawn { page, status };
        let mut response = drawn.clone().with(super::Chrome::default());
        // For `error_chrome`, which knows the session and draws it again with its chrome.
        response.extensions_mut().insert(drawn);
        response
    }
}

/// An error page as drawn, kept on its response so that it can be drawn again with the
/// browser's chrome.
#[derive(Clone)]
pub struct Drawn {
    page: ErrorPage,
    status: StatusCode,
}

impl Drawn {
    pub fn with(mut self, chrome: super::Chrome) -> Response {
        self.page.chrome = chrome;
        match render(self.page) {
            Ok(html) => (self.status, html).into_response(),
            Err(error) => error.into_response(),
        }
    }
}
