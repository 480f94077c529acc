//! The webhook signature of docs/contract.md §5: `X-Fjord-Signature: sha256=<hex HMAC-SHA256 of
//! "<timestamp>.<body>" with the webhook secret>`, the scheme of Stripe and GitHub webhooks. The
//! timestamp in the signed text lets a receiver refuse replays of old deliveries.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Header: unique per state change, the idempotency key (the alert's `id`).
pub const HEADER_DELIVERY: &str = "X-Fjord-Delivery";
/// Header: Unix seconds when this attempt was signed.
pub const HEADER_TIMESTAMP: &str = "X-Fjord-Timestamp";
/// Header: `sha256=<hex>`.
pub const HEADER_SIGNATURE: &str = "X-Fjord-Signature";

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// The `X-Fjord-Signature` value of `body` sent at `timestamp` (Unix seconds).
pub fn signature(secret: &str, timestamp: u64, body: &[u8]) -> String {
    let ts = timestamp.to_string();
    let mac = hmac_sha256(secret.as_bytes(), &[ts.as_bytes(), b".", body]);
    format!("sha256={}", hex::encode(mac))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_sha256_matches_rfc_4231_test_case_2() {
        let mac = hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn signs_timestamp_dot_body() {
        let a = signature("s3cret-key", 1_795_255_200, b"{\"id\":\"x\"}");
        let b = format!(
            "sha256={}",
            hex::encode(hmac_sha256(b"s3cret-key", &[b"1795255200.{\"id\":\"x\"}"]))
        );
        assert_eq!(a, b);
        assert_ne!(a, signature("s3cret-key", 1_795_255_201, b"{\"id\":\"x\"}"));
        assert_ne!(a, signature("other-key", 1_795_255_200, b"{\"id\":\"x\"}"));
    }
}
