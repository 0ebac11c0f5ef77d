//! Properties of the parsers and checks: no panics on any input, and the safety claims hold.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

use mcp_security::authz::{AclAuthorizer, Authorizer, HostSet, ResourceRule, ToolRule};
use mcp_security::policy::Policy;
use mcp_security::redact::{Detector, PatternRedactor, Redactor};
use mcp_security::validate::{Frame, InputValidator, ResourceUriValidator};
use mcp_security::{Action, Identity, RequestContext, Transport};
use proptest::prelude::*;

fn uri_strategy() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        Just("..".to_owned()),
        Just(".".to_owned()),
        Just("%2e%2e".to_owned()),
        Just("%2F".to_owned()),
        Just("srv".to_owned()),
        Just("data".to_owned()),
        "[a-zA-Z0-9%._~-]{0,8}",
    ];
    (
        prop_oneof![
            Just("file://"),
            Just("file:///"),
            Just("file:"),
            Just("https://host/"),
            Just(""),
            Just("file://localhost/")
        ],
        proptest::collection::vec(segment, 0..6),
    )
        .prop_map(|(prefix, segs)| format!("{prefix}{}", segs.join("/")))
}

/// Built once: compiling every detector takes a while in a debug build.
static ALL_DETECTORS: std::sync::LazyLock<PatternRedactor> = std::sync::LazyLock::new(|| {
    PatternRedactor::with(
        Detector::ALL,
        [],
        mcp_security::redact::RedactionStyle::Mask,
    )
    .unwrap()
});

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// The URI validator never panics, and never lets a dot segment through, encoded or not.
    #[test]
    fn uri_checks_never_pass_traversal(uri in uri_strategy()) {
        let v = ResourceUriValidator::new().with_roots(["/srv/data"]);
        let action = Action::ReadResource { uri: &uri };
        let cx = RequestContext::new(Transport::Stdio);
        let passed = v.check_frame(&Frame::new(&action, None)).is_ok()
            && v.validate(&action, &Identity::new("h"), &cx).is_ok();
        let decoded = uri.to_ascii_lowercase().replace("%2e", ".").replace("%2f", "/");
        let path = decoded.split(['?', '#']).next().unwrap_or_default();
        let traversal = path.split('/').any(|s| s == ".." || s == ".");
        prop_assert!(!(passed && traversal), "traversal passed: {uri}");
    }

    /// The ACL never allows a URI with dot segments, whatever the glob.
    #[test]
    fn acl_never_matches_traversal(uri in uri_strategy()) {
        let acl = AclAuthorizer::builder()
            .resource(ResourceRule::new("**", HostSet::Any))
            .build()
            .unwrap();
        let d = acl.authorize(&Identity::new("h"), &Action::ReadResource { uri: &uri }, &RequestContext::new(Transport::Stdio));
        let lower = uri.to_ascii_lowercase();
        let traversal = lower.split(['?', '#']).next().unwrap_or_default().split('/').any(|s| s == ".." || s == ".")
            || lower.contains("%2e") || lower.contains("%2f");
        prop_assert!(!(d.is_allow() && traversal), "allowed: {uri}");
    }

    /// A host's decisions never change when a rule for another host is added.
    #[test]
    fn rules_for_one_host_never_change_another(tool in "[a-z_]{1,12}", other in "[a-z]{1,8}") {
        let cx = RequestContext::new(Transport::Stdio);
        let before = AclAuthorizer::builder().build().unwrap();
        let after = AclAuthorizer::builder().tool(ToolRule::new(tool.clone(), HostSet::only([format!("{other}-x")]))).build().unwrap();
        let call = Action::CallTool { name: &tool, arguments: None };
        let who = Identity::new(other);
        prop_assert_eq!(before.authorize(&who, &call, &cx).is_allow(), after.authorize(&who, &call, &cx).is_allow());
    }

    /// Redaction is idempotent, no detected value survives it, and text without findings comes
    /// back unchanged, byte for byte.
    #[test]
    fn redaction_is_idempotent_and_complete(
        parts in proptest::collection::vec(prop_oneof![
            "[a-z ]{0,12}",
            "\\PC{0,8}",
            Just("jane@example.com".to_owned()),
            Just("4111 1111 1111 1111".to_owned()),
            Just("5555-5555-5555-4444".to_owned()),
            Just("4111111111111112".to_owned()),
            Just("078-05-1120".to_owned()),
            Just("GB82WEST12345698765432".to_owned()),
            Just("AKIAIOSFODNN7EXAMPLE".to_owned()),
            Just("192.168.1.10".to_owned()),
            Just("+44 20 7946 0958".to_owned()),
            Just("api_key = 3f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c".to_owned()),
            "[0-9 .:-]{0,20}",
        ], 0..8)
    ) {
        let r = &*ALL_DETECTORS;
        let text = parts.join(" ");
        let findings = r.scan(&text);
        // Values whose detection depends on the words around them (an address after "section",
        // a key after its label) may rightly go unfound elsewhere; every other found value must
        // be gone everywhere.
        let context_free = |e: &str| !matches!(e, "IP_ADDRESS" | "US_PASSPORT" | "AWS_SECRET_KEY" | "GENERIC_API_KEY");
        let found: Vec<String> = findings.iter().filter(|f| context_free(&f.entity)).map(|f| text[f.start..f.end].to_owned()).collect();
        let once = r.redact_text(&text).map(|x| x.text().to_owned()).unwrap_or_else(|| text.clone());
        prop_assert!(r.redact_text(&once).is_none(), "second pass found more in {once:?}");
        for v in &found {
            prop_assert!(!once.contains(v.as_str()), "{v:?} survived in {once:?}");
        }
        for known in ["jane@example.com", "4111 1111 1111 1111", "5555-5555-5555-4444", "078-05-1120", "AKIAIOSFODNN7EXAMPLE", "GB82WEST12345698765432"] {
            prop_assert!(!once.contains(known), "{known:?} survived in {once:?}");
        }
        if findings.is_empty() {
            prop_assert_eq!(&once, &text);
        }
    }

    /// The policy parser never panics, whatever the text.
    #[test]
    fn policy_parser_never_panics(text in "\\PC{0,200}") {
        let _ = Policy::from_toml_str(&text).map(|p| p.audit_path().is_some());
    }

    /// Nor on text shaped like a policy.
    #[test]
    fn shaped_policies_never_panic(
        key in prop_oneof![Just("tools"), Just("resources"), Just("auth.api_keys"), Just("validation"), Just("x")],
        field in "[a-z_]{1,12}",
        value in prop_oneof![Just("\"*\"".to_owned()), Just("[\"a\"]".to_owned()), Just("1".to_owned()), Just("{ a = 1 }".to_owned()), "\"[^\"\\\\]{0,10}\""],
    ) {
        let text = format!("[[{key}]]\n{field} = {value}\n");
        if let Err(e) = Policy::from_toml_str(&text) {
            prop_assert!(!e.to_string().is_empty());
        }
    }
}

