//! The key directory: the one place that answers "which keys verify a token of this issuer?",
//! whatever holds them, and the one place that starts a refetch for an unknown kid. As Envoy's
//! jwt_authn finds a token's JWKS by its issuer (`JwksCache::findByIssuer`), a token's `iss`
//! decides, in this order:
//! 1. origins bound to that issuer (`issuers`, or a `discover` issuer): their keys only;
//! 2. an issuer trusted by pattern (`issuer_patterns`, `tenants.rs`): that issuer's own keys, found
//!    at first sight; another spelling of such an issuer (a near miss) is refused here;
//! 3. otherwise the origins bound to no issuer, which verify tokens of any issuer not bound
//!    elsewhere (none: refused).
//!
//! The keys come with a generation that changes whenever they do, so that a verification
//! remembered for them (the verified-token cache) is dropped the moment they change. Nothing here
//! waits for the network on a shared lock: a fetch runs on the refresh engine's workers, and the
//! caller either waits for it (bounded by `discovery_wait` or `unknown_kid_wait`) or is told to
//! come back (`Wait::Pending`).

use crate::aggregator::Core;
use crate::issuer::Refused;
use crate::source::{Later, Wait};
use crate::tenants::{InUse, Lookup};
use crate::verify::{Invalid, KeyStore, Parsed, Verified};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Whose keys these are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// Configured origins (indexes into `origins` then `discover`): only their keys count.
    Origins(Arc<[usize]>),
    /// An issuer trusted by pattern: its own key store, nothing else in it.
    Issuer(Arc<str>),
}

/// The keys a token of one issuer is verified with.
pub struct Keys {
    pub store: Arc<KeyStore>,
    pub generation: u64,
    pub holder: Holder,
    /// A dynamic issuer's, for `verified_with`.
    in_use: Option<InUse>,
}

impl Keys {
    pub fn verify(&self, token: &Parsed<'_>) -> Result<Verified, Invalid> {
        match &self.holder {
            Holder::Origins(allowed) => self.store.verify(token, &|o| allowed.contains(&o)),
            Holder::Issuer(_) => self.store.verify(token, &|_| true),
        }
    }
}

/// Why a token has no keys to be verified with yet: it is refused, or its keys are being fetched
/// (come back within the wait).
#[derive(Debug)]
pub enum Unavailable {
    Invalid(Invalid),
    Pending(Later),
}

impl From<Invalid> for Unavailable {
    fn from(e: Invalid) -> Unavailable {
        Unavailable::Invalid(e)
    }
}

/// The directory over one aggregator's sources, with the bounds of unknown-kid refetches.
pub struct Directory {
    core: Arc<Core>,
    /// Origins bound to each issuer by `issuers` or `discover` (fixed by the settings).
    bound: HashMap<String, Arc<[usize]>>,
    /// Origins bound to no issuer.
    unbound: Arc<[usize]>,
    unknown_kid_cooldown: Duration,
    unknown_kid_wait: Duration,
}

impl Directory {
    pub fn new(core: Arc<Core>, unknown_kid_cooldown: Duration, unknown_kid_wait: Duration) -> Directory {
        let bindings = &core.settings().issuers;
        let mut bound: HashMap<String, Vec<usize>> = HashMap::new();
        for (origin, issuers) in bindings.iter().enumerate() {
            for iss in issuers {
                bound.entry(iss.clone()).or_default().push(origin);
            }
        }
        let bound = bound.into_iter().map(|(iss, o)| (iss, o.into())).collect();
        let unbound = (0..bindings.len()).filter(|&i| bindings[i].is_empty()).collect();
        Directory { core, bound, unbound, unknown_kid_cooldown, unknown_kid_wait }
    }

    pub fn core(&self) -> &Arc<Core> {
        &self.core
    }

