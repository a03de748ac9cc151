//! What a verified token's claims must show for a rule, and the claim headers it sets.

use super::{Matcher, Rule};
use serde_json::{Map, Value};

/// Looks a claim up by its name, or, when absent and the name has dots, as a nested path.
pub fn claim<'a>(claims: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    claims.get(key).or_else(|| {
        let mut parts = key.split('.');
        let mut cur = claims.get(parts.next()?)?;
        for p in parts {
            cur = cur.as_object()?.get(p)?;
        }
        Some(cur)
    })
}

/// A claim as a list of strings: an array of strings, or a space-separated string.
fn claim_list(claims: &Map<String, Value>, key: &str) -> Vec<String> {
    match claim(claims, key) {
        Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        _ => vec![],
    }
}

fn matched(required: &[String], present: &[String], m: Matcher) -> bool {
    match m {
        Matcher::Any => required.iter().any(|r| present.contains(r)),
        Matcher::All => required.iter().all(|r| present.contains(r)),
    }
}

/// Why a verified token is still refused: `Invalid` answers 401, `Forbidden` 403.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deny {
    Invalid(String),
    Forbidden(String),
}

fn numeric(claims: &Map<String, Value>, name: &str) -> Result<Option<f64>, Deny> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => v.as_f64().map(Some).ok_or_else(|| Deny::Invalid(format!("\"{name}\" is not a number"))),
    }
}

/// Checks the claims of a token whose signature verified, at Unix time `now`.
pub fn check(rule: &Rule, claims: &Map<String, Value>, now: f64) -> Result<(), Deny> {
    let leeway = rule.leeway.as_secs_f64();
    match numeric(claims, "exp")? {
        Some(exp) if now - leeway >= exp => return Err(Deny::Invalid("token expired".into())),
        None if rule.require_exp => return Err(Deny::Invalid("token has no exp".into())),
        _ => {}
    }
    if numeric(claims, "nbf")?.is_some_and(|nbf| now + leeway < nbf) {
        return Err(Deny::Invalid("token not valid yet (nbf)".into()));
    }
    if numeric(claims, "iat")?.is_some_and(|iat| now + leeway < iat) {
        return Err(Deny::Invalid("token issued in the future (iat)".into()));
    }
    if !rule.issuers.is_empty() {
        let iss = claims.get("iss").and_then(Value::as_str).unwrap_or("");
        if !rule.issuers.iter().any(|i| i == iss) {
            return Err(Deny::Invalid("issuer not accepted".into()));
        }
    }
    if !rule.audience.is_empty() {
        let aud: Vec<String> = match claims.get("aud") {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
            _ => vec![],
        };
        if !matched(&rule.audience, &aud, rule.audience_matcher) {
            return Err(Deny::Invalid("audience not accepted".into()));
        }
    }
    if !rule.roles.is_empty() && !matched(&rule.roles, &claim_list(claims, &rule.roles_key), rule.roles_matcher) {
        return Err(Deny::Forbidden("missing role".into()));
    }
    if !rule.scopes.is_empty() && !matched(&rule.scopes, &claim_list(claims, &rule.scopes_key), rule.scopes_matcher) {
        return Err(Deny::Forbidden("missing scope".into()));
    }
    Ok(())
}

/// The header values for `propagate_claims`: strings as they are, arrays of strings joined with
/// commas, anything else as JSON. A missing claim gives no header (the client's is still removed).
pub fn claim_headers(rule: &Rule, claims: &Map<String, Value>) -> Vec<(String, Option<String>)> {
    rule.propagate_claims
        .iter()
        .map(|(c, h)| {
            let v = claim(claims, c).map(|v| match v {
                Value::String(s) => s.clone(),
                Value::Array(a) if a.iter().all(Value::is_string) => {
                    a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(",")
                }
                other => other.to_string(),
            });
            // Header values must not carry line breaks or other control characters.
            (h.clone(), v.filter(|s| !s.bytes().any(|b| b < 0x20 || b == 0x7f)))
        })
        .collect()
}

