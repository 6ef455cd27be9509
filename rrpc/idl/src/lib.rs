//! The IDL compiler, as ordinary procedural macros (no source rewriting,
//! no external step).
//!
//! - `#[derive(Exchangeable)]`: a struct or enum may cross domains if every
//!   field may; the error for a field that may not names its type at its
//!   span. The derived `move_roots` visits every field. `Exchangeable` is
//!   an `unsafe` trait (a hand-written implementation could lie), so the
//!   derive emits an `unsafe impl` under `#[allow(unsafe_code)]`: it works
//!   in trusted crates and in `interfaces/` (which denies unsafe code), and
//!   fails in domain crates, which forbid it: types that cross domains are
//!   declared in `interfaces/`.
//! - `#[interface]` on a trait: every method takes `&self` and returns
//!   `RpcResult<T>`; every argument and result type must be exchangeable:
//!   `&mut T`, `&T` (other than `&RRef<T>`), raw pointers, `Box`, `Vec`,
//!   `String`, closures and `impl Trait` are rejected with an error at the
//!   offending type. It then generates `<Trait>Proxy`, which implements the
//!   trait by entering the callee's domain for each call (through the
//!   runtime the kernel installs in `rrpc::proxy`), moving `RRef`
//!   arguments to the callee and results back to the caller.
//!
//! `async fn` methods become methods returning `rrpc::RpcFuture` (a boxed
//! future, so the trait stays usable as `dyn Trait`); their proxies call
//! the implementation's method inside the callee and return its future
//! marked so that every poll (and the drop) enters the callee. A generated proxy is itself `Exchangeable`, so
//! interface handles cross calls as proxies (calls through them enter the
//! exporting domain, whoever holds them).

mod expand;
#[cfg(test)]
mod generated;

use expand::{assert_exchangeable, interface_impl};
use proc_macro::TokenStream;
use quote::{format_ident, quote};
use syn::{Data, DeriveInput, Error, Fields, ItemTrait, parse_macro_input};

#[proc_macro_derive(Exchangeable)]
pub fn derive_exchangeable(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    let name = &input.ident;
    let (impl_generics, type_generics, where_clause) = input.generics.split_for_impl();
    let mut checks = Vec::new();
    let mut field_types = Vec::new();
    let (moves, lent) = match &input.data {
        Data::Struct(data) => {
            let members: Vec<_> = data.fields.members().collect();
            for field in &data.fields {
                checks.push(assert_exchangeable(&field.ty));
                field_types.push(field.ty.clone());
            }
            (
                quote! { #( ::rrpc::Exchangeable::move_roots(&self.#members, to); )* },
                quote! { false #( || ::rrpc::Exchangeable::any_lent(&self.#members) )* },
            )
        }
        Data::Enum(data) => {
            let mut move_arms = Vec::new();
            let mut lent_arms = Vec::new();
            for variant in &data.variants {
                let v = &variant.ident;
                let bindings: Vec<_> = (0..variant.fields.len())
                    .map(|i| format_ident!("f{i}"))
                    .collect();
                for field in &variant.fields {
                    checks.push(assert_exchangeable(&field.ty));
                    field_types.push(field.ty.clone());
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
                move_arms.push(quote! { #pattern => { #( ::rrpc::Exchangeable::move_roots(#bindings, to); )* } });
                lent_arms.push(quote! { #pattern => { false #( || ::rrpc::Exchangeable::any_lent(#bindings) )* } });
            }
            (
                quote! { match self { #( #move_arms )* } },
                quote! { match self { #( #lent_arms )* } },
            )
        }
        Data::Union(u) => {
            return Error::new(u.union_token.span, "unions cannot be Exchangeable")
                .to_compile_error()
                .into();
        }
    };
    quote! {
        // SAFETY: every field is checked to be exchangeable (below) and
        // moved by `move_roots`; `PLAIN` only if every field is.
        #[allow(unsafe_code)]
        unsafe impl #impl_generics ::rrpc::Exchangeable for #name #type_generics #where_clause {
            const PLAIN: bool = #( <#field_types as ::rrpc::Exchangeable>::PLAIN && )* true;
            fn move_roots(&self, to: &::rrpc::Transfer) {
                #( #checks )*
                let _ = to;
                #moves
            }
            #[allow(unused_variables)]
            fn any_lent(&self) -> bool {
                #lent
            }
        }
    }
    .into()
}

#[proc_macro_attribute]
pub fn interface(_args: TokenStream, input: TokenStream) -> TokenStream {
    let item = parse_macro_input!(input as ItemTrait);
    match interface_impl(&item) {
        Ok(tokens) => tokens.into(),
        Err(error) => {
            let error = error.to_compile_error();
            quote! { #item #error }.into()
        }
    }
}
