//! Trusted issuer patterns (`issuer_patterns`): which token issuers may be discovered at first
//! sight, such as every realm under `https://sso.example.com/realms/*`.
//!
//! A token's `iss` is attacker-controlled text. It is checked as a URL in canonical form before
//! anything is fetched (no user info, query, fragment, percent-encoding, backslash, dot or empty
//! segments, upper-case host, or port other than the pattern's), and the issuer that is fetched is
//! rebuilt from the pattern's own scheme, host and port and the matched label or segments only.

use std::fmt;

/// Longest `iss` considered at all; anything longer is refused before matching.
pub(crate) const MAX_ISSUER_LEN: usize = 512;
/// Longest path segment or DNS label a `*` may stand for.
const MAX_WILDCARD_LEN: usize = 63;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    Exact(String),
    /// `*.suffix`: exactly one DNS label before `suffix`.
    Label(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    /// `*`: exactly one non-empty path segment.
    Any,
}

/// One configured pattern, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerPattern {
    text: String,
    scheme: &'static str,
    host: Host,
    port: Option<u16>,
    path: Vec<Part>,
}

/// Why an issuer was refused before any network traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Too long, not printable ASCII, or holding characters no canonical issuer URL has.
    Malformed,
    /// A well-formed issuer that no pattern covers.
    NoPattern,
    /// Not a pattern's issuer, but one in another spelling (host or scheme case, an explicit
    /// default port, a trailing slash, a query or fragment): refused outright, never tried
    /// against the unbound origins, since it claims to be one of the pattern's tenants.
    NearMiss,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refused::Malformed => "not a canonical issuer URL (user info, query, fragment, percent-encoding, dot or empty segments, upper case, or another port)",
            Refused::NoPattern => "matches no issuer pattern",
            Refused::NearMiss => "is another spelling of an issuer an issuer pattern covers (host case, default port, trailing slash, query); tokens must carry the issuer exactly",
        })
    }
}

fn is_unreserved(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~')
}

fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_WILDCARD_LEN
        && s.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_segment(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && s.bytes().all(is_unreserved)
}

