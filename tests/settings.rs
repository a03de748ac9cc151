//! The settings tables of the manual (docs/settings.md, docs/auth-handler.md) against the parsers: every documented setting exists, no
//! setting is undocumented, and a documented default is the default the code applies.

use jwk_aggregator::settings::Settings;
use jwk_aggregator::policy::AuthSettings;
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// One documented row: the setting names of its first cell and the default of each.
struct Row {
    name: String,
    default: Default,
}

enum Default {
    Required,
    /// A value in backticks: `false`, `5s`, `1048576`, `access_token`.
    Literal(Value),
    /// Words: "none", "any", "all asymmetric: ...".
    Prose(String),
}

/// The rows of the first table of the manual page `doc` after the line that starts with `marker`.
fn table(doc: &str, marker: &str) -> Vec<Row> {
    let page = std::fs::read_to_string(format!("{}/docs/{doc}", env!("CARGO_MANIFEST_DIR"))).expect(doc);
    let after = &page[page.find(marker).unwrap_or_else(|| panic!("docs/{doc} has no {marker:?}"))..];
    let header: Vec<&str> = after.lines().find(|l| l.starts_with('|')).unwrap().split('|').map(str::trim).collect();
    let default_col = header.iter().position(|c| *c == "default").expect("a default column");
    let mut rows = Vec::new();
    for line in after.lines().skip_while(|l| !l.starts_with('|')).take_while(|l| l.starts_with('|')).skip(2) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let names: Vec<&str> = cells[1].split(", ").map(|n| n.trim_matches('`')).collect();
        // "`roles_key`, `roles`, `roles_matcher` | `roles`, none, `any`": one default per name.
        let defaults: Vec<&str> = if names.len() > 1 { cells[default_col].split(", ").collect() } else { vec![cells[default_col]] };
        assert_eq!(names.len(), defaults.len(), "{line}");
        for (name, default) in names.into_iter().zip(defaults) {
            let default = match default.strip_prefix('`').and_then(|d| d.strip_suffix('`')) {
                _ if default == "required" => Default::Required,
                Some(lit) => Default::Literal(match lit {
                    "true" => json!(true),
                    "false" => json!(false),
                    n if n.bytes().all(|b| b.is_ascii_digit()) => json!(n.parse::<u64>().unwrap()),
                    s => json!(s),
                }),
                None => Default::Prose(default.to_owned()),
            };
            rows.push(Row { name: name.to_owned(), default });
        }
    }
    assert!(!rows.is_empty(), "no rows after {marker:?}");
    rows
}

/// The setting names an unknown-key error lists after `intro`.
fn known(error: String, intro: &str) -> BTreeSet<String> {
    let list = &error[error.find(intro).unwrap_or_else(|| panic!("{error}")) + intro.len()..];
    list[..list.find(')').unwrap()].split(", ").map(str::to_owned).collect()
}

fn with(base: &Value, name: &str, value: Value) -> Value {
    let mut v = base.clone();
    v[name] = value;
    v
}

#[test]
fn every_documented_aggregator_setting_is_accepted_with_its_documented_default() {
    let base = json!({"port": 9876, "origins": ["https://idp-a.example/jwks.json"]});
    let parse = |v: &Value| Settings::from_json(v.to_string().as_bytes());
    let defaults = parse(&base).unwrap();
    let rows = table("settings.md", "# Settings of the");
    let documented: BTreeSet<String> = rows.iter().map(|r| r.name.clone()).collect();
    let unknown = parse(&with(&base, "no_such_setting", json!(1))).unwrap_err().0;
    assert_eq!(documented, known(unknown, "(known settings: "));
    for row in rows {
        let name = row.name.as_str();
        match row.default {
            Default::Required => {
                let mut without = base.clone();
                without.as_object_mut().unwrap().remove(name);
                let e = parse(&without).unwrap_err().0;
                assert!(e.starts_with(&format!("missing \"{name}\"")), "{name}: {e}");
            }
            Default::Literal(v) => assert_eq!(parse(&with(&base, name, v.clone())), Ok(defaults.clone()), "{name}: {v}"),
            Default::Prose(words) => {
                let (sample, is_default) = match name {
                    "ca_file" => (json!("/etc/ssl/extra-ca.pem"), false),
                    "issuers" => (json!({}), true),
                    "discover" => (json!(["https://accounts.example/"]), false),
                    "issuer_patterns" => (json!(["https://sso.example.com/realms/*"]), false),
                    "jwks_uri_hosts" => (json!(["keys.example.com"]), false),
                    _ => panic!("{name}: no sample value for the default {words:?}"),
                };
                let s = parse(&with(&base, name, sample)).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(s == defaults, is_default, "{name}");
            }
        }
    }
}

