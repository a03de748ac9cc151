//! Memory a token can make the gateway hold. Alone in its test binary, so that no other test's
//! allocations blur the figure.

mod common;

use common::{Key, Origin, Reply};
use jwk_aggregator::aggregator::Aggregator;
use jwk_aggregator::auth::{Auth, Outcome};
use jwk_aggregator::policy::AuthSettings;
use jwk_aggregator::settings::Settings;
use serde_json::json;
use std::time::{SystemTime, UNIX_EPOCH};

fn resident_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: usize = status.lines().find_map(|l| l.strip_prefix("VmRSS:")).unwrap().trim().trim_end_matches(" kB").trim().parse().unwrap();
    kb * 1024
}

// The worst shape for the verified-token cache: a validly signed token just under
// max_token_bytes whose payload is one long array (each element a JSON value of its own once
// parsed), each sent once. At the default settings the cache holds 32 MiB at most.
#[test]
fn tokens_of_long_arrays_stay_within_the_cache_memory_bound() {
    let key = Key::ed("k");
    let origin = Origin::start(Reply::json(json!({"keys": [key.jwk()]}).to_string()));
    let settings = json!({"port": 9876, "origins": [origin.url]});
    let agg = Aggregator::new(Settings::from_json(settings.to_string().as_bytes()).unwrap()).unwrap();
    let auth = Auth::new(AuthSettings::from_value(&json!({"rules": [{"paths": ["/p"]}]})).unwrap(), agg.core());
    let exp = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + 600;
    let token = |i: usize| key.sign(json!({"exp": exp, "n": i, "x": vec![0; 5700]}));
    assert!(token(0).len() > 15_000 && token(0).len() < 16_384, "{}", token(0).len());
    assert!(matches!(auth.check("/p", &format!("Bearer {}", token(0)), ""), Outcome::Allow(_)));
    let before = resident_bytes();
    for i in 1..3000 {
        assert!(matches!(auth.check("/p", &format!("Bearer {}", token(i)), ""), Outcome::Allow(_)));
    }
    let grown = resident_bytes().saturating_sub(before);
    let (counted, entries) = auth.cache_usage();
    println!("3,000 tokens of 15.7 KB: resident memory +{} MB; the cache counts {} MB in {entries} entries", grown >> 20, counted >> 20);
    assert!(counted <= 32 << 20, "the cache counts {counted} bytes, past its 32 MiB bound");
    assert!(grown < 96 << 20, "3,000 tokens grew resident memory by {} MB (bound: 32 MiB of cache)", grown >> 20);
}
