//! Signing as clients sign (wire.md §6, `protocol::signing`): each client's RSA key, its
//! registration's certificate and signature, and the `clientauth` hook on every message to a
//! signed endpoint.
//!
//! Keys come from a pool drawn from the run's seed (key `k` from a generator seeded with the
//! seed and `k`), and client `i` takes key `mix(seed ^ i) % keys`: shards of one run agree on
//! every client's key without talking. A pool, not a key per client, because making a 2048-bit
//! key costs about 38 ms here (`results/bench/signing-2026-12-03.md`): a key each for 175,000
//! clients would be 1.8 hours of CPU before the first request, and the MP's work per message is
//! the same whichever key signed it. The pool is made on all cores before the clients start.
//!
//! What signing costs the generator, per message: one signature of the payload (ring, about
//! 0.45 ms for 2048 bits). The `ClientIDSignature` is made once per client, when it learns its
//! SMS ID, and kept (256 bytes per client).

use std::sync::Arc;

use anyhow::{Context as _, anyhow};
use protocol::envelope::Hook;
use protocol::signing::{self, Padding, SigningKey};
use rand::SeedableRng;

use crate::sim;

/// One key of the pool, with what clients send of it.
#[derive(Debug)]
pub struct PoolKey {
    pub key: SigningKey,
    /// The CryptoAPI `PUBLICKEYBLOB`, hex (the hook's `PublicKey`).
    pub public_hex: String,
    /// A self-signed certificate of the key (DER), hex (the registration's `Signing`).
    pub certificate_hex: String,
}

/// The run's keys.
#[derive(Debug)]
pub struct KeyPool {
    keys: Vec<PoolKey>,
    seed: u64,
    pub padding: Padding,
}

impl KeyPool {
    /// `count` keys of `bits` drawn from `seed`, made on all cores.
    pub fn generate(seed: u64, count: usize, bits: u32, padding: Padding) -> anyhow::Result<KeyPool> {
        let count = count.max(1);
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).min(count);
        let mut slots: Vec<Option<anyhow::Result<PoolKey>>> = (0..count).map(|_| None).collect();
        std::thread::scope(|scope| {
            for (t, chunk) in slots.chunks_mut(count.div_ceil(threads)).enumerate() {
                let first = t * count.div_ceil(threads);
                scope.spawn(move || {
                    for (j, slot) in chunk.iter_mut().enumerate() {
                        *slot = Some(pool_key(seed, (first + j) as u64, bits));
                    }
                });
            }
        });
        let keys = slots
            .into_iter()
            .map(|s| s.unwrap_or_else(|| Err(anyhow!("a key was not made"))))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(KeyPool { keys, seed, padding })
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Client `index`'s key.
    pub fn for_client(&self, index: u64) -> &PoolKey {
        let k = (sim::mix(self.seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15)) % self.keys.len() as u64)
            as usize;
        &self.keys[k]
    }
}

fn pool_key(seed: u64, k: u64, bits: u32) -> anyhow::Result<PoolKey> {
    let mut rng =
        rand::rngs::ChaCha8Rng::seed_from_u64(sim::mix(seed ^ sim::mix(k.wrapping_add(0x5167_4E49))));
    let key = SigningKey::generate(&mut rng, bits).with_context(|| format!("signing key {k}"))?;
    let certificate = certificate(&key).with_context(|| format!("the certificate of signing key {k}"))?;
    Ok(PoolKey {
        public_hex: key.public().to_blob_hex(),
        certificate_hex: signing::to_hex(&certificate),
        key,
    })
}

/// A self-signed certificate of `key`, as the client's `SMS` certificate is.
fn certificate(key: &SigningKey) -> anyhow::Result<Vec<u8>> {
    let der = rustls::pki_types::PrivatePkcs8KeyDer::from(key.pkcs8_der());
    let pair = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&der, &rcgen::PKCS_RSA_SHA256)?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, "SMS");
    Ok(params.self_signed(&pair)?.der().to_vec())
}

/// What one client signs a message with.
#[derive(Debug, Clone)]
pub struct Signer {
    pub pool: Arc<KeyPool>,
    pub index: u64,
    /// The client's `ClientIDSignature`, reversed bytes (hex when sent).
    pub client_id_signature: Arc<[u8]>,
    /// Shared by every message's copy of the signer: cloning it allocates nothing.
    pub machine: Arc<str>,
}

impl Signer {
    /// Client `index` (`machine`), registered as `source_id` (`GUID:...`).
    pub fn new(pool: &Arc<KeyPool>, index: u64, source_id: &str, machine: &str) -> Signer {
        let key = &pool.for_client(index).key;
        let client_id_signature =
            key.sign_reversed(&signing::client_id_message(source_id), pool.padding).into();
        Signer { pool: Arc::clone(pool), index, client_id_signature, machine: machine.into() }
    }

    /// The `clientauth` hook for a message whose payload (as sent) is `payload`.
    pub fn hook(&self, payload: &[u8]) -> Hook {
        let key = self.pool.for_client(self.index);
        signing::client_auth_hook(
            &self.machine,
            &key.public_hex,
            &signing::to_hex(&self.client_id_signature),
            &key.key.sign(payload, self.pool.padding),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::signing::PublicKey;

    #[test]
    fn the_pool_is_the_seed_s_and_its_certificates_carry_its_keys() {
        let (a, b) = (
            KeyPool::generate(7, 3, 2048, Padding::DigestInfo).expect("a pool"),
            KeyPool::generate(7, 3, 2048, Padding::DigestInfo).expect("a pool"),
        );
        for i in 0..20 {
            assert_eq!(a.for_client(i).public_hex, b.for_client(i).public_hex);
        }
        let distinct: std::collections::HashSet<_> =
            (0..50).map(|i| a.for_client(i).public_hex.clone()).collect();
        assert_eq!(distinct.len(), 3);
        for k in &a.keys {
            assert_eq!(PublicKey::from_certificate_hex(&k.certificate_hex).as_ref(), Ok(k.key.public()));
        }
        let other = KeyPool::generate(8, 1, 2048, Padding::DigestInfo).expect("a pool");
        assert_ne!(other.keys[0].public_hex, a.keys[0].public_hex);
    }
}
