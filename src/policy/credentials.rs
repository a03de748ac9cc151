//! The token a request carries, read as leniently as any common backend parser reads credentials.

use super::Scheme;

/// Why a request's credentials are refused before any token is read.
pub const AMBIGUOUS_AUTHORIZATION: &str = "more than one Authorization header";
pub const AMBIGUOUS_COOKIE: &str = "the token cookie is sent more than once with different values";
pub const AMBIGUOUS_HEADER_AND_COOKIE: &str = "the Authorization header and the token cookie carry different tokens";
pub const OTHER_AUTHORIZATION: &str = "the Authorization header carries a credential other than the token cookie's";

/// The token from `Authorization: Bearer ...`, else from the cookie `cookie_key`.
/// `authorization` holds every Authorization header of the request, one per line; `cookies` every
/// Cookie header, joined by "; ".
///
/// Credentials are read as leniently as any common parser of the backend may read them: the
/// scheme in any case followed by any spaces or tabs; cookies split at `;` and `,`, names trimmed
/// and compared in any case with `.`, space and `[` read as `_` (as PHP does), values trimmed and
/// unquoted. A request whose credentials say two things (two Authorization headers, the token
/// cookie twice with different values, a bearer header and the cookie with different tokens, or
/// another credential in the Authorization header beside the token cookie) is refused as a whole
/// rather than cleaned: whatever the backend reads is then the token that was verified, and no
/// parser's reading of a half-removed header can differ from ours. No cookie crate is used here on
/// purpose: the point is to see every cookie that any of those parsers would see, not to read the
/// header as one of them does.
pub fn extract<'a>(authorization: &'a str, cookies: &'a str, cookie_key: &str) -> Result<Option<&'a str>, &'static str> {
    Ok(extract_as(authorization, cookies, cookie_key, false)?.map(|(token, _)| token))
}

/// Like `extract`, with the way the token came; `dpop`: the `DPoP` scheme (RFC 9449 section 7.1)
/// carries a token too, read as leniently as `Bearer`. Without it, a DPoP header is another
/// credential.
pub fn extract_as<'a>(authorization: &'a str, cookies: &'a str, cookie_key: &str, dpop: bool) -> Result<Option<(&'a str, Scheme)>, &'static str> {
    if authorization.contains('\n') {
        return Err(AMBIGUOUS_AUTHORIZATION);
    }
    let ws = [' ', '\t'];
    let header = authorization.trim_matches(ws);
    // None: no Authorization header; Some(None): one that holds no token this rule reads.
    let bearer = (!header.is_empty()).then(|| {
        let (scheme, rest) = header.split_once(ws)?;
        let token = rest.trim_matches(ws);
        let scheme = if scheme.eq_ignore_ascii_case("bearer") {
            Scheme::Bearer
        } else if dpop && scheme.eq_ignore_ascii_case("dpop") {
            Scheme::DPoP
        } else {
            return None;
        };
        (!token.is_empty()).then_some((token, scheme))
    });
    let mut cookie: Option<&str> = None;
    for (name, value) in cookies.split([';', ',']).filter_map(|c| c.split_once('=')) {
        let value = value.trim_matches(ws);
        let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value);
        if value.is_empty() || !same_cookie_name(name, cookie_key) {
            continue;
        }
        match cookie {
            Some(seen) if seen != value => return Err(AMBIGUOUS_COOKIE),
            _ => cookie = Some(value),
        }
    }
    match (bearer, cookie) {
        (Some(Some((b, _))), Some(c)) if b != c => Err(AMBIGUOUS_HEADER_AND_COOKIE),
        (Some(Some(b)), _) => Ok(Some(b)),
        (Some(None), Some(_)) => Err(OTHER_AUTHORIZATION),
        (_, c) => Ok(c.map(|c| (c, Scheme::Cookie))),
    }
}

