//! Client signing (wire.md §6): what a client signs, with which key, and how an MP checks it.
//!
//! A client has one RSA key. Its registration carries the key's self-signed certificate
//! (`Certificates/Signing`, DER as hex) and signs its own `Data` element; every later message to
//! a signed endpoint carries a `Hook2 Name="clientauth"` with the key as a CryptoAPI
//! `PUBLICKEYBLOB` (`PublicKey`), a signature of the client's SMS ID (`ClientIDSignature`) and one
//! of the payload as sent (`PayloadSignature`).
//!
//! | signed | bytes |
//! |---|---|
//! | registration `SignatureValue` | the `<Data ...>...</Data>` text as sent, UTF-16LE, then a UTF-16 NUL |
//! | `ClientIDSignature` | `SourceID` (`GUID:...`) as sent, UTF-16LE, then a UTF-16 NUL |
//! | `PayloadSignature` | the body part's bytes as sent: the zlib stream, or the declared `Body Length` of an uncompressed body |
//!
//! Signatures are RSA PKCS#1 v1.5 over SHA-256, the bytes **reversed** (CryptoAPI writes them
//! little-endian), upper-case hex. Some senders leave the DigestInfo out of the padding
//! ([`Padding::Bare`]); [`PublicKey::verify`] accepts both. A registration signed without the
//! trailing NUL is accepted too: clients differ there as well.
//!
//! Signing and the usual verification are ring's (twice as fast as the `rsa` crate on this
//! path, and already in the build for TLS); the `rsa` crate makes keys and handles the bare
//! padding, which ring does not offer.

use ring::signature::{self as ring_signature, RsaKeyPair, RsaPublicKeyComponents};
use rsa::traits::PublicKeyParts;
use rsa::{BoxedUint, Pkcs1v15Sign, PrivateKey as RsaPrivateKey, PublicKey as RsaPublicKey};
use sha2::{Digest, Sha256};

use crate::envelope::Hook;
use crate::utf16;

/// The `HashAlgorithm` clients name: sha256WithRSAEncryption.
pub const HASH_ALGORITHM: &str = "1.2.840.113549.1.1.11";

/// The header hook that carries the signatures.
pub const CLIENT_AUTH: &str = "clientauth";

/// The endpoints whose messages are signed: policy, relay (state messages), discovery,
/// inventory and status, as a real MP requires of HTTP clients.
pub const SIGNED_ENDPOINTS: &[&str] = &[
    "MP_PolicyManager",
    "MP_RelayEndpoint",
    "MP_DdrEndpoint",
    "MP_HinvEndpoint",
    "MP_SinvEndpoint",
    "MP_StatusReceiver",
    "StatusReceiver",
];

/// Whether messages to `endpoint` are signed ([`SIGNED_ENDPOINTS`]).
pub fn is_signed_endpoint(endpoint: &str) -> bool {
    SIGNED_ENDPOINTS.iter().any(|e| e.eq_ignore_ascii_case(endpoint))
}

/// The moduli a key may have, in bits (what CryptoAPI clients use, and ring verifies).
pub const KEY_BITS: std::ops::RangeInclusive<u32> = 1024..=8192;

/// Why a key, a certificate or a signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningError {
    #[error("{0} is not hex")]
    Hex(&'static str),
    #[error("the PublicKey blob is not an RSA PUBLICKEYBLOB: {0}")]
    Blob(&'static str),
    #[error("the signing certificate cannot be read: {0}")]
    Certificate(String),
    #[error("the key's modulus is {0} bits; 1024 to 8192 are accepted")]
    KeySize(u32),
    #[error("{what} is {got} bytes; the key's signatures are {want}")]
    Length { what: &'static str, got: usize, want: usize },
    #[error("{0} does not verify with the client's key")]
    Mismatch(&'static str),
    #[error("the key cannot sign: {0}")]
    Key(String),
}

/// How the signature's padding holds the digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// PKCS#1 v1.5 as specified: the SHA-256 DigestInfo, then the digest.
    DigestInfo,
    /// The digest alone, as some senders write it.
    Bare,
}

/// A client's RSA public key.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PublicKey {
    /// The modulus, big-endian, no leading zeros.
    n: Vec<u8>,
    e: u32,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({} bits, e={})", self.bits(), self.e)
    }
}

