//! The PostgreSQL audit sink against a real PostgreSQL server started by the test: the table is
//! created, batched concurrent inserts keep one intact hash chain per writer, two writers
//! (replicas) share the table, a restarted writer continues its chain, a changed row is found,
//! and records fail (not vanish) while the server is down.

#![cfg(feature = "postgres")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

#[path = "support/external.rs"]
mod external;

use std::sync::Arc;

use external::{Postgres, skip};
use mcp_security::CorrelationId;
use mcp_security::audit::{
    AuditEvent, AuditSink, EventType, PostgresConfig, PostgresSink, TamperKind,
};

fn event<'a>(detail: &'a str) -> AuditEvent<'a> {
    AuditEvent::system(
        EventType::ToolInvocation,
        "tools/call",
        &CorrelationId::None,
    )
    .with_detail(detail)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sink_chains_batches_and_survives_restarts() {
    let Some(mut pg) = Postgres::start() else {
        skip(
            "postgres_sink_chains_batches_and_survives_restarts",
            "PostgreSQL (initdb, postgres) is not installed",
        );
        return;
    };
    let a = Arc::new(
        PostgresSink::connect(PostgresConfig::new(pg.conninfo(), "replica-a").batch(64))
            .await
            .unwrap(),
    );
    let b = PostgresSink::connect(PostgresConfig::new(pg.conninfo(), "replica-b"))
        .await
        .unwrap();
    // 8 concurrent tasks x 250 records into replica a: batched inserts.
    let mut tasks = Vec::new();
    for t in 0..8 {
        let a = a.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..250 {
                let d = format!("a {t}/{i}");
                a.record(&event(&d)).await.unwrap();
            }
        }));
    }
    for i in 0..10 {
        let d = format!("b {i}");
        b.record(&event(&d)).await.unwrap();
    }
    for t in tasks {
        t.await.unwrap();
    }
    let r = a.verify().await.unwrap();
    assert!(r.is_intact(), "{:?}", r.problem);
    assert_eq!(r.events, 2000);
    let r = b.verify().await.unwrap();
    assert!(r.is_intact(), "{:?}", r.problem);
    assert_eq!(r.events, 10);

    // The rows hold the queryable columns and the chain fields.
    let (client, conn) = tokio_postgres::connect(&pg.conninfo(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let row = client
        .query_one(
            "SELECT count(*), count(DISTINCT event_id), min(seq), max(seq) FROM mcp_audit_log WHERE chain_id = 'replica-a'",
            &[],
        )
        .await
        .unwrap();
    let (n, ids, min, max): (i64, i64, i64, i64) = (row.get(0), row.get(1), row.get(2), row.get(3));
    assert_eq!((n, ids, min, max), (2000, 2000, 0, 1999));
    let row = client
        .query_one(
            "SELECT event_type, method, prev, hash FROM mcp_audit_log WHERE chain_id = 'replica-a' AND seq = 0",
            &[],
        )
        .await
        .unwrap();
    let (ty, method, prev, hash): (String, String, String, String) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    assert_eq!(
        (ty.as_str(), method.as_str()),
        ("tool_invocation", "tools/call")
    );
    assert_eq!(prev, "0".repeat(64));
    assert_eq!(hash.len(), 64);

    // A restarted writer continues its chain.
    drop(a);
    let a2 = PostgresSink::connect(PostgresConfig::new(pg.conninfo(), "replica-a"))
        .await
        .unwrap();
    a2.record(&event("after restart")).await.unwrap();
    let r = a2.verify().await.unwrap();
    assert!(r.is_intact(), "{:?}", r.problem);
    assert_eq!(r.events, 2001);

    // A changed row is found.
    client
        .execute(
            "UPDATE mcp_audit_log SET record = replace(record, 'a 3/7', 'a 3/8') WHERE chain_id = 'replica-a' AND record LIKE '%\"a 3/7\"%'",
            &[],
        )
        .await
        .unwrap();
    let p = a2.verify().await.unwrap().problem.unwrap();
    assert_eq!(p.kind, TamperKind::Modified, "{p}");
    // A deleted row too.
    client
        .execute(
            "DELETE FROM mcp_audit_log WHERE chain_id = 'replica-b' AND seq = 4",
            &[],
        )
        .await
        .unwrap();
    let p = b.verify().await.unwrap().problem.unwrap();
    assert_eq!((p.kind, p.seq), (TamperKind::Deleted, Some(5)), "{p}");

    // The server goes away: records fail, loudly.
    drop(client);
    pg.stop();
    let e = b.record(&event("lost?")).await;
    assert!(
        e.is_err(),
        "a record reported written with the database down"
    );
}
