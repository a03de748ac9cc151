//! The operator's command: the plugin's own code answering "is this configuration right", "what
//! does every origin publish", and "why is this token refused", before anything reaches production.
//! Exit codes: 0 nothing found, 1 findings (or a refused token), 2 usage errors.

mod diagnose;
mod gateway_config;

use clap::{Parser, Subcommand};
use diagnose::{CheckOptions, Verdict};
use jwk_aggregator::settings::Settings;
use gateway_config::GatewayConfig;
use std::io::Read;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "jwk-aggregator", version, about = "Check a KrakenD configuration that uses jwk-aggregator, see every origin's keys, and learn why a token is refused")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate the jwk-aggregator blocks with the plugin's own code and check how the rest of
    /// the configuration fits them (validators, rules, forwarded headers, the plugin folder).
    Check {
        /// KrakenD configuration file (JSON; TOML by its .toml extension).
        config: String,
        /// The KrakenD binary that will run it: the plugins in its folder are compared with it.
        #[arg(long)]
        krakend: Option<String>,
        /// Do not fetch the origins (skips the alg, dropped-key and kid-collision checks).
        #[arg(long)]
        offline: bool,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Fetch every origin now, with the plugin's rules, and show each key kept or dropped (and
    /// why), the issuer bindings, kid collisions and the merged set.
    Keys {
        config: String,
        #[arg(long)]
        json: bool,
    },
    /// Decode a token (never its signature), and show which rule applies, which origins and keys
    /// were candidates, and the verdict with the reason the handler logs. The token is read from
    /// the argument or, with "-" or none, from standard input; it is sent nowhere.
    Explain {
        config: String,
        /// The request path, as KrakenD receives it (for example /orders/42).
        #[arg(long)]
        path: Option<String>,
        token: Option<String>,
        /// The request's method (a DPoP proof's htm).
        #[arg(long, default_value = "GET")]
        method: String,
        /// A DPoP proof: the token is then sent as `Authorization: DPoP <token>` with this proof.
        #[arg(long)]
        dpop: Option<String>,
        /// The URL the client addressed (a DPoP proof's htu), for example
        /// https://api.example.com/orders/42; its scheme and host are what the gateway sees.
        #[arg(long)]
        url: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

fn load(path: &str) -> Result<GatewayConfig, ExitCode> {
    GatewayConfig::load(path).map_err(|e| {
        eprintln!("jwk-aggregator: {e}");
        ExitCode::from(2)
    })
}

fn print_json(v: &impl serde::Serialize) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) | Err(code) => code,
    }
}

fn run(cli: Cli) -> Result<ExitCode, ExitCode> {
    match cli.command {
        Command::Check { config, krakend, offline, json } => {
            let cfg = load(&config)?;
            // plugin-check is built beside this command (build/), or found on PATH.
            let beside = std::env::current_exe().ok().and_then(|p| p.parent().map(|d| d.join("plugin-check"))).filter(|p| p.exists());
            let plugin_check = beside.or_else(|| Some("plugin-check".into()).filter(|_| which("plugin-check")));
            let findings = diagnose::check(&cfg, &CheckOptions { fetch: !offline, krakend, plugin_check });
            if json {
                print_json(&serde_json::json!({"config": config, "findings": findings}));
            } else if findings.is_empty() {
                println!("{config}: no findings");
            } else {
                println!("{config}: {} finding(s)\n", findings.len());
                for f in &findings {
                    println!("{:<7}  {}\n         {}\n         fix: {}\n", f.severity.to_uppercase(), f.place, f.problem, f.fix);
                }
            }
            Ok(ExitCode::from(u8::from(!findings.is_empty())))
        }
        Command::Keys { config, json } => {
            let cfg = load(&config)?;
            let Some(block) = cfg.block("jwk-aggregator") else {
                eprintln!("jwk-aggregator: {config} has no \"jwk-aggregator\" block");
                return Err(ExitCode::from(2));
            };
            let settings = Settings::from_json(block.to_string().as_bytes()).map_err(|e| {
                eprintln!("jwk-aggregator: {e}");
                ExitCode::from(1)
            })?;
            let report = diagnose::keys(&settings).map_err(|e| {
                eprintln!("jwk-aggregator: {e}");
                ExitCode::from(1)
            })?;
            // A key that is not a signing key (every Keycloak realm publishes one) is no problem.
            let problems = report.origins.iter().any(|o| o.error.is_some() || o.dropped.iter().any(|d| d.fault)) || !report.collisions.is_empty();
            if json {
                print_json(&report);
            } else {
                for o in &report.origins {
                    let bound = if o.issuers.is_empty() { "unbound (any issuer not bound elsewhere)".to_owned() } else { o.issuers.join(", ") };
                    println!("origin {}\n  issuers: {bound}", o.origin);
                    if let Some(u) = &o.jwks_uri {
                        println!("  jwks_uri (discovered): {u}");
                    }
                    if let Some(e) = &o.error {
                        println!("  ERROR: {e}");
                    }
                    for k in &o.kept {
                        println!("  kept     kid={:<24} {}", k.kid.as_deref().unwrap_or("(none)"), k.key);
                    }
                    for d in &o.dropped {
                        let what = if d.fault { "DROPPED " } else { "skipped " };
                        println!("  {what} kid={:<24} {}: {}", d.kid.as_deref().unwrap_or("(none)"), d.reason, d.detail);
                    }
                    println!();
                }
                for c in &report.collisions {
                    println!("kid collision: {} published by {} and {} (KrakenD's validator uses the later)", c["kid"], c["first"], c["second"]);
                }
                println!("merged set: {} key(s)", report.merged_keys);
            }
            Ok(ExitCode::from(u8::from(problems)))
        }
        Command::Explain { config, path, token, method, dpop, url, json } => {
            let cfg = load(&config)?;
            let token = match token.as_deref() {
                Some(t) if t != "-" => t.to_owned(),
                _ => {
                    let mut s = String::new();
                    std::io::stdin().read_to_string(&mut s).map_err(|_| ExitCode::from(2))?;
                    s
                }
            };
            let request = diagnose::Presented { method, dpop, url };
            let ex = diagnose::explain(&cfg, path.as_deref(), &token, &request).map_err(|e| {
                eprintln!("jwk-aggregator: {e}");
                ExitCode::from(2)
            })?;
            let refused = [&ex.handler, &ex.validator].into_iter().flatten().any(|v| v.status != 200 && v.status != 0);
            if json {
                print_json(&ex);
            } else {
                println!("header: {}", ex.header);
                println!("claims: {}", ex.claims);
                for t in &ex.times {
                    println!("  {t}");
                }
                println!("signature: (not shown)");
                let show = |v: &Verdict| {
                    println!("\n{}:", v.by);
                    for c in &v.candidates {
                        println!("  {} {}: {}", if c.used { "+" } else { "-" }, c.origin, c.why);
                    }
                    println!("  verdict: {}", v.verdict);
                };
                match (&ex.handler, &ex.validator, &ex.path) {
                    (None, None, None) => println!("\nno --path: give the request path to see what the gateway decides"),
                    (None, None, Some(p)) => println!("\nnothing in the configuration protects {p}"),
                    _ => {}
                }
                ex.handler.iter().for_each(show);
                ex.validator.iter().for_each(show);
            }
            Ok(ExitCode::from(u8::from(refused)))
        }
    }
}

fn which(name: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
}
