//! A real HTTP/1.1 server on loopback that plays an identity provider's JWKS endpoint, with
//! switchable misbehaviour. Each test gets its own port.
#![allow(dead_code)]

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use base64::Engine;
use jwk_aggregator::verify::BASE64URL;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
    pub headers: Vec<(String, String)>,
    pub delay: Duration,
    /// Answer 304 when the request carries this If-None-Match value.
    pub etag_304: Option<String>,
}

impl Reply {
    pub fn json(body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status: 200,
            content_type: "application/json".into(),
            body: body.into(),
            headers: vec![],
            delay: Duration::ZERO,
            etag_304: None,
        }
    }
}

pub struct Origin {
    pub url: String,
    pub reply: Arc<Mutex<Reply>>,
    pub hits: Arc<AtomicUsize>,
    pub in_flight: Arc<AtomicUsize>,
    pub max_in_flight: Arc<AtomicUsize>,
    pub last_if_none_match: Arc<Mutex<Option<String>>>,
}

impl Origin {
    pub fn start(reply: Reply) -> Origin {
        Origin::start_sharing(reply, Arc::default(), Arc::default())
    }

    /// Like `start`, with in-flight counters shared by several origins, to observe overlap.
    pub fn start_sharing(reply: Reply, in_flight: Arc<AtomicUsize>, max_in_flight: Arc<AtomicUsize>) -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        let o = Origin {
            url,
            reply: Arc::new(Mutex::new(reply)),
            hits: Arc::default(),
            in_flight,
            max_in_flight,
            last_if_none_match: Arc::default(),
        };
        let (reply, hits, inf, max, inm) =
            (o.reply.clone(), o.hits.clone(), o.in_flight.clone(), o.max_in_flight.clone(), o.last_if_none_match.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (reply, hits, inf, max, inm) = (reply.clone(), hits.clone(), inf.clone(), max.clone(), inm.clone());
                std::thread::spawn(move || {
                    let _ = serve(stream, &reply, &hits, &inf, &max, &inm);
                });
            }
        });
        o
    }

    pub fn set(&self, f: impl FnOnce(&mut Reply)) {
        f(&mut self.reply.lock().unwrap());
    }

    pub fn hits(&self) -> usize {
        self.hits.load(SeqCst)
    }
}

fn serve(
    stream: TcpStream,
    reply: &Mutex<Reply>,
    hits: &AtomicUsize,
    inf: &AtomicUsize,
    max: &AtomicUsize,
    inm: &Mutex<Option<String>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut if_none_match = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("if-none-match:") {
            if_none_match = Some(v.trim().to_string());
        }
    }
    hits.fetch_add(1, SeqCst);
    let now = inf.fetch_add(1, SeqCst) + 1;
    max.fetch_max(now, SeqCst);
    *inm.lock().unwrap() = if_none_match.clone();
    let r = reply.lock().unwrap().clone();
    std::thread::sleep(r.delay);
    inf.fetch_sub(1, SeqCst);
    let mut stream = stream;
    let (status, body) = match (&r.etag_304, &if_none_match) {
        (Some(e), Some(got)) if e.to_ascii_lowercase() == *got => (304, Vec::new()),
        _ => (r.status, r.body.clone()),
    };
    let mut head = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
    if !r.content_type.is_empty() {
        head.push_str(&format!("Content-Type: {}\r\n", r.content_type));
    }
    for (k, v) in &r.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(&body)?;
    let _ = reader.read(&mut [0u8; 1]);
    Ok(())
}

/// Real 2048-bit RSA public keys (n, e) from the fixture file.
pub fn real_rsa(i: usize) -> (String, String) {
    let keys: serde_json::Value = serde_json::from_str(include_str!("../fixtures/keys.json")).unwrap();
    let k = &keys["rsa"][i];
    (k["n"].as_str().unwrap().to_owned(), k["e"].as_str().unwrap().to_owned())
}

/// A real RSA public JWK under the given kid (the same key material for every kid).
pub fn rsa_jwk(kid: &str) -> serde_json::Value {
    let (n, e) = real_rsa(0);
    serde_json::json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": n, "e": e})
}

pub fn jwks(keys: &[serde_json::Value]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "keys": keys })).unwrap()
}

/// Signing keys made at test time, as providers hold them.
pub fn b64(data: &[u8]) -> String {
    BASE64URL.encode(data)
}

pub enum Signer {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

pub struct Key {
    pub kid: String,
    pub alg: &'static str,
    signer: Signer,
}

impl Key {
    pub fn rsa(kid: &str) -> Key {
        Key { kid: kid.into(), alg: "RS256", signer: Signer::Rsa(RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap()) }
    }
    pub fn ec(kid: &str) -> Key {
        Key { kid: kid.into(), alg: "ES256", signer: Signer::Ec(EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING).unwrap()) }
    }
    pub fn ed(kid: &str) -> Key {
        Key { kid: kid.into(), alg: "EdDSA", signer: Signer::Ed(Ed25519KeyPair::generate().unwrap()) }
    }

