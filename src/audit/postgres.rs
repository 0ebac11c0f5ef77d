//! The PostgreSQL sink: many replicas, one table, one hash chain per writer.

use std::path::PathBuf;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls};

use super::chain::{GENESIS, record_line};
use super::{AuditError, AuditEvent, AuditOutcome, AuditSink, VerifyReport};

/// Where and how a [`PostgresSink`] writes.
#[derive(Debug, Clone)]
pub struct PostgresConfig {
    conninfo: String,
    table: String,
    chain_id: String,
    batch: usize,
    queue: usize,
}

impl PostgresConfig {
    /// Writes to the database `conninfo` names (`host=127.0.0.1 port=5432 user=audit
    /// dbname=audit`, or a `postgresql://` URL), into table `mcp_audit_log`, as chain `chain_id`.
    ///
    /// Each writer (each replica) needs its own `chain_id`: the chain is per writer, and two
    /// writers with one id collide on the primary key (the second one's records fail; none is
    /// lost silently).
    pub fn new(conninfo: impl Into<String>, chain_id: impl Into<String>) -> Self {
        PostgresConfig {
            conninfo: conninfo.into(),
            table: "mcp_audit_log".into(),
            chain_id: chain_id.into(),
            batch: 256,
            queue: 4096,
        }
    }

    /// Uses another table (letters, digits and `_`, starting with a letter or `_`).
    pub fn table(mut self, table: impl Into<String>) -> Self {
        self.table = table.into();
        self
    }

    /// Inserts up to this many queued records per statement.
    pub fn batch(mut self, records: usize) -> Self {
        self.batch = records.clamp(1, 2000);
        self
    }

    /// How many records may wait for the writer before `record` waits for room.
    pub fn queue_capacity(mut self, records: usize) -> Self {
        self.queue = records.max(1);
        self
    }
}

struct Row {
    event_id: String,
    ts: DateTime<Utc>,
    event_type: &'static str,
    outcome: &'static str,
    host: Option<String>,
    method: String,
    target: Option<String>,
    stage: &'static str,
    rule: Option<String>,
    body: Vec<u8>,
    ack: oneshot::Sender<Result<u64, AuditError>>,
}

fn outcome_str(o: AuditOutcome) -> &'static str {
    match o {
        AuditOutcome::Allow => "allow",
        AuditOutcome::Deny => "deny",
        AuditOutcome::Error => "error",
        AuditOutcome::Cancelled => "cancelled",
    }
}

/// Inserts records into a PostgreSQL table, in batches, from a writer task fed by a bounded
/// queue (back-pressure, as [`FileSink`](super::FileSink)). The table is created if missing:
///
/// ```sql
/// CREATE TABLE mcp_audit_log (
///   chain_id TEXT, seq BIGINT, event_id TEXT, ts TIMESTAMPTZ, event_type TEXT, outcome TEXT,
///   host TEXT, method TEXT, target TEXT, stage TEXT, rule TEXT,
///   record TEXT,  -- the event's canonical JSON: the bytes the hash covers
///   prev TEXT, hash TEXT,
///   PRIMARY KEY (chain_id, seq))
/// ```
///
/// `prev` and `hash` chain each writer's rows exactly as the file sink chains lines
/// ([`chain_hash`](super::chain_hash) over `{"prev":..,"seq":..,<record's fields>}`), so
/// [`verify`](Self::verify) finds a changed, deleted or inserted row. `record` returns once the
/// row is committed. A lost connection fails the records in flight and is reopened for the next
/// batch.
#[derive(Debug)]
pub struct PostgresSink {
    tx: mpsc::Sender<Row>,
    config: PostgresConfig,
}

fn valid_table(t: &str) -> bool {
    let mut chars = t.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && t.len() <= 63
}

fn db_error(e: &tokio_postgres::Error) -> AuditError {
    // The server's message can quote values; the SQLSTATE says enough.
    AuditError::Database(match e.code() {
        Some(c) => format!("sqlstate {}", c.code()),
        None if e.is_closed() => "connection closed".into(),
        None => "connection failed".into(),
    })
}

async fn connect(config: &PostgresConfig) -> Result<Client, AuditError> {
    let (client, connection) = tokio_postgres::connect(&config.conninfo, NoTls)
        .await
        .map_err(|e| db_error(&e))?;
    tokio::spawn(async move {
        // Ends when the connection does; the writer notices through the client.
        let _ = connection.await;
    });
    Ok(client)
}

