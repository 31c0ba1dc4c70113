//! Multi-recipient encryption: plain `encrypt`, sign-then-encrypt and sign-and-encrypt, one-shot
//! and streaming (spec §4–§7).
//!
//! Every mode is one state machine on each side. [`Encryptor`] turns plaintext pieces into the
//! message (the concatenation of its outputs is exactly what the one-shot functions return, and
//! what virgil-crypto's stream ciphers write). [`Decryptor`] is a push state machine that writes
//! decrypted bytes only into a [`Stage`], and hands the stage's result back only after the GCM
//! tags and the signature have been verified.
//!
//! # Why a stage
//! Virgil's format has a single GCM tag at the very end of the body, so a streaming decryptor
//! cannot know whether any byte is authentic until it has read everything. virgil-crypto releases
//! plaintext as it goes; Sealkit does not. Decrypted bytes go into a caller-chosen [`Stage`]
//! (memory, or a temporary file next to the destination) and [`Stage::commit`] is called only
//! when [`Decryptor::finish`] succeeds. On any error the stage is dropped unseen, so a temp file
//! is deleted and nothing partial ever reaches the destination. Memory use stays constant: the
//! decryptor holds back at most the 16-byte tag, a padding tail of 164 bytes and a bounded footer.

use crate::backend::{Backend, BodyCipher, BodyCipherError, Direction};
use crate::ecies;
use crate::error::{Error, FormatError, FormatErrorKind, Result};
use crate::format::algorithm::{AlgorithmId, HashAlg};
use crate::format::footer::{Footer, SignerInfo};
use crate::format::message_info::{
    FooterInfo, MessageInfo, ParamValue, RecipientInfo, DATA_SIGNATURE, DATA_SIGNER_ID,
};
use crate::format::oid;
use crate::format::signature::VirgilSignature;
use crate::gcm::AesGcmStream as Gcm;
use crate::hash_pipe::BodyHasher;
use crate::keys::{KeyId, KeyIdScheme, PrivateKey, PublicKey};
use crate::padding;
use crate::signature::{self, Hasher};
use rand_core::CryptoRngCore;
use std::io::{self, Read, Write};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

const TAG_LEN: usize = 16;
/// AES-GCM's limit for one message: 2^32 − 2 blocks.
const GCM_MAX_BODY: u64 = ((1u64 << 32) - 2) * 16;
/// Largest message info accepted before the body starts (100 recipients take about 25 KiB).
const MAX_MESSAGE_INFO: usize = 16 << 20;
/// Largest encrypted footer accepted (one signer takes 113 bytes).
const MAX_FOOTER: usize = 1 << 20;
/// Plaintext is processed in pieces of this size, so memory stays bounded for any input.
const CHUNK: usize = 64 << 10;

/// Where a [`Decryptor`] puts plaintext before it is authenticated.
///
/// Bytes written to a stage are not yet authentic. The decryptor calls [`Stage::commit`] only
/// after every check has passed; on failure it drops the stage, which must then discard what was
/// written (for a file: delete it).
pub trait Stage: Write {
    /// What a committed stage yields (the bytes, a persisted file, ...).
    type Output;

    /// Makes the staged plaintext available; called once, after successful verification.
    fn commit(self) -> io::Result<Self::Output>;
}

impl Stage for Vec<u8> {
    type Output = Vec<u8>;

    fn commit(self) -> io::Result<Vec<u8>> {
        Ok(self)
    }
}

/// Which of the three message kinds a message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MessageKind {
    /// `encrypt`: no signature.
    Plain,
    /// `signThenEncrypt` (e3kit `encrypt`): signature in the message info's custom parameters.
    SignThenEncrypt,
    /// `signAndEncrypt` (e3kit `authEncrypt`): signature in the encrypted footer.
    SignAndEncrypt,
}

/// What a successful decryption learned about the message.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DecryptInfo {
    /// The message kind.
    pub kind: MessageKind,
    /// Index, in the list of keys given for verification, of the key whose signature verified.
    /// `None` when no verification was requested.
    pub verified_by: Option<usize>,
}

/// How the message is signed, for [`Crypto::encryptor`].
#[derive(Debug)]
#[non_exhaustive]
pub enum Signing<'a> {
    /// No signature (`encrypt`).
    None,
    /// Sign-then-encrypt (spec §5): `signature` is the Virgil signature DER of the whole plaintext
    /// made with `signer` beforehand (see [`crate::Signer`]); it travels in the message info.
    SignThenEncrypt {
        /// The signer's key (its id is written next to the signature).
        signer: &'a PrivateKey,
        /// The signature of the complete plaintext.
        signature: &'a [u8],
    },
    /// Sign-and-encrypt (spec §6), e3kit's `authEncrypt`. The plaintext length must be known up
    /// front because the message info records it; [`Encryptor::finish`] fails if a different
    /// number of bytes was fed.
    SignAndEncrypt {
        /// The signer's key (Ed25519 or P-256).
        signer: &'a PrivateKey,
        /// Exact number of plaintext bytes that will be fed.
        plaintext_len: u64,
    },
}

/// The entry point for encryption and decryption, parameterised like virgil-crypto's
/// `VirgilCrypto` (the key id scheme), plus the [`Backend`] that runs message bodies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Crypto {
    key_ids: KeyIdScheme,
    backend: Backend,
}

impl Crypto {
    /// The default configuration: 8-byte key ids.
    pub fn new() -> Self {
        Self::default()
    }

    /// Uses `scheme` for the key ids written into messages. Decryption matches either kind.
    pub fn with_key_ids(scheme: KeyIdScheme) -> Self {
        Self {
            key_ids: scheme,
            ..Self::default()
        }
    }

