//! What signing costs each side (wire.md §6, `protocol::signing`), apart from any server:
//! - `signing/keygen_2048`: making one 2048-bit key (what loadgen's key pool is sized from);
//! - `signing/sign_*`: one signature, ring (DigestInfo) and the rsa crate (bare padding);
//! - `signing/verify_*`: the MP's check of one, both paddings (a bare one is tried with ring
//!   first, then the rsa crate);
//! - `signing/certificate_key`: reading the key out of a registration's certificate;
//! - `signing/state_report_150msgs/<signed|unsigned>`: a client's Report request built by
//!   loadgen's transport, with and without its `clientauth` hook.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use loadgen::messages::{self, Report};
use loadgen::profile::Wire;
use loadgen::signing::{KeyPool, Signer};
use loadgen::transport::mp_request;
use protocol::signing::{self, Padding, PublicKey, SigningKey};
use protocol::{Guid, Timestamp};
use rand::SeedableRng;

fn keygen(c: &mut Criterion) {
    let mut g = c.benchmark_group("signing");
    g.sample_size(20).measurement_time(Duration::from_secs(10));
    let mut seed = 0u64;
    g.bench_function("keygen_2048", |b| {
        b.iter(|| {
            seed += 1;
            SigningKey::generate(&mut rand::rngs::ChaCha8Rng::seed_from_u64(seed), 2048).expect("a key")
        })
    });
    g.finish();
}

fn sign_and_verify(c: &mut Criterion) {
    let pool = Arc::new(KeyPool::generate(1, 1, 2048, Padding::DigestInfo).expect("a pool"));
    let key = &pool.for_client(0).key;
    let message = signing::client_id_message("GUID:A1006D0E-CF56-41D1-A006-6330EFC39381");
    let mut g = c.benchmark_group("signing");
    g.bench_function("sign_ring_digestinfo", |b| {
        b.iter(|| key.sign(black_box(&message), Padding::DigestInfo))
    });
    g.bench_function("sign_rsa_bare", |b| b.iter(|| key.sign(black_box(&message), Padding::Bare)));
    for padding in [Padding::DigestInfo, Padding::Bare] {
        let signature = key.sign(&message, padding);
        g.bench_function(format!("verify_{padding:?}").to_lowercase(), |b| {
            b.iter(|| key.public().verify("x", black_box(&message), &signature).expect("verifies"))
        });
    }
    let certificate = pool.for_client(0).certificate_hex.clone();
    g.bench_function("certificate_key", |b| {
        b.iter(|| PublicKey::from_certificate_hex(black_box(&certificate)).expect("a key"))
    });
    g.finish();

    let client = Guid(0x1F6E_4C4E_0A2D_4B6B_9C1D_0000_0000_0001);
    let signer = Signer::new(&pool, 0, &format!("GUID:{client}"), "PC000001");
    let mut report = Report::begin(client, "PC000001", Timestamp(1_390_238_335_573_000), 150);
    for i in 0..150u64 {
        let update = Guid(0x505f_da07_b4f3_45fb_83d9_8642_554e_0000 + u128::from(i));
        report.update(update, 200, 1 + (i % 3) as u8, Timestamp(1_390_238_335_573_000 + i as i64), 230 + i);
    }
    let xml = Bytes::from(report.finish());
    let mut g = c.benchmark_group("signing/state_report_150msgs");
    for (name, signer) in [("unsigned", None), ("signed", Some(&signer))] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut header = messages::header(Guid(7), Some(client), "PC000001", messages::RELAY);
                mp_request(Wire::Ccm, 1, "http://127.0.0.1:8080", &mut header, signer, xml.clone())
                    .expect("builds")
            })
        });
    }
    g.finish();
}

criterion_group!(benches, keygen, sign_and_verify);
criterion_main!(benches);
