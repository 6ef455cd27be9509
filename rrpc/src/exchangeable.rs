//! Types that may cross a domain boundary.

use crate::rref::RRef;

/// A type that may be passed between domains: plain data, `RRef`s, and
/// compositions of them. It holds no reference into any domain's private
/// heap or image (no `Box`, `Vec`, `&T`, `Cell`, function pointer...), so a
/// value of it stays meaningful after the domain that made it is gone.
///
/// **Ownership.** Every `RRef` in a value is owned by the domain that holds
/// the value (its tree: an `RRef` inside another `RRef`'s value is owned by
/// the same domain as its root). Crossing a call moves the whole tree
/// ([`move_roots`](Self::move_roots)), so whatever safe code does with
/// `&mut` access inside its own trees (swapping `RRef`s in and out of
/// them), every object it can reach is its own, and a dead domain's objects
/// are exactly those on its list in the registry: freed without running any
/// domain's code.
///
/// # Safety
/// Only `#[derive(Exchangeable)]` (which checks every field) and this crate
/// implement it: an implementation written by hand could claim a type holding
/// references is exchangeable, or skip `RRef`s when they move, and either
/// breaks isolation (memory of a dead domain reached through a survivor's
/// value). Domain crates forbid unsafe code, so they cannot implement it.
/// An implementation must make [`move_roots`](Self::move_roots) reach every
/// `RRef` in the value, and set [`PLAIN`](Self::PLAIN) only if there are
/// none.
// The error for a type that is not exchangeable says what is, and how to
// make a type of one's own exchangeable (rustc's list of a few of the
// implementations below says neither).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot cross a domain boundary",
    label = "not `Exchangeable`",
    note = "plain data, `RRef<T>`, arrays, tuples and `Option` of those, and types with `#[derive(rrpc::Exchangeable)]` (declared in `interfaces/`) can cross; a value on a domain's private heap (`Box`, `Vec`, `String`) or a reference into it cannot: use `RRef<T>` (a whole argument may also be a lent `&RRef<T>`)"
)]
pub unsafe trait Exchangeable {
    /// True if no value of the type holds an `RRef` (crossing a call moves
    /// nothing): proxies then skip the ownership pass entirely.
    const PLAIN: bool = false;
    /// Gives every `RRef` in the value (nested ones included) to the owner
    /// `to` names (the value is crossing a call).
    fn move_roots(&self, to: &Transfer) {
        let _ = to;
    }
    /// Whether some `RRef` in the value is lent ([`RRef::is_lent`]): such
    /// a value must not move (a proxy refuses the call).
    fn any_lent(&self) -> bool {
        false
    }
}

/// Whom [`Exchangeable::move_roots`] gives `RRef`s to. Giving `RRef`s away
/// while keeping them (or taking ones that are only lent) would let one
/// domain's death free memory another still uses, so no safe code makes
/// one: a proxy's entry capability names the callee of the call its
/// arguments move into ([`EntryCap::transfer`](crate::proxy::EntryCap::transfer)),
/// and trusted code names the running domain or any owner (both `unsafe`).
pub struct Transfer {
    owner: crate::Owner,
    /// The core of the registry critical section the transfer is made in
    /// ([`Transfer::within`]), or [`NOT_IN_CRITICAL`]: moves made with it
    /// then skip entering a section of their own.
    pub(crate) critical_core: usize,
}

/// [`Transfer::critical_core`] outside any critical section.
pub(crate) const NOT_IN_CRITICAL: usize = usize::MAX;

impl Transfer {
    /// To the running domain (results coming back from a call, arguments
    /// arriving in a callee).
    ///
    /// # Safety
    /// Every `RRef` moved with it is held *by value* by the code that moves
    /// it (a call's arguments or result), never reached through a lent
    /// `&RRef` (taking a lent one would let the taker's death free it under
    /// its owner).
    #[inline]
    pub unsafe fn here() -> Transfer {
        Transfer {
            owner: crate::proxy::current(),
            critical_core: NOT_IN_CRITICAL,
        }
    }

    /// [`new`](Self::new), inside the critical section `critical`: the
    /// transfer must not outlive it.
    ///
    /// # Safety
    /// As for [`new`](Self::new).
    #[inline]
    pub(crate) unsafe fn within(
        owner: crate::Owner,
        critical: &crate::proxy::InCritical,
    ) -> Transfer {
        Transfer {
            owner,
            critical_core: critical.core(),
        }
    }

    /// To `owner`.
    ///
    /// # Safety
    /// The values moved with it must really be handed over: their holder
    /// keeps no `RRef` it gives away (as a proxy moving its arguments), and
    /// holds them by value (see [`here`](Self::here)).
    #[inline]
    pub const unsafe fn new(owner: crate::Owner) -> Transfer {
        Transfer {
            owner,
            critical_core: NOT_IN_CRITICAL,
        }
    }

    /// The receiving domain incarnation.
    #[inline]
    pub fn owner(&self) -> crate::Owner {
        self.owner
    }
}

macro_rules! plain {
    ($($t:ty),*) => { $(
        // SAFETY: plain data, no `RRef` and no reference inside.
        #[diagnostic::do_not_recommend]
        unsafe impl Exchangeable for $t { const PLAIN: bool = true; }
    )* };
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
    core::sync::atomic::AtomicBool,
    crate::Owner,
    owner::AtomicOwnerId
);

// SAFETY: an array holds its elements and moves each.
#[diagnostic::do_not_recommend]
unsafe impl<T: Exchangeable, const N: usize> Exchangeable for [T; N] {
    const PLAIN: bool = T::PLAIN;
    fn move_roots(&self, to: &Transfer) {
        if !T::PLAIN {
            self.iter().for_each(|v| v.move_roots(to));
        }
    }
    fn any_lent(&self) -> bool {
        !T::PLAIN && self.iter().any(Exchangeable::any_lent)
    }
}

// SAFETY: holds at most one `T` and moves it.
#[diagnostic::do_not_recommend]
unsafe impl<T: Exchangeable> Exchangeable for Option<T> {
    const PLAIN: bool = T::PLAIN;
    fn move_roots(&self, to: &Transfer) {
        if let Some(value) = self {
            value.move_roots(to);
        }
    }
    fn any_lent(&self) -> bool {
        self.as_ref().is_some_and(Exchangeable::any_lent)
    }
}

macro_rules! tuple {
    ($($name:ident),+) => {
        // SAFETY: a tuple holds its fields and moves each.
        #[diagnostic::do_not_recommend]
        unsafe impl<$($name: Exchangeable),+> Exchangeable for ($($name,)+) {
            const PLAIN: bool = $($name::PLAIN &&)+ true;
            #[allow(non_snake_case)]
            fn move_roots(&self, to: &Transfer) {
                let ($($name,)+) = self;
                $($name.move_roots(to);)+
            }
            #[allow(non_snake_case)]
            fn any_lent(&self) -> bool {
                let ($($name,)+) = self;
                false $(|| $name.any_lent())+
            }
        }
    };
}

tuple!(A);
tuple!(A, B);
tuple!(A, B, C);
tuple!(A, B, C, D);

// SAFETY: moves itself and, through `move_to`, everything in its value.
#[diagnostic::do_not_recommend]
unsafe impl<T: Exchangeable> Exchangeable for RRef<T> {
    fn move_roots(&self, to: &Transfer) {
        self.move_to(to);
    }
    fn any_lent(&self) -> bool {
        self.is_lent() || (!T::PLAIN && (**self).any_lent())
    }
}