mod authz_props {
    use super::*;
    use chrono::{Datelike, TimeZone, Timelike, Utc};
    use mcp_security::authz::TimeWindow;

    const NAMES: &[&str] = &["query", "delete", "files_read", "files_write", "report"];
    const PATTERNS: &[&str] = &[
        "query",
        "delete",
        "files_*",
        "files_read",
        "*",
        "report",
        "rep?rt",
    ];
    const HOSTS: &[&str] = &["a", "b", "c"];

    #[derive(Debug, Clone)]
    struct Rule {
        pattern: usize,
        hosts: Vec<usize>,
        any_host: bool,
        deny: bool,
    }

    fn rule() -> impl Strategy<Value = Rule> {
        (
            0..PATTERNS.len(),
            proptest::collection::vec(0..HOSTS.len(), 1..3),
            any::<bool>(),
            proptest::bool::weighted(0.25),
        )
            .prop_map(|(pattern, hosts, any_host, deny)| Rule {
                pattern,
                hosts,
                any_host: any_host && !deny,
                deny,
            })
    }

    fn build(rules: &[Rule]) -> AclAuthorizer {
        let mut b = AclAuthorizer::builder();
        for r in rules {
            let hosts = if r.any_host {
                HostSet::Any
            } else {
                HostSet::only(r.hosts.iter().map(|&h| HOSTS[h]))
            };
            let t = ToolRule::new(PATTERNS[r.pattern], hosts);
            b = b.tool(if r.deny { t.deny() } else { t });
        }
        b.build().unwrap()
    }

