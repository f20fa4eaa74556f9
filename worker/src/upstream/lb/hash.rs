//! What `ring_hash` and `maglev` hash: the request's key under the
//! cluster's `hash_policy`, and the hash function itself.
//!
//! Like Envoy's `RouteAction.hash_policy`: every entry the request has
//! contributes a hash, combined in order (`rotate_left(1) ^ next`, Envoy's
//! combination); entries the request lacks (a header absent, a path on an
//! RPC request) contribute nothing, and a request with none of them has no
//! key — the policy then picks as `random` would (Envoy's behaviour).
//!
//! The hash is FNV-1a with a final avalanche (MurmurHash3's `fmix64`):
//! stable across processes and versions, so a key keeps its endpoint
//! across a reload or an upgrade, and well spread in every bit, which the
//! ring and the Maglev table both need.

use baton_config::HashPolicy;

use super::Pick;

/// A cluster's hash policy, ready to key requests.
#[derive(Debug, Clone)]
pub(crate) struct HashKey {
    policies: Box<[HashPolicy]>,
}

impl HashKey {
    pub(crate) fn new(policies: &[HashPolicy]) -> HashKey {
        HashKey {
            policies: policies.into(),
        }
    }

    /// The pick's key, or `None` when it offers nothing the policy names.
    pub(crate) fn of(&self, pick: &Pick<'_>) -> Option<u64> {
        let mut key: Option<u64> = None;
        for policy in self.policies.iter() {
            let Some(hash) = part(policy, pick) else {
                continue;
            };
            key = Some(match key {
                Some(k) => k.rotate_left(1) ^ hash,
                None => hash,
            });
        }
        key
    }
}

/// The hash of one part of the request, when it has it.
fn part(policy: &HashPolicy, pick: &Pick<'_>) -> Option<u64> {
    if let HashPolicy::SourceIp = policy {
        return pick.source.map(|ip| match ip {
            std::net::IpAddr::V4(v4) => hash64(&v4.octets()),
            std::net::IpAddr::V6(v6) => hash64(&v6.octets()),
        });
    }
    let request = pick.request?;
    let bytes: &[u8] = match policy {
        HashPolicy::Header(name) | HashPolicy::Attachment(name) => request.header(name)?,
        HashPolicy::Cookie(name) => request.cookie(name)?.as_bytes(),
        HashPolicy::Path => request.path()?.as_bytes(),
        HashPolicy::Service => request.service()?.as_bytes(),
        HashPolicy::Method => request.method()?.as_bytes(),
        HashPolicy::SourceIp => return None,
    };
    Some(hash64(bytes))
}

/// FNV-1a over `bytes`, then `fmix64`.
pub(super) fn hash64(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(PRIME);
    }
    mix(h)
}

/// MurmurHash3's 64-bit finalizer: every input bit flips each output bit
/// with probability about one half.
pub(super) fn mix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Attributes;

    #[test]
    fn parts_the_request_lacks_add_nothing_and_none_at_all_is_no_key() {
        let attributes = Attributes {
            service: Some("Orders".into()),
            method: Some("place".into()),
            headers: vec![("tenant".into(), "t1".into())],
            ..Attributes::default()
        };
        let pick = Pick {
            source: Some("10.0.0.1".parse().unwrap()),
            request: Some(&attributes),
        };
        let method = HashKey::new(&[HashPolicy::Method]);
        assert_eq!(method.of(&pick), Some(hash64(b"place")));
        // A header the request lacks contributes nothing.
        let with_absent = HashKey::new(&[HashPolicy::Header("x-user".into()), HashPolicy::Method]);
        assert_eq!(with_absent.of(&pick), method.of(&pick));
        // Two parts combine, in order.
        let both = HashKey::new(&[HashPolicy::Service, HashPolicy::Attachment("tenant".into())]);
        assert_eq!(
            both.of(&pick),
            Some(hash64(b"Orders").rotate_left(1) ^ hash64(b"t1"))
        );
        assert_eq!(
            HashKey::new(&[HashPolicy::SourceIp]).of(&pick),
            Some(hash64(&[10, 0, 0, 1]))
        );
        // Nothing the policy names: no key (the policy picks at random).
        assert_eq!(HashKey::new(&[HashPolicy::Path]).of(&pick), None);
        assert_eq!(
            HashKey::new(&[HashPolicy::SourceIp]).of(&Pick::default()),
            None
        );
        assert_eq!(HashKey::new(&[]).of(&pick), None);
    }

    #[test]
    fn the_hash_is_stable() {
        // Fixed values: a key must keep its endpoint across versions.
        assert_eq!(hash64(b""), mix(0xcbf2_9ce4_8422_2325));
        assert_ne!(hash64(b"a"), hash64(b"b"));
        assert_eq!(hash64(b"user-1"), hash64(b"user-1"));
    }
}
