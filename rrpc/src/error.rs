use core::fmt;

/// Why a cross-domain call produced no value.
///
/// `repr(u64)` is for speed: with a word-sized error, `RpcResult<T>` for a
/// word-sized `T` (`u64`, `()`, pointers) is a pair of scalars that the
/// calling convention returns in registers. With a byte-sized error it
/// went through memory, as a byte tag that the proxy layers then copied
/// with wider loads, which defeats store-to-load forwarding: that cost
/// more than half of a null cross-domain call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
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
    /// An `RRef` to be moved (an argument or a result) is lent to a call
    /// its lender abandoned (forgot while pending): it stays where it is
    /// until its owner dies, and no call may move it.
    Lent,
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RpcError::DomainCrashed => write!(f, "the callee domain crashed"),
            RpcError::DomainNotAlive => write!(f, "the callee domain is not alive"),
            RpcError::OutOfMemory => write!(f, "the shared heap is full"),
            RpcError::NoSuchDomain => write!(f, "no such domain"),
            RpcError::NoSuchInterface => write!(f, "no such interface"),
            RpcError::Lent => write!(f, "an RRef to move is lent to an abandoned call"),
        }
    }
}

/// The result of every cross-domain call.
pub type RpcResult<T> = Result<T, RpcError>;