    /// Runs the AES-256-GCM and SHA-512 of message bodies on `backend` (the default is
    /// [`Backend::default`]). The bytes written and accepted are the same on every backend.
    pub fn with_backend(self, backend: Backend) -> Self {
        Self { backend, ..self }
    }

    /// The backend this configuration runs message bodies on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The id this configuration writes for `key`.
    pub fn key_id(&self, key: &PublicKey) -> KeyId {
        key.key_id_with(self.key_ids)
    }

    /// `encrypt`: encrypts for every recipient, without a signature (spec §4).
    pub fn encrypt(
        &self,
        rng: &mut impl CryptoRngCore,
        plaintext: &[u8],
        recipients: &[PublicKey],
        padding: bool,
    ) -> Result<Vec<u8>> {
        self.encrypt_with(rng, plaintext, recipients, Signing::None, padding)
    }

    /// `signThenEncrypt` / e3kit `encrypt` (spec §5).
    pub fn sign_then_encrypt(
        &self,
        rng: &mut impl CryptoRngCore,
        plaintext: &[u8],
        signer: &PrivateKey,
        recipients: &[PublicKey],
        padding: bool,
    ) -> Result<Vec<u8>> {
        let signature = signature::sign(plaintext, signer, rng)?;
        let signing = Signing::SignThenEncrypt {
            signer,
            signature: &signature,
        };
        self.encrypt_with(rng, plaintext, recipients, signing, padding)
    }

    /// `signAndEncrypt` / e3kit `authEncrypt` (which uses `padding = true`) (spec §6).
    pub fn sign_and_encrypt(
        &self,
        rng: &mut impl CryptoRngCore,
        plaintext: &[u8],
        signer: &PrivateKey,
        recipients: &[PublicKey],
        padding: bool,
    ) -> Result<Vec<u8>> {
        let signing = Signing::SignAndEncrypt {
            signer,
            plaintext_len: plaintext.len() as u64,
        };
        self.encrypt_with(rng, plaintext, recipients, signing, padding)
    }

    fn encrypt_with(
        &self,
        rng: &mut impl CryptoRngCore,
        plaintext: &[u8],
        recipients: &[PublicKey],
        signing: Signing<'_>,
        padding: bool,
    ) -> Result<Vec<u8>> {
        let mut enc = self.encryptor(rng, recipients, signing, padding)?;
        let mut out = Vec::with_capacity(
            enc.header().len() + plaintext.len() + padding::MAX_TAIL + 2 * TAG_LEN + 128,
        );
        out.extend_from_slice(enc.header());
        enc.update(plaintext, &mut out)?;
        enc.finish(rng, &mut out)?;
        Ok(out)
    }

    /// Decrypts a message of any kind without verifying a signature.
    pub fn decrypt(&self, message: &[u8], key: &PrivateKey) -> Result<Vec<u8>> {
        self.decrypt_verified(message, key, None).map(|(p, _)| p)
    }

    /// `decryptThenVerify` / e3kit `decrypt`: decrypts a sign-then-encrypt message and requires a
    /// valid signature by one of `signers` (spec §5): the one whose id is the message's
    /// `VIRGIL-DATA-SIGNER-ID` (any of them if the message names no signer).
    pub fn decrypt_then_verify(
        &self,
        message: &[u8],
        key: &PrivateKey,
        signers: &[PublicKey],
    ) -> Result<Vec<u8>> {
        let (plaintext, info) = self.decrypt_verified(message, key, Some(signers))?;
        if info.kind != MessageKind::SignThenEncrypt {
            return Err(Error::SignerNotFound);
        }
        Ok(plaintext)
    }

    /// `decryptAndVerify` / e3kit `authDecrypt`: decrypts a sign-and-encrypt message and requires
    /// a valid footer signature by one of `signers` (spec §6), e.g. the sender's card chain.
    pub fn decrypt_and_verify(
        &self,
        message: &[u8],
        key: &PrivateKey,
        signers: &[PublicKey],
    ) -> Result<Vec<u8>> {
        let (plaintext, info) = self.decrypt_verified(message, key, Some(signers))?;
        if info.kind != MessageKind::SignAndEncrypt {
            return Err(Error::SignerNotFound);
        }
        Ok(plaintext)
    }

    /// Decrypts a message of any kind; with `verify_with`, requires a valid signature (of either
    /// signed kind) by one of those keys.
    pub fn decrypt_verified(
        &self,
        message: &[u8],
        key: &PrivateKey,
        verify_with: Option<&[PublicKey]>,
    ) -> Result<(Vec<u8>, DecryptInfo)> {
        let mut dec = Decryptor::new(key, verify_with, Vec::with_capacity(message.len()))?
            .with_backend(self.backend);
        dec.update(message)?;
        dec.finish()
    }