#[test]
fn every_documented_auth_setting_is_accepted_with_its_documented_default() {
    let base = json!({"rules": [{"paths": ["/x"]}]});
    let defaults = AuthSettings::from_value(&base).unwrap();
    let rows = table("auth-handler.md", "Handler settings");
    let documented: BTreeSet<String> = rows.iter().map(|r| r.name.clone()).collect();
    let unknown = AuthSettings::from_value(&with(&base, "no_such_setting", json!(1))).unwrap_err().0;
    assert_eq!(documented, known(unknown, "(known: "));
    for row in rows {
        let name = row.name.as_str();
        match row.default {
            Default::Required => {
                let e = AuthSettings::from_value(&json!({})).unwrap_err().0;
                assert!(e.contains(&format!("missing \"{name}\"")), "{name}: {e}");
            }
            Default::Literal(v) => {
                assert_eq!(AuthSettings::from_value(&with(&base, name, v.clone())), Ok(defaults.clone()), "{name}: {v}")
            }
            Default::Prose(words) => {
                let (sample, is_default) = match (name, words.as_str()) {
                    ("dpop_replay", "in memory") => (json!({}), true),
                    ("public_origin", "none") => (json!("https://api.example.com"), false),
                    _ => panic!("{name}: no sample value for the default {words:?}"),
                };
                let s = AuthSettings::from_value(&with(&base, name, sample)).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(s == defaults, is_default, "{name}");
            }
        }
    }
}

#[test]
fn every_documented_rule_setting_is_accepted_with_its_documented_default() {
    let rule = json!({"paths": ["/x"]});
    let parse = |rule: Value| AuthSettings::from_value(&json!({ "rules": [rule] }));
    let defaults = parse(rule.clone()).unwrap();
    let rows = table("auth-handler.md", "Rule settings");
    let documented: BTreeSet<String> = rows.iter().map(|r| r.name.clone()).collect();
    let unknown = parse(with(&rule, "no_such_setting", json!(1))).unwrap_err().0;
    assert_eq!(documented, known(unknown, "(known: "));
    for row in rows {
        let name = row.name.as_str();
        match row.default {
            Default::Required => {
                let e = parse(json!({})).unwrap_err().0;
                assert!(e.contains(&format!("missing \"rules[0].{name}\"")), "{name}: {e}");
            }
            Default::Literal(v) => assert_eq!(parse(with(&rule, name, v.clone())), Ok(defaults.clone()), "{name}: {v}"),
            Default::Prose(words) => {
                // The documented default, written out: "none" and "any" are an empty list.
                let sample = match (name, words.as_str()) {
                    ("alg", "all asymmetric: RS/PS 256/384/512, ES256/384/512, EdDSA") => {
                        json!(["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"])
                    }
                    (_, "none" | "any") => json!([]),
                    ("dpop", "off") => json!({"mode": "off"}),
                    _ => panic!("{name}: no sample value for the default {words:?}"),
                };
                assert_eq!(parse(with(&rule, name, sample.clone())), Ok(defaults.clone()), "{name}: {sample}");
            }
        }
    }
}
