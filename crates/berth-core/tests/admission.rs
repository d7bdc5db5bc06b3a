//! The gateway's admission of a request, pure: which paths a stranger, a
//! token of every project and a token of one project may reach.

/// The gateway's table: `/pub` public, `/priv` private (project shop),
/// `/books` private (project billing); token `v` may view everywhere,
/// token `d` may only deploy, token `s` may view shop alone.
fn check_admission(cases: &[(&str, Option<&str>, &str)]) {
    use berth_core::access::{parse_tokens, token_entry, Grant, Permission};
    use berth_core::route::{admit, Admission, Route, RouteTable};
    let mut table = RouteTable::default();
    for (prefix, public, project) in [
        ("/pub", true, "shop"),
        ("/priv", false, "shop"),
        ("/books", false, "billing"),
    ] {
        table.routes.insert(
            prefix.into(),
            Route {
                port: 1,
                backends: vec![],
                direct: None,
                project: project.into(),
                service: prefix[1..].into(),
                version: "1.0.0".into(),
                public,
            },
        );
    }
    let shop = Grant::parse("services:view@shop").unwrap();
    let text = token_entry("viewer", "v", &[Permission::ServicesView])
        + &token_entry("deployer", "d", &[Permission::ServicesDeploy])
        + &token_entry("shopper", "s", &[shop]);
    let tokens = parse_tokens("tokens.yaml", &format!("tokens:\n{text}")).unwrap();
    for (path, bearer, want) in cases {
        let got = match admit(&table, &tokens, path, *bearer) {
            Admission::Forward { to } => format!("forward {}", to.prefix),
            Admission::DotSegment => "400".into(),
            Admission::Unauthenticated => "401".into(),
            Admission::Forbidden { token, .. } => format!("403 {token}"),
            Admission::NotFound => "404".into(),
        };
        assert_eq!(&got, want, "{path} with {bearer:?}");
    }
}

#[test]
fn a_stranger_gets_one_answer_for_private_and_unknown_paths() {
    check_admission(&[
        ("/pub/x", None, "forward /pub"),
        ("/pub/x", Some("v"), "forward /pub"),
        ("/pub", Some("berth_revoked"), "forward /pub"),
        ("/pub", Some("theirs"), "forward /pub"),
        ("/priv", None, "401"),
        ("/priv", Some("guess"), "401"),
        ("/nothing", None, "401"),
        ("/nothing", Some("v"), "404"),
        ("/priv/a", Some("d"), "403 deployer"),
        ("/priv/a", Some("v"), "forward /priv"),
        ("/pub/../priv", None, "400"),
        ("/pub/%2E%2e/priv", Some("v"), "400"),
        ("/pub/./x", None, "400"),
        ("/pub/.x/..y", None, "forward /pub"),
    ]);
}

#[test]
fn a_token_granted_one_project_reaches_its_private_services_and_no_other_projects() {
    check_admission(&[
        ("/priv/a", Some("s"), "forward /priv"),
        ("/books/a", Some("s"), "403 shopper"),
        ("/books/a", Some("v"), "forward /books"),
        ("/nothing", Some("s"), "404"),
        ("/books", None, "401"),
    ]);
}