    /// Starts an encryption: returns the state machine, whose [`Encryptor::header`] is the
    /// message info to write first.
    pub fn encryptor<'a>(
        &self,
        rng: &mut impl CryptoRngCore,
        recipients: &[PublicKey],
        signing: Signing<'a>,
        padding: bool,
    ) -> Result<Encryptor<'a>> {
        if recipients.is_empty() {
            return Err(Error::InvalidArgument("at least one recipient is required"));
        }
        let mut secret = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(secret.as_mut());
        let mut recipient_infos = Vec::with_capacity(recipients.len());
        for r in recipients {
            recipient_infos.push(RecipientInfo::KeyTrans {
                rid: self.key_id(r).as_bytes().to_vec(),
                algorithm: r.algorithm(),
                encrypted_key: ecies::wrap(r, &secret, rng)?,
            });
        }

        let (data_key, nonce, sae) = match &signing {
            Signing::SignAndEncrypt {
                signer,
                plaintext_len,
            } => {
                let keys = SaeKeys::derive(&secret);
                let data_size = if padding {
                    padding::padded_len(*plaintext_len)
                } else {
                    *plaintext_len
                };
                if data_size > GCM_MAX_BODY {
                    return Err(Error::InvalidArgument("plaintext too large for AES-GCM"));
                }
                let state = SaeEncrypt {
                    signer,
                    signer_id: self.key_id(signer.public_key()),
                    hasher: BodyHasher::new(Hasher::on(self.backend, HashAlg::Sha512)),
                    expected_len: *plaintext_len,
                    footer_key: keys.footer_key,
                    footer_nonce: keys.footer_nonce,
                };
                (keys.data_key, keys.data_nonce, Some((state, data_size)))
            }
            _ => {
                let mut nonce = [0u8; 12];
                rng.fill_bytes(&mut nonce);
                (secret, nonce, None)
            }
        };

        let mut info = MessageInfo::new(recipient_infos, nonce);
        if let Signing::SignThenEncrypt { signer, signature } = &signing {
            VirgilSignature::decode(signature)?;
            info.custom_params = Some(vec![
                (
                    DATA_SIGNATURE.to_owned(),
                    ParamValue::Data(signature.to_vec()),
                ),
                (
                    DATA_SIGNER_ID.to_owned(),
                    ParamValue::Data(self.key_id(signer.public_key()).as_bytes().to_vec()),
                ),
            ]);
        }
        let mut gcm = BodyCipher::new(self.backend, Direction::Encrypt, &data_key, &nonce)
            .map_err(encrypt_error)?;
        if let Some((_, data_size)) = &sae {
            info.cipher_kdf = Some(AlgorithmId::bare(oid::HKDF_SHA512));
            info.footer_info = Some(FooterInfo {
                data_size: *data_size,
                signed_data_digest: Some(AlgorithmId::sha512()),
            });
            gcm.set_aad(&FooterInfo::signed_data_info_der(&AlgorithmId::sha512()))
                .map_err(|_| Error::InvalidArgument("AES-GCM associated data set twice"))?;
        }
        if padding {
            info.padding = Some(AlgorithmId::bare(oid::RANDOM_PADDING));
        }
        Ok(Encryptor {
            header: info.encode(),
            gcm,
            padding,
            fed: 0,
            sae: sae.map(|(s, _)| s),
        })
    }

    /// Encrypts everything `reader` yields into `writer` with constant memory.
    ///
    /// For [`Signing::SignAndEncrypt`] the reader must yield exactly the declared length.
    pub fn encrypt_stream(
        &self,
        rng: &mut impl CryptoRngCore,
        mut reader: impl Read,
        mut writer: impl Write,
        recipients: &[PublicKey],
        signing: Signing<'_>,
        padding: bool,
    ) -> Result<()> {
        let mut enc = self.encryptor(rng, recipients, signing, padding)?;
        writer.write_all(enc.header())?;
        let mut buf = vec![0u8; CHUNK];
        let mut out = Vec::with_capacity(CHUNK + 64);
        loop {
            let n = read_some(&mut reader, &mut buf)?;
            if n == 0 {
                break;
            }
            out.clear();
            enc.update(&buf[..n], &mut out)?;
            writer.write_all(&out)?;
        }
        out.clear();
        enc.finish(rng, &mut out)?;
        writer.write_all(&out)?;
        writer.flush()?;
        Ok(())
    }

    /// Decrypts everything `reader` yields into `stage` and commits it only once the message is
    /// authenticated (and, with `verify_with`, its signature verified).
    pub fn decrypt_stream<S: Stage>(
        &self,
        mut reader: impl Read,
        key: &PrivateKey,
        verify_with: Option<&[PublicKey]>,
        stage: S,
    ) -> Result<(S::Output, DecryptInfo)> {
        let mut dec = Decryptor::new(key, verify_with, stage)?.with_backend(self.backend);
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = read_some(&mut reader, &mut buf)?;
            if n == 0 {
                break;
            }
            dec.update(&buf[..n])?;
        }
        dec.finish()
    }
}

fn read_some(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match reader.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// The HKDF-SHA-512 split of the master key (spec §6 step 2).
struct SaeKeys {
    data_key: Zeroizing<[u8; 32]>,
    data_nonce: [u8; 12],
    footer_key: Zeroizing<[u8; 32]>,
    footer_nonce: [u8; 12],
}

impl SaeKeys {
    fn derive(master: &[u8; 32]) -> Self {
        let mut okm = Zeroizing::new([0u8; 88]);
        // 88 bytes is far below HKDF-SHA-512's limit, so expansion cannot fail.
        let _ = hkdf::Hkdf::<sha2::Sha512>::new(None, master).expand(&[], okm.as_mut());
        let mut keys = Self {
            data_key: Zeroizing::new([0u8; 32]),
            data_nonce: [0u8; 12],
            footer_key: Zeroizing::new([0u8; 32]),
            footer_nonce: [0u8; 12],
        };
        keys.data_key.copy_from_slice(&okm[0..32]);
        keys.data_nonce.copy_from_slice(&okm[32..44]);
        keys.footer_key.copy_from_slice(&okm[44..76]);
        keys.footer_nonce.copy_from_slice(&okm[76..88]);
        keys
    }
}

struct SaeEncrypt<'a> {
    signer: &'a PrivateKey,
    signer_id: KeyId,
    hasher: BodyHasher,
    expected_len: u64,
    footer_key: Zeroizing<[u8; 32]>,
    footer_nonce: [u8; 12],
}

