//! The IDL compiler, as ordinary procedural macros (no source rewriting,
//! no external step).
//!
//! - `#[derive(Exchangeable)]`: a struct or enum may cross domains if every
//!   field may. A field of a shape that never may (`Box`, `Vec`, `String`,
//!   references, raw pointers, closures...) is rejected with the same
//!   explanation `#[interface]` gives, at the field's type; any other field
//!   that is not exchangeable is reported by rustc, once, at its type. The
//!   derived `move_roots` visits every field. `Exchangeable` is an `unsafe`
//!   trait (a hand-written implementation could lie), so the derive emits
//!   an `unsafe impl` under `#[allow(unsafe_code)]`: it works in trusted
//!   crates and in `interfaces/` (which denies unsafe code), and fails in
//!   domain crates, which forbid it: types that cross domains are declared
//!   in `interfaces/`.
//! - `#[interface]` on a trait: the trait holds only methods and is not
//!   generic; every method takes `&self`, is not generic (a proxy is called
//!   through `dyn Trait`) and returns `RpcResult<T>`; every argument and
//!   result type must be exchangeable: `&mut T`, `&T` (other than a whole
//!   argument `&RRef<T>`), raw pointers, `Box`, `Vec`, `String`, closures,
//!   `impl Trait` and unsized values (`RRef<[u8]>`) are rejected with an
//!   error at the offending method or type, which says why. It then
//!   generates `<Trait>Proxy`, which implements the trait by entering the
//!   callee's domain for each call (through the runtime the kernel
//!   installs in `rrpc::proxy`), moving `RRef` arguments to the callee and
//!   results back to the caller.
//!
//! `async fn` methods become methods returning `rrpc::RpcFuture` (a boxed
//! future, so the trait stays usable as `dyn Trait`); their proxies call
//! the implementation's method inside the callee and return its future
//! marked so that every poll (and the drop) enters the callee. A generated
//! proxy is itself `Exchangeable`, so interface handles cross calls as
//! proxies (calls through them enter the exporting domain, whoever holds
//! them).
//!
//! An interface's identity across images (`Interface::FINGERPRINT`) is a
//! hash of its signatures (names, argument and result types, `async`), not
//! of its text: comments, doc comments and layout do not change it.

mod expand;
#[cfg(test)]
mod generated;

use expand::{Place, check_type};
use proc_macro::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Error, Fields, ItemTrait, Type, parse_macro_input};

/// `<ty as Exchangeable>::item`, at `ty`'s span: every use of a field's
/// type names it this way, so a field that is not exchangeable is reported
/// once, at the field (rustc merges the identical errors of the impl's
/// items), rather than also at the derive.
fn through(ty: &Type, item: proc_macro2::TokenStream) -> proc_macro2::TokenStream {
    quote_spanned! {ty.span()=> <#ty as ::rrpc::Exchangeable>::#item }
}

#[proc_macro_derive(Exchangeable)]
pub fn derive_exchangeable(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    let name = &input.ident;
    let (impl_generics, type_generics, where_clause) = input.generics.split_for_impl();
    let mut errors: Option<Error> = None;
    // The shapes an interface rejects, with the same explanation, at the
    // field. A rejected field is left out of the impl below (the build
    // fails anyway), so that rustc does not report it a second time.
    let mut accepted = |ty: &Type| match check_type(ty, Place::Field) {
        Ok(()) => true,
        Err(e) => {
            match &mut errors {
                Some(all) => all.combine(e),
                None => errors = Some(e),
            }
            false
        }
    };
    let mut field_types = Vec::new();
    let (moves, lent) = match &input.data {
        Data::Struct(data) => {
            let mut moves = Vec::new();
            let mut lent = Vec::new();
            for (member, field) in data.fields.members().zip(&data.fields) {
                if !accepted(&field.ty) {
                    continue;
                }
                moves.push(through(&field.ty, quote!(move_roots(&self.#member, to))));
                lent.push(through(&field.ty, quote!(any_lent(&self.#member))));
                field_types.push(field.ty.clone());
            }
            (quote! { #( #moves; )* }, quote! { false #( || #lent )* })
        }
        Data::Enum(data) => {
            let mut move_arms = Vec::new();
            let mut lent_arms = Vec::new();
            for variant in &data.variants {
                let v = &variant.ident;
                let mut bindings = Vec::new();
                let mut moves = Vec::new();
                let mut lent = Vec::new();
                for (i, field) in variant.fields.iter().enumerate() {
                    if !accepted(&field.ty) {
                        bindings.push(format_ident!("_"));
                        continue;
                    }
                    let binding = format_ident!("f{i}");
                    moves.push(through(&field.ty, quote!(move_roots(#binding, to))));
                    lent.push(through(&field.ty, quote!(any_lent(#binding))));
                    field_types.push(field.ty.clone());
                    bindings.push(binding);
                }
                let pattern = match &variant.fields {
                    Fields::Named(named) => {
                        let names: Vec<_> = named
                            .named
                            .iter()
                            .map(|f| f.ident.clone().unwrap())
                            .collect();
                        quote! { Self::#v { #( #names: #bindings ),* } }
                    }
                    Fields::Unnamed(_) => quote! { Self::#v( #( #bindings ),* ) },
                    Fields::Unit => quote! { Self::#v },
                };
                move_arms.push(quote! { #pattern => { #( #moves; )* } });
                lent_arms.push(quote! { #pattern => { false #( || #lent )* } });
            }
            (
                quote! { match self { #( #move_arms )* } },
                quote! { match self { #( #lent_arms )* } },
            )
        }
        Data::Union(u) => {
            return Error::new(
                u.union_token.span,
                "unions cannot be Exchangeable: which field holds an `RRef` is not known, so it could not move with the value",
            )
            .to_compile_error()
            .into();
        }
    };
    let plain: Vec<_> = field_types
        .iter()
        .map(|ty| through(ty, quote!(PLAIN)))
        .collect();
    let errors = errors.map(|e| e.to_compile_error());
    quote! {
        // SAFETY: every field's type is exchangeable (each is used through
        // its `Exchangeable` implementation below, which fails to compile
        // otherwise), `move_roots` moves every field, and `PLAIN` holds
        // only if every field's does.
        #[allow(unsafe_code)]
        unsafe impl #impl_generics ::rrpc::Exchangeable for #name #type_generics #where_clause {
            const PLAIN: bool = #( #plain && )* true;
            fn move_roots(&self, to: &::rrpc::Transfer) {
                let _ = to;
                #moves
            }
            #[allow(unused_variables)]
            fn any_lent(&self) -> bool {
                #lent
            }
        }
        #errors
    }
    .into()
}

#[proc_macro_attribute]
pub fn interface(_args: TokenStream, input: TokenStream) -> TokenStream {
    let item = parse_macro_input!(input as ItemTrait);
    expand::interface(&item).into()
}
