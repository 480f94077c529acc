//! Who may connect and what they may publish or subscribe to: the `[[credentials]]` of the config,
//! checked by the embedded MQTT broker and by HTTP ingest. Pure logic.
//!
//! Passwords are compared in constant time. A device credential for lot A typically has
//! `publish = ["parking/A/#", "presence/gw-A"]` and no `subscribe`.

use fjord_core::config::Credential;
use fjord_core::secret::constant_time_eq;
use fjord_core::topic::{filter_covers, filter_matches};

/// The credentials, ready to check.
#[derive(Debug, Clone, Default)]
pub struct Acl {
    users: Vec<Credential>,
}

/// An authenticated user.
#[derive(Debug, Clone, Copy)]
pub struct User<'a> {
    credential: &'a Credential,
}

impl Acl {
    /// The access list of `credentials`.
    pub fn new(credentials: Vec<Credential>) -> Self {
        Self { users: credentials }
    }

    /// The user with this name and password, if both match.
    pub fn authenticate(&self, user: &str, password: &[u8]) -> Option<User<'_>> {
        let c = self.users.iter().find(|c| c.user == user)?;
        constant_time_eq(c.password.as_bytes(), password).then_some(User { credential: c })
    }

    /// The user whose password is `token` (HTTP `Authorization: Bearer`).
    pub fn authenticate_token(&self, token: &[u8]) -> Option<User<'_>> {
        self.users
            .iter()
            .find(|c| constant_time_eq(c.password.as_bytes(), token))
            .map(|credential| User { credential })
    }

    /// True when no credential is configured.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

impl User<'_> {
    /// The user name.
    pub fn name(&self) -> &str {
        &self.credential.user
    }

    /// May this user publish to `topic`?
    pub fn may_publish(&self, topic: &str) -> bool {
        self.credential
            .publish
            .iter()
            .any(|f| filter_matches(f, topic))
    }

    /// May this user subscribe to `filter` (every topic it matches must be allowed)?
    pub fn may_subscribe(&self, filter: &str) -> bool {
        let filter = shared_filter(filter);
        self.credential
            .subscribe
            .iter()
            .any(|a| filter_covers(a, filter))
    }
}

/// `$share/group/a/b` → `a/b`.
fn shared_filter(filter: &str) -> &str {
    filter
        .strip_prefix("$share/")
        .and_then(|rest| rest.split_once('/'))
        .map_or(filter, |(_, f)| f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl() -> Acl {
        Acl::new(vec![
            Credential::admin("fjord", "admin-secret"),
            Credential {
                user: "gw-a".into(),
                password: "device-a-secret".into(),
                publish: vec!["parking/A/#".into(), "presence/gw-a".into()],
                subscribe: vec![],
            },
        ])
    }

    #[test]
    fn authenticates_by_user_and_password_or_token() {
        let acl = acl();
        assert_eq!(
            acl.authenticate("gw-a", b"device-a-secret").unwrap().name(),
            "gw-a"
        );
        assert!(acl.authenticate("gw-a", b"device-a-secreT").is_none());
        assert!(acl.authenticate("gw-b", b"device-a-secret").is_none());
        assert_eq!(
            acl.authenticate_token(b"admin-secret").unwrap().name(),
            "fjord"
        );
        assert!(acl.authenticate_token(b"nope").is_none());
    }

    #[test]
    fn a_device_of_lot_a_may_publish_only_under_lot_a() {
        let acl = acl();
        let a = acl.authenticate("gw-a", b"device-a-secret").unwrap();
        assert!(a.may_publish("parking/A/S1"));
        assert!(a.may_publish("presence/gw-a"));
        assert!(!a.may_publish("parking/B/S1"));
        assert!(!a.may_publish("presence/gw-b"));
        assert!(!a.may_subscribe("parking/A/#"));
        let admin = acl.authenticate("fjord", b"admin-secret").unwrap();
        assert!(admin.may_publish("anything/at/all"));
        assert!(admin.may_subscribe("$share/fjord/parking/#"));
    }
}
