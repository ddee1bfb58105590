//! Sealing of tenant secrets at rest: AES-256-GCM, a random 96-bit nonce per value,
//! the tenant id and field name bound as associated data, and a key ring for rotation.

use std::collections::HashMap;
use std::fmt;

use aes_gcm::aead::{Aead, Generate, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use sha2::{Digest, Sha256};

use crate::domain::TenantId;

/// Length of a master key in bytes.
pub const KEY_LEN: usize = 32;

/// Why a sealed value could not be opened (or a key could not be read).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error(
        "sealed under key {key_id}, which is not in the key ring (give it in PARLEY_PREVIOUS_MASTER_KEYS)"
    )]
    UnknownKey { key_id: String },
    #[error("does not open: the ciphertext was altered or belongs to another tenant or field")]
    Tampered,
    #[error("the opened value is not valid UTF-8")]
    NotUtf8,
    #[error("{0}")]
    BadKey(String),
}

/// A secret as stored: which key sealed it, the nonce and the ciphertext (with tag).
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealed")
            .field("key_id", &self.key_id)
            .field("len", &self.ciphertext.len())
            .finish()
    }
}

/// One master key with its derived identifier.
struct MasterKey {
    id: String,
    cipher: Aes256Gcm,
}

/// The active key (used to seal) and older keys (only used to open, during rotation).
pub struct KeyRing {
    active: String,
    keys: HashMap<String, MasterKey>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("active", &self.active)
            .field("key_ids", &self.key_ids())
            .finish()
    }
}

/// The identifier stored beside every sealed value: a fingerprint of the key, so
/// operators never have to number keys by hand and a wrong key is named, not guessed.
pub fn key_id(key: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(b"parley-master-key-id:");
    h.update(key);
    hex::encode(&h.finalize()[..8])
}

/// Decodes a base64 master key and checks its length.
pub fn decode_key(b64: &SecretString) -> Result<SecretBox<[u8; KEY_LEN]>, CryptoError> {
    let bytes = B64
        .decode(b64.expose_secret().trim())
        .map_err(|_| CryptoError::BadKey("is not valid base64".into()))?;
    let arr: [u8; KEY_LEN] = bytes.as_slice().try_into().map_err(|_| {
        CryptoError::BadKey(format!(
            "must be base64 of {KEY_LEN} bytes, got {} bytes",
            bytes.len()
        ))
    })?;
    Ok(SecretBox::new(Box::new(arr)))
}

/// A fresh random master key, base64-encoded.
pub fn generate_key_b64() -> SecretString {
    let key = Key::<Aes256Gcm>::generate();
    SecretString::from(B64.encode(key.as_slice()))
}

fn aad(tenant: TenantId, field: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(32 + field.len());
    aad.extend_from_slice(b"parley:v1:");
    aad.extend_from_slice(tenant.0.as_bytes());
    aad.push(b':');
    aad.extend_from_slice(field.as_bytes());
    aad
}

impl KeyRing {
    /// Builds a ring from the active key and any previous keys (all base64).
    pub fn new(active: &SecretString, previous: &[SecretString]) -> Result<Self, CryptoError> {
        let mut keys = HashMap::new();
        let mut add = |b64: &SecretString| -> Result<String, CryptoError> {
            let raw = decode_key(b64)?;
            let id = key_id(raw.expose_secret());
            let cipher = Aes256Gcm::new_from_slice(raw.expose_secret())
                .map_err(|_| CryptoError::BadKey("wrong key length".into()))?;
            keys.insert(
                id.clone(),
                MasterKey {
                    id: id.clone(),
                    cipher,
                },
            );
            Ok(id)
        };
        for p in previous {
            add(p)?;
        }
        let active = add(active)?;
        Ok(Self { active, keys })
    }

    /// Identifier of the key new values are sealed with.
    pub fn active_key_id(&self) -> &str {
        &self.active
    }

    /// Identifiers of every key in the ring, active first.
    pub fn key_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.keys.values().map(|k| k.id.clone()).collect();
        ids.sort_by_key(|id| (id != &self.active, id.clone()));
        ids
    }

    /// Seals `plaintext` for `field` of `tenant` under the active key.
    pub fn seal(&self, tenant: TenantId, field: &str, plaintext: &SecretString) -> Sealed {
        let key = &self.keys[&self.active];
        let nonce = aes_gcm::Nonce::<aes_gcm::aead::consts::U12>::generate();
        let aad = aad(tenant, field);
        let ciphertext = key
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext.expose_secret().as_bytes(),
                    aad: &aad,
                },
            )
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        Sealed {
            key_id: key.id.clone(),
            nonce: nonce.to_vec(),
            ciphertext,
        }
    }

    /// Opens a value sealed for `field` of `tenant`; fails, never returns a wrong plaintext.
    pub fn open(
        &self,
        tenant: TenantId,
        field: &str,
        sealed: &Sealed,
    ) -> Result<SecretString, CryptoError> {
        let key = self
            .keys
            .get(&sealed.key_id)
            .ok_or_else(|| CryptoError::UnknownKey {
                key_id: sealed.key_id.clone(),
            })?;
        let nonce = aes_gcm::Nonce::<aes_gcm::aead::consts::U12>::try_from(sealed.nonce.as_slice())
            .map_err(|_| CryptoError::Tampered)?;
        let aad = aad(tenant, field);
        let plain = key
            .cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: &sealed.ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| CryptoError::Tampered)?;
        let text = String::from_utf8(plain).map_err(|_| CryptoError::NotUtf8)?;
        Ok(SecretString::from(text))
    }
}