/// Streaming encryption state machine; see [`Crypto::encryptor`].
pub struct Encryptor<'a> {
    header: Vec<u8>,
    gcm: BodyCipher,
    padding: bool,
    fed: u64,
    sae: Option<SaeEncrypt<'a>>,
}

impl core::fmt::Debug for Encryptor<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Encryptor")
            .field("fed", &self.fed)
            .field("padding", &self.padding)
            .finish_non_exhaustive()
    }
}

impl Encryptor<'_> {
    /// The message info: the first bytes of the message.
    pub fn header(&self) -> &[u8] {
        &self.header
    }

    /// Encrypts the next piece of plaintext, appending ciphertext to `out`.
    pub fn update(&mut self, plaintext: &[u8], out: &mut Vec<u8>) -> Result<()> {
        self.fed = self
            .fed
            .checked_add(plaintext.len() as u64)
            .filter(|&n| n <= GCM_MAX_BODY - padding::MAX_TAIL as u64)
            .ok_or(Error::InvalidArgument("plaintext too large for AES-GCM"))?;
        if let Some(sae) = &mut self.sae {
            if self.fed > sae.expected_len {
                return Err(Error::InvalidArgument(
                    "more plaintext than the length declared for sign-and-encrypt",
                ));
            }
            sae.hasher.update(plaintext);
        }
        let start = out.len();
        out.extend_from_slice(plaintext);
        self.gcm.update(&mut out[start..]).map_err(encrypt_error)?;
        Ok(())
    }

    /// Finishes the message: padding, GCM tag and, for sign-and-encrypt, the encrypted footer.
    pub fn finish(mut self, rng: &mut impl CryptoRngCore, out: &mut Vec<u8>) -> Result<()> {
        if let Some(sae) = &self.sae {
            if self.fed != sae.expected_len {
                return Err(Error::InvalidArgument(
                    "less plaintext than the length declared for sign-and-encrypt",
                ));
            }
        }
        if self.padding {
            let start = out.len();
            out.extend_from_slice(&padding::tail(self.fed, rng));
            self.gcm.update(&mut out[start..]).map_err(encrypt_error)?;
        }
        out.extend_from_slice(&self.gcm.tag().map_err(encrypt_error)?);
        if let Some(sae) = self.sae {
            let digest = sae.hasher.finish().ok_or_else(hash_thread_failed)?;
            let raw = signature::sign_digest(&digest, sae.signer, rng)?;
            let footer = Footer {
                signers: vec![SignerInfo {
                    signer_id: sae.signer_id.as_bytes().to_vec(),
                    algorithm: sae.signer.public_key().algorithm(),
                    signature: raw,
                }],
            }
            .encode();
            let start = out.len();
            out.extend_from_slice(&footer);
            let mut gcm = Gcm::new(&sae.footer_key, &sae.footer_nonce);
            gcm.encrypt(&mut out[start..])
                .map_err(|_| encrypt_error(BodyCipherError::Usage))?;
            out.extend_from_slice(&gcm.finish());
        }
        Ok(())
    }
}

/// Keeps the last `keep` bytes of a stream in `held`, passing everything before them to `emit`.
fn hold_back(
    held: &mut Vec<u8>,
    input: &[u8],
    keep: usize,
    mut emit: impl FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    let total = held.len() + input.len();
    if total <= keep {
        held.extend_from_slice(input);
        return Ok(());
    }
    let release = total - keep;
    let from_held = release.min(held.len());
    if from_held > 0 {
        emit(&held[..from_held])?;
        held.drain(..from_held);
    }
    let (now, later) = input.split_at(release - from_held);
    if !now.is_empty() {
        emit(now)?;
    }
    held.extend_from_slice(later);
    Ok(())
}

/// How the body of a message being decrypted is signed.
enum SignatureSource {
    None,
    /// Sign-then-encrypt: the decoded signature and the claimed signer id.
    Params {
        signature: Option<VirgilSignature>,
        signer_id: Option<Vec<u8>>,
    },
    /// Sign-and-encrypt: the footer, decrypted at the end.
    Footer {
        key: Zeroizing<[u8; 32]>,
        nonce: [u8; 12],
        data_size: u64,
        digest: HashAlg,
    },
}

struct Body {
    /// `None` only once [`Body::finish`] has taken it.
    gcm: Option<BodyCipher>,
    source: SignatureSource,
    padded: bool,
    /// Ciphertext not yet known to be body (the possible tag), or the tag and footer.
    held_ct: Vec<u8>,
    /// Decrypted bytes that may still turn out to be padding.
    held_plain: Vec<u8>,
    scratch: Vec<u8>,
    body_ct_len: u64,
    hasher: Option<BodyHasher>,
}

enum State {
    Header(Vec<u8>),
    Body(Box<Body>),
    Poisoned,
}

/// Streaming decryption state machine: push ciphertext with [`Decryptor::update`], then call
/// [`Decryptor::finish`], which authenticates, verifies and only then commits the [`Stage`].
pub struct Decryptor<'a, S: Stage> {
    key: &'a PrivateKey,
    verify_with: Option<&'a [PublicKey]>,
    stage: S,
    state: State,
    backend: Backend,
}

impl<S: Stage> core::fmt::Debug for Decryptor<'_, S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Decryptor")
            .field("key", self.key)
            .finish_non_exhaustive()
    }
}