const PUBLICKEYBLOB: u8 = 0x06;
const CUR_BLOB_VERSION: u8 = 0x02;
const CALG_RSA_KEYX: u32 = 0x0000_A400;
const CALG_RSA_SIGN: u32 = 0x0000_2400;
/// `RSA1`, little-endian.
const RSA1: u32 = 0x3141_5352;
const BLOB_HEAD: usize = 20;

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

impl PublicKey {
    fn new(n: &[u8], e: u32) -> Result<PublicKey, SigningError> {
        let start = n.iter().position(|&b| b != 0).unwrap_or(n.len());
        let key = PublicKey { n: n[start..].to_vec(), e };
        if !KEY_BITS.contains(&key.bits()) {
            return Err(SigningError::KeySize(key.bits()));
        }
        if e < 3 || e.is_multiple_of(2) {
            return Err(SigningError::Blob("the public exponent is not an odd number of 3 or more"));
        }
        Ok(key)
    }

    /// The modulus's size in bits.
    pub fn bits(&self) -> u32 {
        self.n.first().map_or(0, |&top| (self.n.len() as u32 - 1) * 8 + (8 - top.leading_zeros()))
    }

    /// How long the key's signatures are.
    pub fn signature_len(&self) -> usize {
        self.n.len()
    }

    /// Reads a CryptoAPI `PUBLICKEYBLOB` (`BLOBHEADER`, `RSAPUBKEY`, the modulus little-endian).
    pub fn from_blob(blob: &[u8]) -> Result<PublicKey, SigningError> {
        if blob.len() < BLOB_HEAD {
            return Err(SigningError::Blob("shorter than its header"));
        }
        if blob[0] != PUBLICKEYBLOB || blob[1] != CUR_BLOB_VERSION {
            return Err(SigningError::Blob("not a version 2 PUBLICKEYBLOB"));
        }
        if !matches!(u32_at(blob, 4), CALG_RSA_KEYX | CALG_RSA_SIGN) {
            return Err(SigningError::Blob("not an RSA key"));
        }
        if u32_at(blob, 8) != RSA1 {
            return Err(SigningError::Blob("no RSA1 magic"));
        }
        let bits = u32_at(blob, 12);
        if !bits.is_multiple_of(8) || !KEY_BITS.contains(&bits) {
            return Err(SigningError::KeySize(bits));
        }
        if blob.len() != BLOB_HEAD + bits as usize / 8 {
            return Err(SigningError::Blob("its length is not what its bit length says"));
        }
        let mut n = blob[BLOB_HEAD..].to_vec();
        n.reverse();
        PublicKey::new(&n, u32_at(blob, 16))
    }

    /// [`PublicKey::from_blob`] of hex text (the `PublicKey` hook property).
    pub fn from_blob_hex(hex: &str) -> Result<PublicKey, SigningError> {
        PublicKey::from_blob(&from_hex(hex).ok_or(SigningError::Hex("PublicKey"))?)
    }

    /// The CryptoAPI `PUBLICKEYBLOB` clients send (`CALG_RSA_KEYX`, as they write it).
    pub fn to_blob(&self) -> Vec<u8> {
        let len = self.n.len().div_ceil(8) * 8;
        let mut blob = Vec::with_capacity(BLOB_HEAD + len);
        blob.extend_from_slice(&[PUBLICKEYBLOB, CUR_BLOB_VERSION, 0, 0]);
        for word in [CALG_RSA_KEYX, RSA1, len as u32 * 8, self.e] {
            blob.extend_from_slice(&word.to_le_bytes());
        }
        blob.extend(self.n.iter().rev());
        blob.resize(BLOB_HEAD + len, 0);
        blob
    }

    /// The blob as the hook carries it: upper-case hex.
    pub fn to_blob_hex(&self) -> String {
        to_hex(&self.to_blob())
    }

    /// The key of an X.509 certificate (DER), which must be RSA.
    pub fn from_certificate(der: &[u8]) -> Result<PublicKey, SigningError> {
        use rsa::pkcs8::DecodePublicKey;
        use x509_cert::der::Decode;
        let bad = |e: &dyn std::fmt::Display| SigningError::Certificate(e.to_string());
        let cert = x509_cert::Certificate::from_der(der).map_err(|e| bad(&e))?;
        let spki = cert.tbs_certificate().subject_public_key_info();
        let spki_der = x509_cert::der::Encode::to_der(spki).map_err(|e| bad(&e))?;
        let key = RsaPublicKey::from_public_key_der(&spki_der).map_err(|e| bad(&e))?;
        PublicKey::from_rsa(&key)
    }