/// The edits that put claim headers on a request whose header names are `request_names` (one per
/// line, as the shim keys them), one per line: `Name` removes that header, `Name\tvalue` sets one.
/// Every header a backend could read as a claim header goes first, whoever sent it: its name in
/// any case, with `-` or `_` (CGI-style backends read `X-User` and `X_User` both as
/// `HTTP_X_USER`). A claim the token lacks (value `None`) leaves the header removed.
pub fn header_edits(headers: &[(String, Option<String>)], request_names: &[u8]) -> String {
    let same = |a: &[u8], b: &[u8]| {
        let fold = |c: &u8| if *c == b'_' { b'-' } else { c.to_ascii_lowercase() };
        a.len() == b.len() && a.iter().map(fold).eq(b.iter().map(fold))
    };
    let mut edits = String::new();
    for name in request_names.split(|&b| b == b'\n').filter(|n| !n.is_empty()) {
        if headers.iter().any(|(h, _)| same(h.as_bytes(), name)) {
            // Named by the shim; a name that is not UTF-8 matches no claim header, which is ASCII.
            edits.push_str(&String::from_utf8_lossy(name));
            edits.push('\n');
        }
    }
    for (name, value) in headers {
        if let Some(v) = value {
            edits.push_str(name);
            edits.push('\t');
            edits.push_str(v);
            edits.push('\n');
        }
    }
    edits
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::AuthSettings;
    use serde_json::json;

    fn rule(extra: Value) -> Rule {
        let mut r = json!({"paths": ["/x"]});
        for (k, v) in extra.as_object().unwrap() {
            r[k] = v.clone();
        }
        AuthSettings::from_value(&json!({ "rules": [r] })).unwrap().rules.remove(0)
    }

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }


    #[test]
    fn time_claims_with_leeway() {
        let r = rule(json!({"leeway": "2s"}));
        let now = 1000.0;
        assert!(check(&r, &claims(json!({"exp": 1001})), now).is_ok());
        assert!(check(&r, &claims(json!({"exp": 1001.5})), now + 2.0).is_ok());
        assert!(matches!(check(&r, &claims(json!({"exp": 998})), now), Err(Deny::Invalid(_))));
        assert!(matches!(check(&r, &claims(json!({})), now), Err(Deny::Invalid(m)) if m.contains("no exp")));
        assert!(check(&rule(json!({"require_exp": false})), &claims(json!({})), now).is_ok());
        assert!(matches!(check(&r, &claims(json!({"exp": 2000, "nbf": 1003})), now), Err(Deny::Invalid(m)) if m.contains("nbf")));
        assert!(check(&r, &claims(json!({"exp": 2000, "nbf": 1001})), now).is_ok());
        assert!(matches!(check(&r, &claims(json!({"exp": 2000, "iat": 1010})), now), Err(Deny::Invalid(m)) if m.contains("iat")));
        assert!(matches!(check(&r, &claims(json!({"exp": "2000"})), now), Err(Deny::Invalid(_))));
    }
    #[test]
    fn issuer_audience_roles_scopes() {
        let c = claims(json!({"exp": 2000, "iss": "https://a", "aud": ["api", "web"],
            "realm_access": {"roles": ["admin", "dev"]}, "scope": "read write", "https://ns.example/roles": ["x"]}));
        let ok = |r: Value| check(&rule(r), &c, 1000.0);
        assert!(ok(json!({"issuer": "https://a"})).is_ok());
        assert_eq!(ok(json!({"issuer": ["https://b"]})), Err(Deny::Invalid("issuer not accepted".into())));
        // As in auth/validator, every listed audience must be present by default.
        assert_eq!(ok(json!({"audience": ["api", "other"]})), Err(Deny::Invalid("audience not accepted".into())));
        assert!(ok(json!({"audience": ["api", "web"]})).is_ok());
        assert!(ok(json!({"audience": ["api", "other"], "audience_matcher": "any"})).is_ok());
        assert!(ok(json!({"audience": ["api", "other"], "audience_matcher": "all"})).is_err());
        assert!(ok(json!({"audience": ["api", "web"], "audience_matcher": "all"})).is_ok());
        assert!(ok(json!({"roles_key": "realm_access.roles", "roles": ["admin"]})).is_ok());
        assert!(ok(json!({"roles_key": "https://ns.example/roles", "roles": ["x"]})).is_ok());
        assert_eq!(ok(json!({"roles_key": "realm_access.roles", "roles": ["root"]})), Err(Deny::Forbidden("missing role".into())));
        assert!(ok(json!({"scopes": ["write", "admin"]})).is_ok());
        assert_eq!(ok(json!({"scopes": ["write", "admin"], "scopes_matcher": "all"})), Err(Deny::Forbidden("missing scope".into())));
    }
    #[test]
    fn claim_headers_are_safe() {
        let r = rule(json!({"propagate_claims": [["sub", "X-User"], ["groups", "X-Groups"], ["evil", "X-Evil"], ["gone", "X-Gone"], ["n", "X-N"]]}));
        let h = claim_headers(&r, &claims(json!({"sub": "alice", "groups": ["a", "b"], "evil": "a\r\nX-Admin: 1", "n": 5})));
        assert_eq!(
            h,
            vec![
                ("X-User".into(), Some("alice".into())),
                ("X-Groups".into(), Some("a,b".into())),
                ("X-Evil".into(), None),
                ("X-Gone".into(), None),
                ("X-N".into(), Some("5".into())),
            ]
        );
    }

    #[test]
    fn every_spelling_a_backend_reads_as_a_claim_header_is_removed_first() {
        let h = vec![("X-User".to_string(), Some("alice".to_string())), ("X-Tenant".to_string(), None)];
        let names = b"Accept\nX-User\nX_user\nX-USER\nx_tenant\nX-Users\nX-Use\nXX-User\n";
        assert_eq!(header_edits(&h, names), "X-User\nX_user\nX-USER\nx_tenant\nX-User\talice\n");
        assert_eq!(header_edits(&h, b""), "X-User\talice\n");
    }
}
