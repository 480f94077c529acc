//! Who may query: user `fjord` (the user name of `[auth]`) with `auth.token` as password, or the
//! token alone as a bearer token. Every interface of `fjord serve` checks with this.

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use fjord_core::secret::constant_time_eq;

/// The user name whose password is the token.
pub const USER: &str = "fjord";

/// Base64 with or without the trailing `=` (Go's Flight client sends basic credentials unpadded).
const BASIC: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The credentials every interface requires.
#[derive(Clone)]
pub struct Credentials {
    token: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").finish_non_exhaustive()
    }
}

impl Credentials {
    /// User `fjord` with password `token`.
    pub fn new(token: impl Into<String>) -> Self {
        Self {
            token: token.into(),
        }
    }

    /// The token (the Postgres wire library compares it itself).
    pub(crate) fn token(&self) -> &str {
        &self.token
    }

    /// User and password.
    pub fn check(&self, user: &str, password: &[u8]) -> bool {
        user == USER && constant_time_eq(self.token.as_bytes(), password)
    }

    /// A bearer token.
    pub fn check_token(&self, token: &[u8]) -> bool {
        constant_time_eq(self.token.as_bytes(), token)
    }

    /// An HTTP `Authorization` header value: `Bearer <token>` or `Basic <base64(user:password)>`.
    pub fn check_header(&self, value: &str) -> bool {
        let Some((scheme, rest)) = value.split_once(' ') else {
            return false;
        };
        if scheme.eq_ignore_ascii_case("bearer") {
            return self.check_token(rest.trim().as_bytes());
        }
        if scheme.eq_ignore_ascii_case("basic") {
            let Ok(decoded) = BASIC.decode(rest.trim()) else {
                return false;
            };
            let Ok(text) = String::from_utf8(decoded) else {
                return false;
            };
            return text
                .split_once(':')
                .is_some_and(|(u, p)| self.check(u, p.as_bytes()));
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_or_basic_with_user_fjord() {
        let c = Credentials::new("s3cret-token");
        assert!(c.check_header("Bearer s3cret-token"));
        assert!(c.check_header("bearer  s3cret-token"));
        assert!(!c.check_header("Bearer s3cret-tokeN"));
        let basic = |s: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(s)
            )
        };
        assert!(c.check_header(&basic("fjord:s3cret-token")));
        assert!(!c.check_header(&basic("admin:s3cret-token")));
        assert!(!c.check_header(&basic("fjord:wrong")));
        assert!(!c.check_header("Digest x"));
        assert!(!c.check_header("Basic !!!"));
        // unpadded, as Go's Flight client sends it
        let c = Credentials::new("test-token-123");
        let unpadded =
            base64::engine::general_purpose::STANDARD_NO_PAD.encode("fjord:test-token-123");
        assert!(c.check_header(&format!("Basic {unpadded}")));
    }
}