    /// [`PublicKey::from_certificate`] of hex text (`Certificates/Signing`).
    pub fn from_certificate_hex(hex: &str) -> Result<PublicKey, SigningError> {
        PublicKey::from_certificate(&from_hex(hex).ok_or(SigningError::Hex("the signing certificate"))?)
    }

    fn from_rsa(key: &RsaPublicKey) -> Result<PublicKey, SigningError> {
        let e = key.e().to_be_bytes();
        let start = e.iter().position(|&b| b != 0).unwrap_or(e.len());
        if e.len() - start > 4 {
            return Err(SigningError::Blob("the public exponent does not fit a PUBLICKEYBLOB"));
        }
        let e = e[start..].iter().fold(0u32, |acc, &b| acc << 8 | u32::from(b));
        PublicKey::new(&key.n().as_ref().to_be_bytes(), e)
    }

    /// Checks `signature_hex` (reversed, as CryptoAPI writes it) over `message`; `what` names
    /// it in the error. Returns the padding it was made with.
    pub fn verify(
        &self,
        what: &'static str,
        message: &[u8],
        signature_hex: &str,
    ) -> Result<Padding, SigningError> {
        let mut signature = from_hex(signature_hex).ok_or(SigningError::Hex(what))?;
        if signature.len() != self.n.len() {
            return Err(SigningError::Length { what, got: signature.len(), want: self.n.len() });
        }
        signature.reverse();
        let e = self.e.to_be_bytes();
        let ring_key = RsaPublicKeyComponents {
            n: self.n.as_slice(),
            e: &e[e.iter().position(|&b| b != 0).unwrap_or(3)..],
        };
        if ring_key
            .verify(&ring_signature::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY, message, &signature)
            .is_ok()
        {
            return Ok(Padding::DigestInfo);
        }
        let key =
            RsaPublicKey::new(BoxedUint::from_be_slice_vartime(&self.n), BoxedUint::from(u64::from(self.e)))
                .map_err(|e| SigningError::Key(e.to_string()))?;
        key.verify(Pkcs1v15Sign::new_unprefixed(), &Sha256::digest(message), &signature)
            .map(|()| Padding::Bare)
            .map_err(|_| SigningError::Mismatch(what))
    }
}

/// A client's signing key.
pub struct SigningKey {
    /// ring's key, for keys of 2048 bits or more (ring signs no smaller ones).
    ring: Option<RsaKeyPair>,
    rsa: RsaPrivateKey,
    public: PublicKey,
    pkcs8: Vec<u8>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("public", &self.public).finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new key of `bits` from `rng` (a seeded one makes the same key again).
    pub fn generate<R: rsa::rand_core::TryCryptoRng + ?Sized>(
        rng: &mut R,
        bits: u32,
    ) -> Result<SigningKey, SigningError> {
        let key = RsaPrivateKey::new(rng, bits as usize).map_err(|e| SigningError::Key(e.to_string()))?;
        SigningKey::from_rsa(key)
    }

    /// The key `rsa` holds.
    pub fn from_rsa(rsa: RsaPrivateKey) -> Result<SigningKey, SigningError> {
        use rsa::pkcs8::EncodePrivateKey;
        let pkcs8 = rsa.to_pkcs8_der().map_err(|e| SigningError::Key(e.to_string()))?.as_bytes().to_vec();
        let ring = RsaKeyPair::from_pkcs8(&pkcs8).ok();
        let public = PublicKey::from_rsa(&rsa.to_public_key())?;
        Ok(SigningKey { ring, rsa, public, pkcs8 })
    }

    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// The private key as PKCS#8 DER (to make its certificate).
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The signature of `message`, reversed and in upper-case hex as clients send it.
    pub fn sign(&self, message: &[u8], padding: Padding) -> String {
        to_hex(&self.sign_reversed(message, padding))
    }