impl<'a, S: Stage> Decryptor<'a, S> {
    /// Starts decrypting with `key`. With `verify_with`, a valid signature by one of those keys
    /// is required (an empty list is an error).
    pub fn new(
        key: &'a PrivateKey,
        verify_with: Option<&'a [PublicKey]>,
        stage: S,
    ) -> Result<Self> {
        if verify_with.is_some_and(<[PublicKey]>::is_empty) {
            return Err(Error::InvalidArgument(
                "no keys given to verify the signature with",
            ));
        }
        Ok(Self {
            key,
            verify_with,
            stage,
            state: State::Header(Vec::new()),
            backend: Backend::default(),
        })
    }

    /// Runs the body's AES-256-GCM and SHA-512 on `backend` instead of [`Backend::default`].
    /// The body's cipher is set up once the message info has been read, so this counts only
    /// before the first [`update`](Self::update) that completes the message info.
    pub fn with_backend(self, backend: Backend) -> Self {
        Self { backend, ..self }
    }

    /// Feeds the next piece of the message.
    pub fn update(&mut self, mut input: &[u8]) -> Result<()> {
        let result = self.update_inner(&mut input);
        if result.is_err() {
            self.state = State::Poisoned;
        }
        result
    }

    fn update_inner(&mut self, input: &mut &[u8]) -> Result<()> {
        while let State::Header(buf) = &mut self.state {
            // Never read past the message info: first its DER header, then exactly its length.
            let wanted = match MessageInfo::encoded_len(buf)? {
                Some(n) if n > MAX_MESSAGE_INFO => {
                    return Err(FormatError::new(
                        FormatErrorKind::InvalidLength {
                            field: "message_info",
                        },
                        0,
                    )
                    .into())
                }
                Some(n) => n,
                None => der_header_len(buf),
            };
            let take = wanted.saturating_sub(buf.len()).min(input.len());
            buf.extend_from_slice(&input[..take]);
            *input = &input[take..];
            if MessageInfo::encoded_len(buf)? == Some(buf.len()) {
                let body = open(self.key, self.verify_with, self.backend, buf)?;
                self.state = State::Body(Box::new(body));
            } else if input.is_empty() {
                return Ok(());
            }
        }
        match &mut self.state {
            State::Body(body) => body.feed(input, &mut self.stage),
            State::Header(_) => Ok(()),
            State::Poisoned => Err(Error::InvalidArgument("decryptor used after an error")),
        }
    }
}

/// Bytes needed to read a DER header that starts `prefix`: the tag and the first length byte, then
/// the long-form length bytes.
fn der_header_len(prefix: &[u8]) -> usize {
    match prefix.get(1) {
        Some(&first) if first >= 0x80 => 2 + usize::from(first & 0x7f),
        _ => 2,
    }
}

/// Parses the message info, finds the recipient entry of `key` and sets up the body decryption.
fn open(
    key: &PrivateKey,
    verify_with: Option<&[PublicKey]>,
    backend: Backend,
    header: &[u8],
) -> Result<Body> {
    {
        let info = MessageInfo::decode(header)?;
        let public = key.public_key();
        let ids = [
            public.key_id_with(KeyIdScheme::Sha512Truncated),
            public.key_id_with(KeyIdScheme::Sha256),
        ];
        let algorithm = public.algorithm();
        let encrypted_key = info
            .recipients
            .iter()
            .find_map(|r| match r {
                RecipientInfo::KeyTrans {
                    rid,
                    algorithm: alg,
                    encrypted_key,
                } if *alg == algorithm && ids.iter().any(|id| id.as_bytes() == rid.as_slice()) => {
                    Some(encrypted_key)
                }
                _ => None,
            })
            .ok_or(Error::RecipientNotFound)?;
        let secret = ecies::unwrap(encrypted_key, key)?;

        let (gcm, source) = match &info.footer_info {
            Some(footer) => {
                let keys = SaeKeys::derive(&secret);
                // The nonce in the message info is redundant here (the derived one is used), and
                // every writer stores the derived one. Requiring that leaves no byte of the
                // message info malleable without detection.
                if !bool::from(info.nonce.ct_eq(&keys.data_nonce)) {
                    return Err(Error::DecryptionFailed);
                }
                let mut gcm = BodyCipher::new(
                    backend,
                    Direction::Decrypt,
                    &keys.data_key,
                    &keys.data_nonce,
                )
                .map_err(|_| Error::DecryptionFailed)?;
                let digest = match &footer.signed_data_digest {
                    Some(d) => {
                        gcm.set_aad(&FooterInfo::signed_data_info_der(d))
                            .map_err(|_| Error::DecryptionFailed)?;
                        d.hash().unwrap_or(HashAlg::Sha512)
                    }
                    None => HashAlg::Sha512,
                };
                if footer.data_size > GCM_MAX_BODY {
                    return Err(FormatError::invalid("footer_info.data_size", 0).into());
                }
                let source = SignatureSource::Footer {
                    key: keys.footer_key,
                    nonce: keys.footer_nonce,
                    data_size: footer.data_size,
                    digest,
                };
                (gcm, source)
            }
            None => {
                let gcm = BodyCipher::new(backend, Direction::Decrypt, &secret, &info.nonce)
                    .map_err(|_| Error::DecryptionFailed)?;
                let source = match info.param_data(DATA_SIGNATURE) {
                    Some(sig) => SignatureSource::Params {
                        signature: Some(VirgilSignature::decode(sig)?),
                        signer_id: info.param_data(DATA_SIGNER_ID).map(<[u8]>::to_vec),
                    },
                    None if info.param_data(DATA_SIGNER_ID).is_some() => SignatureSource::Params {
                        signature: None,
                        signer_id: None,
                    },
                    None => SignatureSource::None,
                };
                (gcm, source)
            }
        };
        let hasher = match (&source, verify_with) {
            (_, None) => None,
            (
                SignatureSource::Params {
                    signature: Some(s), ..
                },
                Some(_),
            ) => Some(BodyHasher::new(Hasher::on(backend, s.hash()))),
            (SignatureSource::Footer { digest, .. }, Some(_)) => {
                Some(BodyHasher::new(Hasher::on(backend, *digest)))
            }
            _ => None,
        };
        Ok(Body {
            gcm: Some(gcm),
            source,
            padded: info.padding.is_some(),
            held_ct: Vec::new(),
            held_plain: Vec::new(),
            scratch: Vec::with_capacity(CHUNK),
            body_ct_len: 0,
            hasher,
        })
    }
}