impl PostgresSink {
    /// Connects, creates the table if missing, reads where this writer's chain stands, and
    /// starts the writer task on the current tokio runtime.
    ///
    /// # Errors
    /// [`AuditError::Database`] when the database cannot be reached or the table created;
    /// [`AuditError::Encode`] for a table name that is not a plain identifier.
    pub async fn connect(config: PostgresConfig) -> Result<Self, AuditError> {
        if !valid_table(&config.table) {
            return Err(AuditError::Encode);
        }
        let client = connect(&config).await?;
        client
            .batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {t} (
                    chain_id TEXT NOT NULL, seq BIGINT NOT NULL, event_id TEXT NOT NULL,
                    ts TIMESTAMPTZ NOT NULL, event_type TEXT NOT NULL, outcome TEXT NOT NULL,
                    host TEXT, method TEXT NOT NULL, target TEXT, stage TEXT NOT NULL, rule TEXT,
                    record TEXT NOT NULL, prev TEXT NOT NULL, hash TEXT NOT NULL,
                    PRIMARY KEY (chain_id, seq));
                 CREATE INDEX IF NOT EXISTS {t}_ts ON {t} (ts);",
                t = config.table
            ))
            .await
            .map_err(|e| db_error(&e))?;
        let (seq, prev) = chain_head(&client, &config).await?;
        let (tx, rx) = mpsc::channel(config.queue);
        let writer = PgWriter {
            config: config.clone(),
            client: Some(client),
            seq,
            prev,
        };
        tokio::spawn(writer.run(rx));
        Ok(PostgresSink { tx, config })
    }

    /// Reads this writer's chain back and verifies it (links, hashes, no gaps), as
    /// [`verify_files`](super::verify_files) does for a file. The report names rows as
    /// `postgres:TABLE/CHAIN_ID` with `line` = row number in `seq` order.
    ///
    /// # Errors
    /// [`AuditError::Database`] when the rows cannot be read.
    pub async fn verify(&self) -> Result<VerifyReport, AuditError> {
        let client = connect(&self.config).await?;
        let rows = client
            .query(
                &format!(
                    "SELECT seq, record, prev, hash FROM {} WHERE chain_id = $1 ORDER BY seq",
                    self.config.table
                ),
                &[&self.config.chain_id],
            )
            .await
            .map_err(|e| db_error(&e))?;
        let mut lines = Vec::new();
        for row in rows {
            let seq: i64 = row.try_get(0).map_err(|e| db_error(&e))?;
            let record: String = row.try_get(1).map_err(|e| db_error(&e))?;
            let prev: String = row.try_get(2).map_err(|e| db_error(&e))?;
            let hash: String = row.try_get(3).map_err(|e| db_error(&e))?;
            // The same line the file sink writes: chain fields, then the record's fields.
            let fields = record
                .strip_prefix('{')
                .and_then(|r| r.strip_suffix('}'))
                .unwrap_or_default();
            let sep = if fields.is_empty() { "" } else { "," };
            lines.extend_from_slice(
                format!("{{\"hash\":{hash:?},\"prev\":{prev:?},\"seq\":{seq}{sep}{fields}}}\n")
                    .as_bytes(),
            );
        }
        let name = PathBuf::from(format!(
            "postgres:{}/{}",
            self.config.table, self.config.chain_id
        ));
        Ok(super::verify::verify_data(&[name], &[lines], None, None))
    }
}

async fn chain_head(
    client: &Client,
    config: &PostgresConfig,
) -> Result<(u64, [u8; 32]), AuditError> {
    let row = client
        .query_opt(
            &format!(
                "SELECT seq, hash FROM {} WHERE chain_id = $1 ORDER BY seq DESC LIMIT 1",
                config.table
            ),
            &[&config.chain_id],
        )
        .await
        .map_err(|e| db_error(&e))?;
    let Some(row) = row else {
        return Ok((0, GENESIS));
    };
    let seq: i64 = row.try_get(0).map_err(|e| db_error(&e))?;
    let hash: String = row.try_get(1).map_err(|e| db_error(&e))?;
    let hash = crate::hex::parse_sha256(&hash)
        .ok_or_else(|| AuditError::Database("the chain's last hash is not 64 hex digits".into()))?;
    Ok((u64::try_from(seq).unwrap_or(0).saturating_add(1), hash))
}

