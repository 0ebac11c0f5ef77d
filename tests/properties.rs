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

    /// Redaction is idempotent, and no detected value survives it.
    #[test]
    fn redaction_is_idempotent_and_complete(
        parts in proptest::collection::vec(prop_oneof![
            "[a-z ]{0,12}",
            Just("jane@example.com".to_owned()),
            Just("4111 1111 1111 1111".to_owned()),
            Just("5555-5555-5555-4444".to_owned()),
            Just("4111111111111112".to_owned()),
            "[0-9 -]{0,20}",
        ], 0..8)
    ) {
        let r = PatternRedactor::new([Detector::Email, Detector::CreditCard]).unwrap();
        let text = parts.join(" ");
        let once = r.redact_text(&text).map(|x| x.text().to_owned()).unwrap_or_else(|| text.clone());
        prop_assert!(r.redact_text(&once).is_none(), "second pass found more in {once:?}");
        prop_assert!(!once.contains("jane@example.com"));
        prop_assert!(!once.contains("4111 1111 1111 1111") && !once.contains("5555-5555-5555-4444"));
        if r.redact_text(&text).is_none() {
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
