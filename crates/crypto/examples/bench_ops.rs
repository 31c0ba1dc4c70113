//! Timings for `bench/compare`: Sealkit's operations and the primitives they are built from, as
//! JSON lines `{"impl", "op", "ns_per_op"[, "bytes"]}`. `--quick` uses 4 MiB bulk payloads and
//! shorter runs. `--streams` times only 256 MiB authEncrypt/authDecrypt streams (in memory, no
//! files) on every backend compiled in, next to their SHA-512 and AES-256-GCM primitives;
//! `--bulk-primitives` only those primitives (64 MiB SHA-512 and AES-256-GCM on every backend,
//! AES-256-GCM also with the previous RustCrypto code). Built with `--features
//! sealkit-crypto/openssl`, the OpenSSL backend's lines carry an `_openssl` suffix
//! (`bench/streams` reads them). The criterion benches (`cargo bench -p sealkit-crypto`) measure the same
//! operations with statistics; this program exists to put them in one table with the Virgil
//! libraries.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use aes::cipher::{block_padding::Pkcs7, BlockEncryptMut, KeyIvInit};
use hmac::Mac;
use rand_core::{OsRng, RngCore};
use sealkit_crypto::{Crypto, KeyType, PrivateKey, PublicKey};
use sha2::Digest;
use std::hint::black_box;

/// Keeps a result alive so the work producing it is not optimised away.
fn sink<T>(value: T) {
    black_box(value);
}
use std::time::{Duration, Instant};

struct Bench {
    budget: Duration,
    json: bool,
}

impl Bench {
    /// Median of five batches, each about a fifth of the budget.
    fn time(&self, mut f: impl FnMut()) -> f64 {
        f();
        let start = Instant::now();
        f();
        let one = start.elapsed().max(Duration::from_nanos(50));
        let per_batch = (self.budget.as_nanos() / 5 / one.as_nanos()).clamp(1, 1_000_000) as u32;
        let mut samples: Vec<f64> = (0..5)
            .map(|_| {
                let t = Instant::now();
                for _ in 0..per_batch {
                    f();
                }
                t.elapsed().as_nanos() as f64 / f64::from(per_batch)
            })
            .collect();
        samples.sort_by(f64::total_cmp);
        samples[2]
    }

