//! What the `jwk-aggregator` operator command answers, with the plugin's own code: whether a
//! KrakenD configuration fits together (`check`), what every origin publishes and what is kept
//! (`keys`), and why a token is accepted or refused (`explain`). Nothing here sends a token
//! anywhere; only the origins (and discovery documents) are fetched.

use jwk_aggregator::aggregator::Aggregator;
use jwk_aggregator::auth::{Auth, Outcome, Request};
use jwk_aggregator::settings::Settings;
use jwk_aggregator::fetch::{self, Conditional, Fetched, Scope};
use crate::gateway_config::{Endpoint, GatewayConfig, SERVER};
use jwk_aggregator::keyset;
use jwk_aggregator::policy::{self, AuthSettings, Evidence};
use jwk_aggregator::source::Wait;
use jwk_aggregator::verify::{self, Alg, KeyStore, BASE64URL};
use base64::Engine;
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::time::{SystemTime, UNIX_EPOCH};

const AGG: &str = "jwk-aggregator";
const AUTH: &str = "jwk-aggregator-auth";

/// One thing wrong with a configuration: where, what, and what to do.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub severity: &'static str,
    pub place: String,
    pub problem: String,
    pub fix: String,
}

fn finding(severity: &'static str, place: impl Into<String>, problem: impl Into<String>, fix: impl Into<String>) -> Finding {
    Finding { severity, place: place.into(), problem: problem.into(), fix: fix.into() }
}

/// The key family and curve an algorithm needs, as a JWK states them.
fn key_fits(jwk: &Map<String, Value>, alg: Alg) -> bool {
    let kty = jwk.get("kty").and_then(Value::as_str).unwrap_or("");
    let crv = jwk.get("crv").and_then(Value::as_str).unwrap_or("");
    let declared = jwk.get("alg").and_then(Value::as_str);
    if declared.is_some_and(|d| d != alg.name()) {
        return false;
    }
    match alg.name() {
        "RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512" => kty == "RSA",
        "ES256" => kty == "EC" && crv == "P-256",
        "ES384" => kty == "EC" && crv == "P-384",
        "ES512" => kty == "EC" && crv == "P-521",
        "EdDSA" => kty == "OKP" && crv == "Ed25519",
        _ => kty == "oct",
    }
}

fn describe_key(jwk: &Map<String, Value>) -> String {
    let s = |k: &str| jwk.get(k).and_then(Value::as_str);
    let mut d = s("kty").unwrap_or("?").to_owned();
    if let Some(c) = s("crv") {
        d = format!("{d} {c}");
    }
    if let Some(a) = s("alg") {
        d = format!("{d} alg {a}");
    }
    d
}

/// A sample request path of a KrakenD endpoint pattern, to test rule paths against it.
fn sample_path(endpoint: &str) -> String {
    endpoint.split('/').map(|s| if s.starts_with('{') || s == "*" { "x" } else { s }).collect::<Vec<_>>().join("/")
}

/// The aggregator port a validator's `jwk_url` points at, if it points at loopback.
fn loopback_port(url: &str) -> Option<u16> {
    let rest = url.strip_prefix("http://")?;
    let authority = rest.split('/').next()?;
    let (host, port) = authority.rsplit_once(':')?;
    jwk_aggregator::issuer::is_loopback_host(host).then(|| port.parse().ok())?
}

