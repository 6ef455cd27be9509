//! Types that may cross a domain boundary.

use crate::rref::RRef;

/// A type that may be passed between domains: plain data, `RRef`s, and
/// compositions of them. It must hold no reference into any domain's
/// private heap (no `Box`, `Vec`, `&T`...).
///
/// `adopt` is called when a value becomes part of an `RRef` (it is moved
/// onto the shared heap): every `RRef` inside it is then owned through the
/// new root instead of by a domain. The derive macro (IDL compiler, to
/// come) implements it field by field; plain data does nothing.
pub trait Exchangeable {
    /// True if no value of the type holds an `RRef` (crossing a call moves
    /// nothing): proxies then skip the ownership pass entirely.
    const PLAIN: bool = false;
    /// Nests every `RRef` in the value (it is moving onto the shared heap).
    fn adopt(&self) {}
    /// Gives every root `RRef` in the value to the owner `to` names (it is
    /// crossing a call).
    fn move_roots(&self, to: &Transfer) {
        let _ = to;
    }
}

/// Whom [`Exchangeable::move_roots`] gives `RRef`s to. Giving one's own
/// `RRef`s away while keeping them would let the receiver's death free
/// memory the giver still uses, so only the running domain itself
/// ([`Transfer::here`]) or a proxy's entry capability
/// ([`EntryCap::transfer`](crate::proxy::EntryCap::transfer): the callee
/// of a call the value is moving into) names a receiver.
pub struct Transfer {
    owner: crate::Owner,
}

impl Transfer {
    /// To the running domain (results coming back from a call).
    #[inline]
    pub fn here() -> Transfer {
        Transfer {
            owner: crate::proxy::current(),
        }
    }

    /// To `owner`.
    ///
    /// # Safety
    /// The values moved with it must really be handed over: their holder
    /// keeps no `RRef` it gives away (as a proxy moving its arguments).
    #[inline]
    pub const unsafe fn new(owner: crate::Owner) -> Transfer {
        Transfer { owner }
    }

    /// The receiving domain incarnation.
    #[inline]
    pub fn owner(&self) -> crate::Owner {
        self.owner
    }
}

macro_rules! plain {
    ($($t:ty),*) => { $(impl Exchangeable for $t { const PLAIN: bool = true; })* };
}

plain!(
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    bool,
    char,
    f32,
    f64,
    (),
    core::sync::atomic::AtomicU8,
    core::sync::atomic::AtomicU16,
    core::sync::atomic::AtomicU32,
    core::sync::atomic::AtomicU64,
    core::sync::atomic::AtomicBool
);

impl<T: Exchangeable, const N: usize> Exchangeable for [T; N] {
    const PLAIN: bool = T::PLAIN;
    fn adopt(&self) {
        self.iter().for_each(Exchangeable::adopt);
    }
    fn move_roots(&self, to: &Transfer) {
        self.iter().for_each(|v| v.move_roots(to));
    }
}

impl<T: Exchangeable> Exchangeable for Option<T> {
    const PLAIN: bool = T::PLAIN;
    fn adopt(&self) {
        if let Some(value) = self {
            value.adopt();
        }
    }
    fn move_roots(&self, to: &Transfer) {
        if let Some(value) = self {
            value.move_roots(to);
        }
    }
}

macro_rules! tuple {
    ($($name:ident),+) => {
        impl<$($name: Exchangeable),+> Exchangeable for ($($name,)+) {
            const PLAIN: bool = $($name::PLAIN &&)+ true;
            #[allow(non_snake_case)]
            fn adopt(&self) {
                let ($($name,)+) = self;
                $($name.adopt();)+
            }
            #[allow(non_snake_case)]
            fn move_roots(&self, to: &Transfer) {
                let ($($name,)+) = self;
                $($name.move_roots(to);)+
            }
        }
    };
}

tuple!(A);
tuple!(A, B);
tuple!(A, B, C);
tuple!(A, B, C, D);

impl<T: Exchangeable> Exchangeable for RRef<T> {
    fn adopt(&self) {
        self.make_nested();
    }
    fn move_roots(&self, to: &Transfer) {
        self.move_to(to);
    }
}
