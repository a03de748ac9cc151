//! One request's decision for the `jwk-aggregator-auth` handler, in the order Envoy's jwt_authn
//! takes it: the rules that cover the path (`policy`), the token each reads (`policy::extract`),
//! parsed once, its keys by issuer (`keys::Directory`), its signature (`verify`), then each rule's
//! claim checks (`policy::check`), and for sender-constrained tokens the binding
//! (`policy::check_binding`), whose accepted DPoP proofs the replay store (`replay.rs`) takes once.
//! A bounded cache (`cache.rs`) remembers verified tokens until their exp or until the keys that
//! verified them change; a token waiting for its keys stays parsed (`awaiting.rs`) for the
//! request that resumes when they are ready.

mod awaiting;
mod cache;
mod replay;

use crate::aggregator::Core;
use crate::keys::{Directory, Unavailable};
use crate::policy::{self, Accepted, AuthSettings, Binding, Deny, Evidence, Forward, Rule, Scheme, Unbound};
use crate::source::{Later, Wait};
use crate::verify::{self, Alg, Invalid, Parsed, Verified};
use cache::TokenCache;
use parking_lot::Mutex;
use serde_json::{Map, Value};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// What the handler does with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// No rule covers the path: pass it on untouched.
    Unprotected,
    /// Pass it on, after removing the named headers and setting those with a value.
    Allow(Vec<(String, Option<String>)>),
    /// No token: 401.
    Missing,
    /// Bad token: 401 with `error="invalid_token"`. The reason is for the log, never the client.
    Invalid(String),
    /// Good token without the required roles or scopes: 403.
    Forbidden(String),
    /// A DPoP proof that is missing, bad or replayed: 401 with `error="invalid_dpop_proof"`.
    BadProof(String),
    /// The DPoP replay store cannot answer: 503 (a proof that cannot be checked is not taken).
    Unavailable(String),
    /// Its keys are being fetched: ask again when the keys socket announces the source it waits
    /// for, or with `Wait::Expired` once the wait has passed (`Wait::Pending` only).
    Pending(Later),
}

pub struct Auth {
    settings: AuthSettings,
    keys: Directory,
    cache: Mutex<TokenCache>,
    awaiting: Mutex<awaiting::Awaiting>,
    replay: replay::Replay,
    /// How long an accepted DPoP proof is kept after its `iat` (`AuthSettings::dpop_window`).
    dpop_window: f64,
}

/// One request, as the decision reads it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Request<'a> {
    /// As the router routes it: decoded, not cleaned.
    pub path: &'a str,
    /// Every `Authorization` value, one per line.
    pub authorization: &'a str,
    /// Every `Cookie` value, joined by "; ".
    pub cookies: &'a str,
    /// The method and what a binding check reads.
    pub evidence: Evidence<'a>,
}

/// A request as HTTP carries it, in bytes (the C API's input); see `Auth::check_request`.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawRequest<'a> {
    pub method: &'a [u8],
    pub path: &'a [u8],
    pub authorization: &'a [u8],
    pub cookies: &'a [u8],
    pub dpop: &'a [u8],
    pub scheme: &'a [u8],
    pub host: &'a [u8],
    pub target: &'a [u8],
    pub forwarded_proto: &'a [u8],
    pub forwarded_host: &'a [u8],
    pub client_cert: &'a [u8],
}

/// The decision on a request, down to the answer.
#[derive(Debug)]
pub struct Decision {
    pub outcome: Outcome,
    /// The verified token's claims, when asked for and the request is allowed.
    pub claims: Option<Arc<Map<String, Value>>>,
    /// The HTTP status of a refusal (401, 403, 503), 0 to pass the request on.
    pub status: u16,
    /// Its `WWW-Authenticate` value (RFC 6750 section 3, RFC 9449 section 7.1); empty when none.
    pub challenge: String,
}

