//! A real HTTP/1.1 server on loopback that plays an identity provider's JWKS endpoint, with
//! switchable misbehaviour. Each test gets its own port.
#![allow(dead_code)]

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
