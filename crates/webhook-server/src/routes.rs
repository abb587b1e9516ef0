//! Which endpoint a request's path names, parsed once ([`Route::parse`]); what each one
//! does is in `server.rs`.

use crate::history_api::HistoryRoute;
use crate::server::ServerOptions;
use crate::ui::UiRoute;

/// Where a request goes, parsed once from its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route<'a> {
    /// `/webhook/{id}`.
    Webhook(&'a str),
    /// `/`.
    Root,
    /// `/health`.
    Health,
    /// `/stats`.
    Stats,
    /// `/metrics`.
    Metrics,
    /// `/openapi.json`.
    OpenApi,
    /// `/admin/…`.
    Admin(AdminRoute<'a>),
    /// `/ui…`: the dashboard.
    Ui(UiRoute),
    /// Anything else.
    Unknown,
}

/// The routes under `/admin/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AdminRoute<'a> {
    /// `/admin/reload`.
    Reload,
    /// `/admin/dead-letters`.
    DeadLetters,
    /// `/admin/dead-letters/replay`: every matching dead letter.
    ReplayMatching,
    /// `/admin/events`: live events (SSE).
    Events,
    /// `/admin/overview`.
    Overview,
    /// `/admin/dead-letters/{id}`.
    DeadLetter(&'a str),
    /// `/admin/dead-letters/{id}/replay`.
    Replay(&'a str),
    /// `/admin/webhooks/{id}/test`.
    Test(&'a str),
    /// `/admin/requests`, `/admin/requests/{id}`, `/admin/summary`.
    History(HistoryRoute<'a>),
    /// Any other path under `/admin/`.
    Unknown,
}

impl<'a> Route<'a> {
    pub(crate) fn parse(path: &'a str) -> Self {
        if let Some(id) = path.strip_prefix("/webhook/") {
            return Route::Webhook(id);
        }
        if let Some(admin) = path.strip_prefix("/admin/") {
            return Route::Admin(match admin {
                "reload" => AdminRoute::Reload,
                "dead-letters" => AdminRoute::DeadLetters,
                "dead-letters/replay" => AdminRoute::ReplayMatching,
                "events" => AdminRoute::Events,
                "overview" => AdminRoute::Overview,
                "requests" => AdminRoute::History(HistoryRoute::List),
                "summary" => AdminRoute::History(HistoryRoute::Summary),
                _ if admin.starts_with("requests/") => match admin.strip_prefix("requests/") {
                    Some(id) if !id.is_empty() && !id.contains('/') => {
                        AdminRoute::History(HistoryRoute::One(id))
                    }
                    _ => AdminRoute::Unknown,
                },
                _ if admin.starts_with("webhooks/") && admin.ends_with("/test") => {
                    match admin
                        .strip_prefix("webhooks/")
                        .and_then(|rest| rest.strip_suffix("/test"))
                    {
                        Some(id) if !id.is_empty() && !id.contains('/') => AdminRoute::Test(id),
                        _ => AdminRoute::Unknown,
                    }
                }
                _ => match admin.strip_prefix("dead-letters/") {
                    Some(rest) => match rest.strip_suffix("/replay") {
                        Some(id) => AdminRoute::Replay(id),
                        None => AdminRoute::DeadLetter(rest),
                    },
                    None => AdminRoute::Unknown,
                },
            });
        }
        if let Some(ui) = UiRoute::parse(path) {
            return Route::Ui(ui);
        }
        match path {
            "/" => Route::Root,
            "/health" => Route::Health,
            "/stats" => Route::Stats,
            "/metrics" => Route::Metrics,
            "/openapi.json" => Route::OpenApi,
            _ => Route::Unknown,
        }
    }

    /// Operators' routes: behind `--ops-allow` and `--ops-token`.
    pub(crate) fn is_ops(self, options: &ServerOptions) -> bool {
        match self {
            Route::Admin(_) | Route::Metrics | Route::Stats => true,
            Route::OpenApi => !options.public_openapi,
            _ => false,
        }
    }
}