impl<S: Stage> Decryptor<'_, S> {
    /// Authenticates the message, verifies its signature and commits the stage.
    pub fn finish(mut self) -> Result<(S::Output, DecryptInfo)> {
        let body = match core::mem::replace(&mut self.state, State::Poisoned) {
            State::Body(body) => body,
            State::Header(buf) => {
                return Err(FormatError::truncated("message_info", buf.len()).into());
            }
            State::Poisoned => return Err(Error::InvalidArgument("decryptor used after an error")),
        };
        let info = body.finish(&mut self.stage, self.verify_with)?;
        self.stage.flush()?;
        Ok((self.stage.commit()?, info))
    }
}

impl Body {
    fn feed(&mut self, input: &[u8], stage: &mut impl Write) -> Result<()> {
        match &self.source {
            SignatureSource::Footer { data_size, .. } => {
                let remaining = data_size.saturating_sub(self.body_ct_len);
                let take = usize::try_from(remaining)
                    .unwrap_or(usize::MAX)
                    .min(input.len());
                let (body, rest) = input.split_at(take);
                self.decrypt_ct(body, stage)?;
                if self.held_ct.len() + rest.len() > MAX_FOOTER + 2 * TAG_LEN {
                    return Err(FormatError::new(
                        FormatErrorKind::TrailingData { field: "footer" },
                        0,
                    )
                    .into());
                }
                self.held_ct.extend_from_slice(rest);
                Ok(())
            }
            _ => {
                let mut held = core::mem::take(&mut self.held_ct);
                let result = hold_back(&mut held, input, TAG_LEN, |ct| self.decrypt_ct(ct, stage));
                self.held_ct = held;
                result
            }
        }
    }

    /// Decrypts body ciphertext that is known not to be the tag.
    fn decrypt_ct(&mut self, ct: &[u8], stage: &mut impl Write) -> Result<()> {
        for piece in ct.chunks(CHUNK) {
            self.body_ct_len += piece.len() as u64;
            if self.body_ct_len > GCM_MAX_BODY {
                return Err(Error::DecryptionFailed);
            }
            let mut scratch = core::mem::take(&mut self.scratch);
            scratch.clear();
            scratch.extend_from_slice(piece);
            let decrypted = match &mut self.gcm {
                Some(gcm) => gcm
                    .update(&mut scratch)
                    .map_err(|_| Error::DecryptionFailed),
                None => Err(Error::DecryptionFailed),
            };
            if let Err(e) = decrypted {
                self.scratch = scratch;
                return Err(e);
            }
            let result = self.emit_plain(&scratch, stage);
            self.scratch = scratch;
            result?;
        }
        Ok(())
    }

    fn emit_plain(&mut self, plain: &[u8], stage: &mut impl Write) -> Result<()> {
        if self.padded {
            let mut held = core::mem::take(&mut self.held_plain);
            let hasher = &mut self.hasher;
            let result = hold_back(&mut held, plain, padding::MAX_TAIL, |p| {
                release(hasher, p, stage)
            });
            self.held_plain = held;
            result
        } else {
            release(&mut self.hasher, plain, stage)
        }
    }

    fn finish(
        mut self: Box<Self>,
        stage: &mut impl Write,
        verify_with: Option<&[PublicKey]>,
    ) -> Result<DecryptInfo> {
        let (tag, footer_ct) = match &self.source {
            SignatureSource::Footer { data_size, .. } => {
                if self.body_ct_len != *data_size || self.held_ct.len() < 2 * TAG_LEN {
                    return Err(Error::DecryptionFailed);
                }
                let (tag, footer) = self.held_ct.split_at(TAG_LEN);
                (tag.to_vec(), Some(footer.to_vec()))
            }
            _ => {
                if self.held_ct.len() != TAG_LEN {
                    return Err(Error::DecryptionFailed);
                }
                (core::mem::take(&mut self.held_ct), None)
            }
        };
        if !self.gcm.take().is_some_and(|gcm| gcm.verify(&tag)) {
            return Err(Error::DecryptionFailed);
        }
        if self.padded {
            let strip = padding::strip_len(&self.held_plain, self.body_ct_len)
                .ok_or(Error::DecryptionFailed)?;
            let keep = self.held_plain.len() - strip as usize;
            let held = core::mem::take(&mut self.held_plain);
            release(&mut self.hasher, &held[..keep], stage)?;
        }

        let digest = match self.hasher.take() {
            Some(h) => Some(h.finish().ok_or_else(hash_thread_failed)?),
            None => None,
        };
        match core::mem::replace(&mut self.source, SignatureSource::None) {
            SignatureSource::None => {
                if verify_with.is_some() {
                    return Err(Error::SignerNotFound);
                }
                Ok(DecryptInfo {
                    kind: MessageKind::Plain,
                    verified_by: None,
                })
            }
            SignatureSource::Params {
                signature,
                signer_id,
            } => {
                let verified_by = match (verify_with, signature, digest) {
                    (None, _, _) => None,
                    (Some(keys), Some(sig), Some(digest)) => {
                        Some(verify_params(keys, &sig, signer_id.as_deref(), &digest)?)
                    }
                    (Some(_), _, _) => return Err(Error::SignerNotFound),
                };
                Ok(DecryptInfo {
                    kind: MessageKind::SignThenEncrypt,
                    verified_by,
                })
            }
            SignatureSource::Footer { key, nonce, .. } => {
                let footer_ct = footer_ct.unwrap_or_default();
                let (ct, footer_tag) = footer_ct.split_at(footer_ct.len() - TAG_LEN);
                let mut footer = ct.to_vec();
                let mut gcm = Gcm::new(&key, &nonce);
                gcm.decrypt(&mut footer)
                    .map_err(|_| Error::DecryptionFailed)?;
                if !bool::from(gcm.finish().as_slice().ct_eq(footer_tag)) {
                    return Err(Error::DecryptionFailed);
                }
                let footer = Footer::decode(&footer)?;
                let verified_by = match (verify_with, digest) {
                    (None, _) => None,
                    (Some(keys), Some(digest)) => Some(verify_footer(keys, &footer, &digest)?),
                    (Some(_), None) => return Err(Error::SignerNotFound),
                };
                Ok(DecryptInfo {
                    kind: MessageKind::SignAndEncrypt,
                    verified_by,
                })
            }
        }
    }
}

