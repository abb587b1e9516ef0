//! webhook-redis's integration tests: one test binary, one module per area (as svix-server
//! lays them out), so a workspace test run links one binary per crate.

mod conformance;
mod redis;
mod stream;
