//! A labelled corpus: published test values in many formats, and hard negatives that look like
//! them. Prints precision and recall, and fails below 0.98 precision or 0.99 recall.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    reason = "tests"
)]

use std::collections::BTreeMap;

use mcp_security::redact::{Detector, PatternRedactor, RedactionStyle, Redactor};

/// (entity, value) pairs that must be found, each placed in a few sentences.
const POSITIVES: &[(&str, &str)] = &[
    // Card numbers published as test values by payment processors.
    ("CREDIT_CARD", "4111111111111111"),
    ("CREDIT_CARD", "4111 1111 1111 1111"),
    ("CREDIT_CARD", "4012-8888-8888-1881"),
    ("CREDIT_CARD", "4000056655665556"),
    ("CREDIT_CARD", "5555555555554444"),
    ("CREDIT_CARD", "5105 1051 0510 5100"),
    ("CREDIT_CARD", "2223003122003222"),
    ("CREDIT_CARD", "2223000048400011"),
    ("CREDIT_CARD", "378282246310005"),
    ("CREDIT_CARD", "3714 496353 98431"),
    ("CREDIT_CARD", "6011111111111117"),
    ("CREDIT_CARD", "6011 0009 9013 9424"),
    ("CREDIT_CARD", "3530111333300000"),
    ("CREDIT_CARD", "3566002020360505"),
    ("CREDIT_CARD", "30569309025904"),
    ("CREDIT_CARD", "36227206271667"),
    ("US_SSN", "078-05-1120"),
    ("US_SSN", "219-09-9999"),
    ("US_SSN", "123-45-6789"),
    ("US_SSN", "457 55 5462"),
    ("EMAIL", "jane.doe@example.com"),
    ("EMAIL", "j.smith+tag@mail.example.org"),
    ("EMAIL", "admin@sub.example.co.uk"),
    ("EMAIL", "user_1@example.io"),
    ("EMAIL", "jöhn@exämple.de"),
    ("PHONE", "415-555-2671"),
    ("PHONE", "(212) 555-0187"),
    ("PHONE", "212.555.0187"),
    ("PHONE", "+1 415 555 2671"),
    ("PHONE", "+44 20 7946 0958"),
    ("PHONE", "+14155552671"),
    ("IBAN", "GB82WEST12345698765432"),
    ("IBAN", "GB82 WEST 1234 5698 7654 32"),
    ("IBAN", "DE89370400440532013000"),
    ("IBAN", "DE89 3704 0044 0532 0130 00"),
    ("IBAN", "FR1420041010050500013M02606"),
    ("IBAN", "NL91ABNA0417164300"),
    ("IBAN", "CH9300762011623852957"),
    ("IP_ADDRESS", "192.168.1.10"),
    ("IP_ADDRESS", "10.0.0.1"),
    ("IP_ADDRESS", "203.0.113.42"),
    ("IP_ADDRESS", "2001:db8::1"),
    ("IP_ADDRESS", "fe80::1ff:fe23:4567:890a"),
    ("IP_ADDRESS", "2001:0db8:85a3:0000:0000:8a2e:0370:7334"),
    ("AWS_ACCESS_KEY", "AKIAIOSFODNN7EXAMPLE"),
    ("AWS_ACCESS_KEY", "ASIAIOSFODNN7EXAMPLE"),
    ("GITHUB_TOKEN", "ghp_16C7e42F292c6912E7710c838347Ae178B4a"),
    ("GITHUB_TOKEN", "gho_16C7e42F292c6912E7710c838347Ae178B4a"),
    ("GITHUB_TOKEN", "ghs_16C7e42F292c6912E7710c838347Ae178B4a"),
    (
        "SLACK_TOKEN",
        "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
    ),
    (
        "SLACK_TOKEN",
        "xoxp-123456789012-123456789012-1234567890123-0123456789abcdef0123456789abcdef",
    ),
    (
        "SLACK_WEBHOOK",
        "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
    ),
    ("STRIPE_KEY", "sk_test_4eC39HqLyjWDarjtT1zdp7dc"),
    ("STRIPE_KEY", "rk_live_51H8xYz2eZvKYlo2C0123456789abcdef"),
    ("GCP_API_KEY", "AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe"),
    (
        "JWT",
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
    ),
];