    fn allowed(acl: &AclAuthorizer, host: &str, tool: &str) -> bool {
        acl.authorize(
            &Identity::new(host),
            &Action::CallTool {
                name: tool,
                arguments: None,
            },
            &RequestContext::new(Transport::Stdio),
        )
        .is_allow()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// No rule, no access.
        #[test]
        fn no_rule_denies(tool in "[a-z_*?]{1,10}", host in "[a-z]{1,6}") {
            prop_assert!(!allowed(&build(&[]), &host, &tool));
        }

        /// Adding a deny rule never turns a deny into an allow.
        #[test]
        fn deny_rules_never_allow(rules in proptest::collection::vec(rule(), 0..8), mut extra in rule()) {
            extra.deny = true;
            extra.any_host = false;
            let before = build(&rules);
            let mut more = rules.clone();
            more.push(extra);
            let after = build(&more);
            for name in NAMES {
                for host in HOSTS {
                    prop_assert!(!allowed(&after, host, name) || allowed(&before, host, name));
                }
            }
        }

        /// Adding an allow rule for host A never changes a decision for any other host.
        #[test]
        fn allow_for_a_never_changes_b(rules in proptest::collection::vec(rule(), 0..8), pattern in 0..PATTERNS.len(), a in 0..HOSTS.len()) {
            let before = build(&rules);
            let mut more = rules.clone();
            more.push(Rule { pattern, hosts: vec![a], any_host: false, deny: false });
            let after = build(&more);
            for name in NAMES {
                for (i, host) in HOSTS.iter().enumerate() {
                    if i != a {
                        prop_assert_eq!(allowed(&before, host, name), allowed(&after, host, name));
                    }
                }
            }
        }

        /// A time window never allows outside its hours and days in its timezone, including on
        /// the days clocks change.
        #[test]
        fn windows_hold_across_dst(
            tz in prop_oneof![Just("Europe/Berlin"), Just("America/New_York"), Just("Australia/Sydney"), Just("UTC")],
            start in 0u32..24, len in 1u32..23,
            day in prop_oneof![Just((2026, 3, 29)), Just((2026, 10, 25)), Just((2026, 3, 8)), Just((2026, 11, 1)), Just((2026, 4, 5)), Just((2026, 10, 4))],
            offset_min in -(3 * 24 * 60i64)..(3 * 24 * 60i64),
            weekdays in proptest::sample::subsequence(vec!["mon", "tue", "wed", "thu", "fri", "sat", "sun"], 0..7),
        ) {
            let end = (start + len) % 24;
            let hours = format!("{start:02}-{end:02}");
            let w = TimeWindow::parse(Some(&hours), &weekdays, tz).unwrap();
            let base = Utc.with_ymd_and_hms(day.0, day.1, day.2, 12, 0, 0).unwrap();
            let at = base + chrono::Duration::minutes(offset_min);
            let zone: chrono_tz::Tz = tz.parse().unwrap();
            let local = at.with_timezone(&zone);
            let (hour, wd) = (local.hour(), local.weekday().num_days_from_monday() as usize);
            let names = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
            let day_ok = |d: usize| weekdays.is_empty() || weekdays.contains(&names[d]);
            let inside = if start < end {
                (start..end).contains(&hour) && day_ok(wd)
            } else if hour >= start {
                day_ok(wd)
            } else {
                hour < end && day_ok((wd + 6) % 7)
            };
            prop_assert_eq!(w.contains(at), inside, "{} at {} ({})", hours, at, local);
        }
    }
}

/// The redaction scanner jumps between candidate starts (digit runs, `@`, `:`, `=`, literal
/// prefixes) instead of running one automaton over every byte; it must find exactly what that
/// automaton finds, validators included.
mod redaction_scanner {
    use super::*;
    use mcp_security::redact::{Category, CustomDetector, RedactionStyle, Validator};

    /// One redactor per detector: for each, the one-automaton engine is just its regex.
    static EACH: std::sync::LazyLock<Vec<PatternRedactor>> = std::sync::LazyLock::new(|| {
        Detector::ALL
            .iter()
            .map(|d| PatternRedactor::new([*d]).unwrap())
            .collect()
    });

    /// Every built-in detector and three custom ones, one of which shares digits with them.
    static WITH_CUSTOM: std::sync::LazyLock<PatternRedactor> = std::sync::LazyLock::new(|| {
        PatternRedactor::with(
            Detector::ALL,
            [
                CustomDetector::new(
                    "EMPLOYEE_ID",
                    r"(?-u:\b)EMP-[0-9]{6}(?-u:\b)",
                    Category::Pii,
                ),
                CustomDetector::new("ACCOUNT", r"[0-9]{4}-[0-9]{4}", Category::Pii)
                    .with_validator(Validator::Luhn),
                CustomDetector::new("TICKET", r"(?i:ticket)[ #:]*[0-9]{3,8}", Category::Pii),
            ],
            RedactionStyle::Mask,
        )
        .unwrap()
    });

    fn same(r: &PatternRedactor, text: &str) -> Result<(), TestCaseError> {
        let fast = r.scan(text);
        let plain = r.scan_one_automaton(text);
        prop_assert_eq!(fast, plain, "in {:?}", text);
        Ok(())
    }

