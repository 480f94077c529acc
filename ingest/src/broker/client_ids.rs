//! Which user may connect with which MQTT client id. Pure logic.
//!
//! An MQTT broker gives a connection the session of its client id, and a second connection with
//! the same id takes the session over (and disconnects the first). Without a rule, any credential
//! could take any session — the bridge's included, with its subscriptions and unacknowledged
//! messages. The embedded broker's rule:
//!
//! * a client id belongs to the first user that connects with it, for as long as the broker runs;
//!   another user connecting with it is refused ("client identifier not valid");
//! * ids starting with [`RESERVED_PREFIX`] (the bridge's, the simulator's) are reserved for users
//!   who may subscribe to everything (`#`), as fjord's own user does;
//! * one user may own at most [`MAX_IDS_PER_USER`] ids of at most [`MAX_ID_BYTES`], so the table
//!   cannot grow without bound.
//!
//! An empty client id (MQTT 5: the broker assigns one) is not bound.

use std::collections::HashMap;

/// Client ids with this prefix are fjord's own.
pub const RESERVED_PREFIX: &str = "fjord-";

/// Most client ids one user may own.
pub const MAX_IDS_PER_USER: usize = 10_000;

/// Longest client id, in bytes (MQTT allows 65,535; the table keeps every id it binds).
pub const MAX_ID_BYTES: usize = 128;

/// Why a client id was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Another user owns it.
    Taken,
    /// It starts with [`RESERVED_PREFIX`] and the user is not an administrator.
    Reserved,
    /// The user owns [`MAX_IDS_PER_USER`] ids already.
    TooMany,
    /// Longer than [`MAX_ID_BYTES`].
    TooLong,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Taken => f.write_str("the client id belongs to another user"),
            Refusal::Reserved => write!(
                f,
                "client ids starting with {RESERVED_PREFIX:?} are reserved for fjord's own clients"
            ),
            Refusal::TooMany => write!(
                f,
                "the user already owns {MAX_IDS_PER_USER} client ids; reuse one"
            ),
            Refusal::TooLong => write!(f, "client ids are at most {MAX_ID_BYTES} bytes"),
        }
    }
}

/// The owners of client ids.
#[derive(Debug, Default)]
pub struct ClientIds {
    owner: HashMap<String, String>,
    owned: HashMap<String, usize>,
}

impl ClientIds {
    /// May `user` (an administrator when `admin`) connect with `client_id`? Binds the id to the
    /// user the first time.
    pub fn claim(&mut self, client_id: &str, user: &str, admin: bool) -> Result<(), Refusal> {
        if client_id.is_empty() {
            return Ok(());
        }
        if client_id.len() > MAX_ID_BYTES {
            return Err(Refusal::TooLong);
        }
        if client_id.starts_with(RESERVED_PREFIX) && !admin {
            return Err(Refusal::Reserved);
        }
        match self.owner.get(client_id) {
            Some(owner) if owner == user => Ok(()),
            Some(_) => Err(Refusal::Taken),
            None => {
                let n = self.owned.entry(user.to_owned()).or_default();
                if *n >= MAX_IDS_PER_USER {
                    return Err(Refusal::TooMany);
                }
                *n += 1;
                self.owner.insert(client_id.to_owned(), user.to_owned());
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_belongs_to_its_first_user_and_fjords_ids_to_administrators() {
        let mut ids = ClientIds::default();
        assert_eq!(ids.claim("sensor-1", "dev-a", false), Ok(()));
        assert_eq!(ids.claim("sensor-1", "dev-a", false), Ok(()), "reconnect");
        assert_eq!(ids.claim("sensor-1", "dev-b", false), Err(Refusal::Taken));
        assert_eq!(ids.claim("sensor-1", "fjord", true), Err(Refusal::Taken));
        assert_eq!(
            ids.claim("fjord-demo-bridge", "dev-a", false),
            Err(Refusal::Reserved)
        );
        assert_eq!(ids.claim("fjord-demo-bridge", "fjord", true), Ok(()));
        assert_eq!(
            ids.claim("", "dev-b", false),
            Ok(()),
            "assigned by the broker"
        );
        assert!(Refusal::Reserved.to_string().contains("reserved"));
        assert_eq!(
            ids.claim(&"x".repeat(MAX_ID_BYTES + 1), "dev-a", false),
            Err(Refusal::TooLong)
        );
    }

    #[test]
    fn one_user_owns_a_bounded_number_of_ids() {
        let mut ids = ClientIds::default();
        for i in 0..MAX_IDS_PER_USER {
            assert_eq!(ids.claim(&format!("c{i}"), "dev-a", false), Ok(()));
        }
        assert_eq!(ids.claim("one-more", "dev-a", false), Err(Refusal::TooMany));
        assert_eq!(
            ids.claim("c0", "dev-a", false),
            Ok(()),
            "its own ids still work"
        );
        assert_eq!(
            ids.claim("one-more", "dev-b", false),
            Ok(()),
            "others unaffected"
        );
    }
}
