//! An [`AuditEvent`]'s canonical JSON, written field by field.
//!
//! Every request writes one record, so this is on the hot path. Through serde the record cost
//! about 9,800 instructions (callgrind, one `tools/call` over HTTP): serde_json escapes every
//! key and value byte by byte, and the timestamp and id went through `fmt`. Here keys are
//! static bytes, a string that needs no escaping is copied whole, numbers go through itoa and
//! the timestamp and id are formatted into stack buffers. serde_json remains the reference:
//! strings that need escaping, addresses and the classification are written by it, and tests
//! hold the output byte-equal to the derived `Serialize` encoding (and that to the generic
//! canonical encoder).

use chrono::{Datelike, Timelike};

use super::AuditEvent;
use crate::context::CorrelationId;

/// Appends `event`'s canonical JSON to `out`.
pub(super) fn write_event(e: &AuditEvent<'_>, out: &mut Vec<u8>) -> Result<(), super::AuditError> {
    out.reserve(512);
    let mut w = Fields { out, first: true };
    // Keys in byte order, as `to_canonical_json` sorts them; absent options are left out, as
    // the derive's `skip_serializing_if` does.
    w.out.push(b'{');
    if let Some(m) = e.auth_method {
        w.str("auth_method", m.as_str());
    }
    if let Some(c) = e.classification {
        w.key("classification");
        serde_json::to_writer(&mut *w.out, &ClassificationRef(c))
            .map_err(|_| super::AuditError::Encode)?;
    }
    w.key("correlation_id");
    match e.correlation_id {
        CorrelationId::None => w.out.extend_from_slice(b"null"),
        CorrelationId::Number(n) => w.int(*n),
        CorrelationId::Text(t) => string(w.out, t),
    }
    if let Some(k) = e.deny_kind {
        w.str("deny_kind", k.as_str());
    }
    if let Some(d) = e.detail {
        w.str("detail", d);
    }
    if let Some(c) = e.error_code {
        w.key("error_code");
        w.int(c);
    }
    w.key("event_id");
    event_id(w.out, e.event_id.as_u128());
    w.str("event_type", e.event_type.as_str());
    if let Some(h) = e.host {
        w.str("host", h);
    }
    w.key("latency_us");
    w.int(e.latency_us);
    w.str("method", e.method);
    w.str("outcome", e.outcome.as_str());
    match e.peer_addr {
        // Dotted decimal, as `Ipv4Addr`'s `Display` writes it, without `fmt`.
        Some(std::net::IpAddr::V4(ip)) => {
            w.key("peer_addr");
            w.out.push(b'"');
            for (i, octet) in ip.octets().into_iter().enumerate() {
                if i > 0 {
                    w.out.push(b'.');
                }
                w.int(octet);
            }
            w.out.push(b'"');
        }
        Some(ip) => {
            w.key("peer_addr");
            serde_json::to_writer(&mut *w.out, &ip).map_err(|_| super::AuditError::Encode)?;
        }
        None => {}
    }
    if let Some(r) = e.reason {
        w.str("reason", r);
    }
    w.key("redactions");
    w.int(e.redactions);
    if let Some(u) = e.resource_uri {
        w.str("resource_uri", u);
    }
    if let Some(r) = e.rule {
        w.str("rule", r.as_str());
    }
    if let Some(s) = e.server_id {
        w.str("server_id", s);
    }
    if let Some(s) = e.session_id {
        w.str("session_id", s);
    }
    w.str("stage", e.stage.as_str());
    if let Some(s) = e.subject {
        w.str("subject", s);
    }
    if let Some(t) = e.target {
        w.str("target", t);
    }
    w.key("timestamp");
    timestamp(w.out, &e.timestamp).map_err(|_| super::AuditError::Encode)?;
    if let Some(t) = e.tool_name {
        w.str("tool_name", t);
    }
    w.str("transport", e.transport.as_str());
    if let Some(u) = e.user_agent {
        w.str("user_agent", u);
    }
    w.out.push(b'}');
    Ok(())
}

/// The classification as the derive writes it (`ser_classification`).
struct ClassificationRef<'a>(&'a crate::redact::Classification);

impl serde::Serialize for ClassificationRef<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        super::ser_classification(&Some(self.0), s)
    }
}

struct Fields<'o> {
    out: &'o mut Vec<u8>,
    first: bool,
}

impl Fields<'_> {
    /// `"name":`, after a comma unless it is the first field. Names are this file's literals:
    /// plain ASCII, nothing to escape.
    fn key(&mut self, name: &str) {
        if !std::mem::take(&mut self.first) {
            self.out.push(b',');
        }
        self.out.push(b'"');
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    fn str(&mut self, name: &str, value: &str) {
        self.key(name);
        string(self.out, value);
    }

    fn int<I: itoa::Integer>(&mut self, n: I) {
        self.out
            .extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    }
}