    fn report(&self, imp: &str, op: &str, ns: f64, bytes: Option<usize>) {
        if self.json {
            match bytes {
                Some(b) => {
                    println!(r#"{{"impl":"{imp}","op":"{op}","ns_per_op":{ns:.1},"bytes":{b}}}"#)
                }
                None => println!(r#"{{"impl":"{imp}","op":"{op}","ns_per_op":{ns:.1}}}"#),
            }
        } else {
            println!("{imp:10} {op:24} {:>14.3} µs", ns / 1000.0);
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let bench = Bench {
        budget: Duration::from_millis(if quick { 200 } else { 1000 }),
        json: args.iter().any(|a| a == "--json"),
    };
    if args.iter().any(|a| a == "--streams") {
        streams(&bench, true);
        return;
    }
    if args.iter().any(|a| a == "--bulk-primitives") {
        streams(&bench, false);
        return;
    }
    let bulk_len = if quick { 4 << 20 } else { 64 << 20 };
    let crypto = Crypto::new();
    let alice = PrivateKey::generate(KeyType::Ed25519, &mut OsRng);
    let bob = PrivateKey::generate(KeyType::Ed25519, &mut OsRng);
    let many: Vec<PrivateKey> = (0..100)
        .map(|_| PrivateKey::generate(KeyType::Ed25519, &mut OsRng))
        .collect();
    let many_pub: Vec<PublicKey> = many.iter().map(|k| k.public_key().clone()).collect();
    let alice_pub = [alice.public_key().clone()];
    let bob_pub = [bob.public_key().clone()];
    let mut kib = vec![0u8; 1024];
    OsRng.fill_bytes(&mut kib);
    let mut bulk = vec![0u8; bulk_len];
    OsRng.fill_bytes(&mut bulk);

    // --- Sealkit operations
    let s = bench.time(|| sink(PrivateKey::generate(KeyType::Ed25519, &mut OsRng)));
    bench.report("sealkit", "keygen_ed25519", s, None);
    let s = bench.time(|| sink(sealkit_crypto::sign(&kib, &alice, &mut OsRng)));
    bench.report("sealkit", "sign_1k", s, None);
    let sig = sealkit_crypto::sign(&kib, &alice, &mut OsRng).unwrap();
    let s = bench.time(|| sink(sealkit_crypto::verify(&kib, &sig, alice.public_key())));
    bench.report("sealkit", "verify_1k", s, None);

    let s = bench.time(|| sink(crypto.sign_and_encrypt(&mut OsRng, &kib, &alice, &bob_pub, true)));
    bench.report("sealkit", "auth_encrypt_1k_1r", s, None);
    let msg = crypto
        .sign_and_encrypt(&mut OsRng, &kib, &alice, &bob_pub, true)
        .unwrap();
    let s = bench.time(|| sink(crypto.decrypt_and_verify(&msg, &bob, &alice_pub).unwrap()));
    bench.report("sealkit", "auth_decrypt_1k_1r", s, None);

    let s = bench.time(|| sink(crypto.sign_and_encrypt(&mut OsRng, &kib, &alice, &many_pub, true)));
    bench.report("sealkit", "auth_encrypt_1k_100r", s, None);
    let msg = crypto
        .sign_and_encrypt(&mut OsRng, &kib, &alice, &many_pub, true)
        .unwrap();
    let last = &many[99];
    let s = bench.time(|| sink(crypto.decrypt_and_verify(&msg, last, &alice_pub).unwrap()));
    bench.report("sealkit", "auth_decrypt_1k_100r", s, None);

    let s = bench.time(|| sink(crypto.encrypt(&mut OsRng, &bulk, &bob_pub, false)));
    bench.report("sealkit", "bulk_encrypt_64m", s, Some(bulk_len));
    let msg = crypto.encrypt(&mut OsRng, &bulk, &bob_pub, false).unwrap();
    let s = bench.time(|| sink(crypto.decrypt(&msg, &bob).unwrap()));
    bench.report("sealkit", "bulk_decrypt_64m", s, Some(bulk_len));

    // --- Primitives, straight from the crates Sealkit uses
    let signing = ed25519_dalek::SigningKey::generate(&mut OsRng);
    let digest = sha2::Sha512::digest(&kib);
    let sha512_1k = bench.time(|| sink(sha2::Sha512::digest(black_box(&kib))));
    bench.report("primitive", "sha512_1k", sha512_1k, None);
    let ed_keygen = bench.time(|| sink(ed25519_dalek::SigningKey::generate(&mut OsRng)));
    bench.report("primitive", "ed25519_keygen", ed_keygen, None);
    let ed_sign = bench.time(|| {
        use ed25519_dalek::Signer;
        sink(signing.sign(&digest))
    });
    bench.report("primitive", "ed25519_sign", ed_sign, None);
    let ed_sig = {
        use ed25519_dalek::Signer;
        signing.sign(&digest)
    };
    let verifying = signing.verifying_key();
    let ed_verify = bench.time(|| {
        use ed25519_dalek::Verifier;
        sink(verifying.verify(&digest, &ed_sig))
    });
    bench.report("primitive", "ed25519_verify", ed_verify, None);
    let peer = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::random_from_rng(OsRng));
    let x_keygen_dh = bench.time(|| {
        let e = x25519_dalek::StaticSecret::random_from_rng(OsRng);
        black_box(x25519_dalek::PublicKey::from(&e));
        sink(e.diffie_hellman(&peer));
    });
    bench.report("primitive", "x25519_keygen_dh", x_keygen_dh, None);
    let fixed = x25519_dalek::StaticSecret::random_from_rng(OsRng);
    let x_dh = bench.time(|| sink(fixed.diffie_hellman(&peer)));
    bench.report("primitive", "x25519_dh", x_dh, None);

    let gcm_key = [7u8; 32];
    // The streaming AES-256-GCM Sealkit's envelopes use (aes 0.9 + ctr 0.10 + ghash 0.6).
    let gcm = |data: &mut [u8]| {
        let mut c = sealkit_crypto::gcm::AesGcmStream::new(&gcm_key, &[1u8; 12]);
        c.encrypt(data).unwrap();
        black_box(c.finish());
    };
    let mut buf = kib.clone();
    buf.resize(1024 + 160, 0);
    let gcm_1k = bench.time(|| gcm(&mut buf));
    bench.report("primitive", "aes256gcm_1k", gcm_1k, None);
    let mut big = bulk.clone();
    let gcm_bulk = bench.time(|| gcm(&mut big));
    bench.report("primitive", "aes256gcm_64m", gcm_bulk, Some(bulk_len));
    // The previous backend (aead-gcm-stream 0.4 over aes 0.8 + ghash 0.5), for comparison.
    let gcm_prev = bench.time(|| {
        let mut c = aead_gcm_stream::AesGcm::<aes::Aes256>::new(&gcm_key.into(), &[1u8; 12]);
        c.encrypt(&mut big);
        black_box(c.finish());
    });
    bench.report("primitive", "aes256gcm_64m_prev", gcm_prev, Some(bulk_len));
    let sha512_bulk = bench.time(|| sink(sha2::Sha512::digest(black_box(&bulk))));
    bench.report("primitive", "sha512_64m", sha512_bulk, Some(bulk_len));
    let hkdf = bench.time(|| {
        let mut okm = [0u8; 88];
        hkdf::Hkdf::<sha2::Sha512>::new(None, &gcm_key)
            .expand(&[], &mut okm)
            .unwrap();
        black_box(okm);
    });
    bench.report("primitive", "hkdf_sha512", hkdf, None);
    // One recipient's key wrap from its parts: ephemeral key + agreement, KDF2, CBC, HMAC.
    let wrap_rest = bench.time(|| {
        let mut k = [0u8; 96];
        for (i, chunk) in k.chunks_mut(48).enumerate() {
            let mut h = sha2::Sha384::new();
            h.update(gcm_key);
            h.update((i as u32 + 1).to_be_bytes());
            chunk.copy_from_slice(&h.finalize());
        }
        let ct = cbc::Encryptor::<aes::Aes256>::new_from_slices(&k[..32], &[0u8; 16])
            .unwrap()
            .encrypt_padded_vec_mut::<Pkcs7>(&gcm_key);
        let mut mac = hmac::Hmac::<sha2::Sha384>::new_from_slice(&k[32..80]).unwrap();
        mac.update(&ct);
        black_box(mac.finalize());
    });
    bench.report("primitive", "ecies_wrap_1", x_keygen_dh + wrap_rest, None);

    // --- Floors: the sum of the primitives each operation needs.
    let floor_enc_1 = sha512_1k + ed_sign + x_keygen_dh + gcm_1k;
    bench.report("floor", "auth_encrypt_1k_1r", floor_enc_1, None);
    bench.report(
        "floor",
        "auth_decrypt_1k_1r",
        sha512_1k + ed_verify + x_dh + gcm_1k,
        None,
    );
    bench.report(
        "floor",
        "auth_encrypt_1k_100r",
        sha512_1k + ed_sign + 100.0 * x_keygen_dh + gcm_1k,
        None,
    );
    bench.report(
        "floor",
        "auth_decrypt_1k_100r",
        sha512_1k + ed_verify + x_dh + gcm_1k,
        None,
    );
    bench.report("floor", "bulk_encrypt_64m", gcm_bulk, Some(bulk_len));
    bench.report("floor", "bulk_decrypt_64m", gcm_bulk, Some(bulk_len));
}

/// Yields `left` bytes by repeating one block, so a 256 MiB input costs no memory.
struct Repeat<'a> {
    block: &'a [u8],
    left: u64,
}

impl std::io::Read for Repeat<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf
            .len()
            .min(self.block.len())
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        buf[..n].copy_from_slice(&self.block[..n]);
        self.left -= n as u64;
        Ok(n)
    }
}