/// Values that need their label: the whole sentence, and the value the detector must report.
const IN_CONTEXT: &[(&str, &str, &str)] = &[
    (
        "US_PASSPORT",
        "Passport number: 123456789, issued 2019.",
        "123456789",
    ),
    (
        "US_PASSPORT",
        "passport no. C03005988 expires soon",
        "C03005988",
    ),
    (
        "US_PASSPORT",
        "Her US passport #E12345678 was scanned.",
        "E12345678",
    ),
    (
        "AWS_SECRET_KEY",
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    ),
    (
        "AWS_SECRET_KEY",
        "AWS_SECRET_ACCESS_KEY=\"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\"",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    ),
    (
        "GENERIC_API_KEY",
        "api_key = \"3f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c\"",
        "3f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c",
    ),
    (
        "GENERIC_API_KEY",
        "export SERVICE_TOKEN=X7dK29LmQp4vR8sT2wY6zA1b",
        "X7dK29LmQp4vR8sT2wY6zA1b",
    ),
    (
        "GENERIC_API_KEY",
        "client_secret: 9sKd82JmQ0vXz7Lp3Rt5Wy1B",
        "9sKd82JmQ0vXz7Lp3Rt5Wy1B",
    ),
    (
        "GENERIC_API_KEY",
        "{\"password\": \"Tr0ub4dorAnd3xKq9\"}",
        "Tr0ub4dorAnd3xKq9",
    ),
    (
        "PRIVATE_KEY",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\nVTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\n-----END RSA PRIVATE KEY-----",
        "",
    ),
    (
        "PRIVATE_KEY",
        "key:\n-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n-----END OPENSSH PRIVATE KEY-----\nend",
        "",
    ),
    (
        "PRIVATE_KEY",
        "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIIrYSSNQFaA2Hwf1duRSxKtLYX5CB04fSeQ6tF1aY/PuoAoGCCqGSM49\n-----END EC PRIVATE KEY-----",
        "",
    ),
    (
        "PRIVATE_KEY",
        "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n-----END PRIVATE KEY-----",
        "",
    ),
];

/// Sentences with nothing to find, each close to something that is.
const NEGATIVES: &[&str] = &[
    "order 4111111111111112 shipped",
    "ref 1234 5678 9012 3456 noted",
    "card on file ends 5555555555554445",
    "account 1234567812345670 is internal",
    "SSN 000-12-3456 is not valid",
    "SSN 666-12-3456 is not valid",
    "SSN 900-12-3456 is not valid",
    "SSN 123-00-4567 is not valid",
    "SSN 123-45-0000 is not valid",
    "code 123-45 6789 mixed",
    "request id 550e8400-e29b-41d4-a716-446655440000",
    "trace f47ac10b-58cc-4372-a567-0e02b2c3d479 done",
    "commit e83c5163316f89bfbde7d9ab23ca2e25604af290",
    "tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904",
    "at 2026-11-24T02:10:13Z the job ran",
    "epoch 1700000000000 ms",
    "meeting at 12:30:45 sharp",
    "logged 2026-11-24 14:05",
    "order ORD-2024-000123 placed",
    "invoice #100234 paid",
    "PO 4500012345 approved",
    "UPS 1Z999AA10123456784 in transit",
    "USPS 9400111899223397623910 delivered",
    "upgrade to v1.2.3 today",
    "release 2.10.0 is out",
    "build 1.0.0-beta.2 failed",
    "version 10.4.1 and v1.2.3.4",
    "call 1234567890 maybe",
    "ISBN 978-3-16-148410-0",
    "point 1.2.3 in the spec",
    "host 999.1.1.1 is not an address",
    "mac 00:1A:2B:3C:4D:5E on eth0",
    "write to user at example dot com",
    "follow @handle for news",
    "foo@bar is not an address",
    "IBAN GB82WEST12345698765433 has a typo",
    "IBAN DE00123456789012345678 is fake",
    "key AKIA1234 is too short",
    "api_key = your_api_key_here",
    "password: changeme",
    "token = null",
    "secret = 'aaaaaaaaaaaaaaaaaaaa'",
    "the header.payload.signature shape",
    "eyJ.eyJ.xx is not a token",
    "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----",
    "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYI\n-----END PUBLIC KEY-----",
    "price 1,299.99 USD",
    "temperature 36.6 C at 08:15",
    "room 4-101, floor 3",
    "see section 3.2.1.4 of RFC 3986",
    "the passport office opens at 9",
    "aws region us-east-1 and secret sauce",
    "sk_test is the prefix Stripe uses",
    "ghp_ tokens are GitHub's",
    "xoxb- is a Slack prefix",
    "AIza starts Google keys",
    "Nothing sensitive in this sentence at all.",
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit.",
    "The quick brown fox jumps over the lazy dog 1234 times.",
    "matrix [[1, 2], [3, 4]] and 5-6-7",
];

const TEMPLATES: &[&str] = &[
    "{}",
    "Contact: {}.",
    "customer said \"{}\" on the phone",
    "row 7 | {} | ok",
];

