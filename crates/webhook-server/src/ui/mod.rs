//! The dashboard at `/ui`: one page (HTML, JavaScript and CSS embedded in the binary) that
//! reads and acts through the admin API only.
//!
//! Off without `--ops-token`. The login form takes the token and starts a session
//! ([`session`]); the page then calls `/admin/*` with the session cookie and echoes its
//! CSRF token on every changing request. Every page is served with a strict
//! Content-Security-Policy: nothing inline, nothing from another origin.

pub mod session;

use std::time::Duration;

use bytes::Bytes;
use http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, HeaderValue, LOCATION, SET_COOKIE,
};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use webhook_core::ResponseBody;
use webhook_core::response::json;

use crate::server::{OpsToken, ServerOptions};
pub use session::Sessions;

const APP_HTML: &str = include_str!("assets/app.html");
const LOGIN_HTML: &str = include_str!("assets/login.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

/// Scripts, styles, images and connections from this origin only; no frames, no plugins,
/// forms post only here.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Largest login form read.
const MAX_FORM_BYTES: usize = 4096;
/// A wrong token waits this long before the answer (slows guessing).
const WRONG_TOKEN_DELAY: Duration = Duration::from_millis(250);

/// The paths under `/ui`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UiRoute {
    /// `/ui` or `/ui/`: the dashboard, or the login form without a session.
    Page,
    /// `/ui/login`.
    Login,
    /// `/ui/logout`.
    Logout,
    /// `/ui/app.js`.
    Script,
    /// `/ui/app.css`.
    Style,
    /// Anything else under `/ui/`.
    Unknown,
}

impl UiRoute {
    /// The route of `path` when it is `/ui` or under `/ui/`.
    pub fn parse(path: &str) -> Option<Self> {
        let rest = path.strip_prefix("/ui")?;
        Some(match rest {
            "" | "/" => Self::Page,
            "/login" => Self::Login,
            "/logout" => Self::Logout,
            "/app.js" => Self::Script,
            "/app.css" => Self::Style,
            _ if rest.starts_with('/') => Self::Unknown,
            _ => return None,
        })
    }
}

/// Answer a request to `/ui…` (the caller has checked the ops token is set and the peer
/// is allowed).
pub async fn answer(
    options: &ServerOptions,
    token: &OpsToken,
    route: UiRoute,
    request: Request<Incoming>,
) -> Response<ResponseBody> {
    let method = request.method().clone();
    match (route, method) {
        (UiRoute::Page, Method::GET) => match options.sessions.csrf_of(request.headers()) {
            Some(csrf) => page(StatusCode::OK, &APP_HTML.replace("{{csrf}}", &csrf)),
            None => page(StatusCode::OK, &LOGIN_HTML.replace("{{error}}", "")),
        },
        (UiRoute::Login, Method::POST) => login(options, token, request).await,
        (UiRoute::Logout, Method::POST) => logout(options, request.headers()),
        (UiRoute::Script, Method::GET) => asset("text/javascript; charset=utf-8", APP_JS),
        (UiRoute::Style, Method::GET) => asset("text/css; charset=utf-8", APP_CSS),
        (UiRoute::Page | UiRoute::Script | UiRoute::Style, _) => json(
            StatusCode::METHOD_NOT_ALLOWED,
            webhook_core::response::METHOD_NOT_ALLOWED,
        ),
        (UiRoute::Login | UiRoute::Logout, _) => json(
            StatusCode::METHOD_NOT_ALLOWED,
            webhook_core::response::METHOD_NOT_ALLOWED,
        ),
        (UiRoute::Unknown, _) => json(StatusCode::NOT_FOUND, webhook_core::response::NO_ROUTE),
    }
}

