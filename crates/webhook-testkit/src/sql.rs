//! The scenarios both SQL destinations (`postgresql`, `mysql`) pass through the real
//! server, against the machine's PostgreSQL or MariaDB (or a server of the test's own), read
//! back with an independent client: psycopg or PyMySQL, through `interop/sql_query.py`.
//! Each destination crate calls them from its `tests/it/`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::{Value, json};
use webhook_core::Registry;

use crate::TestServer;
use crate::conformance::{Received, Subject};
use crate::interop::{free_port, python, require_tcp, scripts_dir, service_url, unique};
use crate::proxy::TcpProxy;

/// Which server a [`Database`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// PostgreSQL, written by `postgresql`.
    Postgres,
    /// MySQL or MariaDB, written by `mysql`.
    MySql,
}

/// A database to write into and read back from.
#[derive(Debug, Clone)]
pub struct Database {
    pub engine: Engine,
    pub host: String,
    pub port: u16,
    pub database: String,
    pub user: String,
    pub password: String,
}

impl Database {
    /// The machine's PostgreSQL: `WEBHOOK_TEST_POSTGRES_URL` (default
    /// `postgresql://postgres@127.0.0.1:5432/test`).
    pub fn postgres() -> Self {
        Self::parse(
            Engine::Postgres,
            &service_url("postgres", "postgresql://postgres@127.0.0.1:5432/test"),
        )
    }

    /// The machine's MariaDB: `WEBHOOK_TEST_MYSQL_URL` (default
    /// `mysql://root@127.0.0.1:3306/test`).
    pub fn mysql() -> Self {
        Self::parse(
            Engine::MySql,
            &service_url("mysql", "mysql://root@127.0.0.1:3306/test"),
        )
    }

    fn parse(engine: Engine, url: &str) -> Self {
        let rest = url.split_once("://").map_or(url, |(_, r)| r);
        let (userinfo, rest) = rest.rsplit_once('@').unwrap_or(("", rest));
        let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
        let (hostport, database) = rest.split_once('/').unwrap_or((rest, "test"));
        let default_port = match engine {
            Engine::Postgres => "5432",
            Engine::MySql => "3306",
        };
        let (host, port) = hostport
            .rsplit_once(':')
            .unwrap_or((hostport, default_port));
        Self {
            engine,
            host: host.to_owned(),
            port: port.parse().unwrap(),
            database: database.to_owned(),
            user: user.to_owned(),
            password: password.to_owned(),
        }
    }