/// What every origin publishes now and what the plugin keeps of it.
#[derive(Debug, Clone, Serialize)]
pub struct OriginKeys {
    pub origin: String,
    pub issuers: Vec<String>,
    pub jwks_uri: Option<String>,
    pub error: Option<String>,
    pub kept: Vec<KeptKey>,
    pub dropped: Vec<DroppedKey>,
    #[serde(skip)]
    pub keys: Vec<Map<String, Value>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct KeptKey {
    pub kid: Option<String>,
    pub key: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct DroppedKey {
    pub kid: Option<String>,
    pub reason: &'static str,
    /// A fault of the provider's set; false for a key that is simply not a signing key.
    pub fault: bool,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct KeysReport {
    pub origins: Vec<OriginKeys>,
    pub merged_keys: usize,
    pub collisions: Vec<Value>,
}

/// Fetches every origin now, with the plugin's rules (transport, size, sanitizing, merging).
pub fn keys(settings: &Settings) -> Result<KeysReport, String> {
    let clients = fetch::build_clients(settings)?;
    let mut origins = Vec::new();
    for (i, o) in settings.origins.iter().enumerate() {
        let mut r = OriginKeys {
            origin: o.url.clone(),
            issuers: settings.issuers[i].clone(),
            jwks_uri: None,
            error: None,
            kept: vec![],
            dropped: vec![],
            keys: vec![],
        };
        let url = if o.discover {
            match fetch::discover_jwks_uri(&clients, &o.url, settings.max_response_bytes, settings.disable_jwk_security, settings.port, Scope::Configured) {
                Ok((u, _)) => Some(u),
                Err(e) => {
                    r.error = Some(e.to_string());
                    None
                }
            }
        } else {
            Some(o.url.clone())
        };
        if let Some(url) = url {
            r.jwks_uri = o.discover.then(|| url.clone());
            match fetch::fetch(&clients, &url, settings.max_response_bytes, &Conditional::default(), Scope::Configured) {
                Ok(Fetched::Keys { keys, .. }) => {
                    let clean = keyset::sanitize(&keys, settings.allow_symmetric_keys, settings.max_keys_per_origin);
                    r.kept = clean
                        .keys
                        .iter()
                        .map(|k| KeptKey { kid: k.get("kid").and_then(Value::as_str).map(str::to_owned), key: describe_key(k) })
                        .collect();
                    r.dropped = clean.dropped.iter().map(|d| DroppedKey { kid: d.kid.clone(), reason: d.reason.as_str(), fault: d.reason.is_fault(), detail: d.detail.clone() }).collect();
                    r.keys = clean.keys;
                }
                Ok(Fetched::NotModified { .. }) => r.error = Some("answered 304 to an unconditional request".into()),
                Err(e) => r.error = Some(e.to_string()),
            }
        }
        origins.push(r);
    }
    let merged = keyset::merge(origins.iter().enumerate().map(|(i, o)| (i, o.keys.as_slice())));
    let collisions = merged
        .collisions
        .iter()
        .map(|c| json!({"kid": c.kid, "first": origins[c.first_origin].origin, "second": origins[c.second_origin].origin}))
        .collect();
    Ok(KeysReport { merged_keys: merged.key_count, collisions, origins })
}

/// Options of `check`.
pub struct CheckOptions {
    /// Fetch the origins to compare each validator's `alg` with the keys actually published.
    pub fetch: bool,
    /// A KrakenD binary, to compare the plugins of the folder with it.
    pub krakend: Option<String>,
    /// The `plugin-check` tool built beside this command.
    pub plugin_check: Option<std::path::PathBuf>,
}

/// Checks a whole configuration: the plugin's blocks with the plugin's own parsers, and how the
/// rest of the file fits them.
pub fn check(cfg: &GatewayConfig, opts: &CheckOptions) -> Vec<Finding> {
    let mut out = Vec::new();
    let names = cfg.names();
    let agg_place = format!("{SERVER}.\"{AGG}\"");
    let auth_place = format!("{SERVER}.\"{AUTH}\"");
    let Some(agg_block) = cfg.block(AGG) else {
        out.push(finding("error", SERVER, "no \"jwk-aggregator\" block", "add the block with \"origins\" and \"port\" (see Configure in the README)"));
        return out;
    };
    if !names.iter().any(|n| n == AGG || n == AUTH) {
        out.push(finding("error", format!("{SERVER}.name"), "neither \"jwk-aggregator\" nor \"jwk-aggregator-auth\" is listed: KrakenD starts neither", "add \"jwk-aggregator\" to \"name\""));
    }
    let settings = match Settings::from_json(agg_block.to_string().as_bytes()) {
        Ok(s) => Some(s),
        Err(e) => {
            out.push(finding("error", &agg_place, e.0, "fix the setting; the plugin does not start with it (KrakenD keeps serving without it)"));
            None
        }
    };
    let auth = match (cfg.block(AUTH), names.iter().any(|n| n == AUTH)) {
        (Some(b), listed) => {
            if !listed {
                out.push(finding("warning", format!("{SERVER}.name"), "\"jwk-aggregator-auth\" has a block but is not listed in \"name\": its rules protect nothing", "add \"jwk-aggregator-auth\" to \"name\""));
            }
            match AuthSettings::from_value(b) {
                Ok(a) => Some(a),
                Err(e) => {
                    out.push(finding("error", &auth_place, e.0, "fix the setting; until then the handler answers every request with 503"));
                    None
                }
            }
        }
        (None, true) => {
            out.push(finding("error", &auth_place, "\"jwk-aggregator-auth\" is listed in \"name\" but has no block", "add a block with \"rules\""));
            None
        }
        (None, false) => None,
    };
    let endpoints = cfg.endpoints();
    let report = match (&settings, opts.fetch) {
        (Some(s), true) => keys(s).ok(),
        _ => None,
    };
    if let Some(r) = &report {
        for o in &r.origins {
            if let Some(e) = &o.error {
                out.push(finding("warning", &agg_place, format!("origin {} cannot be fetched now: {e}", o.origin), "check the URL and that this machine reaches it; the gateway serves the other origins' keys"));
            }
            for d in o.dropped.iter().filter(|d| d.fault) {
                out.push(finding("warning", &agg_place, format!("origin {}: key kid={} is dropped ({}): {}", o.origin, d.kid.as_deref().unwrap_or("(none)"), d.reason, d.detail), "ask the identity provider to publish a key KrakenD can use, or ignore it if it is not a signing key"));
            }
        }
        for c in &r.collisions {
            out.push(finding("warning", &agg_place, format!("kid {} is published with different keys by {} and {}", c["kid"], c["first"], c["second"]), "KrakenD's validator uses the later one: ask one provider to rotate to a unique kid"));
        }
    }
    if let Some(s) = &settings {
        for e in &endpoints {
            check_validator(s, e, report.as_ref(), &mut out);
        }
    }
    if let Some(a) = &auth {
        check_rules(cfg, a, &endpoints, &mut out);
        check_sender_constrained(cfg, a, opts.fetch, &mut out);
    }
    check_plugin_folder(cfg, opts, &mut out);
    out
}

fn check_validator(s: &Settings, e: &Endpoint, report: Option<&KeysReport>, out: &mut Vec<Finding>) {
    let Some(v) = &e.validator else { return };
    let place = format!("{} extra_config.\"auth/validator\"", e.place());
    let Some(url) = v.get("jwk_url").and_then(Value::as_str) else { return };
    match loopback_port(url) {
        Some(p) if p == s.port => {}
        Some(p) => {
            out.push(finding("warning", &place, format!("jwk_url {url:?} points at loopback port {p}, but the aggregator listens on {}", s.port), format!("use \"jwk_url\": \"http://localhost:{}\"", s.port)));
            return;
        }
        None => return,
    }
    if v.get("disable_jwk_security") != Some(&Value::Bool(true)) {
        out.push(finding("error", &place, "jwk_url is plain http without \"disable_jwk_security\": true, so KrakenD refuses every token (401)", "add \"disable_jwk_security\": true (the aggregator is on loopback; its origins are still https)"));
    }
    if v.get("cache") != Some(&Value::Bool(true)) {
        out.push(finding("warning", &place, "no \"cache\": true: KrakenD downloads the merged set on every request", "add \"cache\": true"));
    }
    let alg_name = v.get("alg").and_then(Value::as_str).unwrap_or("RS256");
    let Some(alg) = Alg::parse(alg_name) else {
        out.push(finding("error", &place, format!("alg {alg_name:?} is not one the aggregator serves keys for"), "use RS256/384/512, PS256/384/512, ES256/384/512 or EdDSA"));
        return;
    };
    if let Some(r) = report {
        let fitting = r.origins.iter().flat_map(|o| &o.keys).filter(|k| key_fits(k, alg)).count();
        if fitting == 0 && r.merged_keys > 0 {
            let published: Vec<String> = r.origins.iter().flat_map(|o| &o.keys).map(describe_key).collect();
            out.push(finding("error", &place, format!("alg {alg_name}: no origin publishes a key for it (published: {})", published.join(", ")), "set \"alg\" to the algorithm your provider signs with, or use jwk-aggregator-auth for several"));
        }
    }
}

/// What DPoP and certificate binding need besides their rules: a replay store that answers, and
/// client certificates.
fn check_sender_constrained(cfg: &GatewayConfig, a: &AuthSettings, online: bool, out: &mut Vec<Finding>) {
    let place = format!("{SERVER}.\"{AUTH}\"");
    let dpop = a.rules.iter().any(|r| r.dpop.mode != policy::Binding::Off);
    if dpop {
        if let (Some(url), true) = (&a.dpop_replay.redis, online) {
            let answer = redis::Client::open(url.as_str()).and_then(|c| c.get_connection_with_timeout(a.dpop_replay.timeout.max(std::time::Duration::from_secs(2)))).and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
            if let Err(e) = answer {
                out.push(finding("warning", format!("{place}.dpop_replay.redis"), format!("the replay store does not answer now: {e}"), "until it does, every DPoP request is refused with 503 (bearer rules are not affected): check the address and that this machine reaches it"));
            }
        }
    }
    let mtls = cfg.root.get("tls").and_then(|t| t.get("enable_mtls")) == Some(&Value::Bool(true));
    if !mtls && a.rules.iter().any(|r| r.certificate_binding != policy::Binding::Off) {
        out.push(finding("warning", &place, "a rule checks certificate-bound tokens, but KrakenD does not ask clients for certificates (tls.enable_mtls): every bound token is refused", "enable mutual TLS in KrakenD's \"tls\" block, or check the binding where TLS ends"));
    }
}

fn check_rules(cfg: &GatewayConfig, a: &AuthSettings, endpoints: &[Endpoint], out: &mut Vec<Finding>) {
    let raw_rules = cfg.block(AUTH).and_then(|b| b.get("rules")).and_then(Value::as_array).cloned().unwrap_or_default();
    for (i, rule) in raw_rules.iter().enumerate() {
        let paths: Vec<&str> = rule.get("paths").and_then(Value::as_array).map(|p| p.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
        for (j, p) in paths.iter().enumerate() {
            let Some(pattern) = policy::parse_path(p) else { continue };
            if !endpoints.iter().any(|e| policy::path_matches(&pattern, &sample_path(&e.path))) {
                out.push(finding("warning", format!("{SERVER}.\"{AUTH}\".rules[{i}].paths[{j}]"), format!("{p:?} matches no endpoint"), "correct the path (endpoint patterns as written in \"endpoint\"), or remove it"));
            }
        }
    }
    for e in endpoints {
        let sample = sample_path(&e.path);
        let Some((i, rule)) = a.rules.iter().enumerate().find(|(_, r)| r.paths.iter().any(|p| policy::path_matches(p, &sample))) else { continue };
        for (claim, header) in &rule.propagate_claims {
            let forwarded = e.input_headers.iter().any(|h| h == "*" || h.eq_ignore_ascii_case(header));
            if !forwarded {
                out.push(finding("error", format!("{} input_headers", e.place()), format!("rules[{i}] sets {header} from claim {claim:?}, but the endpoint does not forward it: the backend never sees it"), format!("add \"{header}\" to the endpoint's \"input_headers\"")));
            }
        }
        if e.validator.is_some() {
            out.push(finding("warning", e.place(), format!("protected twice: by rules[{i}] of jwk-aggregator-auth and by auth/validator"), "keep one of them"));
        }
    }
}

fn check_plugin_folder(cfg: &GatewayConfig, opts: &CheckOptions, out: &mut Vec<Finding>) {
    let Some((folder, pattern)) = cfg.plugin_folder() else {
        out.push(finding("error", "plugin", "no \"plugin\": {\"folder\", \"pattern\"}: KrakenD loads no plugin", "add \"plugin\": {\"pattern\": \".so\", \"folder\": \"/opt/krakend/plugins/\"}"));
        return;
    };
    let place = format!("plugin.folder {folder:?}");
    let entries = match std::fs::read_dir(&folder) {
        Ok(e) => e,
        Err(e) => {
            out.push(finding("warning", &place, format!("cannot read the folder here ({e}); relative folders are read from the current directory, as KrakenD does"), "run the check where KrakenD runs, or give an absolute folder"));
            return;
        }
    };
    let mut matching: Vec<String> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file() || t.is_symlink()))
        .map(|e| e.path().to_string_lossy().into_owned())
        .filter(|p| p.rsplit('/').next().is_some_and(|n| n.contains(&pattern)))
        .collect();
    matching.sort();
    let Some(tool) = &opts.plugin_check else {
        out.push(finding("warning", &place, "the plugin files cannot be checked: plugin-check was not found beside this command", "build both with `make build`"));
        return;
    };
    let mut plugins = 0;
    for f in &matching {
        let described = std::process::Command::new(tool).args(["describe", f]).output();
        match described {
            Ok(o) if o.status.success() => {
                plugins += 1;
                if let Some(k) = &opts.krakend {
                    match std::process::Command::new(tool).args(["compare", k, f]).output() {
                        Ok(c) if c.status.success() => {}
                        Ok(c) => out.push(finding("error", &place, String::from_utf8_lossy(&c.stderr).trim().to_owned(), format!("make build KRAKEND={k}, then replace {f}"))),
                        Err(e) => out.push(finding("warning", &place, format!("cannot run plugin-check: {e}"), "build it with `make build`")),
                    }
                }
            }
            Ok(_) => out.push(finding("error", &place, format!("{f} matches the pattern {pattern:?} but is not a Go plugin: KrakenD opens it as one and can abort at start-up"), "move it out of the plugin folder")),
            Err(e) => out.push(finding("warning", &place, format!("cannot run plugin-check: {e}"), "build it with `make build`")),
        }
    }
    if plugins == 0 {
        out.push(finding("error", &place, format!("no Go plugin matching {pattern:?} in the folder: the jwk-aggregator blocks do nothing"), "copy jwk-aggregator.so there (make install KRAKEND=... PLUGIN_DIR=...)"));
    }
}

/// A token's parts, decoded without any check, the signature left out.
fn decode_part(part: &str) -> Option<Value> {
    let bytes = BASE64URL.decode(part).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    pub origin: String,
    pub used: bool,
    pub why: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    pub header: Value,
    pub claims: Value,
    pub times: Vec<String>,
    pub path: Option<String>,
    pub handler: Option<Verdict>,
    pub validator: Option<Verdict>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// What decides: "jwk-aggregator-auth rules[0]" or "auth/validator of endpoints[1] \"/x\"".
    pub by: String,
    pub candidates: Vec<Candidate>,
    pub status: u16,
    pub verdict: String,
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// How the token is presented: the method, and for DPoP the proof and the URL the client addressed.
pub struct Presented {
    pub method: String,
    pub dpop: Option<String>,
    pub url: Option<String>,
}

/// Explains what the plugin (and KrakenD's validator, for endpoints it protects) does with a token
/// on `path`.
pub fn explain(cfg: &GatewayConfig, path: Option<&str>, token: &str, how: &Presented) -> Result<Explanation, String> {
    let token = token.trim();
    // A token that does not decode is still explained: the verdict says what the handler says.
    let parts: Vec<&str> = token.split('.').collect();
    let header = parts.first().and_then(|p| decode_part(p)).unwrap_or(Value::Null);
    let claims = parts.get(1).and_then(|p| decode_part(p)).unwrap_or(Value::Null);
    let t = now();
    let mut times = Vec::new();
    for c in ["exp", "nbf", "iat"] {
        if let Some(v) = claims.get(c).and_then(Value::as_f64) {
            let d = v - t;
            times.push(format!("{c}: {} ({})", v as i64, if d >= 0.0 { format!("in {}s", d as i64) } else { format!("{}s ago", (-d) as i64) }));
        }
    }
    let agg_block = cfg.block(AGG).ok_or("the configuration has no \"jwk-aggregator\" block")?;
    let settings = Settings::from_json(agg_block.to_string().as_bytes()).map_err(|e| format!("{SERVER}.\"{AGG}\": {e}"))?;
    let report = keys(&settings)?;
    let iss = claims.get("iss").and_then(Value::as_str);
    let kid_owned = header.get("kid").and_then(Value::as_str).map(str::to_owned);
    let kid = kid_owned.as_deref();
    let candidates: Vec<Candidate> = report
        .origins
        .iter()
        .map(|o| {
            let bound = o.issuers.is_empty() || iss.is_some_and(|i| o.issuers.iter().any(|b| b == i));
            let has_kid = o.keys.iter().any(|k| k.get("kid").and_then(Value::as_str) == kid);
            let why = match (&o.error, bound, has_kid) {
                (Some(e), _, _) => format!("cannot be fetched: {e}"),
                (None, false, _) => format!("bound to {:?}, not to the token's issuer {:?}", o.issuers, iss.unwrap_or("")),
                (None, true, false) => format!("has no key with kid {:?}", kid.unwrap_or("(none)")),
                (None, true, true) => format!("has the kid{}", if o.issuers.is_empty() { " (unbound origin)" } else { " and is bound to the issuer" }),
            };
            Candidate { origin: o.origin.clone(), used: o.error.is_none() && bound && has_kid, why }
        })
        .collect();
    let mut ex = Explanation { header, claims: claims.clone(), times, path: path.map(str::to_owned), handler: None, validator: None };
    let Some(path) = path else { return Ok(ex) };

    if let Some(b) = cfg.block(AUTH) {
        let mut auth_settings = AuthSettings::from_value(b).map_err(|e| format!("{SERVER}.\"{AUTH}\": {e}"))?;
        // Explaining a DPoP proof must not spend it in the fleet's replay store.
        auth_settings.dpop_replay.redis = None;
        let rule = auth_settings.rules.iter().position(|r| r.paths.iter().any(|p| policy::path_matches(p, path)));
        let agg = Aggregator::new(settings.clone())?;
        let _ = agg.jwks(); // the first fetch, as at start-up
        let auth = Auth::new(auth_settings, agg.core());
        let url = match &how.url {
            Some(u) => Some(url::Url::parse(u).map_err(|e| format!("--url {u:?}: {e}"))?),
            None => None,
        };
        let host = url.as_ref().map(|u| u[url::Position::BeforeHost..url::Position::AfterPort].to_string()).unwrap_or_default();
        let target = url.as_ref().map_or(path.to_string(), |u| u[url::Position::BeforePath..].to_string());
        let authorization = match &how.dpop {
            Some(_) => format!("DPoP {token}"),
            None => format!("Bearer {token}"),
        };
        let evidence = Evidence {
            method: &how.method,
            dpop: how.dpop.as_deref().unwrap_or(""),
            scheme: url.as_ref().map_or("http", |u| u.scheme()),
            host: &host,
            target: &target,
            ..Evidence::default()
        };
        let d = auth.decide(&Request { path, authorization: &authorization, cookies: "", evidence }, false, Wait::Block);
        let challenge = if d.challenge.is_empty() { String::new() } else { format!("; WWW-Authenticate: {}", d.challenge) };
        let (status, verdict) = match d.outcome {
            Outcome::Unprotected => (0, format!("not protected by jwk-aggregator-auth: no rule covers {path}")),
            Outcome::Allow(_) => (200, "accepted".into()),
            Outcome::Missing => (401, format!("refused (401): no token{challenge}")),
            Outcome::Invalid(why) => (401, format!("refused (401): {why}{challenge}")),
            Outcome::Forbidden(why) => (403, format!("forbidden (403): {why}{challenge}")),
            Outcome::BadProof(why) => (401, format!("refused (401), DPoP proof: {why}{challenge}")),
            Outcome::Unavailable(why) => (503, format!("refused (503): {why}")),
            // Wait::Block waits in the call: it never answers Pending.
            Outcome::Pending(_) => (503, "keys still being fetched".into()),
        };
        if let Some(i) = rule {
            // A token of an issuer trusted by pattern is verified with that issuer's own keys only:
            // show that path instead of the origins.
            let candidates = match dynamic_path(&settings, &agg, iss, kid) {
                Some(c) => vec![c],
                None => candidates.clone(),
            };
            ex.handler = Some(Verdict { by: format!("jwk-aggregator-auth rules[{i}]"), candidates, status, verdict });
        }
    }
    let endpoint = cfg.endpoints().into_iter().find(|e| e.validator.is_some() && policy::parse_path(&e.path).is_some_and(|p| policy::path_matches(&p, path)));
    if let Some(e) = endpoint {
        ex.validator = Some(explain_validator(&e, &report, &ex.header, &claims, token));
    }
    Ok(ex)
}

/// The path a token of an issuer trusted by `issuer_patterns` took: the pattern it matched, the
/// `jwks_uri` its discovery found, and whether its keys hold the token's kid. `None` when no
/// pattern covers the token's issuer.
fn dynamic_path(settings: &Settings, agg: &Aggregator, iss: Option<&str>, kid: Option<&str>) -> Option<Candidate> {
    let patterns = &settings.tenants.patterns;
    let (pattern, issuer) = jwk_aggregator::issuer::match_issuer(patterns, iss?).ok()?;
    let i = patterns.iter().position(|p| std::ptr::eq(p, pattern)).unwrap_or(0);
    let matched = format!("issuer_patterns[{i}] {:?} matched {issuer:?}", pattern.as_str());
    let Some(source) = agg.core().tenants().source(&issuer) else {
        return Some(Candidate { origin: issuer, used: false, why: format!("{matched}; not discovered (see the verdict)") });
    };
    let st = source.state.lock();
    let jwks_uri = st.jwks_uri.as_ref().map_or("(unknown)", |(u, _)| u.as_str()).to_owned();
    let store = st.set.as_ref().and_then(|s| s.store.clone());
    let n = store.as_ref().map_or(0, |s| s.len());
    let has = kid.is_some_and(|k| store.as_ref().is_some_and(|s| s.has_kid(k)));
    let why = format!(
        "{matched}; discovered jwks_uri {jwks_uri}: {n} key(s), {}",
        match kid {
            Some(k) if has => format!("the key with kid {k:?} is used (this issuer's keys only)"),
            Some(k) => format!("no key with kid {k:?}"),
            None => "the token has no kid".into(),
        }
    );
    Some(Candidate { origin: jwks_uri, used: has, why })
}

/// What KrakenD's auth/validator does with the merged set: the last key with the token's kid,
/// the endpoint's one alg, then issuer, audience and expiry.
fn explain_validator(e: &Endpoint, report: &KeysReport, header: &Value, claims: &Value, token: &str) -> Verdict {
    let v = e.validator.as_ref().expect("an endpoint with a validator");
    let by = format!("auth/validator of {}", e.place());
    let kid = header.get("kid").and_then(Value::as_str);
    // KrakenD keeps the last key of the merged set with a given kid, whatever its origin or issuer.
    let last = report.origins.iter().rposition(|o| o.keys.iter().any(|k| k.get("kid").and_then(Value::as_str) == kid));
    let candidates: Vec<Candidate> = report
        .origins
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let has = o.keys.iter().any(|k| k.get("kid").and_then(Value::as_str) == kid);
            let why = match (&o.error, has) {
                (Some(e), _) => format!("cannot be fetched: {e}"),
                (None, false) => format!("has no key with kid {:?}", kid.unwrap_or("(none)")),
                (None, true) if Some(i) == last => "has the kid: KrakenD uses this key (the last with that kid in the merged set)".into(),
                (None, true) => "has the kid, but a later origin's key with the same kid wins".into(),
            };
            Candidate { origin: o.origin.clone(), used: Some(i) == last, why }
        })
        .collect();
    let refuse = |why: String| Verdict { by: by.clone(), candidates: candidates.clone(), status: 401, verdict: format!("refused (401): {why}") };
    let want_alg = v.get("alg").and_then(Value::as_str).unwrap_or("RS256");
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
    if alg != want_alg {
        return refuse(format!("the token's alg {alg:?} is not the endpoint's {want_alg:?} (one alg per endpoint)"));
    }
    let chosen = report.origins.iter().flat_map(|o| o.keys.iter().map(move |k| (o, k))).filter(|(_, k)| k.get("kid").and_then(Value::as_str) == kid).last();
    let Some((origin, key)) = chosen else {
        return refuse(format!("no key with kid {:?} in the merged set", kid.unwrap_or("(none)")));
    };
    let Some(a) = Alg::parse(alg) else { return refuse(format!("alg {alg:?} is not supported")) };
    let (store, _) = KeyStore::build([(0, std::slice::from_ref(key))], true);
    let verified = verify::parse(token.as_bytes(), usize::MAX, &[a]).and_then(|p| store.verify(&p, &|_| true));
    if let Err(why) = verified {
        return refuse(format!("the key KrakenD picks for kid {:?} (from {}) does not verify it: {why}", kid.unwrap_or(""), origin.origin));
    }
    if let Some(want) = v.get("issuer").and_then(Value::as_str) {
        if claims.get("iss").and_then(Value::as_str) != Some(want) {
            return refuse(format!("iss {:?} is not the endpoint's issuer {want:?}", claims.get("iss").and_then(Value::as_str).unwrap_or("")));
        }
    }
    if let Some(Value::Array(want)) = v.get("audience") {
        let aud: Vec<&str> = match claims.get("aud") {
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        if let Some(missing) = want.iter().filter_map(Value::as_str).find(|w| !aud.contains(w)) {
            return refuse(format!("audience {missing:?} is required and missing (auth/validator needs every listed audience)"));
        }
    }
    let leeway = 1.0;
    if let Some(exp) = claims.get("exp").and_then(Value::as_f64) {
        if exp + leeway < now() {
            return refuse(format!("expired {}s ago", (now() - exp) as i64));
        }
    }
    Verdict { by, candidates, status: 200, verdict: format!("accepted, with the key of kid {:?} from {}", kid.unwrap_or(""), origin.origin) }
}
