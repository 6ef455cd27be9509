//! The interfaces between domains.
//!
//! Untrusted: `#![forbid(unsafe_code)]`, no dependencies. Today it holds
//! the one interface the example domains use, [`service::Service`]: a
//! deliberately tiny request interface (`call(op, arg) -> u64`) standing in
//! until the IDL compiler (`rrpc`, `#[interface]`) generates typed proxies
//! for real interfaces. The kernel turns every call through it into a
//! contained domain entry.

#![no_std]
#![forbid(unsafe_code)]

pub mod service {
    use core::fmt;

    /// What a domain exports.
    pub trait Service: Send + Sync {
        fn call(&self, op: u32, arg: u64) -> u64;
    }

    /// Why a call into another domain produced no value.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum CallError {
        /// The callee crashed during this call (it is now poisoned).
        Crashed,
        /// The callee was already crashed, killed or restarted.
        NotAlive,
        /// No domain has that name.
        NoSuchDomain,
    }

    impl fmt::Display for CallError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                CallError::Crashed => write!(f, "domain crashed"),
                CallError::NotAlive => write!(f, "domain is not alive"),
                CallError::NoSuchDomain => write!(f, "no such domain"),
            }
        }
    }
}