/// Whether a host name (as written in a pattern or an origin URL) is loopback.
pub fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost") || h.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Splits `scheme://authority/path` of an already character-checked string.
fn split_url(s: &str) -> Option<(&str, &str, &str)> {
    let (scheme, rest) = s.split_once("://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    Some((scheme, authority, path))
}

fn split_port(authority: &str) -> Option<(&str, Option<u16>)> {
    // A bracketed IPv6 host keeps its colons.
    let colon = if authority.starts_with('[') { authority.find(']').map(|i| i + 1) } else { Some(0) }?;
    match authority[colon..].find(':') {
        None => Some((authority, None)),
        Some(i) => {
            let (host, port) = (&authority[..colon + i], &authority[colon + i + 1..]);
            if port.is_empty() || port.len() > 5 || !port.bytes().all(|c| c.is_ascii_digit()) || port.starts_with('0') {
                return None;
            }
            Some((host, Some(port.parse().ok()?)))
        }
    }
}

impl IssuerPattern {
    /// Parses a configured pattern; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<IssuerPattern, String> {
        let bad = |why: &str| Err(format!("issuer pattern {text:?} {why}"));
        if text.len() > MAX_ISSUER_LEN || !text.bytes().all(|c| c.is_ascii_graphic()) {
            return bad("is too long or holds spaces or non-ASCII characters");
        }
        if text.contains(['?', '#', '@', '%', '\\']) {
            return bad("may not hold a query, fragment, user info, percent-encoding or backslash");
        }
        let Some((scheme, authority, path)) = split_url(text) else { return bad("is not an absolute URL") };
        let scheme = match scheme {
            "https" => "https",
            "http" => "http",
            _ => return bad("must start with https://"),
        };
        let Some((host, port)) = split_port(authority) else { return bad("has an invalid port") };
        let host = if let Some(suffix) = host.strip_prefix("*.") {
            Host::Label(suffix.to_owned())
        } else {
            Host::Exact(host.to_owned())
        };
        let name = match &host {
            Host::Exact(h) | Host::Label(h) => h,
        };
        let dns_ok = name.split('.').all(is_label);
        if !(dns_ok || (matches!(host, Host::Exact(_)) && is_loopback_host(name))) {
            return bad("has a host that is not a lower-case DNS name (a leading \"*.\" is the only host wildcard)");
        }
        if matches!(host, Host::Label(_)) && !name.contains('.') {
            return bad("must keep at least two labels after \"*.\"");
        }
        if scheme == "http" && !(matches!(&host, Host::Exact(h) if is_loopback_host(h))) {
            return bad("must use https (plain http only for a loopback host)");
        }
        let mut parts = Vec::new();
        if !path.is_empty() {
            for seg in path[1..].split('/') {
                parts.push(match seg {
                    "*" => Part::Any,
                    // The last part may be empty: a trailing slash, as in Auth0's issuers.
                    "" if parts.len() + 1 == path[1..].split('/').count() => Part::Literal(String::new()),
                    s if is_segment(s) => Part::Literal(s.to_owned()),
                    s if s.contains('*') => return bad("may use \"*\" only as a whole path segment or a leading host label"),
                    _ => return bad("has an empty, dot or invalid path segment"),
                });
            }
        }
        Ok(IssuerPattern { text: text.to_owned(), scheme, host, port, path: parts })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the issuer would be fetched over plain http (a loopback pattern).
    pub fn is_plain_http(&self) -> bool {
        self.scheme == "http"
    }

    /// The host every issuer of this pattern has, with the label filled in.
    fn host_of(&self, label: Option<&str>) -> String {
        match (&self.host, label) {
            (Host::Exact(h), _) => h.clone(),
            (Host::Label(suffix), Some(l)) => format!("{l}.{suffix}"),
            (Host::Label(suffix), None) => suffix.clone(),
        }
    }

    /// Matches an issuer against this pattern. `Some(issuer)` is the issuer rebuilt from the
    /// pattern and the matched parts (equal to the input, which is canonical by then).
    fn matches(&self, iss: &str) -> Option<String> {
        let (scheme, authority, path) = split_url(iss)?;
        if scheme != self.scheme {
            return None;
        }
        let (host, port) = split_port(authority)?;
        if port != self.port {
            return None;
        }
        let label = match &self.host {
            Host::Exact(h) => (host == h).then_some(None)?,
            Host::Label(suffix) => {
                let l = host.strip_suffix(suffix.as_str())?.strip_suffix('.')?;
                is_label(l).then_some(Some(l))?
            }
        };
        let segments: Vec<&str> = if path.is_empty() { vec![] } else { path[1..].split('/').collect() };
        if segments.len() != self.path.len() {
            return None;
        }
        let mut rebuilt = format!("{}://{}", self.scheme, self.host_of(label));
        if let Some(p) = self.port {
            rebuilt.push_str(&format!(":{p}"));
        }
        for (part, seg) in self.path.iter().zip(&segments) {
            match part {
                Part::Literal(l) if l == seg => rebuilt.push_str(&format!("/{l}")),
                Part::Any if is_segment(seg) && seg.len() <= MAX_WILDCARD_LEN => rebuilt.push_str(&format!("/{seg}")),
                _ => return None,
            }
        }
        // Belt and braces: only an issuer that is exactly its own canonical form is trusted.
        (rebuilt == iss).then_some(rebuilt)
    }
}

/// Checks every issuer must pass before any pattern is tried: printable ASCII within bounds, none of
/// the characters that would let one URL be read as another, a lower-case host, a valid port and
/// no dot segments.
fn well_formed(iss: &str) -> bool {
    if iss.len() > MAX_ISSUER_LEN || !iss.bytes().all(|c| c.is_ascii_graphic()) || iss.contains(['?', '#', '@', '%', '\\']) {
        return false;
    }
    let Some((_, authority, path)) = split_url(iss) else { return false };
    !authority.bytes().any(|c| c.is_ascii_uppercase())
        && split_port(authority).is_some()
        && !path.split('/').skip(1).any(|s| s == "." || s == "..")
}

/// Finds the pattern an issuer matches, and the issuer to discover.
pub fn match_issuer<'p>(patterns: &'p [IssuerPattern], iss: &str) -> Result<(&'p IssuerPattern, String), Refused> {
    let refused = if !well_formed(iss) {
        Refused::Malformed
    } else if let Some(found) = patterns.iter().find_map(|p| p.matches(iss).map(|issuer| (p, issuer))) {
        return Ok(found);
    } else {
        // A port, scheme or segment shape no pattern has reads as "no pattern", which it is.
        Refused::NoPattern
    };
    // Patterns may end in "/" (Auth0's issuers do): both forms of the canonical spelling are tried.
    let near = canonical_spelling(iss)
        .is_some_and(|c| [format!("{c}/"), c].iter().any(|c| c != iss && patterns.iter().any(|p| p.matches(c).is_some())));
    Err(if near { Refused::NearMiss } else { refused })
}

