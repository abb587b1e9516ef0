//! The webhook gateway's spool shared by several instances in PostgreSQL (`--spool
//! postgres://…`): the rows of [`webhook_core::spool::shared::SharedSpool`], nothing more —
//! what they mean (group commit, leases, take-over) is decided in `webhook-core`.
//!
//! - `webhook_gateway_entries`: one row per request not yet delivered everywhere (the
//!   request encoded by the core, its targets, progress, attempts and owner); delivered
//!   rows are deleted, so the table stays small.
//! - `webhook_gateway_instances`: each running instance and until when its lease holds;
//!   the entries of an instance whose lease ran out are claimed with `FOR UPDATE SKIP
//!   LOCKED`.
//! - `webhook_gateway_dead_letters`: deliveries given up, for every instance to list,
//!   replay and delete.
//!
//! A commit is what makes an `ack: persisted` answer 2xx: PostgreSQL's durability (and its
//! replication, for a failover without loss) is the spool's.

mod schema;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Row};
use uuid::Uuid;
use webhook_core::BoxFuture;
use webhook_core::DeadLetter;
use webhook_core::spool::shared::{
    EntryProgress, NewEntry, SharedSpool, SharedSpoolError, StoredDeadLetter, StoredEntry,
};

pub use schema::VERSION as SCHEMA_VERSION;

/// Why the shared spool cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum PgSpoolError {
    /// The URL is not a PostgreSQL connection string.
    #[error("{url}: not a PostgreSQL URL: {reason}")]
    Url {
        /// The URL, password masked.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// Connecting or migrating the schema failed.
    #[error("{url}: {source}")]
    Database {
        /// The URL, password masked.
        url: String,
        /// The driver's error.
        source: sqlx::Error,
    },
}

/// How many connections the spool uses (appenders, progress, ticks, admin calls).
const CONNECTIONS: u32 = 8;

/// The spool in PostgreSQL.
pub struct PgSpool {
    pool: PgPool,
    /// The URL without its password.
    described: String,
}

impl std::fmt::Debug for PgSpool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSpool")
            .field("url", &self.described)
            .finish_non_exhaustive()
    }
}

#[allow(clippy::needless_pass_by_value)] // the shape `map_err` wants
fn store_error(err: sqlx::Error) -> SharedSpoolError {
    SharedSpoolError(format!("PostgreSQL: {err}"))
}

fn millis(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_millis() as f64)
}

/// `{1,0,2}`: attempts as a PostgreSQL array literal.
fn array_literal(values: &[u32]) -> String {
    let items: Vec<String> = values.iter().map(u32::to_string).collect();
    format!("{{{}}}", items.join(","))
}

fn stored_entry(row: &sqlx::postgres::PgRow) -> Result<StoredEntry, sqlx::Error> {
    let attempts: Vec<i32> = row.try_get("attempts")?;
    Ok(StoredEntry {
        id: row.try_get("id")?,
        targets: row.try_get::<i32, _>("targets")? as u32,
        done: row.try_get::<i32, _>("done")? as u32,
        attempts: attempts.into_iter().map(|a| a.max(0) as u32).collect(),
        bytes: row.try_get("entry")?,
    })
}

fn letter_of(json: &str) -> Result<DeadLetter, SharedSpoolError> {
    serde_json::from_str(json)
        .map_err(|err| SharedSpoolError(format!("a dead letter's row cannot be read: {err}")))
}

impl PgSpool {
    /// Connect to `url` (`postgres://user:password@host:port/database?sslmode=…`) and
    /// create or migrate the schema.
    pub async fn connect(url: &str) -> Result<Self, PgSpoolError> {
        let described = webhook_core::url_for_logs(url);
        let options: PgConnectOptions =
            url.parse().map_err(|err: sqlx::Error| PgSpoolError::Url {
                url: described.clone(),
                reason: err.to_string(),
            })?;
        let pool = PgPoolOptions::new()
            .max_connections(CONNECTIONS)
            .acquire_timeout(Duration::from_secs(1))
            .connect_with(options)
            .await
            .map_err(|source| PgSpoolError::Database {
                url: described.clone(),
                source,
            })?;
        schema::migrate(&pool)
            .await
            .map_err(|source| PgSpoolError::Database {
                url: described.clone(),
                source,
            })?;
        Ok(Self { pool, described })
    }