/// Shows at most the last 4 characters of a secret, and none of a short one.
pub fn mask(secret: &SecretString) -> String {
    let s = secret.expose_secret();
    let n = s.chars().count();
    if n < 12 {
        return "****".into();
    }
    let tail: String = s.chars().skip(n - 4).collect();
    format!("****{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn ring() -> (KeyRing, SecretString) {
        let k = generate_key_b64();
        (KeyRing::new(&k, &[]).unwrap(), k)
    }

    fn s(v: &str) -> SecretString {
        SecretString::from(v.to_string())
    }

    #[test]
    fn a_sealed_value_opens_to_the_same_plaintext() {
        let (ring, _) = ring();
        let t = TenantId(Uuid::new_v4());
        let sealed = ring.seal(t, "whatsapp.access_token", &s("EAAG-token-1"));
        assert_ne!(sealed.ciphertext, b"EAAG-token-1");
        let opened = ring.open(t, "whatsapp.access_token", &sealed).unwrap();
        assert_eq!(opened.expose_secret(), "EAAG-token-1");
    }

    #[test]
    fn the_same_value_sealed_twice_gives_different_ciphertexts() {
        let (ring, _) = ring();
        let t = TenantId(Uuid::new_v4());
        let a = ring.seal(t, "f", &s("same"));
        let b = ring.seal(t, "f", &s("same"));
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.ciphertext, b.ciphertext);
    }

    #[test]
    fn a_ciphertext_moved_to_another_tenant_or_field_does_not_open() {
        let (ring, _) = ring();
        let a = TenantId(Uuid::new_v4());
        let b = TenantId(Uuid::new_v4());
        let sealed = ring.seal(a, "whatsapp.app_secret", &s("secret"));
        assert_eq!(
            ring.open(b, "whatsapp.app_secret", &sealed).unwrap_err(),
            CryptoError::Tampered
        );
        assert_eq!(
            ring.open(a, "ai.api_key", &sealed).unwrap_err(),
            CryptoError::Tampered
        );
    }

    #[test]
    fn one_flipped_byte_anywhere_fails_to_open() {
        let (ring, _) = ring();
        let t = TenantId(Uuid::new_v4());
        let sealed = ring.seal(t, "f", &s("a secret value"));
        for i in 0..sealed.ciphertext.len() {
            let mut bad = sealed.clone();
            bad.ciphertext[i] ^= 0x01;
            assert_eq!(ring.open(t, "f", &bad).unwrap_err(), CryptoError::Tampered);
        }
        for i in 0..sealed.nonce.len() {
            let mut bad = sealed.clone();
            bad.nonce[i] ^= 0x80;
            assert_eq!(ring.open(t, "f", &bad).unwrap_err(), CryptoError::Tampered);
        }
    }

    #[test]
    fn a_value_sealed_under_an_unknown_key_names_the_key() {
        let (old, _) = ring();
        let (new, _) = ring();
        let t = TenantId(Uuid::new_v4());
        let sealed = old.seal(t, "f", &s("x"));
        match new.open(t, "f", &sealed).unwrap_err() {
            CryptoError::UnknownKey { key_id } => assert_eq!(key_id, old.active_key_id()),
            e => panic!("unexpected {e:?}"),
        }
    }

    #[test]
    fn a_ring_with_the_previous_key_opens_old_values_and_seals_with_the_new_one() {
        let (old, old_b64) = ring();
        let new_b64 = generate_key_b64();
        let both = KeyRing::new(&new_b64, &[old_b64]).unwrap();
        let t = TenantId(Uuid::new_v4());
        let sealed = old.seal(t, "f", &s("kept"));
        assert_eq!(both.open(t, "f", &sealed).unwrap().expose_secret(), "kept");
        let resealed = both.seal(t, "f", &s("kept"));
        assert_ne!(resealed.key_id, sealed.key_id);
        assert_eq!(resealed.key_id, both.active_key_id());
    }

    #[test]
    fn keys_of_the_wrong_length_or_not_base64_are_refused_with_a_reason() {
        let short = SecretString::from(B64.encode([0u8; 16]));
        let e = KeyRing::new(&short, &[]).unwrap_err();
        assert!(e.to_string().contains("32 bytes, got 16"), "{e}");
        let e = KeyRing::new(&s("not base64 !!"), &[]).unwrap_err();
        assert!(e.to_string().contains("base64"), "{e}");
    }

    #[test]
    fn masking_shows_at_most_the_last_four_characters() {
        assert_eq!(mask(&s("EAAGabcdefgh1234")), "****1234");
        assert_eq!(mask(&s("short")), "****");
    }
}