    /// The keys for tokens of `iss` (see the order above).
    pub fn for_issuer(&self, iss: Option<&str>, how: Wait) -> Result<Keys, Unavailable> {
        if let Some(bound) = iss.and_then(|iss| self.bound.get(iss)) {
            return Ok(self.origin_keys(bound.clone()));
        }
        if let Some(iss) = iss {
            match self.core.tenants().lookup(self.core.refresher(), iss, how) {
                Lookup::Keys(store, generation, in_use) => {
                    return Ok(Keys { store, generation, holder: Holder::Issuer(iss.into()), in_use: Some(in_use) })
                }
                Lookup::Refused(why) => return Err(Invalid::DynamicIssuer(why).into()),
                Lookup::Pending(later) => return Err(Unavailable::Pending(later)),
                Lookup::NotDynamic(Some(why @ Refused::NearMiss)) => {
                    let shown: String = iss.chars().take(128).collect();
                    return Err(Invalid::DynamicIssuer(format!("issuer {shown:?} {why}")).into());
                }
                Lookup::NotDynamic(_) => {}
            }
        }
        if self.unbound.is_empty() {
            return Err(Invalid::IssuerNotBound(iss.unwrap_or("").chars().take(128).collect()).into());
        }
        Ok(self.origin_keys(self.unbound.clone()))
    }

    /// A token named a kid its keys lack: maybe a key rotated in since the last fetch. Refetches
    /// the sources that could hold it (each at most once per `unknown_kid_cooldown`, dynamic
    /// issuers within one budget), waits for them at most `unknown_kid_wait`, and returns the keys
    /// afterwards; `Ok(None)` when nothing could be refetched or it ended without new keys.
    pub fn after_unknown_kid(&self, keys: &Keys, how: Wait) -> Result<Option<Keys>, Unavailable> {
        let (cooldown, wait) = (self.unknown_kid_cooldown, self.unknown_kid_wait);
        match &keys.holder {
            Holder::Origins(origins) => match self.core.refetch_unknown_kid(origins, cooldown, wait, how) {
                Ok(true) => Ok(Some(self.origin_keys(origins.clone()))),
                Ok(false) => Ok(None),
                Err(source) => Err(Unavailable::Pending(Later { wait, source })),
            },
            Holder::Issuer(iss) => match self.core.tenants().refetch_unknown_kid(self.core.refresher(), iss, cooldown, wait, how) {
                Lookup::Keys(store, generation, in_use) => {
                    Ok(Some(Keys { store, generation, holder: keys.holder.clone(), in_use: Some(in_use) }))
                }
                Lookup::Pending(later) => Err(Unavailable::Pending(later)),
                _ => Ok(None),
            },
        }
    }

    /// The keys of `holder` if they are still those of `generation`: a verification made with them
    /// still stands. `None` when they changed (or a dynamic issuer's expired or was evicted).
    pub fn still_current(&self, holder: &Holder, generation: u64, how: Wait) -> Result<Option<Keys>, Unavailable> {
        let keys = match holder {
            Holder::Origins(origins) => self.origin_keys(origins.clone()),
            Holder::Issuer(iss) => match self.core.tenants().lookup(self.core.refresher(), iss, how) {
                Lookup::Keys(store, generation, in_use) => Keys { store, generation, holder: holder.clone(), in_use: Some(in_use) },
                Lookup::Pending(later) => return Err(Unavailable::Pending(later)),
                _ => return Ok(None),
            },
        };
        Ok((keys.generation == generation).then_some(keys))
    }

    /// A token verified with `keys`: a dynamic issuer is in use, and its discovery's charge comes
    /// back (`Tenants::confirm`).
    pub fn verified_with(&self, keys: &Keys) {
        if let (Holder::Issuer(iss), Some(in_use)) = (&keys.holder, &keys.in_use) {
            self.core.tenants().confirm(self.core.refresher(), iss, in_use);
        }
    }

    fn origin_keys(&self, origins: Arc<[usize]>) -> Keys {
        let (generation, store) = self.core.key_store();
        Keys { store, generation, holder: Holder::Origins(origins), in_use: None }
    }
}
