//! Identifiers. UUIDs built from random bytes handed in by the caller.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid identifier")]
pub struct IdError;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Uuid);

        impl $name {
            /// A version-4 UUID made from 16 random bytes supplied by the caller.
            pub fn from_random_bytes(bytes: [u8; 16]) -> Self {
                Self(uuid::Builder::from_random_bytes(bytes).into_uuid())
            }

            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                Self(u)
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            /// Accepts only the canonical hyphenated form, so that one id has
            /// exactly one spelling in URLs and logs.
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                if s.len() != 36 {
                    return Err(IdError);
                }
                Uuid::try_parse(s).map(Self).map_err(|_| IdError)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }
    };
}

uuid_id!(
    /// A user's stable identifier.
    UserId
);
uuid_id!(
    /// A session, i.e. one token family started by one login.
    SessionId
);
uuid_id!(
    /// An access token's unique id (`jti`).
    AccessTokenId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_their_text_form() {
        let id = UserId::from_random_bytes([7; 16]);
        let parsed: UserId = id.to_string().parse().unwrap();
        assert_eq!(parsed, id);
    }

    #[test]
    fn only_the_hyphenated_form_is_accepted() {
        let id = SessionId::from_random_bytes([9; 16]);
        let simple = id.as_uuid().simple().to_string();
        assert_eq!(simple.parse::<SessionId>(), Err(IdError));
        assert_eq!("'; drop table users; --".parse::<SessionId>(), Err(IdError));
    }
}