fn release(hasher: &mut Option<BodyHasher>, plain: &[u8], stage: &mut impl Write) -> Result<()> {
    if let Some(h) = hasher {
        h.update(plain);
    }
    stage.write_all(plain)?;
    Ok(())
}

fn encrypt_error(e: BodyCipherError) -> Error {
    match e {
        BodyCipherError::Library => Error::Library("OpenSSL's AES-256-GCM failed"),
        _ => Error::InvalidArgument("plaintext too large for AES-GCM"),
    }
}

fn hash_thread_failed() -> Error {
    Error::Io(io::Error::other("the thread hashing the body stopped"))
}

fn matches_id(key: &PublicKey, id: &[u8]) -> bool {
    [KeyIdScheme::Sha512Truncated, KeyIdScheme::Sha256]
        .iter()
        .any(|&s| key.key_id_with(s).as_bytes() == id)
}

/// Sign-then-encrypt selection (spec §5): the keys whose id is the claimed signer id, or all of
/// them when the message names none. The reference uses a single key even when the id names
/// another key; Sealkit requires the id to match, so that the id cannot be altered unnoticed.
fn verify_params(
    keys: &[PublicKey],
    sig: &VirgilSignature,
    signer_id: Option<&[u8]>,
    digest: &[u8],
) -> Result<usize> {
    let candidates: Vec<usize> = (0..keys.len())
        .filter(|&i| signer_id.is_none_or(|id| matches_id(&keys[i], id)))
        .collect();
    if candidates.is_empty() {
        return Err(Error::SignerNotFound);
    }
    candidates
        .into_iter()
        .find(|&i| signature::verify_digest(digest, &sig.raw, &keys[i]).is_ok())
        .ok_or(Error::SignatureInvalid)
}