    /// The signature of `message`, reversed (CryptoAPI's byte order).
    pub fn sign_reversed(&self, message: &[u8], padding: Padding) -> Vec<u8> {
        let mut signature = match padding {
            Padding::DigestInfo => {
                let signed = self.ring.as_ref().and_then(|ring| {
                    let mut out = vec![0u8; ring.public().modulus_len()];
                    let random = ring::rand::SystemRandom::new();
                    // Fails only when the system's random source does (blinding).
                    ring.sign(&ring_signature::RSA_PKCS1_SHA256, &random, message, &mut out)
                        .ok()
                        .map(|()| out)
                });
                signed.unwrap_or_else(|| self.rsa_sign(Pkcs1v15Sign::new::<Sha256>(), message))
            }
            Padding::Bare => self.rsa_sign(Pkcs1v15Sign::new_unprefixed(), message),
        };
        signature.reverse();
        signature
    }

    fn rsa_sign(&self, scheme: Pkcs1v15Sign, message: &[u8]) -> Vec<u8> {
        // Signing a digest with a well-formed key of at least 1024 bits cannot fail.
        self.rsa.sign(scheme, &Sha256::digest(message)).unwrap_or_default()
    }
}

/// What `ClientIDSignature` signs: the `SourceID` as sent, UTF-16LE, then a NUL.
pub fn client_id_message(source_id: &str) -> Vec<u8> {
    with_nul(utf16::encode(source_id, false))
}

fn with_nul(mut v: Vec<u8>) -> Vec<u8> {
    v.extend_from_slice(&[0, 0]);
    v
}

/// The `<Data ...>...</Data>` element of a registration request as sent (what its signature
/// covers), or `None` without one.
pub fn registration_data(xml: &str) -> Option<&str> {
    let mut from = 0;
    let start = loop {
        let at = from + xml.get(from..)?.find("<Data")?;
        match xml.as_bytes().get(at + 5) {
            Some(b' ' | b'\t' | b'\r' | b'\n' | b'>') => break at,
            _ => from = at + 5,
        }
    };
    let end = start + xml[start..].find("</Data>")? + "</Data>".len();
    xml.get(start..end)
}

/// The messages a registration's signature may cover: the `Data` element in UTF-16LE with the
/// NUL clients add, then without it. Empty without a `Data` element.
pub fn registration_messages(xml: &str) -> Vec<Vec<u8>> {
    registration_data(xml).map_or_else(Vec::new, |data| {
        let bare = utf16::encode(data, false);
        vec![with_nul(bare.clone()), bare]
    })
}

/// The `clientauth` hook of a signed message.
pub fn client_auth_hook(
    machine: &str,
    public_key_hex: &str,
    client_id_signature: &str,
    payload_signature: &str,
) -> Hook {
    let p = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    Hook {
        element: "Hook2".into(),
        name: CLIENT_AUTH.into(),
        properties: vec![
            p("AuthSenderMachine", machine),
            p("PublicKey", public_key_hex),
            p("ClientIDSignature", client_id_signature),
            p("PayloadSignature", payload_signature),
            p("ClientCapabilities", "NonSSL"),
            p("HashAlgorithm", HASH_ALGORITHM),
        ],
    }
}