#[async_trait]
impl AuditSink for PostgresSink {
    async fn record(&self, e: &AuditEvent<'_>) -> Result<(), AuditError> {
        let mut body = Vec::with_capacity(512);
        e.write_canonical(&mut body)?;
        let (ack, rx) = oneshot::channel();
        let row = Row {
            event_id: e.event_id.to_string(),
            ts: e.timestamp,
            event_type: e.event_type.as_str(),
            outcome: outcome_str(e.outcome),
            host: e.host.map(str::to_owned),
            method: e.method.to_owned(),
            target: e.target.map(str::to_owned),
            stage: e.stage.as_str(),
            rule: e.rule.map(|r| r.as_str().to_owned()),
            body,
            ack,
        };
        self.tx.send(row).await.map_err(|_| AuditError::Closed)?;
        rx.await.map_err(|_| AuditError::Closed)?.map(|_| ())
    }
}

struct PgWriter {
    config: PostgresConfig,
    client: Option<Client>,
    seq: u64,
    prev: [u8; 32],
}

const COLUMNS: usize = 14;

impl PgWriter {
    async fn run(mut self, mut rx: mpsc::Receiver<Row>) {
        let mut batch = Vec::with_capacity(self.config.batch);
        while let Some(first) = rx.recv().await {
            batch.push(first);
            while batch.len() < self.config.batch {
                match rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            self.write(&mut batch).await;
        }
    }

    async fn write(&mut self, batch: &mut Vec<Row>) {
        let result = self.insert(batch).await;
        for (i, row) in batch.drain(..).enumerate() {
            let r = match &result {
                Ok(first) => Ok(first + i as u64),
                Err(AuditError::Database(m)) => Err(AuditError::Database(m.clone())),
                Err(AuditError::Closed) => Err(AuditError::Closed),
                Err(e) => Err(AuditError::Database(e.to_string())),
            };
            let _ = row.ack.send(r);
        }
    }

    /// Inserts the batch in one statement; returns the first row's seq.
    async fn insert(&mut self, batch: &[Row]) -> Result<u64, AuditError> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            let client = connect(&self.config).await?;
            // Another writer may have gone on with this chain meanwhile: start from the table.
            let (seq, prev) = chain_head(&client, &self.config).await?;
            self.seq = seq;
            self.prev = prev;
            self.client = Some(client);
        }
        let client = self.client.as_ref().ok_or(AuditError::Closed)?;
        let first = self.seq;
        let mut prev = self.prev;
        let mut out = Vec::new();
        let mut scratch = Vec::new();
        let mut owned: Vec<(i64, String, String, String)> = Vec::with_capacity(batch.len());
        for (i, row) in batch.iter().enumerate() {
            let seq = first + i as u64;
            out.clear();
            let hash = record_line(&mut out, &mut scratch, &prev, seq, &row.body);
            owned.push((
                i64::try_from(seq).map_err(|_| AuditError::Encode)?,
                String::from_utf8_lossy(&row.body).into_owned(),
                crate::hex::encode(&prev),
                crate::hex::encode(&hash),
            ));
            prev = hash;
        }
        let mut sql = format!(
            "INSERT INTO {} (chain_id, seq, event_id, ts, event_type, outcome, host, method, \
             target, stage, rule, record, prev, hash) VALUES ",
            self.config.table
        );
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(batch.len() * COLUMNS);
        for (i, (row, (seq, record, prev_hex, hash_hex))) in batch.iter().zip(&owned).enumerate() {
            if i > 0 {
                sql.push(',');
            }
            sql.push('(');
            for c in 0..COLUMNS {
                if c > 0 {
                    sql.push(',');
                }
                sql.push_str(&format!("${}", i * COLUMNS + c + 1));
            }
            sql.push(')');
            params.extend_from_slice(&[
                &self.config.chain_id,
                seq,
                &row.event_id,
                &row.ts,
                &row.event_type,
                &row.outcome,
                &row.host,
                &row.method,
                &row.target,
                &row.stage,
                &row.rule,
                record,
                prev_hex,
                hash_hex,
            ]);
        }
        match client.execute(sql.as_str(), &params).await {
            Ok(_) => {
                self.seq = first + batch.len() as u64;
                self.prev = prev;
                Ok(first)
            }
            Err(e) => {
                if e.is_closed() {
                    self.client = None;
                }
                Err(db_error(&e))
            }
        }
    }
}