/// A decryption stage that drops the plaintext.
struct Discard;

impl std::io::Write for Discard {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl sealkit_crypto::Stage for Discard {
    type Output = ();
    fn commit(self) -> std::io::Result<()> {
        Ok(())
    }
}

/// 256 MiB sign-and-encrypt streams without any file I/O (with `with_streams`), and the two
/// primitives they run.
fn streams(bench: &Bench, with_streams: bool) {
    const LEN: u64 = 256 << 20;
    let alice = PrivateKey::generate(KeyType::Ed25519, &mut OsRng);
    let bob = PrivateKey::generate(KeyType::Ed25519, &mut OsRng);
    let mut block = vec![0u8; 1 << 20];
    OsRng.fill_bytes(&mut block);
    let signing = || sealkit_crypto::Signing::SignAndEncrypt {
        signer: &alice,
        plaintext_len: LEN,
    };
    let source = || Repeat {
        block: &block,
        left: LEN,
    };
    if with_streams {
        for &backend in sealkit_crypto::Backend::ALL {
            let crypto = Crypto::new().with_backend(backend);
            stream_ops(bench, &crypto, &alice, &bob, source, signing);
        }
    }
    bulk_primitives(bench, LEN);
}

fn stream_ops<'a, R: std::io::Read>(
    bench: &Bench,
    crypto: &Crypto,
    alice: &PrivateKey,
    bob: &PrivateKey,
    source: impl Fn() -> R,
    signing: impl Fn() -> sealkit_crypto::Signing<'a>,
) {
    const LEN: u64 = 256 << 20;
    let imp = format!("sealkit{}", backend_suffix(crypto.backend()));
    let alice_pub = [alice.public_key().clone()];
    let bob_pub = [bob.public_key().clone()];
    let s = bench.time(|| {
        crypto
            .encrypt_stream(
                &mut OsRng,
                source(),
                std::io::sink(),
                &bob_pub,
                signing(),
                true,
            )
            .unwrap()
    });
    bench.report(&imp, "auth_stream_encrypt_256m", s, Some(LEN as usize));
    let mut message = Vec::with_capacity(LEN as usize + 4096);
    crypto
        .encrypt_stream(
            &mut OsRng,
            source(),
            &mut message,
            &bob_pub,
            signing(),
            true,
        )
        .unwrap();
    let s = bench.time(|| {
        sink(
            crypto
                .decrypt_stream(&message[..], bob, Some(&alice_pub), Discard)
                .unwrap(),
        )
    });
    bench.report(&imp, "auth_stream_decrypt_256m", s, Some(LEN as usize));
}

