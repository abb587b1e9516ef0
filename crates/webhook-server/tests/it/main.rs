//! webhook-server's integration tests: one test binary, one module per area (as svix-server
//! lays them out), so a workspace test run links one binary per crate.

mod anonymous;
mod auth_methods;
mod cli;
mod config_errors;
mod credentials;
mod dashboard;
mod delivery;
mod digest_auth;
mod fairness;
mod filter;
mod grafana;
mod history;
mod limits;
mod metrics;
mod oauth1;
mod oauth2;
mod openapi;
mod original_options;
mod recaptcha;
mod reload;
mod retry_schedule;
mod shared_rate_limit;
mod shared_spool;
mod spool;
mod spool_crash;
mod spool_disk_full;
mod ssrf;
mod stats_redis;
mod transform;
mod transform_js;
mod validation;
mod verification_edges;
mod verify;
