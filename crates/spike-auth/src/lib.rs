//! Who is asking: buyers proved by HS256 JSON Web Tokens (RFC 7519) minted
//! by the operator's login system and verified against a ring of keys (so
//! keys can be rotated), order keys that let the buyer of an open sale reach
//! their order, admission tokens of a sale's waiting room, and the
//! operator key of the payment service, and the proof of work a waiting
//! room may ask of a join. Pure
//! computation plus reading key files; the node decides who may do what.

#![warn(missing_docs)]

pub mod admission;
pub mod keys;
pub mod order_key;
pub mod token;
pub mod work;

pub use admission::{AdmissionError, AdmissionKeys, Admitted};
pub use keys::{KeyError, KeyRing, SecretKey, MIN_KEY_BYTES};
pub use order_key::{OperatorKey, OrderKeys};
pub use token::{mint, Claims, TokenError, TokenVerifier};
pub use work::{Challenge, JoinWork, WorkError};