    pub fn jwk(&self) -> Value {
        match &self.signer {
            Signer::Rsa(k) => {
                let p = k.public_key();
                json!({"kty": "RSA", "kid": self.kid, "use": "sig",
                    "n": b64(p.modulus().big_endian_without_leading_zero()), "e": b64(p.exponent().big_endian_without_leading_zero())})
            }
            Signer::Ec(k) => {
                let pt = k.public_key().as_ref();
                json!({"kty": "EC", "kid": self.kid, "crv": "P-256", "x": b64(&pt[1..33]), "y": b64(&pt[33..65])})
            }
            Signer::Ed(k) => json!({"kty": "OKP", "kid": self.kid, "crv": "Ed25519", "x": b64(k.public_key().as_ref())}),
        }
    }

    pub fn sign_raw(&self, header: &Value, claims: &Value) -> String {
        let input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
        let rng = SystemRandom::new();
        let sig = match &self.signer {
            Signer::Rsa(k) => {
                let mut sig = vec![0; k.public_modulus_len()];
                k.sign(&signature::RSA_PKCS1_SHA256, &rng, input.as_bytes(), &mut sig).unwrap();
                sig
            }
            Signer::Ec(k) => k.sign(&rng, input.as_bytes()).unwrap().as_ref().to_vec(),
            Signer::Ed(k) => k.sign(input.as_bytes()).as_ref().to_vec(),
        };
        format!("{input}.{}", b64(&sig))
    }

    pub fn sign(&self, claims: Value) -> String {
        self.sign_raw(&json!({"alg": self.alg, "kid": self.kid, "typ": "JWT"}), &claims)
    }
}


/// A multi-tenant provider that behaves like Keycloak: realms under `<base>/realms/<name>`, each
/// with its discovery document and JWK Set; unknown or deleted realms answer 404.
pub struct Realms {
    pub base: String,
    keys: Arc<Mutex<std::collections::HashMap<String, Value>>>,
    doc_issuer: Arc<Mutex<std::collections::HashMap<String, String>>>,
    redirects: Arc<Mutex<std::collections::HashMap<String, String>>>,
    pub hits: Arc<AtomicUsize>,
}

impl Realms {
    pub fn start() -> Realms {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let r = Realms {
            base: format!("http://{}", listener.local_addr().unwrap()),
            keys: Arc::default(),
            doc_issuer: Arc::default(),
            redirects: Arc::default(),
            hits: Arc::default(),
        };
        let (base, keys, lie, redirects, hits) = (r.base.clone(), r.keys.clone(), r.doc_issuer.clone(), r.redirects.clone(), r.hits.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (base, keys, lie, redirects, hits) = (base.clone(), keys.clone(), lie.clone(), redirects.clone(), hits.clone());
                std::thread::spawn(move || {
                    let _ = serve_realm(stream, &base, &keys, &lie, &redirects, &hits);
                });
            }
        });
        r
    }

    pub fn issuer(&self, realm: &str) -> String {
        format!("{}/realms/{realm}", self.base)
    }

    pub fn pattern(&self) -> String {
        format!("{}/realms/*", self.base)
    }

    pub fn create(&self, realm: &str, jwk: Value) {
        self.keys.lock().unwrap().insert(realm.into(), jwk);
    }

    pub fn delete(&self, realm: &str) {
        self.keys.lock().unwrap().remove(realm);
    }

    /// Makes a realm's discovery document name another issuer.
    pub fn lie(&self, realm: &str, issuer: &str) {
        self.doc_issuer.lock().unwrap().insert(realm.into(), issuer.into());
    }

    /// Makes a realm's JWK Set URL answer `302 Location: <location>` (a request carrying a query
    /// string is served as usual, so that a redirect to `<its own URL>?moved` works).
    pub fn redirect(&self, realm: &str, location: &str) {
        self.redirects.lock().unwrap().insert(realm.into(), location.into());
    }

    /// The realm's JWK Set URL.
    pub fn certs(&self, realm: &str) -> String {
        format!("{}/protocol/openid-connect/certs", self.issuer(realm))
    }

    pub fn hits(&self) -> usize {
        self.hits.load(SeqCst)
    }
}

fn serve_realm(
    stream: TcpStream,
    base: &str,
    keys: &Mutex<std::collections::HashMap<String, Value>>,
    lie: &Mutex<std::collections::HashMap<String, String>>,
    redirects: &Mutex<std::collections::HashMap<String, String>>,
    hits: &AtomicUsize,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
    }
    hits.fetch_add(1, SeqCst);
    let target = request.split_whitespace().nth(1).unwrap_or("");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let (realm, rest) = path.strip_prefix("/realms/").and_then(|p| p.split_once('/')).unwrap_or(("", ""));
    if rest == "protocol/openid-connect/certs" && query.is_empty() {
        if let Some(location) = redirects.lock().unwrap().get(realm) {
            let mut stream = stream;
            return write!(stream, "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    }
    let issuer = format!("{base}/realms/{realm}");
    let jwk = keys.lock().unwrap().get(realm).cloned();
    let (status, body) = match (jwk, rest) {
        (Some(_), ".well-known/openid-configuration") => {
            let named = lie.lock().unwrap().get(realm).cloned().unwrap_or(issuer.clone());
            (200, json!({"issuer": named, "jwks_uri": format!("{issuer}/protocol/openid-connect/certs")}))
        }
        (Some(jwk), "protocol/openid-connect/certs") => (200, json!({"keys": [jwk]})),
        _ => (404, json!({"error": "Realm does not exist"})),
    };
    let body = body.to_string();
    let mut stream = stream;
    write!(stream, "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())?;
    Ok(())
}
