//! jwk-aggregator: merges the JWK Sets of many identity providers into one set that KrakenD's
//! JWT validator can read, and exposes it through a C API for the Go plugin shim.

pub mod aggregator;
pub mod config;
pub mod fetch;
pub mod issuer;
pub mod tenants;
pub mod ffi;
pub mod keyset;
pub mod log;
pub mod verify;
pub mod auth;
pub mod policy;