/// What a rule that allows a request adds to it.
struct Allowed {
    headers: Vec<(String, Option<String>)>,
    claims: Arc<Map<String, Value>>,
    proof: Option<Accepted>,
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// The status and `WWW-Authenticate` challenge of an outcome under the rule that decided it: the
/// Bearer challenge (RFC 6750 section 3), and the DPoP one with the proof algorithms the rule takes
/// (RFC 9449 section 7.1) where the rule takes DPoP. `(0, "")` when the request goes on.
pub fn answer(rule: &Rule, outcome: &Outcome) -> (u16, String) {
    let (status, error) = match outcome {
        Outcome::Unprotected | Outcome::Allow(_) | Outcome::Pending(_) => return (0, String::new()),
        Outcome::Unavailable(_) => return (503, String::new()),
        Outcome::Missing => (401, None),
        Outcome::Invalid(_) => (401, Some("invalid_token")),
        Outcome::Forbidden(_) => (403, Some("insufficient_scope")),
        Outcome::BadProof(_) => (401, Some("invalid_dpop_proof")),
    };
    let bearer = match error {
        None | Some("invalid_dpop_proof") => r#"Bearer realm="krakend""#.to_string(),
        Some(e) => format!(r#"Bearer error="{e}""#),
    };
    let dpop = || {
        let algs: Vec<&str> = rule.dpop.algs.iter().map(|a| a.name()).collect();
        match error {
            None => format!(r#"DPoP algs="{}""#, algs.join(" ")),
            Some(e) => format!(r#"DPoP error="{e}", algs="{}""#, algs.join(" ")),
        }
    };
    let challenge = match rule.dpop.mode {
        Binding::Off => bearer,
        Binding::Allowed => format!("{bearer}, {}", dpop()),
        Binding::Required => dpop(),
    };
    (status, challenge)
}

impl Decision {
    fn unprotected() -> Decision {
        Decision { outcome: Outcome::Unprotected, claims: None, status: 0, challenge: String::new() }
    }
}

/// One token of a request, parsed once and verified at most once, whichever rules read it.
struct Seen<'t> {
    token: &'t str,
    parsed: Option<Result<Parsed<'t>, Invalid>>,
    verified: Option<Result<Verified, String>>,
}

impl Auth {
    pub fn new(settings: AuthSettings, core: Arc<Core>) -> Auth {
        let keys = Directory::new(core, settings.unknown_kid_cooldown, settings.unknown_kid_wait);
        let replay = replay::Replay::new(&settings.dpop_replay);
        let dpop_window = settings.dpop_window().as_secs_f64();
        Auth { settings, keys, cache: Mutex::new(TokenCache::default()), awaiting: Mutex::default(), replay, dpop_window }
    }

    /// Decides one GET request. `authorization` and `cookies` are the raw header values ("" if absent).
    pub fn check(&self, path: &str, authorization: &str, cookies: &str) -> Outcome {
        self.check_with_claims("GET", path, authorization, cookies, false, Wait::Block).0
    }

    /// Like `check` for any method, also returning the claims of a verified token when
    /// `want_claims`, and waiting for the network as `how` says (the shim: `Wait::Pending`).
    pub fn check_with_claims(
        &self,
        method: &str,
        path: &str,
        authorization: &str,
        cookies: &str,
        want_claims: bool,
        how: Wait,
    ) -> (Outcome, Option<Arc<Map<String, Value>>>) {
        let evidence = Evidence { method, ..Evidence::default() };
        let d = self.decide(&Request { path, authorization, cookies, evidence }, want_claims, how);
        (d.outcome, d.claims)
    }

    /// A request as HTTP carries it, in bytes (the C API's input). A path that is not UTF-8 is read
    /// with U+FFFD in place of what is not, which no rule's literal segment holds: such a segment
    /// can only match a parameter, as it can only reach a parameter in the router. Credentials
    /// that are not UTF-8 are no token anyone issued: refused wherever a rule applies. What a
    /// binding check reads is read the same lossy way: a proof, host or target changed by it no
    /// longer matches, and is refused.
    pub fn check_request(&self, raw: &RawRequest<'_>, want_claims: bool, how: Wait) -> Decision {
        let text = |b| String::from_utf8_lossy(b);
        let (method, path, dpop) = (text(raw.method), text(raw.path), text(raw.dpop));
        let (scheme, host, target) = (text(raw.scheme), text(raw.host), text(raw.target));
        let (forwarded_proto, forwarded_host) = (text(raw.forwarded_proto), text(raw.forwarded_host));
        let evidence = Evidence {
            method: &method,
            dpop: &dpop,
            scheme: &scheme,
            host: &host,
            target: &target,
            forwarded_proto: &forwarded_proto,
            forwarded_host: &forwarded_host,
            client_cert: raw.client_cert,
        };
        match (std::str::from_utf8(raw.authorization), std::str::from_utf8(raw.cookies)) {
            (Ok(authorization), Ok(cookies)) => self.decide(&Request { path: &path, authorization, cookies, evidence }, want_claims, how),
            _ => {
                let rules = if method == "OPTIONS" { vec![] } else { self.settings.rules_for(&path) };
                let Some(rule) = rules.first() else { return Decision::unprotected() };
                self.refused(rule, Outcome::Invalid("the Authorization or Cookie header is not valid UTF-8".into()))
            }
        }
    }

    /// Every rule that covers the path (`AuthSettings::rules_for`) must allow the request; the
    /// first that does not decides the answer. An allowed request's DPoP proof is then taken by
    /// the replay store, once: a request refused for any other reason spends no proof.
    pub fn decide(&self, req: &Request<'_>, want_claims: bool, how: Wait) -> Decision {
        // CORS preflights carry no credentials by design; KrakenD's CORS module (or the router's
        // auto_options) answers them, and KrakenD never routes OPTIONS to a backend.
        let rules = if req.evidence.method == "OPTIONS" { vec![] } else { self.settings.rules_for(req.path) };
        if rules.is_empty() {
            return Decision::unprotected();
        }
        let now = now();
        // Rules may read different cookies; most read the same token, which is worked on once.
        let mut seen: Vec<Seen<'_>> = Vec::new();
        let mut headers = Vec::new();
        let mut claims = None;
        let mut proof: Option<(&Rule, Accepted)> = None;
        for rule in &rules {
            match self.check_rule(rule, req, &mut seen, now, how) {
                Ok(ok) => {
                    headers.extend(ok.headers);
                    claims = claims.or(want_claims.then_some(ok.claims));
                    // Every rule checks the same proof: one jti to remember.
                    proof = proof.or(ok.proof.map(|p| (*rule, p)));
                }
                Err(Outcome::Pending(later)) => {
                    return Decision { outcome: Outcome::Pending(later), claims: None, status: 0, challenge: String::new() }
                }
                Err(outcome) => return self.refused(rule, outcome),
            }
        }
        if let Some((rule, p)) = proof {
            let stats = &self.keys.core().auth_stats;
            let until = p.iat + self.dpop_window;
            match self.replay.first_use(&p.key, until, now) {
                replay::Seen::First => stats.dpop_accepted.fetch_add(1, Relaxed),
                replay::Seen::Again => {
                    stats.dpop_replayed.fetch_add(1, Relaxed);
                    return self.refused(rule, Outcome::BadProof("DPoP proof replayed (its jti was accepted before)".into()));
                }
                replay::Seen::Unavailable(why) => {
                    stats.dpop_store_unavailable.fetch_add(1, Relaxed);
                    return self.refused(rule, Outcome::Unavailable(format!("DPoP replay store: {why}")));
                }
            };
        }
        let outcome = Outcome::Allow(headers);
        self.count(&outcome);
        Decision { outcome, claims, status: 0, challenge: String::new() }
    }

    fn refused(&self, rule: &Rule, outcome: Outcome) -> Decision {
        self.count(&outcome);
        let (status, challenge) = answer(rule, &outcome);
        Decision { outcome, claims: None, status, challenge }
    }

    /// One rule's verdict on the request: what it adds to it, or the answer.
    fn check_rule<'t>(&self, rule: &Rule, req: &Request<'t>, seen: &mut Vec<Seen<'t>>, now: f64, how: Wait) -> Result<Allowed, Outcome> {
        let dpop = rule.dpop.mode != Binding::Off;
        let (token, scheme) = match policy::extract_as(req.authorization, req.cookies, &rule.cookie_key, dpop) {
            Ok(Some(found)) => found,
            Ok(None) => return Err(Outcome::Missing),
            Err(why) => return Err(Outcome::Invalid(why.into())),
        };
        let i = match seen.iter().position(|s| s.token == token) {
            Some(i) => i,
            None => {
                seen.push(Seen { token, parsed: None, verified: None });
                seen.len() - 1
            }
        };
        let v = self.verified(&mut seen[i], rule, now, how)?;
        // Who presents the token before what it allows: a bound token without its proof is no token.
        let proof = policy::check_binding(rule, &self.settings.public_uri, scheme, token, &v.claims, &req.evidence, now).map_err(|u| match u {
            Unbound::Proof(why) => Outcome::BadProof(why),
            Unbound::Token(why) => Outcome::Invalid(why),
        })?;
        match policy::check(rule, &v.claims, now) {
            Ok(()) => {}
            Err(Deny::Invalid(why)) => return Err(Outcome::Invalid(why)),
            Err(Deny::Forbidden(why)) => return Err(Outcome::Forbidden(why)),
        }
        let mut headers = policy::claim_headers(rule, &v.claims);
        if scheme == Scheme::DPoP && rule.dpop.forward == Forward::Bearer {
            headers.push(("Authorization".into(), Some(format!("Bearer {token}"))));
            headers.push(("DPoP".into(), None));
        }
        Ok(Allowed { headers, claims: v.claims, proof })
    }

    /// The token's verification, for a rule whose algorithms it must be signed with: from this
    /// request's earlier rules, or worked out once (`verify_token`).
    fn verified(&self, t: &mut Seen<'_>, rule: &Rule, now: f64, how: Wait) -> Result<Verified, Outcome> {
        if t.verified.is_none() {
            t.verified = Some(match self.verify_token(t, rule, now, how) {
                Ok(v) => Ok(v),
                Err(Unavailable::Invalid(e)) => Err(e.to_string()),
                Err(Unavailable::Pending(later)) => return Err(Outcome::Pending(later)),
            });
        }
        match t.verified.as_ref() {
            // The cache is shared by every rule: this rule's algorithms still apply.
            Some(Ok(v)) if rule.algs.contains(&v.alg) => Ok(v.clone()),
            Some(Ok(v)) => Err(Outcome::Invalid(Invalid::AlgNotAllowed(v.alg.name().into()).to_string())),
            Some(Err(why)) => Err(Outcome::Invalid(why.clone())),
            None => unreachable!("set above"),
        }
    }

    /// A token whose signature checks out: from the cache, or parsed (once) and verified now.
    fn verify_token(&self, t: &mut Seen<'_>, rule: &Rule, now: f64, how: Wait) -> Result<Verified, Unavailable> {
        let stats = &self.keys.core().auth_stats;
        if let Some(v) = self.cached(t.token, now, how)? {
            stats.cache_hits.fetch_add(1, Relaxed);
            return Ok(v);
        }
        stats.cache_misses.fetch_add(1, Relaxed);
        let max = self.settings.max_token_bytes;
        let token = t.token;
        let parsed = t.parsed.get_or_insert_with(|| {
            // A request woken when its keys are ready resumes with the parse it left.
            let saved = self.awaiting.lock().get(token);
            saved.and_then(|s| s.resume(token.as_bytes())).map(Ok).unwrap_or_else(|| {
                stats.tokens_parsed.fetch_add(1, Relaxed);
                verify::parse(token.as_bytes(), max, &Alg::ALL)
            })
        });
        let parsed = parsed.as_ref().map_err(Invalid::clone)?;
        // Refused before its keys are looked up: a token no covering rule takes costs no traffic.
        if !rule.algs.contains(&parsed.alg) {
            return Err(Invalid::AlgNotAllowed(parsed.alg.name().into()).into());
        }
        let iss = parsed.claims.get("iss").and_then(Value::as_str);
        let waited = |e: Unavailable| {
            match &e {
                Unavailable::Pending(_) => self.awaiting.lock().keep(token, parsed),
                Unavailable::Invalid(_) => self.forget_waiting(token),
            }
            e
        };
        let keys = self.keys.for_issuer(iss, how).map_err(waited)?;
        let (keys, result) = match keys.verify(parsed) {
            Err(Invalid::UnknownKid(kid)) if parsed.kid.is_some() => match self.keys.after_unknown_kid(&keys, how).map_err(waited)? {
                Some(newer) => {
                    let result = newer.verify(parsed);
                    (newer, result)
                }
                None => (keys, Err(Invalid::UnknownKid(kid))),
            },
            other => (keys, other),
        };
        self.forget_waiting(token);
        let v = result?;
        self.keys.verified_with(&keys);
        let s = &self.settings;
        self.cache.lock().remember(t.token, &keys.holder, keys.generation, &v, s.cache_size, s.cache_max_bytes);
        Ok(v)
    }

    /// The token waits no longer: its kept parse goes. One uncontended lock per verification made,
    /// beside a signature check; none on a cache hit.
    fn forget_waiting(&self, token: &str) {
        let mut awaiting = self.awaiting.lock();
        if !awaiting.is_empty() {
            awaiting.done(token);
        }
    }

    /// A remembered verification, if the keys that made it are still the ones in use.
    fn cached(&self, token: &str, now: f64, how: Wait) -> Result<Option<Verified>, Unavailable> {
        let Some((holder, generation, v)) = self.cache.lock().get(token, now) else { return Ok(None) };
        if let Some(keys) = self.keys.still_current(&holder, generation, how)? {
            self.keys.verified_with(&keys);
            return Ok(Some(v));
        }
        self.cache.lock().remove(token); // stale: its keys changed
        Ok(None)
    }

    /// Counted once per request, by its answer, however many rules decided it.
    fn count(&self, outcome: &Outcome) {
        let stats = &self.keys.core().auth_stats;
        match outcome {
            Outcome::Allow(_) => &stats.allowed,
            Outcome::Missing => &stats.missing,
            Outcome::Invalid(_) => &stats.invalid,
            Outcome::Forbidden(_) => &stats.forbidden,
            Outcome::BadProof(_) => &stats.bad_proof,
            Outcome::Unavailable(_) => &stats.unavailable,
            Outcome::Unprotected | Outcome::Pending(_) => return,
        }
        .fetch_add(1, Relaxed);
    }

    /// Whether any rule sets headers for the backend (claim headers, a DPoP request turned into a
    /// bearer one): the shim then names every request's headers.
    pub fn sets_headers(&self) -> bool {
        self.settings.rules.iter().any(|r| !r.propagate_claims.is_empty() || (r.dpop.mode != Binding::Off && r.dpop.forward == Forward::Bearer))
    }

    /// Whether the replay store is one Redis the fleet shares.
    pub fn shared_replay_store(&self) -> bool {
        self.replay.shared()
    }

    /// Memory the verified-token cache holds now, as it counts it, and its entries.
    pub fn cache_usage(&self) -> (usize, usize) {
        self.cache.lock().usage()
    }
}
