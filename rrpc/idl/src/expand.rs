//! The `#[interface]` expansion as a plain function over `proc_macro2`
//! tokens ([`interface_impl`]), so that it also runs outside the compiler:
//! the crate's tests expand `interfaces::bdev::BDev` with it and keep
//! `docs/generated/bdev_proxy.rs` identical to the output.

use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{
    Error, FnArg, GenericArgument, ItemTrait, Pat, PathArguments, ReturnType, TraitItem, Type,
};

/// A statement that fails to compile, at `ty`'s span, unless `ty` is
/// exchangeable.
pub(crate) fn assert_exchangeable(ty: &Type) -> proc_macro2::TokenStream {
    quote_spanned! {ty.span()=>
        let _: fn() = || { fn must_be_exchangeable<T: ::rrpc::Exchangeable + ?Sized>() {} must_be_exchangeable::<#ty>(); };
    }
}

/// `ty` with the lifetime `'rrpc` if it is a reference.
fn with_lifetime(ty: &Type) -> Type {
    match ty {
        Type::Reference(r) => {
            let mut r = r.clone();
            r.lifetime = Some(syn::parse_quote!('rrpc));
            Type::Reference(r)
        }
        other => other.clone(),
    }
}

fn last_segment(ty: &Type) -> Option<&syn::PathSegment> {
    match ty {
        Type::Path(p) => p.path.segments.last(),
        _ => None,
    }
}

fn is_rref(ty: &Type) -> bool {
    last_segment(ty).is_some_and(|s| s.ident == "RRef")
}

/// Rejects shapes that can never cross a domain boundary, naming why.
fn check_type(ty: &Type) -> Result<(), Error> {
    match ty {
        Type::Reference(r) if r.mutability.is_some() => Err(Error::new(
            ty.span(),
            "`&mut` cannot cross a domain boundary: pass an `RRef<T>` and get it back",
        )),
        Type::Reference(r) if !is_rref(&r.elem) => Err(Error::new(
            ty.span(),
            "references cannot cross a domain boundary (only `&RRef<T>`, lent for the call)",
        )),
        Type::Reference(r) => check_type(&r.elem),
        Type::Ptr(_) => Err(Error::new(
            ty.span(),
            "raw pointers cannot cross a domain boundary",
        )),
        Type::BareFn(_) | Type::ImplTrait(_) | Type::TraitObject(_) => Err(Error::new(
            ty.span(),
            "closures, `impl Trait` and trait objects cannot cross a domain boundary",
        )),
        Type::Path(_) => {
            let segment = last_segment(ty).expect("path type");
            let name = segment.ident.to_string();
            if matches!(name.as_str(), "Box" | "Vec" | "String" | "Rc" | "Arc") {
                return Err(Error::new(
                    ty.span(),
                    format!(
                        "`{name}` lives on a domain's private heap and cannot cross a domain boundary; use `RRef`"
                    ),
                ));
            }
            if let PathArguments::AngleBracketed(args) = &segment.arguments {
                for arg in &args.args {
                    if let GenericArgument::Type(inner) = arg {
                        check_type(inner)?;
                    }
                }
            }
            Ok(())
        }
        Type::Tuple(t) => t.elems.iter().try_for_each(check_type),
        Type::Array(a) => check_type(&a.elem),
        Type::Paren(p) => check_type(&p.elem),
        _ => Err(Error::new(
            ty.span(),
            "this type cannot cross a domain boundary",
        )),
    }
}

/// The `T` of `RpcResult<T>`.
fn rpc_result_inner(output: &ReturnType) -> Result<&Type, Error> {
    let ReturnType::Type(_, ty) = output else {
        return Err(Error::new(
            output.span(),
            "interface methods must return `RpcResult<T>`",
        ));
    };
    let Some(segment) = last_segment(ty).filter(|s| s.ident == "RpcResult") else {
        return Err(Error::new(
            ty.span(),
            "interface methods must return `RpcResult<T>` (the callee may crash)",
        ));
    };
    match &segment.arguments {
        PathArguments::AngleBracketed(args) if args.args.len() == 1 => match &args.args[0] {
            GenericArgument::Type(inner) => Ok(inner),
            other => Err(Error::new(other.span(), "expected a type")),
        },
        _ => Err(Error::new(segment.span(), "expected `RpcResult<T>`")),
    }
}

/// What `#[interface]` turns `item` into (or the errors it reports).
pub fn interface_impl(item: &ItemTrait) -> Result<proc_macro2::TokenStream, Error> {
    let name = &item.ident;
    let proxy = format_ident!("{name}Proxy");
    let vis = &item.vis;
    let mut methods = Vec::new();
    let mut errors: Option<Error> = None;
    let mut push = |e: Error| match &mut errors {
        Some(all) => all.combine(e),
        None => errors = Some(e),
    };
    for trait_item in &item.items {
        let TraitItem::Fn(method) = trait_item else {
            continue;
        };
        let sig = &method.sig;
        let is_async = sig.asyncness.is_some();
        match sig.inputs.first() {
            Some(FnArg::Receiver(r)) if r.reference.is_some() && r.mutability.is_none() => {}
            _ => push(Error::new(sig.span(), "interface methods take `&self`")),
        }
        let result = match rpc_result_inner(&sig.output) {
            Ok(ty) => {
                if let Err(e) = check_type(ty) {
                    push(e);
                }
                Some(ty)
            }
            Err(e) => {
                push(e);
                None
            }
        };
        let mut arg_names = Vec::new();
        let mut arg_types = Vec::new();
        for arg in sig.inputs.iter().skip(1) {
            let FnArg::Typed(typed) = arg else { continue };
            if let Err(e) = check_type(&typed.ty) {
                push(e);
            }
            match &*typed.pat {
                Pat::Ident(ident) => arg_names.push(ident.ident.clone()),
                other => push(Error::new(
                    other.span(),
                    "interface arguments must be plain names",
                )),
            }
            arg_types.push((*typed.ty).clone());
        }
        if result.is_none() {
            continue;
        }
        let method_name = &sig.ident;
        let output = &sig.output;
        let result_type = result.expect("checked above");
        // Arguments move to the callee inside it (so nothing is given to a
        // callee that turns out to be dead: a call that never starts drops
        // them in the caller).
        let moves: Vec<_> = arg_names
            .iter()
            .zip(&arg_types)
            .filter(|(_, ty)| !matches!(ty, Type::Reference(_)))
            .map(|(n, _)| quote! { ::rrpc::proxy::receive_in(critical, &proxy.entry, &#n); })
            .collect();
        // An argument that holds a lent `RRef` (lent to a call its caller
        // abandoned) must not change hands: the call is refused.
        let movables: Vec<_> = arg_names
            .iter()
            .zip(&arg_types)
            .filter(|(_, ty)| !matches!(ty, Type::Reference(_)))
            .map(|(n, _)| quote! { ::rrpc::proxy::movable(&#n) })
            .collect();
        let lends: Vec<_> = arg_names
            .iter()
            .zip(&arg_types)
            .filter(|(_, ty)| matches!(ty, Type::Reference(_)))
            .map(|(n, _)| {
                let guard = format_ident!("__lent_{}", n);
                quote! { let #guard = #n.lend(); }
            })
            .collect();
        // For async calls, the callee gets a reference to a copy of each
        // lent handle kept in the call's own (boxed) state: memory the
        // caller cannot reuse even if it abandons the call, which the
        // kernel may still drop inside the callee when the caller dies.
        let copies: Vec<_> = arg_names
            .iter()
            .zip(&arg_types)
            .filter(|(_, ty)| matches!(ty, Type::Reference(_)))
            .map(|(n, _)| {
                let copy = format_ident!("__copy_{}", n);
                // SAFETY (in the generated code): only read through `&`,
                // never dropped, and alive as long as the lend above.
                quote! {
                    let #copy = unsafe { #n.alias() };
                    let #n = &*#copy;
                }
            })
            .collect();
        // Whether no by-value argument can hold an `RRef` (nothing to move;
        // folded at compile time).
        let plain_args: Vec<_> = arg_types
            .iter()
            .filter(|ty| !matches!(ty, Type::Reference(_)))
            .map(|ty| quote! { <#ty as ::rrpc::Exchangeable>::PLAIN })
            .collect();
        let plain = quote! { true #( && #plain_args )* };
        let checks: Vec<_> = arg_types
            .iter()
            .filter(|ty| !matches!(ty, Type::Reference(_)))
            .map(assert_exchangeable)
            .collect();
        let has_refs = arg_types.iter().any(|ty| matches!(ty, Type::Reference(_)));
        if is_async && has_refs {
            // Borrowed `&RRef` arguments of an async method: the returned
            // future borrows them (explicit lifetime) and keeps them lent
            // until it completes or is dropped, so a crash of the callee
            // leaves them with the caller.
            let ref_types: Vec<_> = arg_types.iter().map(with_lifetime).collect();
            methods.push(quote! {
                fn #method_name<'rrpc>(&'rrpc self, #( #arg_names: #ref_types ),*)
                    -> ::rrpc::RpcFuture<'rrpc, #result_type>
                {
                    #( #checks )*
                    let Some(inner) = self.inner.get() else {
                        return ::rrpc::RpcFuture::failed(::rrpc::RpcError::DomainNotAlive);
                    };
                    #( if let Err(e) = #movables {
                        return ::rrpc::RpcFuture::failed(e);
                    } )*
                    // Boxed in the caller, lazily: the call starts at the
                    // first poll, with the arguments lent until it ends.
                    let proxy = self;
                    ::rrpc::RpcFuture::new(async move {
                        #( #lends )*
                        #( #copies )*
                        ::rrpc::start_async(&proxy.entry, move |moved| {
                            moved.receive_all(#plain, |critical| { #( #moves )* });
                            inner.#method_name(#( #arg_names ),*)
                        }).await
                    })
                }
            });
            continue;
        }
        if is_async {
            methods.push(quote! {
                fn #method_name(&self, #( #arg_names: #arg_types ),*)
                    -> ::rrpc::RpcFuture<'_, #result_type>
                {
                    #( #checks )*
                    if self.inner.get().is_none() {
                        return ::rrpc::RpcFuture::failed(::rrpc::RpcError::DomainNotAlive);
                    }
                    #( if let Err(e) = #movables {
                        return ::rrpc::RpcFuture::failed(e);
                    } )*
                    // The call is kept in the future (no box of our own) and
                    // runs inside the callee at the first poll. It holds the
                    // proxy (one word) rather than the object.
                    let proxy = self;
                    ::rrpc::start_async(&self.entry, move |moved| {
                        moved.receive_all(#plain, |critical| { #( #moves )* });
                        match proxy.inner.get() {
                            ::core::option::Option::Some(inner) => inner.#method_name(#( #arg_names ),*),
                            ::core::option::Option::None => ::rrpc::RpcFuture::failed(::rrpc::RpcError::DomainNotAlive),
                        }
                    })
                }
            });
            continue;
        }
        methods.push(quote! {
            fn #method_name(&self, #( #arg_names: #arg_types ),*) #output {
                #( #checks )*
                // `&RRef` arguments are lent for the call (borrow count).
                #( #lends )*
                let inner = self.inner.get().ok_or(::rrpc::RpcError::DomainNotAlive)?;
                #( #movables?; )*
                let proxy = self;
                let result = ::rrpc::proxy::call_method(&self.entry, move |moved| {
                    moved.receive_all(#plain, |critical| { #( #moves )* });
                    inner.#method_name(#( #arg_names ),*)
                })??;
                // Back in the caller (the entry restored it): the result's
                // RRefs are the caller's, unless one is lent (the callee
                // abandoned a call lending it): then it stays the callee's.
                if let Err(e) = ::rrpc::proxy::movable(&result) {
                    ::core::mem::forget(result);
                    return Err(e);
                }
                ::rrpc::proxy::receive(&proxy.entry, &result);
                Ok(result)
            }
        });
    }
    if let Some(errors) = errors {
        return Err(errors);
    }
    // The interface's identity across separately built images: FNV-1a of
    // the trait's tokens as written (whitespace-insensitive).
    let fingerprint = {
        let text = quote!(#item).to_string();
        let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        proc_macro2::Literal::u64_suffixed(hash)
    };
    // Async methods become methods returning `rrpc::RpcFuture` (a boxed
    // future), so the trait stays usable as `dyn Trait` (the proxy is one).
    let mut item = item.clone();
    for trait_item in &mut item.items {
        if let TraitItem::Fn(method) = trait_item
            && method.sig.asyncness.is_some()
        {
            let inner = rpc_result_inner(&method.sig.output)?.clone();
            method.sig.asyncness = None;
            let borrows =
                method.sig.inputs.iter().skip(1).any(
                    |arg| matches!(arg, FnArg::Typed(t) if matches!(&*t.ty, Type::Reference(_))),
                );
            if borrows {
                // The future borrows the arguments too: one named lifetime
                // for `self`, the references and the future.
                method.sig.generics.params.push(syn::parse_quote!('rrpc));
                for arg in method.sig.inputs.iter_mut() {
                    match arg {
                        FnArg::Receiver(_) => *arg = syn::parse_quote!(&'rrpc self),
                        FnArg::Typed(t) => *t.ty = with_lifetime(&t.ty),
                    }
                }
                method.sig.output = syn::parse_quote! {
                    -> ::rrpc::RpcFuture<'rrpc, #inner>
                };
            } else {
                method.sig.output = syn::parse_quote! {
                    -> ::rrpc::RpcFuture<'_, #inner>
                };
            }
        }
    }
    Ok(quote! {
        #item

        /// Generated by `#[interface]`: calls into the domain that exports
        /// the object, each call a contained entry; `RRef`s move with it.
        #vis struct #proxy {
            /// The callee's object, in the callee's heap: used and dropped
            /// only inside the callee (never after it died).
            inner: ::rrpc::proxy::Object<dyn #name + Send + Sync>,
            /// The right to enter the exporting incarnation (made only by
            /// the name service).
            entry: ::rrpc::proxy::EntryCap,
        }

        impl #proxy {
            /// Wraps `inner`, exported by the incarnation `entry` enters.
            pub fn new(inner: ::rrpc::alloc_reexport::sync::Arc<dyn #name + Send + Sync>, entry: ::rrpc::proxy::EntryCap) -> Self {
                #proxy { inner: ::rrpc::proxy::Object::new(inner), entry }
            }
        }

        // A proxy may itself cross an interface: it is a handle that enters
        // the exporting domain on every call, whoever holds it.
        // SAFETY: it holds no `RRef`, and nothing of the holder's: its
        // object lives in the exporter's heap and is only reached through
        // entries into the exporter (refused once the exporter is dead).
        #[allow(unsafe_code)]
        unsafe impl ::rrpc::Exchangeable for #proxy {
            const PLAIN: bool = true;
        }

        impl ::core::ops::Drop for #proxy {
            fn drop(&mut self) {
                if let ::core::option::Option::Some(inner) = self.inner.take() {
                    // Dropping it may run the callee's code: a domain entry.
                    // If the callee is dead, `call` forgets it instead.
                    let _ = ::rrpc::proxy::call(&self.entry, move || ::core::mem::drop(inner));
                }
            }
        }

        // (`unsafe` only for `RRef::alias`, the lent handles' copies.)
        #[allow(unsafe_code)]
        impl #name for #proxy {
            #( #methods )*
        }

        // SAFETY: the fingerprint is the IDL compiler's hash of this very
        // trait, and `proxy` wraps the object in the generated proxy.
        #[allow(unsafe_code)]
        unsafe impl ::rrpc::Interface for dyn #name + Send + Sync {
            type Proxy = #proxy;
            const NAME: &'static str = ::core::stringify!(#name);
            const FINGERPRINT: u64 = #fingerprint;
            fn proxy(object: ::rrpc::alloc_reexport::sync::Arc<Self>, entry: ::rrpc::proxy::EntryCap) -> #proxy {
                #proxy::new(object, entry)
            }
        }
    })
}