/// `POST /ui/login` (form field `token`): a session cookie and back to `/ui`, or the
/// form again with the reason.
async fn login(
    options: &ServerOptions,
    token: &OpsToken,
    request: Request<Incoming>,
) -> Response<ResponseBody> {
    if crate::server::is_cross_site(request.headers()) {
        return login_refused(StatusCode::FORBIDDEN, "Cross-site login refused.");
    }
    let body = match Limited::new(request.into_body(), MAX_FORM_BYTES)
        .collect()
        .await
    {
        Ok(body) => body.to_bytes(),
        Err(_) => return login_refused(StatusCode::BAD_REQUEST, "The form could not be read."),
    };
    let given = form_urlencoded::parse(&body)
        .find(|(key, _)| key == "token")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default();
    if !token.matches(&given) {
        tracing::warn!(target: "webhook::admin", "dashboard login refused: wrong token");
        tokio::time::sleep(WRONG_TOKEN_DELAY).await;
        return login_refused(StatusCode::UNAUTHORIZED, "Wrong token.");
    }
    let Some(session) = options.sessions.create() else {
        tracing::error!("dashboard login: the system's random source failed");
        return login_refused(
            StatusCode::SERVICE_UNAVAILABLE,
            "No session could be started (the server log says why).",
        );
    };
    tracing::info!(target: "webhook::admin", "dashboard login");
    let mut response = redirect("/ui");
    if let Ok(cookie) = HeaderValue::from_str(&session::set_cookie(&session.id)) {
        response.headers_mut().insert(SET_COOKIE, cookie);
    }
    response
}

/// `POST /ui/logout`: ends the session (with its CSRF token) and back to the login form.
fn logout(options: &ServerOptions, headers: &HeaderMap) -> Response<ResponseBody> {
    match options.sessions.csrf_of(headers) {
        Some(csrf) if session::csrf_matches(&csrf, headers) => options.sessions.end(headers),
        Some(_) => return json(StatusCode::FORBIDDEN, crate::server::CSRF_REFUSED),
        None => {}
    }
    let mut response = redirect("/ui");
    if let Ok(cookie) = HeaderValue::from_str(&session::clear_cookie()) {
        response.headers_mut().insert(SET_COOKIE, cookie);
    }
    response
}

fn login_refused(status: StatusCode, reason: &str) -> Response<ResponseBody> {
    let error = format!("<p class=\"error\" role=\"alert\">{reason}</p>");
    page(status, &LOGIN_HTML.replace("{{error}}", &error))
}

fn redirect(to: &'static str) -> Response<ResponseBody> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SEE_OTHER;
    response
        .headers_mut()
        .insert(LOCATION, HeaderValue::from_static(to));
    secure(response.headers_mut());
    response
}

fn page(status: StatusCode, html: &str) -> Response<ResponseBody> {
    let mut response = Response::new(Full::new(Bytes::from(html.to_owned())));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    secure(headers);
    response
}

fn asset(content_type: &'static str, text: &'static str) -> Response<ResponseBody> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    secure(headers);
    response
}

/// The headers every dashboard answer carries.
fn secure(headers: &mut HeaderMap) {
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
}

#[cfg(test)]
mod tests {
    use super::UiRoute;

    #[test]
    fn ui_paths() {
        assert_eq!(UiRoute::parse("/ui"), Some(UiRoute::Page));
        assert_eq!(UiRoute::parse("/ui/"), Some(UiRoute::Page));
        assert_eq!(UiRoute::parse("/ui/login"), Some(UiRoute::Login));
        assert_eq!(UiRoute::parse("/ui/app.js"), Some(UiRoute::Script));
        assert_eq!(UiRoute::parse("/ui/x"), Some(UiRoute::Unknown));
        assert_eq!(UiRoute::parse("/uix"), None);
        assert_eq!(UiRoute::parse("/webhook/ui"), None);
    }

    #[test]
    fn the_page_loads_nothing_from_elsewhere() {
        for text in [
            super::APP_HTML,
            super::LOGIN_HTML,
            super::APP_JS,
            super::APP_CSS,
        ] {
            // the SVG namespace is a name, not a download
            let text = text.replace("http://www.w3.org/2000/svg", "");
            assert!(!text.contains("http://") && !text.contains("https://"));
        }
        for html in [super::APP_HTML, super::LOGIN_HTML] {
            assert!(!html.contains("<script>") && !html.contains(" style="));
        }
    }
}