/// `""` for RustCrypto, `"_openssl"` for OpenSSL: the suffix of the backend's benchmark names.
fn backend_suffix(backend: sealkit_crypto::Backend) -> &'static str {
    if backend == sealkit_crypto::Backend::RustCrypto {
        ""
    } else {
        "_openssl"
    }
}

/// SHA-512 and AES-256-GCM over 64 MiB, and the single-core floor of a `len`-byte auth stream.
fn bulk_primitives(bench: &Bench, len: u64) {
    let mut data = vec![0u8; 64 << 20];
    OsRng.fill_bytes(&mut data);
    let sha = bench.time(|| sink(sha2::Sha512::digest(black_box(&data))));
    bench.report("primitive", "sha512_64m", sha, Some(data.len()));
    let key = [7u8; 32];
    let gcm = bench.time(|| {
        let mut c = sealkit_crypto::gcm::AesGcmStream::new(&key, &[1u8; 12]);
        c.encrypt(&mut data).unwrap();
        black_box(c.finish());
    });
    bench.report("primitive", "aes256gcm_64m", gcm, Some(data.len()));
    let prev = bench.time(|| {
        let mut c = aead_gcm_stream::AesGcm::<aes::Aes256>::new(&key.into(), &[1u8; 12]);
        c.encrypt(&mut data);
        black_box(c.finish());
    });
    bench.report("primitive", "aes256gcm_64m_prev", prev, Some(data.len()));
    // The backends as the envelopes run them (RustCrypto's line is the one above, again).
    for &backend in sealkit_crypto::Backend::ALL {
        use sealkit_crypto::backend::{BodyCipher, Direction};
        let t = bench.time(|| {
            let mut c = BodyCipher::new(backend, Direction::Encrypt, &key, &[1u8; 12]).unwrap();
            c.update(&mut data).unwrap();
            black_box(c.tag().unwrap());
        });
        let op = format!("aes256gcm_64m{}", backend_suffix(backend));
        bench.report("backend", &op, t, Some(data.len()));
    }
    #[cfg(feature = "openssl")]
    {
        let t = bench.time(|| sink(openssl::sha::sha512(black_box(&data))));
        bench.report("backend", "sha512_64m_openssl", t, Some(data.len()));
    }
    let scale = len as f64 / data.len() as f64;
    bench.report(
        "floor",
        "auth_stream_256m_one_core",
        scale * (sha + gcm),
        Some(len as usize),
    );
}