    /// The `module` name.
    pub fn module(&self) -> &'static str {
        match self.engine {
            Engine::Postgres => "postgresql",
            Engine::MySql => "mysql",
        }
    }

    /// The original's second name of the module and connection type.
    pub fn alias(&self) -> &'static str {
        match self.engine {
            Engine::Postgres => "postgres",
            Engine::MySql => "mariadb",
        }
    }

    /// Fail loudly when the server is not reachable.
    pub fn require(&self) {
        require_tcp(self.module(), &self.host, self.port);
    }

    /// The server's socket address.
    pub fn addr(&self) -> SocketAddr {
        (self.host.as_str(), self.port)
            .to_socket_addrs()
            .unwrap()
            .next()
            .unwrap()
    }

    /// The URL the independent client connects with.
    pub fn url(&self) -> String {
        let scheme = match self.engine {
            Engine::Postgres => "postgresql",
            Engine::MySql => "mysql",
        };
        let auth = if self.password.is_empty() {
            self.user.clone()
        } else {
            format!("{}:{}", self.user, self.password)
        };
        format!(
            "{scheme}://{auth}@{}:{}/{}",
            self.host, self.port, self.database
        )
    }

    /// A connections.json entry `name` for this database, reached at `port` (a proxy's, or
    /// its own).
    pub fn connection(&self, name: &str, port: u16) -> String {
        format!(
            r#""{name}": {{"type": "{}", "host": "{}", "port": {port}, "database": "{}",
                 "user": "{}", "password": "{}", "pool_min_size": 1, "pool_max_size": 4}}"#,
            self.module(),
            self.host,
            self.database,
            self.user,
            self.password
        )
    }

    /// connections.json with one entry, `db`, straight to the server.
    pub fn connections(&self) -> String {
        format!("{{{}}}", self.connection("db", self.port))
    }

    /// Run `sql` with `params` (`%s` placeholders) in the independent client; its rows.
    pub fn query(&self, sql: &str, params: &[&str]) -> Vec<Value> {
        let out = Command::new(python())
            .arg(scripts_dir().join("sql_query.py"))
            .arg(self.url())
            .arg(sql)
            .args(params)
            .output()
            .expect("python with psycopg and pymysql (bash .ci/test installs them)");
        assert!(
            out.status.success(),
            "sql_query.py {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// A column's value as text in a `SELECT` (JSON columns as their JSON text).
    pub fn text(&self, column: &str) -> String {
        match self.engine {
            Engine::Postgres => format!("\"{column}\"::text AS \"{column}\""),
            Engine::MySql => format!("CAST(`{column}` AS CHAR) AS `{column}`"),
        }
    }

    /// An identifier quoted.
    pub fn quote(&self, ident: &str) -> String {
        match self.engine {
            Engine::Postgres => format!("\"{ident}\""),
            Engine::MySql => format!("`{ident}`"),
        }
    }

    /// The columns of `table`, in order.
    pub fn columns(&self, table: &str) -> Vec<String> {
        let schema = match self.engine {
            Engine::Postgres => "current_schema()",
            Engine::MySql => "DATABASE()",
        };
        self.query(
            &format!(
                "SELECT column_name AS c FROM information_schema.columns WHERE table_name = %s \
                 AND table_schema = {schema} ORDER BY ordinal_position"
            ),
            &[table],
        )
        .iter()
        .map(|r| r["c"].as_str().unwrap().to_owned())
        .collect()
    }

    /// The names of the indexes on `table`.
    pub fn indexes(&self, table: &str) -> Vec<String> {
        let sql = match self.engine {
            Engine::Postgres => "SELECT indexname AS i FROM pg_indexes WHERE tablename = %s",
            Engine::MySql => {
                "SELECT DISTINCT index_name AS i FROM information_schema.statistics WHERE \
                 table_name = %s AND table_schema = DATABASE()"
            }
        };
        self.query(sql, &[table])
            .iter()
            .map(|r| r["i"].as_str().unwrap().to_owned())
            .collect()
    }

    /// All rows of `table` with `columns` as text, polling up to `seconds` for `at_least`.
    pub fn rows(&self, table: &str, columns: &[&str], at_least: usize, seconds: u64) -> Vec<Value> {
        let select: Vec<String> = columns.iter().map(|c| self.text(c)).collect();
        let sql = format!(
            "SELECT {} FROM {} ORDER BY {}",
            select.join(", "),
            self.quote(table),
            self.quote("created_at")
        );
        let deadline = Instant::now() + Duration::from_secs(seconds);
        loop {
            let rows = self.query(&sql, &[]);
            if rows.len() >= at_least || Instant::now() > deadline {
                return rows;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A table name no other test uses.
pub fn table_name(prefix: &str) -> String {
    unique(prefix).replace('-', "_")
}

/// The rows of `table` read on a blocking thread (a blocking client in an async test would
/// starve the in-process server).
async fn rows(db: &Database, table: &str, columns: &[&str], at_least: usize) -> Vec<Value> {
    let (db, table) = (db.clone(), table.to_owned());
    let columns: Vec<String> = columns.iter().map(|c| (*c).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
        db.rows(&table, &columns, at_least, 10)
    })
    .await
    .unwrap()
}

async fn query(db: &Database, sql: String, params: Vec<String>) -> Vec<Value> {
    let db = db.clone();
    tokio::task::spawn_blocking(move || {
        let params: Vec<&str> = params.iter().map(String::as_str).collect();
        db.query(&sql, &params)
    })
    .await
    .unwrap()
}

fn parse(text: &Value) -> Value {
    serde_json::from_str(text.as_str().unwrap()).unwrap()
}

async fn start(
    db: &Database,
    registry: fn() -> Registry,
    webhooks: String,
    connections: String,
) -> TestServer {
    db.require();
    TestServer::builder(&webhooks)
        .connections(&connections)
        .registry(registry())
        .options(crate::delivered_options())
        .start()
        .await
}

/// The original's documented example (its keys and values; only host, port, database and,
/// for MariaDB, the password are this machine's): the bearer token is checked, json mode
/// stores payload, headers, time and request id, and `upsert` in json mode adds rows, as
/// there.
pub async fn original_example(db: &Database, registry: fn() -> Registry) {
    db.require();
    let table = table_name("webhook_events");
    let (webhook, connection, upsert) = match db.engine {
        Engine::Postgres => ("postgres_webhook", "postgres_local", false),
        Engine::MySql => ("mysql_webhook", "mysql_local", true),
    };
    // PostgreSQL here trusts loopback, so the example's password is sent and ignored;
    // MariaDB's root here has none.
    let password = match db.engine {
        Engine::Postgres => "password".to_owned(),
        Engine::MySql => db.password.clone(),
    };
    let webhooks = format!(
        r#"{{"{webhook}": {{ "data_type": "json", "module": "{module}", "connection": "{connection}",
            "module-config": {{ "table": "{table}", "storage_mode": "json", "upsert": {upsert},
              "upsert_key": "event_id", "include_headers": true, "include_timestamp": true }},
            "authorization": "Bearer db_secret" }}}}"#,
        module = db.module()
    );
    let connections = format!(
        r#"{{"{connection}": {{ "type": "{module}", "host": "{host}", "port": {port},
            "database": "{database}", "user": "{user}", "password": "{password}", "ssl": false,
            "pool_min_size": 2, "pool_max_size": 10 }}}}"#,
        module = db.module(),
        host = db.host,
        port = db.port,
        database = db.database,
        user = db.user,
    );
    let server = start(db, registry, webhooks, connections).await;
    let body = r#"{"event_id": "evt_1", "amount": 1.50, "text": "caf\u00e9 ☕"}"#;
    let r = server.post(webhook, &[], body).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text());
    let mut ids = Vec::new();
    for _ in 0..2 {
        let r = server
            .post(
                webhook,
                &[("Authorization", "Bearer db_secret"), ("X-Custom", "yes")],
                body,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        ids.push(r.header("x-request-id").unwrap().to_owned());
    }
    let stored = rows(
        db,
        &table,
        &[
            "webhook_id",
            "payload",
            "headers",
            "timestamp",
            "request_id",
        ],
        2,
    )
    .await;
    assert_eq!(
        stored.len(),
        2,
        "the unauthorized request stored nothing: {stored:?}"
    );
    for (row, id) in stored.iter().zip(&ids) {
        assert_eq!(row["webhook_id"], webhook);
        assert_eq!(
            parse(&row["payload"]),
            serde_json::from_str::<Value>(body).unwrap()
        );
        assert_eq!(parse(&row["headers"])["x-custom"], "yes");
        assert!(
            row["timestamp"].as_str().unwrap().starts_with("20"),
            "{row}"
        );
        assert_eq!(row["request_id"], id.as_str());
    }
    assert_eq!(
        db.columns(&table),
        [
            "id",
            "webhook_id",
            "timestamp",
            "payload",
            "headers",
            "created_at",
            "request_id"
        ]
    );
}

