use core::fmt;

/// Why a cross-domain call produced no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RpcError {
    /// The callee crashed during this call; it is now poisoned.
    DomainCrashed,
    /// The callee was already crashed, killed or restarted.
    DomainNotAlive,
    /// The shared heap could not hold an argument or result.
    OutOfMemory,
    /// No domain has the name asked for.
    NoSuchDomain,
    /// No alive domain exports an interface of that name and type.
    NoSuchInterface,
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RpcError::DomainCrashed => write!(f, "the callee domain crashed"),
            RpcError::DomainNotAlive => write!(f, "the callee domain is not alive"),
            RpcError::OutOfMemory => write!(f, "the shared heap is full"),
            RpcError::NoSuchDomain => write!(f, "no such domain"),
            RpcError::NoSuchInterface => write!(f, "no such interface"),
        }
    }
}

/// The result of every cross-domain call.
pub type RpcResult<T> = Result<T, RpcError>;