/// Sign-and-encrypt selection: a signer info whose id and algorithm match one of the keys must
/// carry a valid signature.
fn verify_footer(keys: &[PublicKey], footer: &Footer, digest: &[u8]) -> Result<usize> {
    let mut found = false;
    for signer in &footer.signers {
        for (i, key) in keys.iter().enumerate() {
            if key.algorithm() == signer.algorithm && matches_id(key, &signer.signer_id) {
                found = true;
                if signature::verify_digest(digest, &signer.signature, key).is_ok() {
                    return Ok(i);
                }
            }
        }
    }
    Err(if found {
        Error::SignatureInvalid
    } else {
        Error::SignerNotFound
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyType;
    use rand_core::OsRng;

    fn keys() -> (PrivateKey, PrivateKey, PrivateKey) {
        (
            PrivateKey::generate(KeyType::Ed25519, &mut OsRng),
            PrivateKey::generate(KeyType::Curve25519, &mut OsRng),
            PrivateKey::generate(KeyType::Secp256r1, &mut OsRng),
        )
    }

    #[test]
    fn every_mode_round_trips_for_mixed_recipients() {
        let (a, b, c) = keys();
        let recipients = [
            a.public_key().clone(),
            b.public_key().clone(),
            c.public_key().clone(),
        ];
        let crypto = Crypto::new();
        for padding in [false, true] {
            for len in [0usize, 1, 159, 160, 161, 5000] {
                let pt: Vec<u8> = (0..len).map(|i| i as u8).collect();
                let plain = crypto.encrypt(&mut OsRng, &pt, &recipients, padding);
                let ste = crypto.sign_then_encrypt(&mut OsRng, &pt, &a, &recipients, padding);
                let sae = crypto.sign_and_encrypt(&mut OsRng, &pt, &a, &recipients, padding);
                for key in [&a, &b, &c] {
                    let signer = [a.public_key().clone()];
                    assert_eq!(
                        plain
                            .as_ref()
                            .ok()
                            .and_then(|m| crypto.decrypt(m, key).ok()),
                        Some(pt.clone())
                    );
                    assert_eq!(
                        ste.as_ref()
                            .ok()
                            .and_then(|m| crypto.decrypt_then_verify(m, key, &signer).ok()),
                        Some(pt.clone())
                    );
                    assert_eq!(
                        sae.as_ref()
                            .ok()
                            .and_then(|m| crypto.decrypt_and_verify(m, key, &signer).ok()),
                        Some(pt.clone())
                    );
                }
            }
        }
    }

    #[test]
    fn tampering_anywhere_fails_and_stages_nothing() {
        let (a, b, _) = keys();
        let crypto = Crypto::new();
        let msg = crypto
            .sign_and_encrypt(&mut OsRng, &[7u8; 300], &a, &[b.public_key().clone()], true)
            .unwrap_or_default();
        let signer = [a.public_key().clone()];
        for i in 0..msg.len() {
            let mut bad = msg.clone();
            bad[i] ^= 0x01;
            let result = crypto.decrypt_verified(&bad, &b, Some(&signer));
            assert!(result.is_err(), "flip at {i} accepted");
        }
        for cut in 0..msg.len() {
            assert!(crypto.decrypt(&msg[..cut], &b).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn wrong_signer_and_missing_signature_are_reported() {
        let (a, b, _) = keys();
        let other = PrivateKey::generate(KeyType::Ed25519, &mut OsRng);
        let crypto = Crypto::new();
        let to = [b.public_key().clone()];
        let plain = crypto
            .encrypt(&mut OsRng, b"x", &to, false)
            .unwrap_or_default();
        let sae = crypto
            .sign_and_encrypt(&mut OsRng, b"x", &a, &to, false)
            .unwrap_or_default();
        let ste = crypto
            .sign_then_encrypt(&mut OsRng, b"x", &a, &to, false)
            .unwrap_or_default();
        let wrong = [other.public_key().clone()];
        assert!(matches!(
            crypto.decrypt_verified(&plain, &b, Some(&wrong)),
            Err(Error::SignerNotFound)
        ));
        assert!(matches!(
            crypto.decrypt_verified(&sae, &b, Some(&wrong)),
            Err(Error::SignerNotFound)
        ));
        assert!(matches!(
            crypto.decrypt_verified(&ste, &b, Some(&wrong)),
            Err(Error::SignerNotFound)
        ));
        // A card chain: the old key first, the current one second.
        let chain = [other.public_key().clone(), a.public_key().clone()];
        assert_eq!(
            crypto
                .decrypt_verified(&sae, &b, Some(&chain))
                .ok()
                .map(|(_, i)| i.verified_by),
            Some(Some(1))
        );
        assert!(matches!(
            crypto.decrypt(&plain, &other),
            Err(Error::RecipientNotFound)
        ));
    }

    #[test]
    fn short_message_info_fed_in_pieces_terminates() {
        // Found by the decrypt fuzz target: a tiny message info followed by more bytes.
        let key = PrivateKey::ed25519_from_seed(&[7; 32]);
        for input in [
            &[0x30u8, 0x01, 0x00, 0xff, 0xff, 0xff, 0xff][..],
            &[0x30, 0x00, 1, 2, 3, 4, 5],
        ] {
            for split in 0..input.len() {
                let mut dec = Decryptor::new(&key, None, Vec::new()).unwrap_or_else(|_| panic!());
                let r = dec
                    .update(&input[..split])
                    .and_then(|()| dec.update(&input[split..]));
                assert!(r.is_err() || dec.finish().is_err());
            }
        }
    }

    /// Bodies past `PIPELINE_AFTER` hash on a worker thread on both sides; the signature must
    /// still cover exactly the plaintext, and a flipped byte must still be caught.
    #[test]
    fn long_signed_streams_hash_on_a_second_core_and_verify() {
        let (a, b, _) = keys();
        let to = [b.public_key().clone()];
        let signer = [a.public_key().clone()];
        let crypto = Crypto::new();
        let len = 3 * crate::hash_pipe::PIPELINE_AFTER as usize + 1001;
        let pt: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let signature = signature::sign(&pt, &a, &mut OsRng).unwrap_or_default();
        for signing in [
            Signing::SignAndEncrypt {
                signer: &a,
                plaintext_len: len as u64,
            },
            Signing::SignThenEncrypt {
                signer: &a,
                signature: &signature,
            },
        ] {
            let mut msg = Vec::new();
            let sent = crypto.encrypt_stream(&mut OsRng, &pt[..], &mut msg, &to, signing, true);
            assert!(sent.is_ok(), "{sent:?}");
            let back = crypto.decrypt_stream(&msg[..], &b, Some(&signer), Vec::new());
            assert_eq!(back.ok().map(|(p, _)| p), Some(pt.clone()));
            let other = PrivateKey::generate(KeyType::Ed25519, &mut OsRng);
            let wrong = [other.public_key().clone()];
            assert!(crypto
                .decrypt_stream(&msg[..], &b, Some(&wrong), Vec::new())
                .is_err());
            let mut bad = msg.clone();
            let last = bad.len() - 1;
            bad[last] ^= 1;
            assert!(crypto
                .decrypt_stream(&bad[..], &b, Some(&signer), Vec::new())
                .is_err());
        }
    }

    #[test]
    fn declared_length_is_enforced() {
        let (a, b, _) = keys();
        let to = [b.public_key().clone()];
        let crypto = Crypto::new();
        let signing = Signing::SignAndEncrypt {
            signer: &a,
            plaintext_len: 10,
        };
        let mut enc = crypto.encryptor(&mut OsRng, &to, signing, false);
        let mut out = Vec::new();
        if let Ok(enc) = enc.as_mut() {
            assert!(enc.update(&[0; 9], &mut out).is_ok());
        }
        assert!(matches!(
            enc.and_then(|e| e.finish(&mut OsRng, &mut out)),
            Err(Error::InvalidArgument(_))
        ));
    }
}