/// Relational mode with the docs' schema: typed columns from top-level keys, an index, a
/// field named `created_at`, upsert on `event_id`; bad values are permanent failures.
/// Hybrid mode: payload plus fields, defaults, no headers column when not wanted.
pub async fn relational_and_hybrid(db: &Database, registry: fn() -> Registry) {
    db.require();
    let orders = table_name("orders");
    let hybrid = table_name("hybrid");
    let index = table_name("idx_event_type");
    let webhooks = format!(
        r#"{{"orders": {{"module": "{module}", "connection": "db", "module-config": {{
               "table": "{orders}", "storage_mode": "relational", "upsert": true, "upsert_key": "event_id",
               "schema": {{"fields": {{
                   "event_id": {{"column": "event_id", "type": "string", "constraints": ["NOT NULL", "UNIQUE"]}},
                   "amount": {{"column": "amount", "type": "float"}},
                   "count": {{"column": "item_count", "type": "integer"}},
                   "paid": {{"type": "boolean"}},
                   "event_type": {{"column": "event_type", "type": "string"}},
                   "created_at": {{"column": "created_at", "type": "datetime"}}}},
                 "indexes": {{"{index}": {{"columns": ["event_type"]}}}}}}}}}},
            "hybrid": {{"module": "{module}", "connection": "db", "module-config": {{
               "table": "{hybrid}", "storage_mode": "hybrid", "include_headers": false,
               "schema": {{"fields": {{"action": {{}}, "count": {{"type": "integer", "default": 7}},
                                      "meta": {{"type": "json"}}}}}}}}}}}}"#,
        module = db.module()
    );
    let server = start(db, registry, webhooks, db.connections()).await;
    for body in [
        r#"{"event_id": "A", "amount": 10.5, "count": 2, "paid": false, "event_type": "order.created", "created_at": "2024-05-01T10:00:00Z", "extra": 1}"#,
        r#"{"event_id": "B", "amount": 3, "count": 1, "paid": true, "event_type": "order.created", "created_at": "2024-05-02T11:30:00+02:00"}"#,
        r#"{"event_id": "A", "amount": 12.25, "count": 3, "paid": true, "event_type": "order.paid", "created_at": "2024-05-03T00:00:00Z"}"#,
    ] {
        let r = server.post("orders", &[], body).await;
        assert_eq!(r.status, StatusCode::OK, "{body}: {}", r.text());
    }
    for bad in [
        r#"{"event_id": "C", "count": "not a number"}"#,
        r#"{"amount": 1}"#,
    ] {
        let r = server.post("orders", &[], bad).await;
        assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{bad}: {}", r.text());
        assert_eq!(r.json()["retryable"], false, "{bad}: {}", r.text());
    }
    let stored = rows(
        db,
        &orders,
        &[
            "event_id",
            "amount",
            "item_count",
            "paid",
            "event_type",
            "created_at",
        ],
        2,
    )
    .await;
    assert_eq!(stored.len(), 2, "{stored:?}");
    let a = stored.iter().find(|r| r["event_id"] == "A").unwrap();
    let b = stored.iter().find(|r| r["event_id"] == "B").unwrap();
    assert_eq!(a["amount"].as_str().unwrap().parse::<f64>().unwrap(), 12.25);
    assert_eq!(a["item_count"], "3");
    assert!(matches!(a["paid"].as_str(), Some("true" | "1")), "{a}");
    assert!(matches!(b["paid"].as_str(), Some("true" | "1")), "{b}");
    assert_eq!(a["event_type"], "order.paid");
    assert!(
        a["created_at"]
            .as_str()
            .unwrap()
            .starts_with("2024-05-03 00:00:00"),
        "{a}"
    );
    assert!(
        b["created_at"]
            .as_str()
            .unwrap()
            .starts_with("2024-05-02 09:30:00"),
        "{b}"
    );
    assert_eq!(
        db.columns(&orders),
        [
            "id",
            "webhook_id",
            "event_id",
            "amount",
            "item_count",
            "paid",
            "event_type",
            "created_at",
            "request_id"
        ]
    );
    assert!(
        db.indexes(&orders).contains(&index),
        "{:?}",
        db.indexes(&orders)
    );

    let r = server
        .post(
            "hybrid",
            &[("X-Secret-Header", "not stored")],
            r#"{"action": "opened", "meta": {"a": [1, "x"]}}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let stored = rows(
        db,
        &hybrid,
        &["payload", "action", "count", "meta", "request_id"],
        1,
    )
    .await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(parse(&stored[0]["payload"])["action"], "opened");
    assert_eq!(stored[0]["action"], "opened");
    assert_eq!(stored[0]["count"], "7");
    assert_eq!(parse(&stored[0]["meta"]), json!({"a": [1, "x"]}));
    assert_eq!(stored[0]["request_id"], r.header("x-request-id").unwrap());
    assert_eq!(
        db.columns(&hybrid),
        [
            "id",
            "webhook_id",
            "payload",
            "created_at",
            "action",
            "count",
            "meta",
            "request_id"
        ]
    );
}

