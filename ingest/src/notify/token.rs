//! The signed links of subscriber mail: `{id}.{expires}.{mac}`, where
//! `mac` is HMAC-SHA256 over the purpose, the subscription's id and nonce,
//! and the expiry. Nothing of a token is stored: a subscription keeps only
//! its nonce, so deleting it (or making it again, with a new nonce) voids
//! every link it ever had. The first key signs; any key verifies
//! (rotation). MACs are compared in constant time (`Mac::verify_slice`).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::Duration;

/// What a link may do: a token signed for one purpose verifies for no other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// Confirm a pending subscription (`/subscribe/confirm/`).
    Confirm,
    /// Delete a subscription (`/subscribe/unsubscribe/`, `List-Unsubscribe`).
    Unsubscribe,
    /// Change what a subscription follows (`/subscribe/preferences/`).
    Preferences,
}

impl Purpose {
    /// Every purpose.
    pub const ALL: [Purpose; 3] = [Purpose::Confirm, Purpose::Unsubscribe, Purpose::Preferences];

    /// Its name, in the MAC and in the URL's path.
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Confirm => "confirm",
            Purpose::Unsubscribe => "unsubscribe",
            Purpose::Preferences => "preferences",
        }
    }

    /// How long a link of this purpose is good for: a confirmation as long
    /// as an unconfirmed subscription is kept (48 hours); the others a year,
    /// so an old mail's unsubscribe link still works.
    pub fn lifetime(self) -> Duration {
        match self {
            Purpose::Confirm => Duration::from_secs(48 * 3600),
            Purpose::Unsubscribe | Purpose::Preferences => Duration::from_secs(365 * 86_400),
        }
    }
}

/// A token's parts, before its MAC is checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    /// The subscription's id.
    pub id: i64,
    /// When it expires, in seconds since the epoch.
    pub expires: i64,
    mac: Vec<u8>,
}

/// Why a link is refused. Every message is fit to show the reader.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Not a token at all, or its signature does not match.
    #[error(
        "This link is not valid. It may have been cut short or changed; copy the whole link from the mail."
    )]
    Invalid,
    /// A genuine token for another purpose.
    #[error(
        "This link is for another action. Use the link from the mail that matches what you want to do."
    )]
    WrongPurpose,
    /// Genuine, but past its expiry.
    #[error("This link has expired. Subscribe again from the status page to get a new one.")]
    Expired,
    /// Genuine once, but its subscription is gone or was made again.
    #[error("This link no longer applies: the subscription it was sent for no longer exists.")]
    Gone,
}

/// The longest token accepted.
const MAX_LEN: usize = 120;

fn mac(key: &[u8], purpose: Purpose, id: i64, nonce: &str, expires: i64) -> Hmac<Sha256> {
    // Keys of any length are accepted by HMAC.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    m.update(b"statuspage-subscription-v1\0");
    m.update(purpose.as_str().as_bytes());
    m.update(b"\0");
    m.update(id.to_string().as_bytes());
    m.update(b"\0");
    m.update(nonce.as_bytes());
    m.update(b"\0");
    m.update(expires.to_string().as_bytes());
    m
}

/// A token for `purpose` on subscription `id` (with its `nonce`), signed
/// with `key`, good until `now_s` plus the purpose's lifetime.
pub fn sign(key: &[u8], purpose: Purpose, id: i64, nonce: &str, now_s: i64) -> String {
    let expires = now_s + purpose.lifetime().as_secs() as i64;
    let tag = mac(key, purpose, id, nonce, expires)
        .finalize()
        .into_bytes();
    format!("{id}.{expires}.{}", URL_SAFE_NO_PAD.encode(tag))
}

/// A token's parts, or [`Refused::Invalid`] when it is not shaped as one.
pub fn parse(token: &str) -> Result<Parsed, Refused> {
    if token.len() > MAX_LEN {
        return Err(Refused::Invalid);
    }
    let mut parts = token.split('.');
    let (Some(id), Some(expires), Some(mac), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Refused::Invalid);
    };
    let digits = |s: &str| !s.is_empty() && s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(id) || !digits(expires) {
        return Err(Refused::Invalid);
    }
    let mac = URL_SAFE_NO_PAD
        .decode(mac)
        .ok()
        .filter(|m| m.len() == 32)
        .ok_or(Refused::Invalid)?;
    Ok(Parsed {
        id: id.parse().map_err(|_| Refused::Invalid)?,
        expires: expires.parse().map_err(|_| Refused::Invalid)?,
        mac,
    })
}

