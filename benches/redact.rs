//! Redaction throughput on 1 MiB of mixed text (clean, and dense with one finding per ~200
//! bytes), beside two baselines in the same run: the first engine (every pattern in one
//! automaton, searched from each candidate) and a naive loop running one regex per detector;
//! and the cost of redacting a 4 KiB tool result.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    reason = "benchmark harness"
)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mcp_security::redact::{Detector, Finding, PatternRedactor, RedactionStyle, Redactor};

const CLEAN_LINES: &[&str] = &[
    "2026-11-24 02:10:13 INFO request handled in 12 ms, 3 rows returned for report weekly_sales\n",
    "The quarterly figures improved by 4.5 percent over the previous period, driven by retail.\n",
    "order ORD-2024-000123 shipped to the warehouse in Rotterdam; tracking updates follow later\n",
    "build 1.0.0-beta.2 passed 1284 tests in 93 seconds on runner linux-x64 with cache hits\n",
    "id 550e8400-e29b-41d4-a716-446655440000 status=ok retries=0 latency_p99=41ms region=eu\n",
    "Customers asked about delivery windows, return policies and gift wrapping in the chat.\n",
];

const DENSE_VALUES: &[&str] = &[
    "jane.doe@example.com",
    "4111 1111 1111 1111",
    "078-05-1120",
    "+44 20 7946 0958",
    "192.168.1.10",
    "GB82WEST12345698765432",
    "AKIAIOSFODNN7EXAMPLE",
    "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
];

fn text(dense: bool) -> String {
    let mut s = String::with_capacity(1 << 20);
    let mut i = 0;
    while s.len() < 1 << 20 {
        s.push_str(CLEAN_LINES[i % CLEAN_LINES.len()]);
        if dense {
            // About one value per 200 bytes.
            s.push_str("contact ");
            s.push_str(DENSE_VALUES[i % DENSE_VALUES.len()]);
            s.push_str(" today; ");
            s.push_str(&CLEAN_LINES[(i + 1) % CLEAN_LINES.len()][..40]);
            s.push('\n');
        }
        i += 1;
    }
    s
}

/// Rebuilds `text` with each finding masked, as `RedactionStyle::Mask` does (the baselines find
/// with `scan_one_automaton` and replace here; they skip the report, which favours them a little).
fn masked(text: &str, findings: &[Finding]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for f in findings {
        out.push_str(&text[last..f.start]);
        out.push('[');
        out.push_str(&f.entity);
        out.push_str(" REDACTED]");
        last = f.end;
    }
    out.push_str(&text[last..]);
    out
}

fn bench(c: &mut Criterion) {
    let one_pass = PatternRedactor::with(Detector::ALL, [], RedactionStyle::Mask).unwrap();
    let naive: Vec<PatternRedactor> = Detector::ALL
        .iter()
        .map(|d| PatternRedactor::with([*d], [], RedactionStyle::Mask).unwrap())
        .collect();
    let clean = text(false);
    let dense = text(true);
    assert!(
        one_pass.scan(&clean).is_empty(),
        "the clean text must have no findings"
    );
    let per_kb = one_pass.scan(&dense).len() as f64 / (dense.len() as f64 / 1024.0);
    eprintln!(
        "dense text: {:.1} findings per KiB ({:.0} bytes per finding)",
        per_kb,
        1024.0 / per_kb
    );

    assert_eq!(
        one_pass.scan(&dense),
        one_pass.scan_one_automaton(&dense),
        "the scanner and the first engine must agree"
    );

    let mut g = c.benchmark_group("redact_1mib");
    g.sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for (name, t) in [("clean", &clean), ("dense", &dense)] {
        g.throughput(Throughput::Bytes(t.len() as u64));
        g.bench_function(format!("one_pass_{name}"), |b| {
            b.iter(|| black_box(one_pass.redact_text(black_box(t))))
        });
        g.bench_function(format!("one_automaton_{name}"), |b| {
            b.iter(|| {
                let t = black_box(t);
                black_box(masked(t, &one_pass.scan_one_automaton(t)))
            })
        });
        g.bench_function(format!("naive_per_detector_{name}"), |b| {
            b.iter(|| {
                // One regex per detector, each pass on the previous pass's output.
                let mut current = t.clone();
                for r in &naive {
                    let found = r.scan_one_automaton(&current);
                    if !found.is_empty() {
                        current = masked(&current, &found);
                    }
                }
                black_box(current)
            })
        });
    }
    g.finish();

    let result = format!(
        "{}customer jane.doe@example.com paid with 4111 1111 1111 1111 from 203.0.113.42{}",
        CLEAN_LINES.concat().repeat(7),
        CLEAN_LINES[0].repeat(2)
    );
    let result = &result[..4096.min(result.len())];
    let mut g = c.benchmark_group("redact_tool_result");
    g.sample_size(50)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    g.throughput(Throughput::Bytes(result.len() as u64));
    g.bench_function("4kib_with_3_values", |b| {
        b.iter(|| black_box(one_pass.redact_text(black_box(result))))
    });
    g.bench_function("4kib_with_3_values_one_automaton", |b| {
        b.iter(|| {
            let t = black_box(result);
            black_box(masked(t, &one_pass.scan_one_automaton(t)))
        })
    });
    g.finish();
}

/// Inputs built to make a scanner backtrack or restart: each must cost time linear in its size.
/// The first engine runs beside each for comparison.
fn adversarial(c: &mut Criterion) {
    let one_pass = PatternRedactor::with(Detector::ALL, [], RedactionStyle::Mask).unwrap();
    let n = 256 * 1024;
    let inputs = [
        ("digits", "7".repeat(n)),
        ("dotted_ones", "1.".repeat(n / 2)),
        ("jwt_prefixes", "eyJAAAAAAAA-".repeat(n / 12)),
        ("at_signs", "a@".repeat(n / 2)),
        ("passport_words", "passport ".repeat(n / 9)),
        // The scanner's own candidate sources: an operator at every byte, a label before every
        // operator (each a failed generic-secret candidate), colons, digit groups.
        ("operators", "=".repeat(n)),
        ("labelled_operators", "token=".repeat(n / 6)),
        // The same with two character classes (`Token1=`), and with ten distinct characters
        // but one of them most (`secret=Ab1aaaaaaaa`): values that pass the cheap checks of
        // the generic secret's validator and fail on their entropy.
        ("labelled_mixed_operators", "Token1=".repeat(n / 7)),
        (
            "labelled_skewed_operators",
            "secret=Ab1aaaaaaaa".repeat(n / 18),
        ),
        // Operators inside one long value with no label before any of them (as in base64
        // with padding): the value is never counted.
        ("unlabelled_operators", "A1=".repeat(n / 3)),
        ("colons", "1:".repeat(n / 2)),
        ("digit_groups", "4111 ".repeat(n / 5)),
    ];
    let mut g = c.benchmark_group("redact_adversarial_256kib");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    for (name, text) in &inputs {
        g.throughput(Throughput::Bytes(text.len() as u64));
        g.bench_function(*name, |b| {
            b.iter(|| black_box(one_pass.redact_text(black_box(text))))
        });
        g.bench_function(format!("{name}_one_automaton"), |b| {
            b.iter(|| {
                let t = black_box(text.as_str());
                black_box(masked(t, &one_pass.scan_one_automaton(t)))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench, adversarial);
criterion_main!(benches);