/// Upper-case hex.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// Bytes of hex text (either case; surrounding whitespace ignored), or `None`.
pub fn from_hex(text: &str) -> Option<Vec<u8>> {
    let text = text.trim().as_bytes();
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| char::from(c).to_digit(16).map(|d| d as u8);
    text.chunks_exact(2).map(|p| Some(digit(p[0])? << 4 | digit(p[1])?)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;

    fn key(seed: u64) -> SigningKey {
        SigningKey::generate(&mut rand::rngs::ChaCha8Rng::seed_from_u64(seed), 2048).expect("a key")
    }

    #[test]
    fn both_paddings_verify_and_anything_else_does_not() {
        let (k, other) = (key(1), key(2));
        let message = client_id_message("GUID:A1006D0E-1B2C-4D5E-8F90-0123456789AB");
        for padding in [Padding::DigestInfo, Padding::Bare] {
            let sig = k.sign(&message, padding);
            assert_eq!(sig.len(), 512);
            assert_eq!(k.public().verify("ClientIDSignature", &message, &sig), Ok(padding));
            assert_eq!(
                other.public().verify("ClientIDSignature", &message, &sig),
                Err(SigningError::Mismatch("ClientIDSignature"))
            );
            assert!(k.public().verify("ClientIDSignature", b"another message", &sig).is_err());
            // Not reversed: what a sender forgetting CryptoAPI's byte order sends.
            let mut raw = from_hex(&sig).expect("hex");
            raw.reverse();
            assert!(k.public().verify("x", &message, &to_hex(&raw)).is_err());
        }
        assert!(matches!(k.public().verify("x", &message, "00FF"), Err(SigningError::Length { .. })));
        assert_eq!(k.public().verify("x", &message, "zz"), Err(SigningError::Hex("x")));
    }

    #[test]
    fn the_blob_is_cryptoapi_s() {
        let k = key(3);
        let blob = k.public().to_blob();
        assert_eq!(blob.len(), 20 + 256);
        assert_eq!(to_hex(&blob[..20]), "0602000000A40000525341310008000001000100");
        assert_eq!(PublicKey::from_blob(&blob).as_ref(), Ok(k.public()));
        assert_eq!(PublicKey::from_blob_hex(&to_hex(&blob).to_lowercase()).as_ref(), Ok(k.public()));
        let mut short = blob.clone();
        short.pop();
        assert!(PublicKey::from_blob(&short).is_err());
        let mut dss = blob;
        dss[4] = 0x00;
        dss[5] = 0x22;
        assert!(PublicKey::from_blob(&dss).is_err());
    }

    #[test]
    fn the_registration_signs_its_data_element() {
        let xml = "<ClientRegistrationRequest><Data HashAlgorithm=\"1.2.840.113549.1.1.11\" SMSID=\"\"><DataX/></Data><Signature><SignatureValue>AB</SignatureValue></Signature></ClientRegistrationRequest>";
        let data = registration_data(xml).expect("a Data element");
        assert!(data.starts_with("<Data Hash") && data.ends_with("</Data>"));
        assert_eq!(registration_messages(xml).len(), 2);
        assert_eq!(
            registration_data("<ClientRegistrationRequest><DataX/></ClientRegistrationRequest>"),
            None
        );
    }

    #[test]
    fn a_signed_envelope_carries_what_its_payload_signature_covers() {
        use crate::envelope::{self, Limits, MsgHeader};
        let k = key(4);
        for level in [Some(1), None] {
            let mut header = MsgHeader { source_id: "GUID:1".into(), ..MsgHeader::default() };
            let body =
                envelope::build_signed_request(&mut header, "<RequestAssignments/>", level, |payload| {
                    let id = k.sign(&client_id_message("GUID:1"), Padding::DigestInfo);
                    Some(client_auth_hook(
                        "PC1",
                        &k.public().to_blob_hex(),
                        &id,
                        &k.sign(payload, Padding::DigestInfo),
                    ))
                });
            let request =
                envelope::decode_request(envelope::CONTENT_TYPE, &body, &Limits::default()).expect("decodes");
            assert_eq!(request.header.hooks[0].name, CLIENT_AUTH);
            let hook = request.header.hook(CLIENT_AUTH).expect("the hook");
            let public =
                PublicKey::from_blob_hex(hook.property("PublicKey").expect("a key")).expect("a blob");
            let payload = &body[request.payload.clone()];
            let signature = hook.property("PayloadSignature").expect("a signature");
            assert_eq!(public.verify("PayloadSignature", payload, signature), Ok(Padding::DigestInfo));
            let id = hook.property("ClientIDSignature").expect("a signature");
            assert!(
                public.verify("ClientIDSignature", &client_id_message(&request.header.source_id), id).is_ok()
            );
            assert_eq!(request.body, "<RequestAssignments/>");
        }
    }

    proptest! {
        // Whatever bytes a client puts in a hook, reading them answers, never panics.
        #[test]
        fn any_blob_is_read_or_refused(bytes in proptest::collection::vec(any::<u8>(), 0..300), head in any::<bool>()) {
            let mut blob = bytes;
            if head && blob.len() >= 20 {
                // A well-formed header, so the checks past it run too.
                let bits = ((blob.len() - 20) * 8) as u32;
                let mut h = from_hex("0602000000A4000052534131").expect("hex");
                h.extend_from_slice(&bits.to_le_bytes());
                blob[..16].copy_from_slice(&h);
            }
            let _ = PublicKey::from_blob(&blob);
            let _ = PublicKey::from_certificate(&blob);
            let _ = from_hex(&String::from_utf8_lossy(&blob));
        }

        #[test]
        fn hex_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assert_eq!(from_hex(&to_hex(&bytes)), Some(bytes));
        }
    }
}