#[test]
fn corpus_precision_and_recall() {
    let r = PatternRedactor::with(Detector::ALL, [], RedactionStyle::Mask).unwrap();
    let mut samples: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for (entity, value) in POSITIVES {
        for t in TEMPLATES.iter().take(2) {
            samples.push((
                t.replace("{}", value),
                vec![((*entity).into(), (*value).into())],
            ));
        }
    }
    for (entity, text, value) in IN_CONTEXT {
        let value = if value.is_empty() { *text } else { value };
        let value = if *entity == "PRIVATE_KEY" {
            // The whole block, from BEGIN to END.
            let start = value.find("-----BEGIN").unwrap();
            let end = value.rfind("-----").unwrap() + 5;
            &value[start..end]
        } else {
            value
        };
        samples.push(((*text).into(), vec![((*entity).into(), value.into())]));
    }
    for t in NEGATIVES {
        samples.push(((*t).into(), vec![]));
    }
    // An address with a port.
    samples.push((
        "connect to 10.1.2.3:5432 now".into(),
        vec![("IP_ADDRESS".into(), "10.1.2.3".into())],
    ));
    // A mixed line with several values at once.
    samples.push((
        "Jane (jane.doe@example.com, 415-555-2671) paid with 4111 1111 1111 1111 from 203.0.113.42"
            .into(),
        vec![
            ("EMAIL".into(), "jane.doe@example.com".into()),
            ("PHONE".into(), "415-555-2671".into()),
            ("CREDIT_CARD".into(), "4111 1111 1111 1111".into()),
            ("IP_ADDRESS".into(), "203.0.113.42".into()),
        ],
    ));

    let (mut tp, mut fp, mut fn_) = (0usize, 0usize, 0usize);
    let mut per_type: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new();
    let mut problems = Vec::new();
    for (text, expected) in &samples {
        let found: Vec<(String, String)> = r
            .scan(text)
            .into_iter()
            .map(|f| (f.entity.to_string(), text[f.start..f.end].to_owned()))
            .collect();
        for e in expected {
            if found.contains(e) {
                tp += 1;
                per_type.entry(e.0.clone()).or_default().0 += 1;
            } else {
                fn_ += 1;
                per_type.entry(e.0.clone()).or_default().2 += 1;
                problems.push(format!("missed {e:?} in {text:?}; found {found:?}"));
            }
        }
        for f in &found {
            if !expected.contains(f) {
                fp += 1;
                per_type.entry(f.0.clone()).or_default().1 += 1;
                problems.push(format!("false alarm {f:?} in {text:?}"));
            }
        }
        // Redaction removes every expected value.
        let out = r
            .redact_text(text)
            .map(|x| x.text().to_owned())
            .unwrap_or_else(|| text.clone());
        for (_, v) in expected {
            if out.contains(v.as_str()) {
                problems.push(format!("{v:?} survived in {out:?}"));
            }
        }
    }
    let precision = tp as f64 / (tp + fp).max(1) as f64;
    let recall = tp as f64 / (tp + fn_).max(1) as f64;
    eprintln!(
        "\nredaction corpus: {} samples ({} with values, {} negatives), {} values",
        samples.len(),
        samples.len() - NEGATIVES.len(),
        NEGATIVES.len(),
        tp + fn_
    );
    for (t, (a, b, c)) in &per_type {
        eprintln!("  {t:<16} found {a:>3}  false alarms {b:>2}  missed {c:>2}");
    }
    eprintln!("precision {precision:.4}  recall {recall:.4}  (tp {tp}, fp {fp}, fn {fn_})");
    for p in &problems {
        eprintln!("  {p}");
    }
    assert!(
        samples.len() >= 150,
        "the corpus must hold at least 150 samples"
    );
    assert!(precision >= 0.98, "precision {precision:.4} is below 0.98");
    assert!(recall >= 0.99, "recall {recall:.4} is below 0.99");
}

#[test]
fn long_and_glued_secrets_are_redacted_whole() {
    let r = PatternRedactor::with(Detector::ALL, [], RedactionStyle::Mask).unwrap();
    // 300 characters from a simple generator over letters and digits (entropy well above 3 bits).
    let alphabet = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let long: String = (0..300)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            alphabet[(x >> 33) as usize % alphabet.len()] as char
        })
        .collect();
    for text in [
        format!("token={long}"),
        "password: Xk9mQ2vL8pR4tY7w!Zq8Hn3Jd6Fs".to_owned(),
    ] {
        let out = r
            .redact_text(&text)
            .map(|x| x.text().to_owned())
            .unwrap_or_default();
        assert!(out.ends_with("REDACTED]"), "{text:?} -> {out:?}");
    }
    // An access token holding a long JWT: nothing of it survives.
    let jwt = format!(
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ{}.{}",
        "x".repeat(500),
        "s".repeat(80)
    );
    let out = r
        .redact_text(&format!("{{\"access_token\":\"{jwt}\"}}"))
        .map(|x| x.text().to_owned())
        .unwrap_or_default();
    assert!(!out.contains("xxxx") && !out.contains("ssss"), "{out}");
}
