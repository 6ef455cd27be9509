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
    /// Gives every root `RRef` in the value to `owner` (it is crossing a
    /// call).
    fn move_roots(&self, owner: crate::Owner) {
        let _ = owner;
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
    fn move_roots(&self, owner: crate::Owner) {
        self.iter().for_each(|v| v.move_roots(owner));
    }
}

impl<T: Exchangeable> Exchangeable for Option<T> {
    const PLAIN: bool = T::PLAIN;
    fn adopt(&self) {
        if let Some(value) = self {
            value.adopt();
        }
    }
    fn move_roots(&self, owner: crate::Owner) {
        if let Some(value) = self {
            value.move_roots(owner);
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
            fn move_roots(&self, owner: crate::Owner) {
                let ($($name,)+) = self;
                $($name.move_roots(owner);)+
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
    fn move_roots(&self, owner: crate::Owner) {
        self.move_to(owner);
    }
}
