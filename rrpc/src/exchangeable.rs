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
    fn adopt(&self) {}
}

macro_rules! plain {
    ($($t:ty),*) => { $(impl Exchangeable for $t {})* };
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
    ()
);

impl<T: Exchangeable, const N: usize> Exchangeable for [T; N] {
    fn adopt(&self) {
        self.iter().for_each(Exchangeable::adopt);
    }
}

impl<T: Exchangeable> Exchangeable for Option<T> {
    fn adopt(&self) {
        if let Some(value) = self {
            value.adopt();
        }
    }
}

macro_rules! tuple {
    ($($name:ident),+) => {
        impl<$($name: Exchangeable),+> Exchangeable for ($($name,)+) {
            #[allow(non_snake_case)]
            fn adopt(&self) {
                let ($($name,)+) = self;
                $($name.adopt();)+
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
}
