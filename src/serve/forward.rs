//! What a request and its answer carry through the gateway (RFC 9110 §7.6.1):
//! hop-by-hop headers stay on their hop, the service learns where the request
//! came from (`X-Forwarded-*`), and a redirect to the service's own root is
//! put back under the prefix the gateway stripped. berth's credentials are
//! read here for the gateway, the API and the dashboard alike, and never
//! cross to a service (the rule is `core::credential`).

use std::net::SocketAddr;

use axum::http::{header, HeaderMap, HeaderName, HeaderValue};

use crate::core::credential;

/// Headers that describe one connection, never the message.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
];

/// Removes the hop-by-hop headers, those `Connection` names included. An
/// upgrade (`upgrading`) keeps `Connection: upgrade` and `Upgrade`, which are
/// how it is asked for and answered.
pub fn strip_hop_by_hop(h: &mut HeaderMap, upgrading: bool) {
    let named: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .filter(|n| !(upgrading && n == header::UPGRADE))
        .collect();
    for n in named {
        h.remove(n);
    }
    for n in HOP_BY_HOP {
        h.remove(n);
    }
    if upgrading {
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        h.remove(header::UPGRADE);
    }
}

/// The request as the service should see it: where it came from, under which
/// host and prefix. An `X-Forwarded-For` the client sent is extended, never
/// trusted as the whole story.
pub fn request(h: &mut HeaderMap, client: Option<SocketAddr>, prefix: &str, upgrading: bool) {
    strip_hop_by_hop(h, upgrading);
    if let Some(addr) = client {
        let ip = addr.ip().to_string();
        let chain = match h.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
            Some(before) if !before.trim().is_empty() => format!("{before}, {ip}"),
            _ => ip,
        };
        if let Ok(v) = HeaderValue::from_str(&chain) {
            h.insert("x-forwarded-for", v);
        }
    }
    if let Some(host) = h.get(header::HOST).cloned() {
        h.insert("x-forwarded-host", host);
    }
    h.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    if let Ok(v) = HeaderValue::from_str(prefix) {
        h.insert("x-forwarded-prefix", v);
    }
    h.remove(header::HOST);
}

/// The answer as the client should see it: hop-by-hop headers gone, and a
/// `Location` on the service's own root (`/x/`) put under the prefix
/// (`/<path>/x/`), where the browser can reach it.
pub fn response(h: &mut HeaderMap, prefix: &str, upgraded: bool) {
    strip_hop_by_hop(h, upgraded);
    let moved = h
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .filter(|l| l.starts_with('/') && !l.starts_with("//"))
        .filter(|l| *l != prefix && !l.starts_with(&format!("{prefix}/")))
        .map(|l| format!("{prefix}{l}"));
    if let Some(v) = moved.and_then(|l| HeaderValue::from_str(&l).ok()) {
        h.insert(header::LOCATION, v);
    }
}

/// The token a request presents, read as the API and the dashboard read it.
pub fn presented(headers: &HeaderMap) -> Option<String> {
    credential::presented(
        headers
            .get_all(header::AUTHORIZATION)
            .iter()
            .map(|v| v.as_bytes()),
    )
}

/// Every header that carries a berth credential removed, berth's cookies
/// taken out of `Cookie`: applied to every request, public route or private.
pub fn scrub_credentials(tokens: &crate::core::access::Tokens, headers: &mut HeaderMap) {
    use credential::Scrub;
    let old = std::mem::take(headers);
    let mut name = None;
    for (n, v) in old {
        // `HeaderMap`'s owned iterator names a header once, then `None` for
        // the values that follow under the same name.
        if let Some(n) = n {
            name = Some(n);
        }
        let Some(n) = name.clone() else { continue };
        match credential::scrub(tokens, n.as_str(), v.as_bytes()) {
            Scrub::Keep => {
                headers.append(n, v);
            }
            Scrub::Remove => {}
            Scrub::Replace(kept) => {
                if let Ok(v) = HeaderValue::from_str(&kept) {
                    headers.append(n, v);
                }
            }
        }
    }
}

/// A service's answer loses any `Set-Cookie` that would claim one of berth's
/// cookies (the dashboard's session), so no route can plant or shadow it.
pub fn refuse_berth_cookies(tokens: &crate::core::access::Tokens, headers: &mut HeaderMap) {
    let kept: Vec<_> = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter(|v| !credential::set_cookie_refused(tokens, v.as_bytes()))
        .cloned()
        .collect();
    if kept.len() != headers.get_all(header::SET_COOKIE).iter().count() {
        headers.remove(header::SET_COOKIE);
        for v in kept {
            headers.append(header::SET_COOKIE, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn names(h: &HeaderMap) -> Vec<String> {
        let mut n: Vec<String> = h.keys().map(|k| k.to_string()).collect();
        n.sort();
        n
    }

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_stay_on_their_hop() {
        let mut h = headers(&[
            ("connection", "keep-alive, x-secret-hop"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("trailer", "x"),
            ("proxy-authorization", "Basic x"),
            ("upgrade", "h2c"),
            ("x-secret-hop", "1"),
            ("accept", "*/*"),
            ("host", "example.org"),
        ]);
        request(
            &mut h,
            Some("10.1.2.3:5555".parse().unwrap()),
            "/web",
            false,
        );
        assert_eq!(
            names(&h),
            [
                "accept",
                "x-forwarded-for",
                "x-forwarded-host",
                "x-forwarded-prefix",
                "x-forwarded-proto"
            ]
        );
        assert_eq!(h["x-forwarded-for"], "10.1.2.3");
        assert_eq!(h["x-forwarded-host"], "example.org");
    }

    #[test]
    fn an_upgrade_keeps_what_asks_for_it_and_a_forwarded_chain_is_extended() {
        let mut h = headers(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("x-forwarded-for", "1.1.1.1"),
        ]);
        request(&mut h, Some("127.0.0.1:1".parse().unwrap()), "/ws", true);
        assert_eq!(h["upgrade"], "websocket");
        assert_eq!(h["connection"], "upgrade");
        assert_eq!(h["x-forwarded-for"], "1.1.1.1, 127.0.0.1");
    }

    #[test]
    fn a_redirect_to_the_service_root_goes_back_under_the_prefix() {
        for (location, want) in [
            ("/x/", "/web/x/"),
            ("/", "/web/"),
            ("/web/x", "/web/x"),
            ("//other.example/x", "//other.example/x"),
            ("https://example.org/x", "https://example.org/x"),
            ("relative", "relative"),
        ] {
            let mut h = headers(&[("location", location)]);
            response(&mut h, "/web", false);
            assert_eq!(h["location"], want, "{location}");
        }
    }
}
