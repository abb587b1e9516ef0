//! webhook-postgres's integration tests: the SQL scenarios of `webhook_testkit::sql` through
//! the real server against the machine's PostgreSQL (and one of the test's own for the
//! restart), read back with an independent client; and the conformance suite.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use webhook_testkit::conformance;
use webhook_testkit::recorder::registry_with_recorder;
use webhook_testkit::sql::{self, Database, Engine, SqlSubject};

fn registry() -> webhook_core::Registry {
    let mut registry = registry_with_recorder();
    webhook_postgres::register(&mut registry);
    registry
}

#[tokio::test(flavor = "multi_thread")]
async fn the_originals_example_config_delivers() {
    sql::original_example(&Database::postgres(), registry).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn relational_and_hybrid_modes_with_upsert() {
    sql::relational_and_hybrid(&Database::postgres(), registry).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redelivery_adds_no_second_row_and_old_tables_get_request_ids() {
    sql::one_row_per_request(&Database::postgres(), registry).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sql_injection_is_stored_as_data() {
    sql::injection_is_only_data(&Database::postgres(), registry).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_credentials_and_foreign_tables_are_permanent_and_bad_names_config_errors() {
    sql::refusals(&Database::postgres(), registry).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_keeps_the_pool_it_shares() {
    sql::reload_keeps_the_shared_pool(&Database::postgres(), registry).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_restart_loses_nothing_answered() {
    sql::restart_loses_nothing(Engine::Postgres, registry).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn conforms() {
    let subject = SqlSubject::new(Database::postgres(), registry).await;
    conformance::check(&subject).await;
}
