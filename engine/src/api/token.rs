//! Signed, expiring playback tokens for LL-HLS.
//!
//! A token grants playback of one room until a time. It is
//! `<expiry>-<signature>`: `expiry` in Unix seconds, `signature` the first 128 bits of
//! HMAC-SHA256(secret, `"showmix-playback:" + room + ":" + expiry`) as 32 lowercase hex digits.
//! Operators' backends can mint tokens themselves with the shared secret (per viewer, with
//! their own lifetimes) or ask the API (`POST /v1/rooms/{room}/playback-token`).
//!
//! The token travels in the path, after the room id and a `~`:
//! `/live/{room}~{token}/index.m3u8`. Every URI in the playlists is relative, so players
//! carry it to rung playlists, parts, segments and init segments with no rewriting, and the
//! playlists stay shared between viewers. `~` is not allowed in room ids, so the split is
//! unambiguous.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Signature length in bytes (hex digits are twice this).
const SIG_BYTES: usize = 16;

#[derive(Clone)]
pub struct TokenSigner {
    secret: Vec<u8>,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSigner(..)")
    }
}

/// Why a token was refused (the HTTP layer answers 403 with this).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error(
        "playback needs a token: /live/{{room}}~{{token}}/index.m3u8 (see playback.hls in the room)"
    )]
    Missing,
    #[error("malformed playback token (expected <expiry>-<32 hex digits>)")]
    Malformed,
    #[error("playback token expired")]
    Expired,
    #[error("playback token not valid for this room")]
    BadSignature,
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl TokenSigner {
    pub fn new(secret: &[u8]) -> TokenSigner {
        TokenSigner {
            secret: secret.to_vec(),
        }
    }

    fn signature(&self, room: &str, expiry: u64) -> [u8; SIG_BYTES] {
        // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
        let mut mac = HmacSha256::new_from_slice(&self.secret).expect("HMAC accepts any key");
        mac.update(b"showmix-playback:");
        mac.update(room.as_bytes());
        mac.update(b":");
        mac.update(expiry.to_string().as_bytes());
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; SIG_BYTES];
        out.copy_from_slice(&full[..SIG_BYTES]);
        out
    }

    /// A token for `room` valid until `now + ttl` (whole seconds, rounded up).
    pub fn mint(&self, room: &str, now: SystemTime, ttl: Duration) -> (String, u64) {
        let expiry = unix(now) + ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
        let sig: String = self
            .signature(room, expiry)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        (format!("{expiry}-{sig}"), expiry)
    }

    /// Checks `token` for `room` at `now`.
    pub fn verify(&self, room: &str, token: &str, now: SystemTime) -> Result<(), TokenError> {
        let (expiry, sig) = token.split_once('-').ok_or(TokenError::Malformed)?;
        if expiry.is_empty() || expiry.len() > 20 || !expiry.bytes().all(|b| b.is_ascii_digit()) {
            return Err(TokenError::Malformed);
        }
        let expiry: u64 = expiry.parse().map_err(|_| TokenError::Malformed)?;
        let given = parse_hex(sig).ok_or(TokenError::Malformed)?;
        let want = self.signature(room, expiry);
        if !bool::from(given.ct_eq(&want)) {
            return Err(TokenError::BadSignature);
        }
        if unix(now) >= expiry {
            return Err(TokenError::Expired);
        }
        Ok(())
    }
}

fn parse_hex(s: &str) -> Option<[u8; SIG_BYTES]> {
    if s.len() != SIG_BYTES * 2 {
        return None;
    }
    let mut out = [0u8; SIG_BYTES];
    for (i, pair) in s.as_bytes().chunks(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

/// Splits the room segment of a `/live/` path into the room id and the token after `~`.
pub fn split_room_segment(segment: &str) -> (&str, Option<&str>) {
    match segment.split_once('~') {
        Some((room, token)) => (room, Some(token)),
        None => (segment, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn minted_tokens_verify_until_they_expire() {
        let s = TokenSigner::new(b"0123456789abcdef0123456789abcdef");
        let (t, exp) = s.mint("pk", at(1_000), Duration::from_secs(60));
        assert_eq!(exp, 1_060);
        assert!(t.starts_with("1060-"));
        assert_eq!(t.len(), "1060-".len() + 32);
        assert_eq!(s.verify("pk", &t, at(1_000)), Ok(()));
        assert_eq!(s.verify("pk", &t, at(1_059)), Ok(()));
        assert_eq!(s.verify("pk", &t, at(1_060)), Err(TokenError::Expired));
    }

    #[test]
    fn tokens_are_bound_to_room_secret_and_expiry() {
        let s = TokenSigner::new(b"secret-one-secret-one");
        let other = TokenSigner::new(b"secret-two-secret-two");
        let (t, _) = s.mint("pk", at(1_000), Duration::from_secs(60));
        assert_eq!(
            s.verify("grid", &t, at(1_000)),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            other.verify("pk", &t, at(1_000)),
            Err(TokenError::BadSignature)
        );
        // Stretching the expiry breaks the signature.
        let forged = t.replacen("1060", "9999", 1);
        assert_eq!(
            s.verify("pk", &forged, at(1_000)),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let s = TokenSigner::new(b"k");
        for bad in [
            "",
            "-",
            "1060",
            "1060-",
            "x-00000000000000000000000000000000",
            "1060-0000",
            "1060-zz000000000000000000000000000000",
            "1060-000000000000000000000000000000000",
            "99999999999999999999999-00000000000000000000000000000000",
        ] {
            assert_eq!(
                s.verify("pk", bad, at(0)),
                Err(TokenError::Malformed),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_known_vector_stays_stable() {
        // Backends that mint tokens themselves rely on this exact construction.
        let s = TokenSigner::new(b"key");
        let sig = s.signature("room", 1_700_000_000);
        let mut mac = HmacSha256::new_from_slice(b"key").unwrap();
        mac.update(b"showmix-playback:room:1700000000");
        assert_eq!(&sig[..], &mac.finalize().into_bytes()[..16]);
    }

    #[test]
    fn room_segment_split() {
        assert_eq!(split_room_segment("pk"), ("pk", None));
        assert_eq!(split_room_segment("pk~1-ab"), ("pk", Some("1-ab")));
        assert_eq!(split_room_segment("pk~"), ("pk", Some("")));
    }
}