/// Checks `token` (parsed) for `purpose` against the subscription's
/// `nonce` and every key; then its expiry.
pub fn verify(
    keys: &[Vec<u8>],
    purpose: Purpose,
    token: &Parsed,
    nonce: &str,
    now_s: i64,
) -> Result<(), Refused> {
    let genuine = |p: Purpose| {
        keys.iter().any(|k| {
            mac(k, p, token.id, nonce, token.expires)
                .verify_slice(&token.mac)
                .is_ok()
        })
    };
    if !genuine(purpose) {
        return Err(
            if Purpose::ALL.iter().any(|p| *p != purpose && genuine(*p)) {
                Refused::WrongPurpose
            } else {
                Refused::Invalid
            },
        );
    }
    if token.expires < now_s {
        return Err(Refused::Expired);
    }
    Ok(())
}

/// A fresh nonce: 16 random bytes, hex.
pub fn nonce() -> Result<String, String> {
    let mut bytes = [0u8; 16];
    rustls::crypto::aws_lc_rs::default_provider()
        .secure_random
        .fill(&mut bytes)
        .map_err(|_| "no randomness available".to_string())?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
    const OLD: &[u8] = b"an older key of thirty-two bytes!";
    const NOW: i64 = 1_800_000_000;

    fn check(
        keys: &[&[u8]],
        purpose: Purpose,
        token: &str,
        nonce: &str,
        now: i64,
    ) -> Result<(), Refused> {
        let keys: Vec<Vec<u8>> = keys.iter().map(|k| k.to_vec()).collect();
        verify(&keys, purpose, &parse(token)?, nonce, now)
    }

    #[test]
    fn a_token_verifies_for_its_purpose_nonce_and_any_listed_key_only() {
        let t = sign(KEY, Purpose::Confirm, 42, "n1", NOW);
        assert_eq!(check(&[KEY], Purpose::Confirm, &t, "n1", NOW), Ok(()));
        // Rotation: the old key still verifies what it signed.
        let old = sign(OLD, Purpose::Unsubscribe, 42, "n1", NOW);
        assert_eq!(
            check(&[KEY, OLD], Purpose::Unsubscribe, &old, "n1", NOW),
            Ok(())
        );
        assert_eq!(
            check(&[KEY], Purpose::Unsubscribe, &old, "n1", NOW),
            Err(Refused::Invalid)
        );
        // Another purpose, another subscription's nonce, another id.
        assert_eq!(
            check(&[KEY], Purpose::Unsubscribe, &t, "n1", NOW),
            Err(Refused::WrongPurpose)
        );
        assert_eq!(
            check(&[KEY], Purpose::Confirm, &t, "n2", NOW),
            Err(Refused::Invalid)
        );
        let other = t.replacen("42.", "43.", 1);
        assert_eq!(
            check(&[KEY], Purpose::Confirm, &other, "n1", NOW),
            Err(Refused::Invalid)
        );
        // A later expiry written in does not verify; a real one runs out.
        let (_, rest) = t.split_once('.').unwrap_or_default();
        let (expires, tag) = rest.split_once('.').unwrap_or_default();
        let later = format!("42.{}.{tag}", expires.parse::<i64>().unwrap_or(0) + 1);
        assert_eq!(
            check(&[KEY], Purpose::Confirm, &later, "n1", NOW),
            Err(Refused::Invalid)
        );
        assert_eq!(
            check(&[KEY], Purpose::Confirm, &t, "n1", NOW + 48 * 3600 + 1),
            Err(Refused::Expired)
        );
    }

    #[test]
    fn anything_not_shaped_as_a_token_is_invalid() {
        let t = sign(KEY, Purpose::Confirm, 1, "n", NOW);
        for bad in [
            "",
            "1",
            "1.2",
            "1.2.3.4",
            "-1.2.AAAA",
            "1.2.!!!!",
            "1.2.AAAA",
            &"9".repeat(200),
            &format!("{t}x"),
            &t[..t.len() - 1],
            "1\r\n.2.AAAA",
        ] {
            assert_eq!(
                parse(bad).and_then(|p| verify(&[KEY.to_vec()], Purpose::Confirm, &p, "n", NOW)),
                Err(Refused::Invalid),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn nonces_are_fresh() {
        let a = nonce().unwrap_or_default();
        let b = nonce().unwrap_or_default();
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }
}