    /// Values, near misses, the words around them, separators and non-ASCII characters.
    const TOKENS: &[&str] = &[
        "jane@example.com",
        "a@b.co",
        "x@y",
        "@",
        "4111 1111 1111 1111",
        "5555-5555-5555-4444",
        "4111111111111112",
        "378282246310005",
        "30569309025904",
        "078-05-1120",
        "457 55 5462",
        "GB82WEST12345698765432",
        "GB82 WEST 1234 5698 7654 32",
        "DE89",
        "AKIAIOSFODNN7EXAMPLE",
        "192.168.1.10",
        "10.1.2.3:5432",
        "1.2.3",
        "2001:db8::1",
        "fe80::1ff:fe23:4567:890a",
        "::1",
        "12:30:45",
        "+44 20 7946 0958",
        "+14155552671",
        "(212) 555-0187",
        "415-555-2671",
        "api_key = 3f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c",
        "token=X7dK29LmQp4vR8sT2wY6zA1b",
        "password: \"Tr0ub4dorAnd3xKq9\"",
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "passport no. C03005988",
        "Passport number: 123456789",
        "EMP-123456",
        "ticket #4521",
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIx.c2lnbmF0dXJl",
        "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
        "xoxb-123456789012-AbCdEfGhIj",
        "sk_test_4eC39HqLyjWDarjtT1zdp7dc",
        "AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe",
        "-----BEGIN EC PRIVATE KEY-----\nMHcCAQ\n-----END EC PRIVATE KEY-----",
        "section",
        "version",
        "secret",
        "auth",
        "\u{17f}ecret",
        "\u{e9}",
        "\u{2003}",
        " ",
        "  ",
        "\t",
        "\n",
        ".",
        ":",
        "=",
        "-",
        "(",
        ")",
        "+",
        "\"",
        "'",
        "_",
        "/",
    ];

    fn mixed() -> impl Strategy<Value = String> {
        let token = prop_oneof![
            proptest::sample::select(TOKENS).prop_map(str::to_owned),
            "[0-9]{1,6}",
            "[A-Za-z]{1,6}",
            "[0-9a-fA-F:]{1,10}",
        ];
        proptest::collection::vec(token, 0..12).prop_map(|t| t.concat())
    }

    /// Secrets, refused values and labels back to back: values that run on over the next
    /// label or past 200 characters, entropy near the threshold, AWS keys among generic ones.
    fn dense_assignments() -> impl Strategy<Value = String> {
        let token = prop_oneof![
            proptest::sample::select(
                &[
                    "token=",
                    "Token1=",
                    "pwd:",
                    "api_key = ",
                    "secret=Ab1aaaaaaaa",
                    "aws_secret_access_key = ",
                    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                    "X7dK29LmQp4vR8sT2wY6zA1b",
                    "pwd=A1bc",
                    " ",
                    "\"",
                    "'",
                    "\n",
                ][..]
            )
            .prop_map(str::to_owned),
            "[A-Za-z0-9+/=._-]{1,30}",
            "[ab1=]{1,20}",
            // Long runs: values longer than the 200 characters the pattern takes.
            "[a-c]{150,300}",
        ];
        proptest::collection::vec(token, 0..40).prop_map(|t| t.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn scanner_agrees_on_mixed_text(text in mixed()) {
            same(&ALL_DETECTORS, &text)?;
            same(&WITH_CUSTOM, &text)?;
        }

        /// Random digits and separators: where the digit-led detectors' candidates come from.
        #[test]
        fn scanner_agrees_on_digit_separator_strings(text in "[0-9 .:()+\\-\t=@A-Fa-fGBZ_/]{0,64}") {
            same(&ALL_DETECTORS, &text)?;
            same(&WITH_CUSTOM, &text)?;
        }

        /// Labels and operators inside long values, where the scanner slides the generic
        /// secret's value from operator to operator instead of matching each one.
        #[test]
        fn scanner_agrees_on_dense_assignments(text in dense_assignments()) {
            same(&ALL_DETECTORS, &text)?;
            same(&WITH_CUSTOM, &text)?;
        }

        /// Each detector alone, as the benchmark's one-regex-per-detector baseline runs it.
        #[test]
        fn scanner_agrees_detector_by_detector(text in mixed(), digits in "[0-9 .:()+\\-]{0,40}") {
            for r in EACH.iter() {
                same(r, &text)?;
                same(r, &digits)?;
            }
        }
    }
}
