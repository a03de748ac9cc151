//! jwk-aggregator: merges the JWK Sets of many identity providers into one set that KrakenD's
//! JWT validator can read, verifies tokens for the `jwk-aggregator-auth` handler, and exposes both
//! through a C API for the Go plugin shim.
//!
//! Modules, each using only those listed before it (tests/layers.rs holds the code to it):
//! - `read`: reading rules shared by both settings blocks; `metrics` (Prometheus lines); `wake` (the socket the shim's poller
//!   watches); `log`; `issuer` (issuer patterns and
//!   URL rules); `settings`: the `jwk-aggregator` block;
//! - `verify` (keys and signatures), `keyset` (sanitizing and merging JWK Sets), `fetch` (HTTP);
//! - `source`: one key source and one fetch of it; `refresh`: the engine that keeps every source
//!   fresh; `tenants`: the dynamic issuers, as sources;
//! - `aggregator`: the origins, the merged set, health and metrics;
//! - `keys`: the key directory, where a token's keys come from, by its issuer;
//! - `policy`: the `jwk-aggregator-auth` block and its rules; `auth`: one request's decision;
//! - `ffi`: the C API.

pub mod read;
pub mod metrics;
pub mod wake;
pub mod log;
pub mod issuer;
pub mod settings;
pub mod verify;
pub mod keyset;
pub mod fetch;
pub mod source;
pub mod refresh;
pub mod tenants;
pub mod aggregator;
pub mod keys;
pub mod policy;
pub mod auth;
pub mod ffi;