    /// The pool (for tests and tools).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn append_rows(&self, owner: Uuid, entries: &[NewEntry]) -> Result<(), sqlx::Error> {
        let ids: Vec<i64> = entries.iter().map(|e| e.id).collect();
        let webhooks: Vec<&str> = entries.iter().map(|e| e.webhook.as_str()).collect();
        let requests: Vec<Uuid> = entries.iter().map(|e| e.request_id).collect();
        let received: Vec<f64> = entries.iter().map(|e| millis(e.received_at)).collect();
        let targets: Vec<i32> = entries.iter().map(|e| e.targets as i32).collect();
        let bytes: Vec<&[u8]> = entries.iter().map(|e| e.bytes.as_slice()).collect();
        sqlx::query(
            // the owner's row is made if it is missing (an instance whose row was cleaned up
            // while it was cut off), so `claim` always finds these rows through it
            "WITH owner AS (INSERT INTO webhook_gateway_instances (id, alive_until) \
                 VALUES ($6, now()) ON CONFLICT (id) DO NOTHING) \
             INSERT INTO webhook_gateway_entries \
                 (id, webhook, request_id, received_at, targets, owner, entry) \
             SELECT u.id, u.webhook, u.request_id, to_timestamp(u.ms / 1000.0), u.targets, $6, u.entry \
             FROM unnest($1::bigint[], $2::text[], $3::uuid[], $4::float8[], $5::integer[], $7::bytea[]) \
                 AS u(id, webhook, request_id, ms, targets, entry)",
        )
        .bind(&ids)
        .bind(&webhooks)
        .bind(&requests)
        .bind(&received)
        .bind(&targets)
        .bind(owner)
        .bind(&bytes)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn progress_rows(
        &self,
        progress: &[EntryProgress],
        finished: &[i64],
    ) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        if !progress.is_empty() {
            let ids: Vec<i64> = progress.iter().map(|p| p.id).collect();
            let done: Vec<i32> = progress.iter().map(|p| p.done as i32).collect();
            let attempts: Vec<String> = progress
                .iter()
                .map(|p| array_literal(&p.attempts))
                .collect();
            sqlx::query(
                "UPDATE webhook_gateway_entries e SET done = u.done, attempts = u.attempts::integer[] \
                 FROM unnest($1::bigint[], $2::integer[], $3::text[]) AS u(id, done, attempts) \
                 WHERE e.id = u.id",
            )
            .bind(&ids)
            .bind(&done)
            .bind(&attempts)
            .execute(&mut *tx)
            .await?;
        }
        if !finished.is_empty() {
            sqlx::query("DELETE FROM webhook_gateway_entries WHERE id = ANY($1)")
                .bind(finished)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    }