/// A JSON string as serde_json writes it: only `"`, `\` and control characters below 0x20
/// are escaped (everything else, non-ASCII included, is copied). A string with none of those
/// is copied whole; any other is left to serde_json, so the escapes are its own.
fn string(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        // Writing a `str` into a `Vec` cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

/// 32 lowercase hex digits, as `EventId`'s `Display` (`{:032x}`).
fn event_id(out: &mut Vec<u8>, id: u128) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 34];
    buf[0] = b'"';
    buf[33] = b'"';
    for (i, b) in buf[1..33].iter_mut().enumerate() {
        let shift = (31 - i) * 4;
        *b = HEX[((id >> shift) & 0xf) as usize];
    }
    out.extend_from_slice(&buf);
}

/// The timestamp as chrono's `Serialize` writes a `DateTime<Utc>` (RFC 3339, `Z`, the
/// fraction in 0, 3, 6 or 9 digits: `SecondsFormat::AutoSi`). Years outside 0-9999 and leap
/// seconds, which that format spells differently, are left to chrono itself.
fn timestamp(out: &mut Vec<u8>, t: &chrono::DateTime<chrono::Utc>) -> serde_json::Result<()> {
    let (year, nanos) = (t.year(), t.nanosecond());
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        return serde_json::to_writer(&mut *out, t);
    }
    // "YYYY-MM-DDTHH:MM:SS.fffffffffZ" with its quotes: 32 bytes at most.
    let mut buf = [0u8; 32];
    buf[0] = b'"';
    let mut pos = 1;
    let mut put = |sep: Option<u8>, v: u32, width: u32| {
        if let Some(c) = sep {
            buf[pos] = c;
            pos += 1;
        }
        for d in (0..width).rev() {
            // A digit: always below 10, so the cast keeps it.
            buf[pos] = b'0' + ((v / 10u32.pow(d)) % 10) as u8;
            pos += 1;
        }
    };
    put(None, year.unsigned_abs(), 4);
    put(Some(b'-'), t.month(), 2);
    put(Some(b'-'), t.day(), 2);
    put(Some(b'T'), t.hour(), 2);
    put(Some(b':'), t.minute(), 2);
    put(Some(b':'), t.second(), 2);
    let fraction = if nanos == 0 {
        None
    } else if nanos % 1_000_000 == 0 {
        Some((nanos / 1_000_000, 3))
    } else if nanos % 1_000 == 0 {
        Some((nanos / 1_000, 6))
    } else {
        Some((nanos, 9))
    };
    if let Some((v, width)) = fraction {
        put(Some(b'.'), v, width);
    }
    buf[pos] = b'Z';
    buf[pos + 1] = b'"';
    out.extend_from_slice(&buf[..pos + 2]);
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]

    use chrono::TimeZone;
    use proptest::prelude::*;

    use super::*;
    use crate::audit::{AuditOutcome, EventType, to_canonical_json};
    use crate::context::{AuthMethod, Transport};
    use crate::decision::{DenyKind, RuleId, Stage};
    use crate::redact::{Classification, Level};

    /// The three encodings of one event: this file's, the derived `Serialize` (serde_json),
    /// and the generic canonical encoder (a `Value`, keys sorted).
    fn all_three(e: &AuditEvent<'_>) -> (String, String, String) {
        let mut fast = Vec::new();
        write_event(e, &mut fast).unwrap();
        let derived = serde_json::to_string(e).unwrap();
        let mut generic = Vec::new();
        to_canonical_json(e, &mut generic).unwrap();
        (
            String::from_utf8(fast).unwrap(),
            derived,
            String::from_utf8(generic).unwrap(),
        )
    }

    #[test]
    fn timestamps_as_chrono_writes_them() {
        let cid = CorrelationId::None;
        for (secs, nanos) in [
            (0_i64, 0_u32),
            (1_733_580_000, 1_000_000),
            (1_733_580_000, 120_000),
            (1_733_580_000, 7),
            (1_733_580_000, 999_999_999),
            // A leap second (chrono writes :60) and years past 9999 take chrono's own path.
            (1_483_228_799, 1_500_000_000),
            (253_402_300_800, 5),
            (-62_167_219_201, 0),
        ] {
            let mut e = AuditEvent::system(EventType::SecurityEvent, "x", &cid);
            e.timestamp = chrono::Utc.timestamp_opt(secs, nanos).unwrap();
            let (fast, derived, generic) = all_three(&e);
            assert_eq!(fast, derived, "{secs} {nanos}");
            assert_eq!(fast, generic, "{secs} {nanos}");
        }
    }

    #[test]
    fn event_ids_as_display_writes_them() {
        let cid = CorrelationId::None;
        for id in [0, 1, 0xabc, u128::MAX, u128::from(u64::MAX) << 64] {
            let mut e = AuditEvent::system(EventType::SecurityEvent, "x", &cid);
            e.event_id = crate::audit::EventId(id);
            let (fast, derived, _) = all_three(&e);
            assert_eq!(fast, derived, "{id:x}");
            assert!(fast.contains(&format!("\"event_id\":\"{id:032x}\"")));
        }
    }

    /// Any text: control characters, quotes, backslashes, line separators, non-ASCII.
    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z0-9/_.:-]{0,24}",
            proptest::collection::vec(
                prop_oneof![
                    Just('"'),
                    Just('\\'),
                    Just('\u{0}'),
                    Just('\n'),
                    Just('\u{1f}'),
                    Just('\u{7f}'),
                    Just('\u{2028}'),
                    Just('é'),
                    Just('😀'),
                    any::<char>(),
                    proptest::char::range('a', 'z'),
                ],
                0..24
            )
            .prop_map(|cs| cs.into_iter().collect()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn byte_equal_to_serde_for_any_event(
            strings in proptest::collection::vec(proptest::option::of(text()), 11),
            method in text(),
            correlation in prop_oneof![
                Just(CorrelationId::None),
                any::<i64>().prop_map(CorrelationId::Number),
                text().prop_map(|t| CorrelationId::Text(t.into())),
            ],
            secs in -62_167_219_200_i64..253_402_300_799,
            nanos in prop_oneof![Just(0_u32), (0_u32..1000).prop_map(|m| m * 1_000_000),
                (0_u32..1_000_000).prop_map(|u| u * 1000), 0_u32..1_000_000_000],
            numbers in (any::<u64>(), any::<u32>(), proptest::option::of(any::<i32>())),
            peer in proptest::option::of(prop_oneof![
                any::<[u8; 4]>().prop_map(std::net::IpAddr::from),
                any::<[u8; 16]>().prop_map(std::net::IpAddr::from),
            ]),
            choices in (0_usize..6, 0_usize..4, 0_usize..8, 0_usize..7, 0_usize..4),
            classified in any::<bool>(),
        ) {
            let rule = strings[10].as_deref().map(RuleId::new);
            let class = Classification {
                level: Level::Restricted,
                categories: vec!["PCI", "PII"],
                retention_days: numbers.2.map(i32::unsigned_abs),
                encryption_required: true,
            };
            let (event_type, outcome, stage, deny_kind) = (
                [
                    EventType::Authentication,
                    EventType::Authorization,
                    EventType::ResourceAccess,
                    EventType::ToolInvocation,
                    EventType::ConfigurationChange,
                    EventType::SecurityEvent,
                ][choices.0],
                [
                    AuditOutcome::Allow,
                    AuditOutcome::Deny,
                    AuditOutcome::Error,
                    AuditOutcome::Cancelled,
                ][choices.1],
                [
                    Stage::Frame,
                    Stage::Authentication,
                    Stage::Authorization,
                    Stage::RateLimit,
                    Stage::Validation,
                    Stage::Handler,
                    Stage::Redaction,
                    Stage::Audit,
                ][choices.2],
                [
                    None,
                    Some(DenyKind::InvalidRequest),
                    Some(DenyKind::Unauthenticated),
                    Some(DenyKind::RateLimited),
                    Some(DenyKind::NotFound),
                    Some(DenyKind::Forbidden),
                    Some(DenyKind::Unavailable),
                ][choices.3],
            );
            // A struct literal, so a field added to `AuditEvent` fails to compile here until
            // `write_event` writes it too.
            let e = AuditEvent {
                auth_method: [
                    None,
                    Some(AuthMethod::ApiKey),
                    Some(AuthMethod::Bearer),
                    Some(AuthMethod::ClientCertificate),
                ][choices.4],
                classification: classified.then_some(&class),
                correlation_id: &correlation,
                deny_kind,
                detail: strings[0].as_deref(),
                error_code: numbers.2,
                event_id: crate::audit::EventId::generate(),
                event_type,
                host: strings[1].as_deref(),
                latency_us: numbers.0,
                method: &method,
                outcome,
                peer_addr: peer,
                reason: strings[2].as_deref(),
                redactions: numbers.1,
                resource_uri: strings[3].as_deref(),
                rule: rule.as_ref(),
                server_id: strings[4].as_deref(),
                session_id: strings[5].as_deref(),
                stage,
                subject: strings[6].as_deref(),
                target: strings[7].as_deref(),
                timestamp: chrono::Utc.timestamp_opt(secs, nanos).unwrap(),
                tool_name: strings[8].as_deref(),
                transport: [
                    Transport::Stdio,
                    Transport::Http,
                    Transport::InProcess,
                    Transport::DryRun,
                ][choices.4],
                user_agent: strings[9].as_deref(),
            };
            let (fast, derived, generic) = all_three(&e);
            prop_assert_eq!(&fast, &derived);
            prop_assert_eq!(&fast, &generic);
        }
    }
}
