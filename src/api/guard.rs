//! What every request passes before its handler, and what every response carries
//! (CONTRACT.md §11, "browsers cannot be used against the API"):
//!
//! - A `/v1` request that changes something must say `Content-Type: application/json`, else
//!   `415`: an HTML form or a `fetch` without a preflight can send only form and text types.
//! - With auth off (no principal; the server is loopback only), a request that changes
//!   something is `403` when a browser says it comes from another site: `Sec-Fetch-Site:
//!   cross-site`, or an `Origin` other than the service's own. The service's own origin is
//!   `http://` and the `Host` asked for, and only a loopback host counts, so a page whose
//!   name was made to resolve to 127.0.0.1 (DNS rebinding) is another site too.
//! - Every response says `nosniff`, may not be framed, and loads nothing from another origin.

use super::ApiError;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::future::{Either, MapOk, Ready, TryFutureExt};
use std::convert::Infallible;
use std::task::{Context, Poll};

const CONTENT_SECURITY_POLICY: &str =
    "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

/// The guard as a tower layer: a plain service around the router, no boxed future per
/// request (axum's `from_fn` middleware cost the trivial `/healthz` ~15% of its rate).
#[derive(Clone, Copy)]
pub struct GuardLayer {
    pub auth_enabled: bool,
}

impl<S> tower_layer::Layer<S> for GuardLayer {
    type Service = Guard<S>;
    fn layer(&self, inner: S) -> Guard<S> {
        Guard {
            inner,
            auth_enabled: self.auth_enabled,
        }
    }
}

#[derive(Clone)]
pub struct Guard<S> {
    inner: S,
    auth_enabled: bool,
}

type Secured<F> = MapOk<F, fn(Response) -> Response>;

impl<S> tower_service::Service<Request> for Guard<S>
where
    S: tower_service::Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<Ready<Result<Response, Infallible>>, Secured<S::Future>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        match admit(self.auth_enabled, &request) {
            Err(error) => Either::Left(futures::future::ready(Ok(secured(error.into_response())))),
            Ok(()) => {
                // A function, not a closure, so that the future's type stays nameable.
                let finish: fn(Response) -> Response = match super::is_api(request.uri().path()) {
                    true => finished_api,
                    false => finished_page,
                };
                Either::Right(self.inner.call(request).map_ok(finish))
            }
        }
    }
}

fn admit(auth_enabled: bool, request: &Request) -> Result<(), ApiError> {
    let changes = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if !changes {
        return Ok(());
    }
    let headers = request.headers();
    // Only a POST to a path that takes one changes anything in /v1 (any other is a 405 from
    // the router).
    if request.method() == Method::POST
        && super::POST_PATHS.contains(&request.uri().path())
        && !is_json(headers)
    {
        return Err(ApiError::UnsupportedMediaType(
            "a request that changes something is sent with Content-Type: application/json".into(),
        ));
    }
    if !auth_enabled {
        let cross_site = headers
            .get("sec-fetch-site")
            .is_some_and(|site| site.as_bytes().eq_ignore_ascii_case(b"cross-site"));
        let foreign_origin = headers
            .get(header::ORIGIN)
            .is_some_and(|origin| !own_origin(origin, headers.get(header::HOST)));
        if cross_site || foreign_origin {
            return Err(ApiError::Forbidden(
                "a request from another site may not change anything here (authentication is \
                 off, so only pages of this service may)"
                    .into(),
            ));
        }
    }
    Ok(())
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

/// Whether `origin` is this service as the request reached it, on a loopback host.
fn own_origin(origin: &HeaderValue, host: Option<&HeaderValue>) -> bool {
    let (Ok(origin), Some(Ok(host))) = (origin.to_str(), host.map(HeaderValue::to_str)) else {
        return false;
    };
    origin.strip_prefix("http://") == Some(host) && is_loopback_host(host)
}

fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn finished_api(response: Response) -> Response {
    secured(in_error_shape(response, false))
}

fn finished_page(response: Response) -> Response {
    secured(in_error_shape(response, true))
}

/// An error the framework answered rather than a handler (a path segment that is not UTF-8, a
/// method the path does not take, a body over the limit: plain text or nothing), in the §4
/// error body, or as an error page for a page.
fn in_error_shape(response: Response, page: bool) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let plain = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_none_or(|media| media.as_bytes().starts_with(b"text/plain"));
    if !plain {
        return response;
    }
    let allow = response.headers().get(header::ALLOW).cloned();
    let error = match status {
        StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed(
            "this path does not take that method (the Allow header names those it does)".into(),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge(format!(
            "the body is over the limit of {} bytes",
            super::BODY_BYTES_MAX
        )),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            ApiError::UnsupportedMediaType("the body is not of a type this path takes".into())
        }
        status if status.is_server_error() => {
            ApiError::Internal(format!("the framework answered {status}"))
        }
        _ => ApiError::BadQuery(
            "the path or the query does not read (a part that is not UTF-8 once decoded, or \
             a value out of range)"
                .into(),
        ),
    };
    let mut answer = match page {
        true => crate::web::PageError(error).into_response(),
        false => error.into_response(),
    };
    if let Some(allow) = allow {
        answer.headers_mut().insert(header::ALLOW, allow);
    }
    answer
}

fn secured(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_loopback_host_is_the_services_own_origin() {
        let own = |origin: &str, host: &str| {
            own_origin(
                &HeaderValue::from_str(origin).unwrap(),
                Some(&HeaderValue::from_str(host).unwrap()),
            )
        };
        assert!(own("http://127.0.0.1:8080", "127.0.0.1:8080"));
        assert!(own("http://localhost:8080", "localhost:8080"));
        assert!(own("http://[::1]:8080", "[::1]:8080"));
        assert!(!own("http://evil.example:8080", "127.0.0.1:8080"));
        assert!(!own("http://127.0.0.1:9999", "127.0.0.1:8080"));
        // A rebound name: Origin and Host agree, but the host is not loopback.
        assert!(!own("http://evil.example:8080", "evil.example:8080"));
        assert!(!own("null", "127.0.0.1:8080"));
        assert!(!own("https://127.0.0.1:8080", "127.0.0.1:8080"));
    }
}
