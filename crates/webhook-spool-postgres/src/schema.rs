//! The tables, created and migrated by the server (versioned, one transaction per version,
//! under an advisory lock so instances starting together do not race).

use sqlx::{Executor, PgPool};

/// Each version's statements, in order; the schema's version is how many have run.
const VERSIONS: &[&str] = &[
    // 1: entries, the instances' leases, dead letters. Entries up to ~8 KB stay in the row
    // uncompressed (`toast_tuple_target`): pglz took a fifth of PostgreSQL's CPU for rows
    // that live a few milliseconds.
    r"
    CREATE TABLE webhook_gateway_instances (
        id uuid PRIMARY KEY,
        alive_until timestamptz NOT NULL
    );
    CREATE TABLE webhook_gateway_entries (
        id bigint PRIMARY KEY,
        webhook text NOT NULL,
        request_id uuid NOT NULL,
        received_at timestamptz NOT NULL,
        targets integer NOT NULL,
        done integer NOT NULL DEFAULT 0,
        attempts integer[] NOT NULL DEFAULT '{}',
        owner uuid,
        entry bytea NOT NULL
    ) WITH (toast_tuple_target = 8160);
    CREATE INDEX webhook_gateway_entries_owner ON webhook_gateway_entries (owner);
    CREATE TABLE webhook_gateway_dead_letters (
        id text PRIMARY KEY,
        dead_at timestamptz NOT NULL,
        letter jsonb NOT NULL,
        entry bytea NOT NULL
    );
    CREATE INDEX webhook_gateway_dead_letters_dead_at ON webhook_gateway_dead_letters (dead_at);
    ",
];

/// The schema version this build writes.
pub const VERSION: i32 = VERSIONS.len() as i32;

/// Bring the schema to [`VERSION`]; refuse a database a newer build migrated.
pub(crate) async fn migrate(pool: &PgPool) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    // one key for this schema: every instance starting takes it in turn
    tx.execute("SELECT pg_advisory_xact_lock(7201650983215)")
        .await?;
    tx.execute("CREATE TABLE IF NOT EXISTS webhook_gateway_schema (version integer NOT NULL)")
        .await?;
    let current: Option<i32> =
        sqlx::query_scalar("SELECT max(version) FROM webhook_gateway_schema")
            .fetch_one(&mut *tx)
            .await?;
    let current = current.unwrap_or(0);
    if current > VERSION {
        return Err(sqlx::Error::Protocol(format!(
            "the shared spool's schema is version {current}, newer than this build's {VERSION}: upgrade this instance"
        )));
    }
    for (version, statements) in VERSIONS.iter().enumerate().skip(current as usize) {
        tx.execute(*statements).await?;
        sqlx::query("INSERT INTO webhook_gateway_schema (version) VALUES ($1)")
            .bind(version as i32 + 1)
            .execute(&mut *tx)
            .await?;
        tracing::info!(version = version + 1, "shared spool: schema migrated");
    }
    tx.commit().await
}