/// A cookie name as the most lenient backend parser reads it.
/// Whether two cookie names are one as the most lenient backend parser reads them (compared
/// without allocating: this runs for every cookie of every protected request).
fn same_cookie_name(a: &str, b: &str) -> bool {
    let fold = |c: char| match c {
        '.' | ' ' | '[' => '_',
        c => c.to_ascii_lowercase(),
    };
    let ws = [' ', '\t'];
    a.trim_matches(ws).chars().map(fold).eq(b.trim_matches(ws).chars().map(fold))
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extraction_prefers_the_bearer_header_then_the_cookie() {
        assert_eq!(extract("Bearer abc", "access_token=abc", "access_token"), Ok(Some("abc")));
        assert_eq!(extract("bearer  abc ", "", "access_token"), Ok(Some("abc")));
        assert_eq!(extract("Basic abc", "a=1", "access_token"), Ok(None));
        assert_eq!(extract("", "a=1; access_token=def", "access_token"), Ok(Some("def")));
        assert_eq!(extract("BEARER\tabc", "", "access_token"), Ok(Some("abc")));
        assert_eq!(extract("", "access_token=\"abc\"", "access_token"), Ok(Some("abc")));
        assert_eq!(extract("", "session=def", "access_token"), Ok(None));
        assert_eq!(extract("Bearer ", "", "access_token"), Ok(None));
        assert_eq!(extract("", "access_token=a; x=1; access_token=a", "access_token"), Ok(Some("a")));
    }
    #[test]
    fn credentials_that_say_two_things_are_refused_whole() {
        assert_eq!(extract("Bearer a\nBearer b", "", "access_token"), Err(AMBIGUOUS_AUTHORIZATION));
        assert_eq!(extract("Bearer a\nBearer a", "", "access_token"), Err(AMBIGUOUS_AUTHORIZATION));
        assert_eq!(extract("Basic x\nBearer a", "", "access_token"), Err(AMBIGUOUS_AUTHORIZATION));
        assert_eq!(extract("", "access_token=a; access_token=b", "access_token"), Err(AMBIGUOUS_COOKIE));
        assert_eq!(extract("Bearer a", "access_token=b", "access_token"), Err(AMBIGUOUS_HEADER_AND_COOKIE));
        // Spelled as other parsers read them: whitespace after the scheme, names trimmed, case,
        // PHP's '.' and ' ' for '_', ',' as a separator.
        assert_eq!(extract("Bearer\tforged", "access_token=a", "access_token"), Err(AMBIGUOUS_HEADER_AND_COOKIE));
        assert_eq!(extract("bEaReR forged", "access_token=a", "access_token"), Err(AMBIGUOUS_HEADER_AND_COOKIE));
        for jar in ["access_token =b; access_token=a", "access_token=a; Access_Token=b", "access.token=b; access_token=a",
            "access_token=a, access_token=b", " access_token\t=b;access_token=a"] {
            assert_eq!(extract("", jar, "access_token"), Err(AMBIGUOUS_COOKIE), "{jar}");
        }
        assert_eq!(extract("Bearer a", "access_token =b", "access_token"), Err(AMBIGUOUS_HEADER_AND_COOKIE));
        // Another credential in the header beside the token cookie: the backend may read either.
        assert_eq!(extract("Basic abc", "access_token=a", "access_token"), Err(OTHER_AUTHORIZATION));
        assert_eq!(extract("Bearer", "access_token=a", "access_token"), Err(OTHER_AUTHORIZATION));
        assert_eq!(extract("DPoP a", "access_token=a", "access_token"), Err(OTHER_AUTHORIZATION));
    }

    #[test]
    fn the_dpop_scheme_carries_a_token_where_a_rule_takes_it() {
        assert_eq!(extract_as("DPoP a", "", "t", true), Ok(Some(("a", Scheme::DPoP))));
        assert_eq!(extract_as("dpop\t a ", "", "t", true), Ok(Some(("a", Scheme::DPoP))));
        assert_eq!(extract_as("DPoP a", "", "t", false), Ok(None));
        assert_eq!(extract_as("Bearer a", "", "t", true), Ok(Some(("a", Scheme::Bearer))));
        assert_eq!(extract_as("", "t=a", "t", true), Ok(Some(("a", Scheme::Cookie))));
        assert_eq!(extract_as("DPoP a", "t=b", "t", true), Err(AMBIGUOUS_HEADER_AND_COOKIE));
        assert_eq!(extract_as("DPoP a\nDPoP a", "", "t", true), Err(AMBIGUOUS_AUTHORIZATION));
    }
}