    async fn heartbeat_row(&self, owner: Uuid, lease: Duration) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO webhook_gateway_instances (id, alive_until) \
             VALUES ($1, now() + $2 * interval '1 millisecond') \
             ON CONFLICT (id) DO UPDATE SET alive_until = EXCLUDED.alive_until",
        )
        .bind(owner)
        .bind(lease.as_millis() as f64)
        .execute(&self.pool)
        .await?;
        // instances gone for an hour whose entries were all taken over (an instance's row
        // outlives its entries, so `claim` finds every orphan through the owner index)
        sqlx::query(
            "DELETE FROM webhook_gateway_instances i \
             WHERE i.alive_until < now() - interval '1 hour' \
               AND NOT EXISTS (SELECT 1 FROM webhook_gateway_entries e WHERE e.owner = i.id)",
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn claim_rows(&self, owner: Uuid, max: usize) -> Result<Vec<StoredEntry>, sqlx::Error> {
        let rows = sqlx::query(
            "WITH orphans AS ( \
                 SELECT e.id FROM webhook_gateway_entries e \
                 WHERE e.owner IS NULL \
                    OR e.owner IN (SELECT i.id FROM webhook_gateway_instances i WHERE i.alive_until <= now()) \
                 ORDER BY e.received_at \
                 LIMIT $2 \
                 FOR UPDATE OF e SKIP LOCKED) \
             UPDATE webhook_gateway_entries e SET owner = $1 FROM orphans o WHERE e.id = o.id \
             RETURNING e.id, e.targets, e.done, e.attempts, e.entry",
        )
        .bind(owner)
        .bind(max as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(stored_entry).collect()
    }

    async fn unbury_rows(
        &self,
        id: &str,
        owner: Uuid,
        entry_id: i64,
    ) -> Result<Option<(DeadLetter, StoredEntry)>, SharedSpoolError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        let row = sqlx::query(
            "DELETE FROM webhook_gateway_dead_letters WHERE id = $1 RETURNING letter::text AS letter, entry",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(store_error)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let letter = letter_of(&row.try_get::<String, _>("letter").map_err(store_error)?)?;
        let bytes: Vec<u8> = row.try_get("entry").map_err(store_error)?;
        let request_id = Uuid::parse_str(&letter.request_id).unwrap_or_else(|_| Uuid::nil());
        let targets = 1u32 << u32::from(letter.destination.min(31));
        sqlx::query(
            "INSERT INTO webhook_gateway_entries \
                 (id, webhook, request_id, received_at, targets, owner, entry) \
             VALUES ($1, $2, $3, now(), $4, $5, $6)",
        )
        .bind(entry_id)
        .bind(&letter.webhook)
        .bind(request_id)
        .bind(targets as i32)
        .bind(owner)
        .bind(&bytes)
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        let entry = StoredEntry {
            id: entry_id,
            targets,
            done: 0,
            attempts: Vec::new(),
            bytes,
        };
        Ok(Some((letter, entry)))
    }
}

impl SharedSpool for PgSpool {
    fn describe(&self) -> String {
        self.described.clone()
    }

    fn append<'a>(
        &'a self,
        owner: Uuid,
        entries: &'a [NewEntry],
    ) -> BoxFuture<'a, Result<(), SharedSpoolError>> {
        Box::pin(async move { self.append_rows(owner, entries).await.map_err(store_error) })
    }

    fn save_progress<'a>(
        &'a self,
        progress: &'a [EntryProgress],
        finished: &'a [i64],
    ) -> BoxFuture<'a, Result<(), SharedSpoolError>> {
        Box::pin(async move {
            self.progress_rows(progress, finished)
                .await
                .map_err(store_error)
        })
    }

    fn heartbeat(
        &self,
        owner: Uuid,
        lease: Duration,
    ) -> BoxFuture<'_, Result<(), SharedSpoolError>> {
        Box::pin(async move { self.heartbeat_row(owner, lease).await.map_err(store_error) })
    }

    fn disown<'a>(&'a self, ids: &'a [i64]) -> BoxFuture<'a, Result<(), SharedSpoolError>> {
        Box::pin(async move {
            sqlx::query("UPDATE webhook_gateway_entries SET owner = NULL WHERE id = ANY($1)")
                .bind(ids)
                .execute(&self.pool)
                .await
                .map(|_| ())
                .map_err(store_error)
        })
    }

    fn leave(&self, owner: Uuid) -> BoxFuture<'_, Result<(), SharedSpoolError>> {
        Box::pin(async move {
            sqlx::query(
                "UPDATE webhook_gateway_instances SET alive_until = '-infinity' WHERE id = $1",
            )
            .bind(owner)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(store_error)
        })
    }

    fn claim(
        &self,
        owner: Uuid,
        max: usize,
    ) -> BoxFuture<'_, Result<Vec<StoredEntry>, SharedSpoolError>> {
        Box::pin(async move { self.claim_rows(owner, max).await.map_err(store_error) })
    }

    fn bury<'a>(
        &'a self,
        letter: &'a StoredDeadLetter,
    ) -> BoxFuture<'a, Result<(), SharedSpoolError>> {
        Box::pin(async move {
            let json = serde_json::to_string(&letter.letter)
                .map_err(|err| SharedSpoolError(err.to_string()))?;
            sqlx::query(
                "INSERT INTO webhook_gateway_dead_letters (id, dead_at, letter, entry) \
                 VALUES ($1, now(), $2::jsonb, $3) \
                 ON CONFLICT (id) DO UPDATE SET dead_at = EXCLUDED.dead_at, \
                     letter = EXCLUDED.letter, entry = EXCLUDED.entry",
            )
            .bind(&letter.letter.id)
            .bind(json)
            .bind(&letter.bytes)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(store_error)
        })
    }

    fn dead_letters(&self) -> BoxFuture<'_, Result<Vec<DeadLetter>, SharedSpoolError>> {
        Box::pin(async move {
            let rows: Vec<String> = sqlx::query_scalar(
                "SELECT letter::text FROM webhook_gateway_dead_letters ORDER BY dead_at, id",
            )
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
            rows.iter().map(|json| letter_of(json)).collect()
        })
    }

    fn unbury<'a>(
        &'a self,
        id: &'a str,
        owner: Uuid,
        entry_id: i64,
    ) -> BoxFuture<'a, Result<Option<(DeadLetter, StoredEntry)>, SharedSpoolError>> {
        Box::pin(self.unbury_rows(id, owner, entry_id))
    }

    fn delete_dead_letter<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<DeadLetter>, SharedSpoolError>> {
        Box::pin(async move {
            let json: Option<String> = sqlx::query_scalar(
                "DELETE FROM webhook_gateway_dead_letters WHERE id = $1 RETURNING letter::text",
            )
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
            json.as_deref().map(letter_of).transpose()
        })
    }

    fn expire_dead_letters(&self, age: Duration) -> BoxFuture<'_, Result<u64, SharedSpoolError>> {
        Box::pin(async move {
            sqlx::query(
                "DELETE FROM webhook_gateway_dead_letters \
                 WHERE dead_at < now() - $1 * interval '1 millisecond'",
            )
            .bind(age.as_millis() as f64)
            .execute(&self.pool)
            .await
            .map(|done| done.rows_affected())
            .map_err(store_error)
        })
    }
}