/// A table the original made (no `request_id`) gets the column; a request delivered twice
/// (a chain of two destinations into one table stands for a redelivery after a crash) is
/// one row; the old rows stay. The module and connection type also go by their aliases.
pub async fn one_row_per_request(db: &Database, registry: fn() -> Registry) {
    db.require();
    let table = table_name("legacy");
    let (json, uuid, ts) = match db.engine {
        Engine::Postgres => (
            "JSONB",
            "UUID PRIMARY KEY DEFAULT gen_random_uuid()",
            "TIMESTAMP WITH TIME ZONE",
        ),
        Engine::MySql => ("JSON", "CHAR(36) PRIMARY KEY DEFAULT (UUID())", "DATETIME"),
    };
    let q = |s: &str| db.quote(s);
    query(
        db,
        format!(
            "CREATE TABLE {} (id {uuid}, webhook_id TEXT NOT NULL, {} {ts} DEFAULT \
             CURRENT_TIMESTAMP, payload {json} NOT NULL, headers {json}, created_at {ts} \
             DEFAULT CURRENT_TIMESTAMP)",
            q(&table),
            q("timestamp")
        ),
        vec![],
    )
    .await;
    query(
        db,
        format!(
            "INSERT INTO {} (webhook_id, payload) VALUES ('old', '{{\"old\": true}}')",
            q(&table)
        ),
        vec![],
    )
    .await;
    // (the second under the original's alias, as is the connection's type)
    let destination = |module: &str| {
        format!(
            r#"{{"module": "{module}", "connection": "db", "module-config": {{"table": "{table}"}}}}"#
        )
    };
    let webhooks = format!(
        r#"{{"twice": {{"chain": [{}, {}]}}}}"#,
        destination(db.module()),
        destination(db.alias())
    );
    let connections = db.connections().replace(
        &format!(r#""type": "{}""#, db.module()),
        &format!(r#""type": "{}""#, db.alias()),
    );
    assert!(connections.contains(db.alias()));
    let server = start(db, registry, webhooks, connections).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let r = server.post("twice", &[], format!(r#"{{"i": {i}}}"#)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        ids.push(r.header("x-request-id").unwrap().to_owned());
    }
    let stored = rows(db, &table, &["webhook_id", "request_id"], 6).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stored_later = rows(db, &table, &["webhook_id", "request_id"], 6).await;
    assert_eq!(stored.len(), stored_later.len());
    assert_eq!(stored.len(), 6, "one old row + one per request: {stored:?}");
    assert!(stored.iter().any(|r| r["webhook_id"] == "old"));
    for id in &ids {
        assert_eq!(
            stored
                .iter()
                .filter(|r| r["request_id"] == id.as_str())
                .count(),
            1,
            "{id}: {stored:?}"
        );
    }
    assert!(db.columns(&table).contains(&"request_id".to_owned()));
}

/// SQL in a webhook id, in payload keys and values and in header values is stored as data
/// and runs nowhere: another table survives, the values arrive verbatim.
pub async fn injection_is_only_data(db: &Database, registry: fn() -> Registry) {
    db.require();
    let canary = table_name("canary");
    let table = table_name("inject");
    let q = |s: &str| db.quote(s);
    query(db, format!("CREATE TABLE {} (n INT)", q(&canary)), vec![]).await;
    query(db, format!("INSERT INTO {} VALUES (1)", q(&canary)), vec![]).await;
    let evil = format!("x'); DROP TABLE {canary}; --");
    // (webhook ids are letters, digits, `_` and `-`: one with quotes is a config error)
    let refused = TestServer::builder(&format!(
        r#"{{"o'k');DROP TABLE {canary};--": {{"module": "{}", "connection": "db"}}}}"#,
        db.module()
    ))
    .connections(&db.connections())
    .registry(registry())
    .config_error()
    .await;
    assert!(refused.contains("invalid webhook id"), "{refused}");
    let evil_id = "x--drop-table-canary".to_owned();
    let evil_key = format!("k\"); DROP TABLE {canary}; --");
    let webhooks = json!({
        evil_id.clone(): {
            "module": db.module(), "connection": "db",
            "module-config": {"table": table, "storage_mode": "hybrid",
                "schema": {"fields": {evil_key.clone(): {"column": "evil", "type": "string"}}}}
        }
    })
    .to_string();
    let server = start(db, registry, webhooks, db.connections()).await;
    let body = json!({evil_key.clone(): evil, "v": evil}).to_string();
    let r = server
        .post(&evil_id, &[("X-Evil", evil.as_str())], body.clone())
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let stored = rows(db, &table, &["webhook_id", "evil", "payload", "headers"], 1).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["webhook_id"], evil_id.as_str());
    assert_eq!(stored[0]["evil"], evil.as_str());
    assert_eq!(parse(&stored[0]["payload"])["v"], evil.as_str());
    assert_eq!(parse(&stored[0]["headers"])["x-evil"], evil.as_str());
    let canary_rows = query(db, format!("SELECT n FROM {}", q(&canary)), vec![]).await;
    assert_eq!(canary_rows, [json!({"n": 1})]);
}

/// Refusals: wrong credentials and a table of another shape are permanent failures (502,
/// not retryable); a bad identifier is a config error naming the file, webhook and key.
pub async fn refusals(db: &Database, registry: fn() -> Registry) {
    db.require();
    let table = table_name("other_shape");
    query(
        db,
        format!("CREATE TABLE {} (n INT)", db.quote(&table)),
        vec![],
    )
    .await;
    let webhooks = format!(
        r#"{{"nouser": {{"module": "{m}", "connection": "nobody", "module-config": {{}}}},
            "shape": {{"module": "{m}", "connection": "db", "module-config": {{"table": "{table}"}}}}}}"#,
        m = db.module()
    );
    let mut stranger = db.clone();
    stranger.user = "no_such_user_webhook".into();
    stranger.password = "wrong".into();
    let connections = format!(
        "{{{}, {}}}",
        db.connection("db", db.port),
        stranger.connection("nobody", db.port)
    );
    let server = start(db, registry, webhooks, connections).await;
    for id in ["nouser", "shape"] {
        let r = server.post(id, &[], r#"{"a": 1}"#).await;
        assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{id}: {}", r.text());
        assert_eq!(r.json()["retryable"], false, "{id}: {}", r.text());
        assert!(
            !r.text().contains("wrong"),
            "no password in an answer: {}",
            r.text()
        );
    }
    server.shutdown().await;

    for (module_config, key) in [
        (r#"{"table": "bad-name; DROP TABLE x"}"#, "table"),
        (r#"{"storage_mode": "relational"}"#, "schema.fields"),
        (
            r#"{"storage_mode": "hybrid", "schema": {"fields": {"a": {"column": "a`b"}}}}"#,
            "schema.fields.a.column",
        ),
        (r#"{"storage_mode": "sideways"}"#, "storage_mode"),
    ] {
        let webhooks = format!(
            r#"{{"hook": {{"module": "{}", "connection": "db", "module-config": {module_config}}}}}"#,
            db.module()
        );
        let error = TestServer::builder(&webhooks)
            .connections(&db.connections())
            .registry(registry())
            .config_error()
            .await;
        assert!(
            error.contains("webhooks.json") && error.contains("hook") && error.contains(key),
            "{module_config}: {error}"
        );
    }
}

/// A hot reload that replaces one destination keeps the other, which shares its
/// connection (and so its pool), delivering: closing the replaced one must not close the
/// pool under the kept one.
pub async fn reload_keeps_the_shared_pool(db: &Database, registry: fn() -> Registry) {
    use webhook_server::live::{ConfigFiles, LivePipeline};

    db.require();
    let dir = tempfile::tempdir().unwrap();
    let (table_a, table_b) = (table_name("reload_a"), table_name("reload_b"));
    let webhooks = dir.path().join("webhooks.json");
    let write = |a: &str| {
        std::fs::write(
            &webhooks,
            format!(
                r#"{{"a": {{"module": "{m}", "connection": "db", "module-config": {{"table": "{a}"}}}},
                    "b": {{"module": "{m}", "connection": "db", "module-config": {{"table": "{table_b}"}}}}}}"#,
                m = db.module()
            ),
        )
        .unwrap();
    };
    write(&table_a);
    let connections = dir.path().join("connections.json");
    std::fs::write(&connections, db.connections()).unwrap();
    let files = ConfigFiles {
        webhooks: webhooks.clone(),
        connections: Some(connections),
    };
    let options = crate::delivered_options();
    let pipeline =
        webhook_core::Pipeline::build(files.load(&registry()).unwrap().config, options.clone())
            .await
            .unwrap();
    let live = std::sync::Arc::new(LivePipeline::from_files(
        pipeline,
        files,
        registry(),
        options,
        Duration::from_millis(200),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = crate::TestClient::new(listener.local_addr().unwrap());
    tokio::spawn(webhook_server::server::serve(
        listener,
        std::sync::Arc::clone(&live),
        webhook_server::server::ServerOptions::default(),
        std::future::pending(),
    ));
    let r = client.post("b", &[], r#"{"before": "reload"}"#).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    write(&format!("{table_a}_v2"));
    live.reload().await.unwrap();
    // The replaced destination is shut down once the old pipeline is idle (≤ 200 ms here).
    tokio::time::sleep(Duration::from_millis(800)).await;
    for id in ["b", "a"] {
        let r = client.post(id, &[], r#"{"after": "reload"}"#).await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "{id} after the reload: {}",
            r.text()
        );
    }
    assert_eq!(rows(db, &table_b, &["payload"], 2).await.len(), 2);
    assert_eq!(
        rows(db, &format!("{table_a}_v2"), &["payload"], 1)
            .await
            .len(),
        1
    );
}

/// A database server of the test's own, on a free port, to stop and start again.
pub struct OwnDatabase {
    pub db: Database,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl OwnDatabase {
    /// Initialise a data directory and start the server (PostgreSQL runs as the
    /// `postgres` user, which initdb requires).
    pub fn start(engine: Engine) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let data = dir.path().join("data");
        match engine {
            Engine::Postgres => {
                run(Command::new("chown").arg("postgres").arg(dir.path()));
                run(as_postgres(&pg_bin("initdb"))
                    .args(["-A", "trust", "-U", "postgres", "-D"])
                    .arg(&data));
            }
            Engine::MySql => {
                run(Command::new("mariadb-install-db")
                    .args([
                        "--no-defaults",
                        "--user=root",
                        "--auth-root-authentication-method=normal",
                    ])
                    .arg(format!("--datadir={}", data.display())));
            }
        }
        let db = Database {
            engine,
            host: "127.0.0.1".into(),
            port,
            database: "test".into(),
            user: match engine {
                Engine::Postgres => "postgres".into(),
                Engine::MySql => "root".into(),
            },
            password: String::new(),
        };
        let mut own = Self {
            db,
            dir,
            child: None,
        };
        own.start_again();
        match engine {
            Engine::Postgres => {
                own.db.database = "postgres".into();
                own.db.query("CREATE DATABASE test", &[]);
                own.db.database = "test".into();
            }
            Engine::MySql => {
                own.db.database = String::new();
                own.db.query("CREATE DATABASE IF NOT EXISTS test", &[]);
                own.db.database = "test".into();
            }
        }
        own
    }

    /// Start the server on its data directory (after [`OwnDatabase::stop`]).
    pub fn start_again(&mut self) {
        let data = self.dir.path().join("data");
        let port = self.db.port.to_string();
        let mut command = match self.db.engine {
            Engine::Postgres => {
                let mut c = as_postgres(&pg_bin("postgres"));
                c.arg("-D")
                    .arg(&data)
                    .args(["-p", &port, "-c", "listen_addresses=127.0.0.1", "-k"])
                    .arg(self.dir.path());
                c
            }
            Engine::MySql => {
                let mut c = Command::new("mariadbd");
                c.args(["--no-defaults", "--user=root", "--bind-address=127.0.0.1"])
                    .arg(format!("--datadir={}", data.display()))
                    .arg(format!("--port={port}"))
                    .arg(format!(
                        "--socket={}",
                        self.dir.path().join("sock").display()
                    ));
                c
            }
        };
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the database server (bash .ci/test installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.db.port)).is_err() {
            assert!(Instant::now() < deadline, "own database did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Shut the server down (fast shutdown) and wait until it is gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let signal = match self.db.engine {
                Engine::Postgres => "-INT",
                Engine::MySql => "-TERM",
            };
            run(Command::new("kill").args([signal, &child.id().to_string()]));
            let _ = child.wait();
        }
    }
}

impl Drop for OwnDatabase {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn pg_bin(name: &str) -> PathBuf {
    let versions = std::fs::read_dir("/usr/lib/postgresql").expect("PostgreSQL installed");
    let mut dirs: Vec<PathBuf> = versions.filter_map(|e| e.ok().map(|e| e.path())).collect();
    dirs.sort();
    dirs.pop()
        .expect("a PostgreSQL version")
        .join("bin")
        .join(name)
}

/// `program` run as the `postgres` user (setpriv execs it: the child is the server).
fn as_postgres(program: &std::path::Path) -> Command {
    let mut c = Command::new("setpriv");
    c.args([
        "--reuid=postgres",
        "--regid=postgres",
        "--init-groups",
        "--",
    ])
    .arg(program);
    c
}

fn run(command: &mut Command) {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A database restart under load loses nothing answered 2xx: `ack: persisted` (the
/// default), the server stopped while webhooks keep arriving, started again; every
/// request id is in the table exactly once.
pub async fn restart_loses_nothing(engine: Engine, registry: fn() -> Registry) {
    let mut own = tokio::task::spawn_blocking(move || OwnDatabase::start(engine))
        .await
        .unwrap();
    let db = own.db.clone();
    let table = table_name("restart");
    let webhooks = format!(
        r#"{{"r": {{"module": "{}", "connection": "db", "module-config": {{"table": "{table}"}},
              "retry": {{"max_attempts": 100, "initial_delay": 0.05, "max_delay": 0.3}}}}}}"#,
        db.module()
    );
    let server = TestServer::builder(&webhooks)
        .connections(&db.connections())
        .registry(registry())
        .start()
        .await;
    let client = server.client();
    let sender = tokio::spawn(async move {
        let mut ids = Vec::new();
        for i in 0..60 {
            let r = client.post("r", &[], format!(r#"{{"i": {i}}}"#)).await;
            if r.status.is_success() {
                ids.push(r.header("x-request-id").unwrap().to_owned());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        ids
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    own = tokio::task::spawn_blocking(move || {
        own.stop();
        std::thread::sleep(Duration::from_millis(600));
        own.start_again();
        own
    })
    .await
    .unwrap();
    let ids = sender.await.unwrap();
    assert!(ids.len() >= 50, "most requests answered 2xx: {}", ids.len());
    let stored = rows(&db, &table, &["request_id"], ids.len()).await;
    for id in &ids {
        assert_eq!(
            stored
                .iter()
                .filter(|r| r["request_id"] == id.as_str())
                .count(),
            1,
            "answered 2xx, stored once: {id}"
        );
    }
    server.shutdown().await;
    drop(own);
}

/// A SQL destination under the conformance suite: json mode through a [`TcpProxy`], read
/// back by the independent client. PostgreSQL's JSONB keeps the JSON value, not its bytes
/// (MariaDB's JSON column keeps the bytes).
pub struct SqlSubject {
    pub db: Database,
    pub proxy: TcpProxy,
    pub table: String,
    pub refused_table: String,
    pub registry: fn() -> Registry,
}

impl SqlSubject {
    /// Start the proxy in front of `db` and make a table of another shape for the refusal.
    pub async fn new(db: Database, registry: fn() -> Registry) -> Self {
        db.require();
        let proxy = TcpProxy::start(db.addr()).await;
        let refused_table = table_name("refused");
        query(
            &db,
            format!("CREATE TABLE {} (n INT)", db.quote(&refused_table)),
            vec![],
        )
        .await;
        Self {
            table: table_name("conformance"),
            db,
            proxy,
            refused_table,
            registry,
        }
    }
}

impl Subject for SqlSubject {
    fn registry(&self) -> Registry {
        (self.registry)()
    }

    fn proxy(&self) -> Option<&TcpProxy> {
        Some(&self.proxy)
    }

    fn destination(&self) -> String {
        format!(
            r#""module": "{}", "connection": "db", "module-config": {{"table": "{}"}}"#,
            self.db.module(),
            self.table
        )
    }

    fn connections(&self) -> Option<String> {
        Some(format!(
            "{{{}}}",
            self.db.connection("db", self.proxy.addr.port())
        ))
    }

    fn refused(&self) -> Option<String> {
        Some(format!(
            r#""module": "{}", "connection": "db", "module-config": {{"table": "{}"}}"#,
            self.db.module(),
            self.refused_table
        ))
    }

    fn stored_form(&self, sent: &[u8]) -> Vec<u8> {
        match self.db.engine {
            Engine::Postgres => canonical_json(sent),
            Engine::MySql => sent.to_vec(),
        }
    }

    async fn received(&self, at_least: usize) -> Vec<Received> {
        let engine = self.db.engine;
        rows(&self.db, &self.table, &["payload", "request_id"], at_least)
            .await
            .into_iter()
            .map(|row| {
                let payload = row["payload"].as_str().unwrap().as_bytes();
                Received {
                    body: match engine {
                        Engine::Postgres => canonical_json(payload),
                        Engine::MySql => payload.to_vec(),
                    },
                    request_id: row["request_id"].as_str().map(str::to_owned),
                }
            })
            .collect()
    }
}

/// JSON text in one canonical form (keys sorted, no spaces), for stores that keep the value
/// rather than the bytes.
fn canonical_json(text: &[u8]) -> Vec<u8> {
    fn sorted(value: Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut entries: Vec<(String, Value)> = map.into_iter().collect();
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
            }
            Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
            other => other,
        }
    }
    serde_json::from_slice::<Value>(text)
        .map(|v| sorted(v).to_string().into_bytes())
        .unwrap_or_else(|_| text.to_vec())
}
