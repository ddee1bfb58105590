//! API keys: `pk_<prefix>_<secret>` for a tenant, `po_<prefix>_<secret>` for the
//! platform operator. Shown once at creation; stored as a SHA-256 hash with the visible
//! prefix; compared in constant time. A tenant key is never looked up among operator
//! keys or the other way round, so one kind cannot work on the other's routes.

use base64::Engine;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::domain::TenantId;
use crate::domain::access::Role;
use crate::store::admin::ApiKeyRecord;

/// Which kind of key a string claims to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    Tenant,
    Operator,
}

const PREFIX_LEN: usize = 12;

/// A freshly made key: the plaintext (to show once) and what is stored.
pub struct NewKey {
    pub plaintext: SecretString,
    pub record: ApiKeyRecord,
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("the operating system's random source");
    b
}

fn make(
    kind: KeyKind,
    tenant: Option<TenantId>,
    role: Option<Role>,
    name: &str,
    created_by: &str,
    expires_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> NewKey {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let prefix: String = random_bytes::<PREFIX_LEN>()
        .iter()
        .map(|b| ALPHABET[(*b as usize) % ALPHABET.len()] as char)
        .collect();
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>());
    let tag = match kind {
        KeyKind::Tenant => "pk",
        KeyKind::Operator => "po",
    };
    let plaintext = format!("{tag}_{prefix}_{secret}");
    let record = ApiKeyRecord {
        tenant_id: tenant,
        id: Uuid::now_v7(),
        hash: hash(&plaintext),
        prefix,
        role,
        name: name.to_string(),
        created_by: created_by.to_string(),
        created_at: now,
        expires_at,
        revoked_at: None,
        last_used_at: None,
    };
    NewKey {
        plaintext: SecretString::from(plaintext),
        record,
    }
}

/// A new key for `tenant` with `role`.
pub fn new_tenant_key(
    tenant: TenantId,
    role: Role,
    name: &str,
    created_by: &str,
    expires_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> NewKey {
    make(
        KeyKind::Tenant,
        Some(tenant),
        Some(role),
        name,
        created_by,
        expires_at,
        now,
    )
}

/// A new platform operator key.
pub fn new_operator_key(
    name: &str,
    created_by: &str,
    expires_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> NewKey {
    make(
        KeyKind::Operator,
        None,
        None,
        name,
        created_by,
        expires_at,
        now,
    )
}

/// The kind and prefix a presented key claims; `None` if it is not shaped like a key.
pub fn parse(key: &str) -> Option<(KeyKind, &str)> {
    let (tag, rest) = key.split_once('_')?;
    let kind = match tag {
        "pk" => KeyKind::Tenant,
        "po" => KeyKind::Operator,
        _ => return None,
    };
    let (prefix, secret) = rest.split_once('_')?;
    let ok = prefix.len() == PREFIX_LEN
        && prefix.bytes().all(|b| b.is_ascii_alphanumeric())
        && (20..=100).contains(&secret.len());
    ok.then_some((kind, prefix))
}

/// SHA-256 of the whole key, hex. Keys are long random strings, so a fast hash is
/// enough (a password hash would only slow every request).
pub fn hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Why a presented key is not accepted (all answer 401; the reason is for logs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyProblem {
    Unknown,
    Revoked,
    Expired,
}

/// Checks `presented` against `record` at `now`.
pub fn check(
    presented: &SecretString,
    record: &ApiKeyRecord,
    now: DateTime<Utc>,
) -> Result<(), KeyProblem> {
    let h = hash(presented.expose_secret());
    if !bool::from(h.as_bytes().ct_eq(record.hash.as_bytes())) {
        return Err(KeyProblem::Unknown);
    }
    if record.revoked_at.is_some() {
        return Err(KeyProblem::Revoked);
    }
    if record.expires_at.is_some_and(|e| e <= now) {
        return Err(KeyProblem::Expired);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_key_parses_to_its_prefix_and_checks_against_its_record_only() {
        let now = Utc::now();
        let k = new_tenant_key(TenantId::new(), Role::Admin, "ci", "test", None, now);
        let text = k.plaintext.expose_secret().to_string();
        assert!(text.starts_with("pk_"));
        assert_eq!(
            parse(&text),
            Some((KeyKind::Tenant, k.record.prefix.as_str()))
        );
        assert!(!k.record.hash.contains(&k.record.prefix));
        assert_eq!(check(&k.plaintext, &k.record, now), Ok(()));
        let other = new_tenant_key(TenantId::new(), Role::Admin, "ci", "test", None, now);
        assert_eq!(
            check(&other.plaintext, &k.record, now),
            Err(KeyProblem::Unknown)
        );
        let op = new_operator_key("root", "test", None, now);
        assert_eq!(
            parse(op.plaintext.expose_secret()).map(|p| p.0),
            Some(KeyKind::Operator)
        );
    }

    #[test]
    fn revoked_and_expired_keys_are_refused_and_junk_does_not_parse() {
        let now = Utc::now();
        let mut k = new_tenant_key(TenantId::new(), Role::Viewer, "x", "t", Some(now), now);
        assert_eq!(
            check(&k.plaintext, &k.record, now),
            Err(KeyProblem::Expired)
        );
        k.record.expires_at = None;
        k.record.revoked_at = Some(now);
        assert_eq!(
            check(&k.plaintext, &k.record, now),
            Err(KeyProblem::Revoked)
        );
        for junk in [
            "",
            "pk_",
            "pk_short_x",
            "xx_aaaaaaaaaaaa_bbbbbbbbbbbbbbbbbbbbbbbbb",
            "' OR 1=1 --",
        ] {
            assert_eq!(parse(junk), None, "{junk}");
        }
    }
}
