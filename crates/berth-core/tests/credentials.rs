//! The gateway's credential scrub, table-driven: what of a request's headers
//! reaches a service (`core::credential`).

/// One request's headers through the gateway's scrub: what reaches the service.
fn check_scrub(headers: &[(&str, &str)], expect: &[(&str, &str)]) {
    use berth_core::access::{parse_tokens, token_entry, Permission};
    use berth_core::credential::{scrub, Scrub};
    let text = token_entry("viewer", "viewer-token-1", &[Permission::ServicesView]);
    let tokens = parse_tokens("tokens.yaml", &format!("tokens:\n{text}"))
        .unwrap()
        .with_root("root-token-42");
    let got: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(n, v)| match scrub(&tokens, n, v.as_bytes()) {
            Scrub::Keep => Some((n.to_string(), v.to_string())),
            Scrub::Remove => None,
            Scrub::Replace(kept) => Some((n.to_string(), kept)),
        })
        .collect();
    let want: Vec<(String, String)> = expect
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    assert_eq!(got, want, "{headers:?}");
}

#[test]
fn no_form_of_a_berth_credential_reaches_a_service() {
    use base64::Engine as _;
    let basic = |s: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(s)
        )
    };
    let keep = ("accept", "*/*");
    for header in [
        ("authorization", "Bearer viewer-token-1".to_string()),
        ("Authorization", "bearer viewer-token-1".into()),
        ("authorization", "BEARER    viewer-token-1".into()),
        ("authorization", "Bearer berth_revoked0000".into()),
        ("authorization", "Token root-token-42".into()),
        ("authorization", basic("x:viewer-token-1")),
        ("authorization", basic("berth_abc:")),
        ("authorization", basic("root-token-42")),
        ("x-api-key", "berth_abc".into()),
        ("x-forwarded-authorization", "Bearer root-token-42".into()),
        ("cookie", "berth_session=0123abcd".into()),
        (
            "cookie",
            "__Host-berth_session=x; __secure-BERTH_csrf=y".into(),
        ),
    ] {
        check_scrub(&[keep, (header.0, &header.1)], &[keep]);
    }
    // A second Authorization header is searched as the first is.
    check_scrub(
        &[
            ("authorization", "Bearer theirs-own"),
            ("authorization", "bearer berth_x"),
        ],
        &[("authorization", "Bearer theirs-own")],
    );
    // The service's own credentials and cookies stay.
    check_scrub(
        &[
            ("authorization", "Bearer theirs-own"),
            ("cookie", "a=1; berth_session=s; b=2"),
        ],
        &[
            ("authorization", "Bearer theirs-own"),
            ("cookie", "a=1; b=2"),
        ],
    );
}