/// An issuer URL as a pattern would spell it: scheme and host in lower case, no default port,
/// user info, query or fragment, no trailing slash. Only to recognise near misses; nothing is
/// fetched from it.
fn canonical_spelling(iss: &str) -> Option<String> {
    if iss.len() > MAX_ISSUER_LEN {
        return None;
    }
    let url = reqwest::Url::parse(iss).ok()?;
    let mut out = format!("{}://{}", url.scheme(), url.host_str()?);
    if let Some(port) = url.port() {
        out.push_str(&format!(":{port}"));
    }
    out.push_str(url.path().trim_end_matches('/'));
    Some(out)
}

/// Where an issuer's OpenID Provider Configuration lives (OIDC Discovery 1.0 section 4).
pub fn discovery_url(issuer: &str) -> String {
    format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'))
}

/// The host (and port) part of an absolute URL, lower-cased, for comparing a `jwks_uri` with its
/// issuer.
pub fn authority_of(url: &str) -> Option<String> {
    let (_, authority, _) = split_url(url)?;
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    Some(authority.to_ascii_lowercase())
}

/// The `jwks_uri` of an issuer's discovery document, after checking that the document speaks for
/// exactly that issuer (OIDC Discovery 1.0 section 4.3).
pub fn jwks_uri_of(doc: &serde_json::Map<String, serde_json::Value>, issuer: &str) -> Result<String, String> {
    use serde_json::Value;
    match doc.get("issuer") {
        Some(Value::String(i)) if i == issuer => {}
        Some(Value::String(i)) => {
            return Err(format!("discovery document names issuer {:?}, not {issuer:?}", i.chars().take(128).collect::<String>()))
        }
        _ => return Err("discovery document has no \"issuer\"".into()),
    }
    match doc.get("jwks_uri") {
        Some(Value::String(u)) if u.len() <= 2048 => Ok(u.clone()),
        _ => Err("discovery document has no usable \"jwks_uri\"".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pats(p: &[&str]) -> Vec<IssuerPattern> {
        p.iter().map(|t| IssuerPattern::parse(t).unwrap()).collect()
    }

    #[test]
    fn keycloak_realms() {
        let p = pats(&["https://sso.example.com/realms/*"]);
        assert_eq!(match_issuer(&p, "https://sso.example.com/realms/acme").unwrap().1, "https://sso.example.com/realms/acme");
        for bad in [
            "https://sso.example.com/realms/",
            "https://sso.example.com/realms/a/b",
            "https://sso.example.com:8443/realms/acme",
            "http://sso.example.com/realms/acme",
            "https://evil.example.com/realms/acme",
            "https://sso.example.com.evil.com/realms/acme",
            "https://sso.example.com/other/acme",
        ] {
            assert_eq!(match_issuer(&p, bad).map(|m| m.1), Err(Refused::NoPattern), "{bad}");
        }
        for bad in [
            "https://sso.example.com/realms/..",
            "https://sso.example.com/realms/../admin",
            "https://sso.example.com/realms/a%2fb",
            "https://sso.example.com/realms/%2e%2e",
            "https://sso.example.com/realms/a\\b",
            "https://sso.example.com/realms/ac me",
        ] {
            assert_eq!(match_issuer(&p, bad).map(|m| m.1), Err(Refused::Malformed), "{bad}");
        }
        // Other spellings of a realm's issuer: refused as near misses, never tried elsewhere.
        for near in [
            "https://sso.example.com/realms/acme/",
            "https://sso.example.com/realms/acme//",
            "https://user:pw@sso.example.com/realms/acme",
            "https://sso.example.com/realms/acme?x=1",
            "https://sso.example.com/realms/acme#f",
            "https://SSO.example.com/realms/acme",
            "HTTPS://sso.example.com/realms/acme",
            "https://sso.example.com:443/realms/acme",
            "https://sso.example.com:/realms/acme",
            "https://sso.example.com:0443/realms/acme",
        ] {
            assert_eq!(match_issuer(&p, near).map(|m| m.1), Err(Refused::NearMiss), "{near}");
        }
        assert_eq!(match_issuer(&p, &format!("https://sso.example.com/realms/{}", "a".repeat(600))).map(|m| m.1), Err(Refused::Malformed));
        assert_eq!(match_issuer(&p, &format!("https://sso.example.com/realms/{}", "a".repeat(64))).map(|m| m.1), Err(Refused::NoPattern));
    }

    #[test]
    fn host_labels_and_trailing_slash() {
        let p = pats(&["https://*.auth0.example/"]);
        assert_eq!(match_issuer(&p, "https://tenant-1.auth0.example/").unwrap().1, "https://tenant-1.auth0.example/");
        for bad in ["https://auth0.example/", "https://a.b.auth0.example/", "https://-x.auth0.example/", "https://tenant.auth0.example", "https://x.auth0.example/a"] {
            assert!(match_issuer(&p, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ports_and_loopback() {
        let p = pats(&["http://127.0.0.1:9200/realms/*"]);
        assert!(match_issuer(&p, "http://127.0.0.1:9200/realms/a").is_ok());
        assert!(match_issuer(&p, "http://127.0.0.1:9201/realms/a").is_err());
        assert!(match_issuer(&p, "http://127.0.0.1/realms/a").is_err());
        assert!(p[0].is_plain_http());
    }

    #[test]
    fn bad_patterns() {
        for bad in [
            "sso.example.com/realms/*",
            "ftp://sso.example.com/*",
            "http://sso.example.com/realms/*",
            "https://sso.example.com/realms/a*",
            "https://*sso.example.com/",
            "https://a.*.example.com/",
            "https://*.com/",
            "https://sso.example.com/realms/*?x",
            "https://u@sso.example.com/*",
            "https://sso.example.com/../*",
            "https://sso.example.com//*",
            "https://SSO.example.com/*",
            "https://sso.example.com:99999/*",
        ] {
            assert!(IssuerPattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn discovery_urls() {
        assert_eq!(discovery_url("https://a.example/"), "https://a.example/.well-known/openid-configuration");
        assert_eq!(discovery_url("https://a.example/realms/x"), "https://a.example/realms/x/.well-known/openid-configuration");
        assert_eq!(authority_of("https://A.example:8443/x").as_deref(), Some("a.example:8443"));
        assert_eq!(authority_of("https://u@a.example/x"), None);
    }
}
