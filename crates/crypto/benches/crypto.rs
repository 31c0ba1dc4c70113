//! Criterion benchmarks of the hot paths: e3kit's authEncrypt/authDecrypt of 1 KiB for 1 and 100
//! recipients, bulk encryption and decryption of 64 MiB, the bare streaming AES-256-GCM against
//! the previous backend, 256 MiB authEncrypt/authDecrypt streams, and key generation.
//! `bench/compare` puts the same operations side by side with the Virgil libraries;
//! `bench/streams` times the CLI on 256 MiB files against OpenSSL's floor.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use rand_core::{OsRng, RngCore};
use sealkit_crypto::gcm::AesGcmStream;
use sealkit_crypto::{Crypto, KeyType, PrivateKey, PublicKey, Signing, Stage};
use std::hint::black_box;
use std::io::{self, Read, Write};

fn keys(n: usize) -> (Vec<PrivateKey>, Vec<PublicKey>) {
    let private: Vec<PrivateKey> = (0..n)
        .map(|_| PrivateKey::generate(KeyType::Ed25519, &mut OsRng))
        .collect();
    let public = private.iter().map(|k| k.public_key().clone()).collect();
    (private, public)
}

fn auth(c: &mut Criterion) {
    let crypto = Crypto::new();
    let alice = PrivateKey::generate(KeyType::Ed25519, &mut OsRng);
    let alice_pub = [alice.public_key().clone()];
    let mut data = vec![0u8; 1024];
    OsRng.fill_bytes(&mut data);
    let mut group = c.benchmark_group("auth_1k");
    for n in [1usize, 100] {
        let (private, public) = keys(n);
        group.bench_function(format!("encrypt_{n}r"), |b| {
            b.iter(|| crypto.sign_and_encrypt(&mut OsRng, black_box(&data), &alice, &public, true))
        });
        let message = crypto
            .sign_and_encrypt(&mut OsRng, &data, &alice, &public, true)
            .unwrap();
        let last = &private[n - 1];
        group.bench_function(format!("decrypt_{n}r"), |b| {
            b.iter(|| {
                crypto
                    .decrypt_and_verify(black_box(&message), last, &alice_pub)
                    .unwrap()
            })
        });
    }
    group.finish();
}

fn bulk(c: &mut Criterion) {
    let crypto = Crypto::new();
    let (private, public) = keys(1);
    let mut data = vec![0u8; 64 << 20];
    OsRng.fill_bytes(&mut data);
    let mut group = c.benchmark_group("bulk_64m");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.bench_function("encrypt", |b| {
        b.iter(|| {
            crypto
                .encrypt(&mut OsRng, black_box(&data), &public, false)
                .unwrap()
        })
    });
    let message = crypto.encrypt(&mut OsRng, &data, &public, false).unwrap();
    group.bench_function("decrypt", |b| {
        b.iter_batched(
            || (),
            |()| crypto.decrypt(black_box(&message), &private[0]).unwrap(),
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

fn keygen(c: &mut Criterion) {
    let mut group = c.benchmark_group("keygen");
    for t in [KeyType::Ed25519, KeyType::Curve25519, KeyType::Secp256r1] {
        group.bench_function(t.name(), |b| b.iter(|| PrivateKey::generate(t, &mut OsRng)));
    }
    group.finish();
}

fn gcm(c: &mut Criterion) {
    let mut data = vec![0u8; 16 << 20];
    OsRng.fill_bytes(&mut data);
    let key = [7u8; 32];
    let mut group = c.benchmark_group("aes256gcm_16m");
    group.sample_size(20);
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.bench_function("aes_gcm_stream", |b| {
        b.iter(|| {
            let mut gcm = AesGcmStream::new(&key, &[1; 12]);
            gcm.encrypt(&mut data).unwrap();
            black_box(gcm.finish())
        })
    });
    group.bench_function("previous_aead_gcm_stream", |b| {
        b.iter(|| {
            let mut gcm = aead_gcm_stream::AesGcm::<aes::Aes256>::new(&key.into(), &[1; 12]);
            gcm.encrypt(&mut data);
            black_box(gcm.finish())
        })
    });
    group.finish();
}

/// Yields `left` bytes by repeating one random mebibyte, so the input costs no memory.
struct Repeat {
    block: Vec<u8>,
    left: u64,
}

impl Read for Repeat {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf
            .len()
            .min(self.block.len())
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        buf[..n].copy_from_slice(&self.block[..n]);
        self.left -= n as u64;
        Ok(n)
    }
}

/// A stage that discards the plaintext (the bench measures the decryption, not a disk).
struct Discard;

impl Write for Discard {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Stage for Discard {
    type Output = ();
    fn commit(self) -> io::Result<()> {
        Ok(())
    }
}

/// authEncrypt / authDecrypt of a 256 MiB stream (from memory to a discarding writer, and from a
/// temporary file), i.e. the CLI's work without its file output.
fn stream_256m(c: &mut Criterion) {
    const LEN: u64 = 256 << 20;
    let crypto = Crypto::new();
    let alice = PrivateKey::generate(KeyType::Ed25519, &mut OsRng);
    let alice_pub = [alice.public_key().clone()];
    let (private, public) = keys(1);
    let mut block = vec![0u8; 1 << 20];
    OsRng.fill_bytes(&mut block);
    let source = || Repeat {
        block: block.clone(),
        left: LEN,
    };
    let signing = || Signing::SignAndEncrypt {
        signer: &alice,
        plaintext_len: LEN,
    };
    let mut group = c.benchmark_group("auth_stream_256m");
    group.sample_size(10);
    group.warm_up_time(std::time::Duration::from_secs(1));
    group.measurement_time(std::time::Duration::from_secs(8));
    group.throughput(Throughput::Bytes(LEN));
    group.bench_function("encrypt", |b| {
        b.iter(|| {
            crypto
                .encrypt_stream(&mut OsRng, source(), io::sink(), &public, signing(), true)
                .unwrap()
        })
    });
    let path = std::env::temp_dir().join(format!("sealkit-bench-{}.bin", std::process::id()));
    let file = io::BufWriter::new(std::fs::File::create(&path).unwrap());
    crypto
        .encrypt_stream(&mut OsRng, source(), file, &public, signing(), true)
        .unwrap();
    group.bench_function("decrypt", |b| {
        b.iter(|| {
            let message = std::fs::File::open(&path).unwrap();
            crypto
                .decrypt_stream(message, &private[0], Some(&alice_pub), Discard)
                .unwrap()
        })
    });
    group.finish();
    let _ = std::fs::remove_file(&path);
}

criterion_group!(benches, auth, bulk, gcm, stream_256m, keygen);
criterion_main!(benches);
