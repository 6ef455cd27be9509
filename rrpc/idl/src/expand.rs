//! The `#[interface]` expansion as a plain function over `proc_macro2`
//! tokens ([`interface_impl`]), so that it also runs outside the compiler:
//! the crate's tests expand `interfaces::bdev::BDev` with it and keep
//! `docs/generated/bdev_proxy.rs` identical to the output.
//!
//! Every problem is reported once, where it is written: the checks here
//! name the offending method or type, and what they cannot see (whether a
//! named type is `Exchangeable`) is left to rustc, with the generated code
//! spelled so that its obligations fall on the user's type (see
//! [`assert_exchangeable`]). A trait the checks reject is re-emitted
//! without what rustc would reject a second time ([`rejected`]).

use proc_macro2::{Delimiter, TokenStream, TokenTree};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{
    Error, FnArg, GenericArgument, GenericParam, ItemTrait, Pat, PathArguments, ReturnType,
    Signature, TraitItem, Type,
};

/// Lints that only a method's *name* triggers on the re-emitted trait or on
/// the proxy's implementation of it (`len` without `is_empty`, `new`,
/// `from_*` or `into_*` taking `&self`, `iter` not returning an iterator,
/// a name of a std trait's method): the names are the interface's, and an
/// interface method takes `&self` whatever it is called.
fn name_lints() -> syn::Attribute {
    syn::parse_quote! {
        #[allow(
            clippy::len_without_is_empty,
            clippy::new_ret_no_self,
            clippy::wrong_self_convention,
            clippy::should_implement_trait,
            clippy::iter_not_returning_iterator
        )]
    }
}

/// A statement that fails to compile, at `ty`'s span, unless `ty` is
/// exchangeable. Everything else the proxy requires of `ty` names it the
/// same way (`movable::<#ty>`, `<#ty as Exchangeable>::PLAIN`): rustc
/// reports the same unmet bound at the same span in one body only once.
pub(crate) fn assert_exchangeable(ty: &Type) -> TokenStream {
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

/// Where a type is written, which decides what may be there.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    /// A whole argument of an interface method: it may be a lent `&RRef<T>`.
    Argument,
    /// A result, or a part of an argument or of a result.
    Value,
    /// The value an `RRef` holds (on the shared heap: it must be sized).
    InRRef,
    /// A field of an `#[derive(Exchangeable)]` type, or a part of one.
    Field,
}

/// `tokens` as text for a message: spaced only where Rust needs it
/// (between words) and after commas.
fn compact(tokens: TokenStream) -> String {
    let mut text = String::new();
    let mut word = false;
    for token in tokens {
        let is_word = matches!(token, TokenTree::Ident(_) | TokenTree::Literal(_));
        if word && is_word {
            text.push(' ');
        }
        word = is_word;
        match token {
            TokenTree::Group(g) => {
                let (open, close) = match g.delimiter() {
                    Delimiter::Parenthesis => ("(", ")"),
                    Delimiter::Bracket => ("[", "]"),
                    Delimiter::Brace => ("{", "}"),
                    Delimiter::None => ("", ""),
                };
                text.push_str(open);
                text.push_str(&compact(g.stream()));
                text.push_str(close);
            }
            TokenTree::Punct(p) if matches!(p.as_char(), ',' | ';') => {
                text.push(p.as_char());
                text.push(' ');
            }
            other => text.push_str(&other.to_string()),
        }
    }
    text
}

/// The error for an unsized `ty` (a slice or `str`) at `place`.
fn unsized_error(ty: &Type, place: Place, what: &str, instead: &str) -> Error {
    let message = if place == Place::InRRef {
        format!(
            "an `RRef` holds a sized value, and {what} has no fixed size: use `RRef<{instead}>` (a fixed-size array) or a struct"
        )
    } else {
        format!(
            "{what} has no fixed size and cannot cross a domain boundary by value: use a fixed-size array (`{instead}`, or `RRef<{instead}>` for large data)"
        )
    };
    Error::new_spanned(ty, message)
}

/// Rejects `ty` itself (not its parts) if it can never cross a domain
/// boundary at `place`, naming why.
fn check_node(ty: &Type, place: Place) -> Result<(), Error> {
    match ty {
        Type::Reference(_) if place == Place::Field => Err(Error::new_spanned(
            ty,
            "a reference cannot be part of an exchangeable type: it points into a domain's private memory; hold an `RRef<T>`",
        )),
        Type::Reference(r) if r.mutability.is_some() => Err(Error::new_spanned(
            ty,
            "`&mut` cannot cross a domain boundary: pass an `RRef<T>` and get it back",
        )),
        Type::Reference(r) if is_rref(&r.elem) && place != Place::Argument => {
            Err(Error::new_spanned(
                ty,
                "a lent `&RRef<T>` can only be a whole argument (lent for the call), not part of an argument or a result",
            ))
        }
        Type::Reference(r) if !is_rref(&r.elem) => Err(Error::new_spanned(
            ty,
            "references cannot cross a domain boundary (only `&RRef<T>`, lent for the call)",
        )),
        Type::Ptr(_) => Err(Error::new_spanned(
            ty,
            "raw pointers cannot cross a domain boundary",
        )),
        Type::BareFn(_) | Type::ImplTrait(_) | Type::TraitObject(_) => Err(Error::new_spanned(
            ty,
            "closures, `impl Trait` and trait objects cannot cross a domain boundary",
        )),
        Type::Slice(slice) => Err(unsized_error(
            ty,
            place,
            "a slice",
            &format!("[{}; N]", compact(slice.elem.to_token_stream())),
        )),
        Type::Path(p) => {
            let segment = last_segment(ty).expect("path type");
            let name = segment.ident.to_string();
            if matches!(name.as_str(), "Box" | "Vec" | "String" | "Rc" | "Arc") {
                return Err(Error::new_spanned(
                    ty,
                    format!(
                        "`{name}` lives on a domain's private heap and cannot cross a domain boundary; use `RRef`"
                    ),
                ));
            }
            if p.qself.is_none() && p.path.is_ident("str") {
                return Err(unsized_error(ty, place, "`str`", "[u8; N]"));
            }
            Ok(())
        }
        Type::Tuple(_) | Type::Array(_) | Type::Paren(_) | Type::Group(_) | Type::Reference(_) => {
            Ok(())
        }
        _ => Err(Error::new_spanned(
            ty,
            "this type cannot cross a domain boundary",
        )),
    }
}

/// The parts of `ty` that are checked in turn (type arguments, elements).
fn parts(ty: &Type) -> Vec<&Type> {
    match ty {
        Type::Reference(r) => vec![&*r.elem],
        Type::Path(_) => match &last_segment(ty).expect("path type").arguments {
            PathArguments::AngleBracketed(args) => args
                .args
                .iter()
                .filter_map(|arg| match arg {
                    GenericArgument::Type(inner) => Some(inner),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        },
        Type::Tuple(t) => t.elems.iter().collect(),
        Type::Array(a) => vec![&*a.elem],
        Type::Slice(s) => vec![&*s.elem],
        Type::Paren(p) => vec![&*p.elem],
        Type::Group(g) => vec![&*g.elem],
        _ => Vec::new(),
    }
}

/// [`parts`], mutably.
fn parts_mut(ty: &mut Type) -> Vec<&mut Type> {
    match ty {
        Type::Reference(r) => vec![&mut *r.elem],
        Type::Path(p) => match p.path.segments.last_mut().map(|s| &mut s.arguments) {
            Some(PathArguments::AngleBracketed(args)) => args
                .args
                .iter_mut()
                .filter_map(|arg| match arg {
                    GenericArgument::Type(inner) => Some(inner),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        },
        Type::Tuple(t) => t.elems.iter_mut().collect(),
        Type::Array(a) => vec![&mut *a.elem],
        Type::Slice(s) => vec![&mut *s.elem],
        Type::Paren(p) => vec![&mut *p.elem],
        Type::Group(g) => vec![&mut *g.elem],
        _ => Vec::new(),
    }
}

/// Where the [`parts`] of `ty`, written at `place`, are.
fn place_of_parts(ty: &Type, place: Place) -> Place {
    match ty {
        _ if place == Place::Field => Place::Field,
        Type::Paren(_) | Type::Group(_) => place,
        _ if is_rref(ty) => Place::InRRef,
        _ => Place::Value,
    }
}

/// Rejects shapes that can never cross a domain boundary, naming why, at
/// the offending part of `ty`.
pub(crate) fn check_type(ty: &Type, place: Place) -> Result<(), Error> {
    check_node(ty, place)?;
    let inner = place_of_parts(ty, place);
    parts(ty)
        .into_iter()
        .try_for_each(|part| check_type(part, inner))
}

/// `ty` with every part [`check_type`] rejects replaced by `()` (which
/// rustc accepts anywhere, `RRef<()>` included); the parts are pushed to
/// `removed`.
fn sanitize(ty: &mut Type, place: Place, removed: &mut Vec<Type>) {
    if check_node(ty, place).is_err() {
        removed.push(std::mem::replace(ty, syn::parse_quote!(())));
        return;
    }
    let inner = place_of_parts(ty, place);
    for part in parts_mut(ty) {
        sanitize(part, inner, removed);
    }
}

/// The first `impl Trait` in `ty`: in an argument, it makes the method
/// generic.
fn impl_trait_in(ty: &Type) -> Option<&Type> {
    if matches!(ty, Type::ImplTrait(_)) {
        return Some(ty);
    }
    parts(ty).into_iter().find_map(impl_trait_in)
}

/// The `T` of `RpcResult<T>`.
fn rpc_result_inner(sig: &Signature) -> Result<&Type, Error> {
    let ReturnType::Type(_, ty) = &sig.output else {
        // At the signature (`fn name(...)`): with no return type there is
        // no token of its own to point at.
        let mut close = proc_macro2::Punct::new(';', proc_macro2::Spacing::Alone);
        close.set_span(sig.paren_token.span.close());
        let fn_token = &sig.fn_token;
        return Err(Error::new_spanned(
            quote!(#fn_token #close),
            "interface methods must return `RpcResult<T>` (the callee may crash): add `-> RpcResult<()>`",
        ));
    };
    let Some(segment) = last_segment(ty).filter(|s| s.ident == "RpcResult") else {
        return Err(Error::new_spanned(
            ty,
            "interface methods must return `RpcResult<T>` (the callee may crash)",
        ));
    };
    match &segment.arguments {
        PathArguments::AngleBracketed(args) if args.args.len() == 1 => match &args.args[0] {
            GenericArgument::Type(inner) => Ok(inner),
            other => Err(Error::new_spanned(other, "expected a type: `RpcResult<T>`")),
        },
        _ => Err(Error::new_spanned(
            segment,
            "expected `RpcResult<T>`, with one type",
        )),
    }
}

/// The `T` of `RpcResult<T>` in `output`, mutably (if it is one).
fn rpc_result_inner_mut(output: &mut ReturnType) -> Option<&mut Type> {
    let ReturnType::Type(_, ty) = output else {
        return None;
    };
    let Type::Path(p) = &mut **ty else {
        return None;
    };
    let segment = p.path.segments.last_mut()?;
    match &mut segment.arguments {
        PathArguments::AngleBracketed(args)
            if segment.ident == "RpcResult" && args.args.len() == 1 =>
        {
            match args.args.first_mut() {
                Some(GenericArgument::Type(inner)) => Some(inner),
                _ => None,
            }
        }
        _ => None,
    }
}

/// A method of an interface, checked.
struct Method<'a> {
    sig: &'a Signature,
    arg_names: Vec<syn::Ident>,
    arg_types: Vec<Type>,
    result: &'a Type,
}

const NOT_GENERIC: &str = "interface methods cannot be generic: a proxy is called through `dyn Trait`; use a concrete type";

/// Checks `sig` as an interface method; every problem goes to `push`.
fn check_method<'a>(sig: &'a Signature, push: &mut impl FnMut(Error)) -> Option<Method<'a>> {
    let mut ok = true;
    let mut fail = |e: Error| {
        ok = false;
        push(e);
    };
    if let Some(unsafety) = &sig.unsafety {
        fail(Error::new(
            unsafety.span,
            "interface methods cannot be `unsafe`: the caller is another domain, which the callee cannot rely on to uphold a safety contract",
        ));
    }
    let generics = &sig.generics;
    if generics
        .params
        .iter()
        .any(|p| !matches!(p, GenericParam::Lifetime(_)))
    {
        fail(Error::new_spanned(generics, NOT_GENERIC));
    } else if !generics.params.is_empty() {
        fail(Error::new_spanned(
            generics,
            "interface methods cannot declare lifetimes: a lent `&RRef<T>` argument is borrowed for the call (leave its lifetime out)",
        ));
    }
    if let Some(where_clause) = &generics.where_clause {
        fail(Error::new_spanned(where_clause, NOT_GENERIC));
    }
    match sig.inputs.first() {
        Some(FnArg::Receiver(r))
            if r.reference.is_some() && r.mutability.is_none() && r.colon_token.is_none() => {}
        Some(FnArg::Receiver(r)) => fail(Error::new_spanned(
            r,
            "interface methods take `&self`: every caller shares the exported object (keep state that changes behind a lock or in atomics)",
        )),
        _ => fail(Error::new(
            sig.paren_token.span.join(),
            "interface methods take `&self` (a method without one cannot be called through a proxy)",
        )),
    }
    let result = match rpc_result_inner(sig) {
        Ok(ty) => {
            if let Err(e) = check_type(ty, Place::Value) {
                fail(e);
            }
            Some(ty)
        }
        Err(e) => {
            fail(e);
            None
        }
    };
    let mut arg_names = Vec::new();
    let mut arg_types = Vec::new();
    for arg in &sig.inputs {
        let FnArg::Typed(typed) = arg else { continue };
        if let Some(generic) = impl_trait_in(&typed.ty) {
            fail(Error::new_spanned(generic, NOT_GENERIC));
        } else if let Err(e) = check_type(&typed.ty, Place::Argument) {
            fail(e);
        }
        match &*typed.pat {
            Pat::Ident(ident)
                if ident.by_ref.is_none()
                    && ident.mutability.is_none()
                    && ident.subpat.is_none() =>
            {
                arg_names.push(ident.ident.clone());
            }
            other => fail(Error::new_spanned(
                other,
                "interface arguments must be plain names",
            )),
        }
        arg_types.push((*typed.ty).clone());
    }
    let result = result?;
    ok.then_some(Method {
        sig,
        arg_names,
        arg_types,
        result,
    })
}

/// Checks the trait itself (methods are checked one by one).
fn check_trait(item: &ItemTrait, push: &mut impl FnMut(Error)) {
    if !item.generics.params.is_empty() {
        push(Error::new_spanned(
            &item.generics,
            "interface traits cannot be generic: a proxy is called through `dyn Trait`; use concrete types",
        ));
    }
    if let Some(where_clause) = &item.generics.where_clause {
        push(Error::new_spanned(
            where_clause,
            "interface traits cannot have `where` clauses: a proxy is called through `dyn Trait`",
        ));
    }
    for trait_item in &item.items {
        match trait_item {
            TraitItem::Fn(_) => {}
            TraitItem::Const(c) => push(Error::new_spanned(
                c,
                "interface traits hold only methods: a proxy is called through `dyn Trait`, and each call enters the exporting domain",
            )),
            TraitItem::Type(t) => push(Error::new_spanned(
                t,
                "interface traits hold only methods: a proxy is called through `dyn Trait`, and each call enters the exporting domain",
            )),
            _ => {}
        }
    }
}

/// What `#[interface]` turns `item` into: the expansion, or the errors
/// after the trait as [`rejected`] re-emits it.
pub fn interface(item: &ItemTrait) -> TokenStream {
    match interface_impl(item) {
        Ok(tokens) => tokens,
        Err(error) => {
            let trait_item = rejected(item);
            let error = error.to_compile_error();
            quote! { #trait_item #error }
        }
    }
}

/// The trait as written, for when the checks failed: with nothing rustc
/// would reject again (so each problem is reported once, by the check that
/// explains it). Every rejected type is replaced by `()` (a type that is
/// not exchangeable inside `RRef<...>` would fail the trait's own
/// well-formedness check), and a rejected argument pattern by `_` (a method
/// without a body cannot have one). The removed types are still named, in
/// a type alias rustc does not check, so that their imports stay used.
pub(crate) fn rejected(item: &ItemTrait) -> TokenStream {
    let mut item = item.clone();
    let mut removed = Vec::new();
    for trait_item in &mut item.items {
        let TraitItem::Fn(method) = trait_item else {
            continue;
        };
        let sig = &mut method.sig;
        for arg in sig.inputs.iter_mut() {
            let FnArg::Typed(typed) = arg else { continue };
            sanitize(&mut typed.ty, Place::Argument, &mut removed);
            if !matches!(&*typed.pat, Pat::Ident(i) if i.by_ref.is_none() && i.mutability.is_none() && i.subpat.is_none())
            {
                *typed.pat = syn::parse_quote!(_);
            }
        }
        if let Some(result) = rpc_result_inner_mut(&mut sig.output) {
            sanitize(result, Place::Value, &mut removed);
        } else if let ReturnType::Type(_, ty) = &mut sig.output
            && let Type::Path(p) = &mut **ty
            && let Some(segment) = p.path.segments.last_mut()
            && segment.ident == "RpcResult"
        {
            // `RpcResult` without its one type argument (rustc would
            // report the alias's arity again).
            segment.arguments = PathArguments::AngleBracketed(syn::parse_quote!(<()>));
        }
    }
    removed.retain(|ty| nameable_alone(ty.to_token_stream()));
    item.attrs.push(name_lints());
    let uses = (!removed.is_empty()).then(|| {
        quote! {
            const _: () = {
                #[allow(dead_code)]
                type __RrpcRejected = fn(#( #removed ),*);
            };
        }
    });
    quote! {
        #item
        #uses
    }
}

/// Whether `tokens` (a type) may stand in a type alias of its own: not
/// with `impl Trait` or `_` (not allowed there), nor with named lifetimes
/// or `Self` (not declared there).
fn nameable_alone(tokens: TokenStream) -> bool {
    let mut tokens = tokens.into_iter().peekable();
    while let Some(token) = tokens.next() {
        let nameable = match token {
            TokenTree::Ident(i) => i != "impl" && i != "_" && i != "Self",
            TokenTree::Punct(p) if p.as_char() == '\'' => {
                matches!(tokens.peek(), Some(TokenTree::Ident(i)) if i == "static")
            }
            TokenTree::Group(g) => nameable_alone(g.stream()),
            _ => true,
        };
        if !nameable {
            return false;
        }
    }
    true
}

/// Each token's text followed by a space, groups with their delimiters: the
/// same for the same tokens however they were spaced, commented or printed
/// (the compiler and `proc_macro2` print spacing differently).
fn normalised(tokens: TokenStream, out: &mut String) {
    for token in tokens {
        match token {
            TokenTree::Group(group) => {
                let (open, close) = match group.delimiter() {
                    Delimiter::Parenthesis => ("( ", ") "),
                    Delimiter::Bracket => ("[ ", "] "),
                    Delimiter::Brace => ("{ ", "} "),
                    Delimiter::None => ("", ""),
                };
                out.push_str(open);
                normalised(group.stream(), out);
                out.push_str(close);
            }
            TokenTree::Ident(ident) => {
                out.push_str(&ident.to_string());
                out.push(' ');
            }
            TokenTree::Punct(punct) => {
                out.push(punct.as_char());
                out.push(' ');
            }
            TokenTree::Literal(literal) => {
                out.push_str(&literal.to_string());
                out.push(' ');
            }
        }
    }
}

/// The interface's identity across separately built images: FNV-1a of the
/// normalised signatures (the trait's name; each method's name, whether it
/// is `async`, its argument types and its result type, in order). Comments,
/// doc comments, argument names, formatting and how `RpcResult` is spelled
/// do not count; a type spelled differently (`RRef<T>`, `rrpc::RRef<T>`)
/// does, as a macro cannot tell that two paths name the same type.
pub(crate) fn fingerprint(item: &ItemTrait) -> u64 {
    let mut text = format!("trait {} {{ ", item.ident);
    for trait_item in &item.items {
        let TraitItem::Fn(method) = trait_item else {
            continue;
        };
        let sig = &method.sig;
        if sig.asyncness.is_some() {
            text.push_str("async ");
        }
        text.push_str(&format!("fn {} ( ", sig.ident));
        for arg in sig.inputs.iter().skip(1) {
            if let FnArg::Typed(typed) = arg {
                normalised(typed.ty.to_token_stream(), &mut text);
                text.push_str(", ");
            }
        }
        text.push_str(") -> ");
        match rpc_result_inner(sig) {
            Ok(result) => normalised(result.to_token_stream(), &mut text),
            Err(_) => normalised(sig.output.to_token_stream(), &mut text),
        }
        text.push_str("; ");
    }
    text.push('}');
    text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// What `#[interface]` turns `item` into (or the errors it reports).
pub fn interface_impl(item: &ItemTrait) -> Result<TokenStream, Error> {
    let name = &item.ident;
    let proxy = format_ident!("{name}Proxy");
    let vis = &item.vis;
    let mut errors: Option<Error> = None;
    let mut push = |e: Error| match &mut errors {
        Some(all) => all.combine(e),
        None => errors = Some(e),
    };
    check_trait(item, &mut push);
    let checked: Vec<_> = item
        .items
        .iter()
        .filter_map(|trait_item| match trait_item {
            TraitItem::Fn(method) => check_method(&method.sig, &mut push),
            _ => None,
        })
        .collect();
    if let Some(errors) = errors {
        return Err(errors);
    }
    let methods: Vec<_> = checked.iter().map(proxy_method).collect();
    let fingerprint = proc_macro2::Literal::u64_suffixed(fingerprint(item));
    // Async methods become methods returning `rrpc::RpcFuture` (a boxed
    // future), so the trait stays usable as `dyn Trait` (the proxy is one).
    let mut item = item.clone();
    // How the async methods spelled their result type (`RpcResult`,
    // `rrpc::RpcResult`...), each once: the rewritten methods no longer
    // name it, and an import of it would be reported unused.
    let mut spellings: Vec<(String, TokenStream)> = Vec::new();
    for trait_item in &mut item.items {
        if let TraitItem::Fn(method) = trait_item
            && method.sig.asyncness.is_some()
        {
            let inner = rpc_result_inner(&method.sig).expect("checked").clone();
            if let ReturnType::Type(_, written) = &method.sig.output {
                let mut path = (**written).clone();
                if let Type::Path(p) = &mut path
                    && let Some(segment) = p.path.segments.last_mut()
                {
                    segment.arguments = PathArguments::AngleBracketed(syn::parse_quote!(<T>));
                }
                let mut key = String::new();
                normalised(path.to_token_stream(), &mut key);
                if !spellings.iter().any(|(k, _)| *k == key) {
                    spellings.push((key, path.to_token_stream()));
                }
            }
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
    let spellings: Vec<_> = spellings
        .iter()
        .enumerate()
        .map(|(i, (_, path))| {
            let alias = format_ident!("__RrpcResult{i}");
            quote! { type #alias<T> = #path; }
        })
        .collect();
    // The result type as the async methods spelled it (see above).
    let spellings = (!spellings.is_empty()).then(|| {
        quote! {
            const _: () = {
                #( #[allow(dead_code)] #spellings )*
            };
        }
    });
    item.attrs.push(name_lints());
    let lints = name_lints();
    Ok(quote! {
        #item

        #spellings

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

        #[allow(unsafe_code)]
        impl ::core::ops::Drop for #proxy {
            fn drop(&mut self) {
                // SAFETY: taken once, here, as the proxy goes: nothing
                // uses `inner` after.
                let inner = unsafe { self.inner.take() };
                // Dropping it may run the callee's code: a domain entry.
                // If the callee is dead, `call` forgets it instead.
                let _ = ::rrpc::proxy::call(&self.entry, move || ::core::mem::drop(inner));
            }
        }

        // (`unsafe` only for `RRef::alias`, the lent handles' copies.)
        #[allow(unsafe_code)]
        #lints
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

/// `tokens`, every one at `span`.
fn respan(tokens: TokenStream, span: proc_macro2::Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut token| {
            if let TokenTree::Group(g) = &token {
                let mut group = proc_macro2::Group::new(g.delimiter(), respan(g.stream(), span));
                group.set_span(span);
                token = TokenTree::Group(group);
            }
            token.set_span(span);
            token
        })
        .collect()
}

/// The proxy's implementation of `method`.
///
/// Every generic function it calls on an argument or result type is given
/// that type as written (`movable::<#ty>`), so that a type that is not
/// exchangeable fails once, at its own span, rather than at the attribute.
fn proxy_method(method: &Method<'_>) -> TokenStream {
    let Method {
        sig,
        arg_names,
        arg_types,
        result: result_type,
    } = method;
    let is_async = sig.asyncness.is_some();
    let method_name = &sig.ident;
    let output = &sig.output;
    let by_value = |ty: &&Type| !matches!(ty, Type::Reference(_));
    // What rustc reports for the proxy's method itself is at its name (see
    // `at_name` below).
    let name = method_name.span();
    // Arguments move to the callee inside it (so nothing is given to a
    // callee that turns out to be dead: a call that never starts drops
    // them in the caller).
    let moves: Vec<_> = arg_names
        .iter()
        .zip(arg_types)
        .filter(|(_, ty)| by_value(ty))
        .map(|(n, ty)| quote! { ::rrpc::proxy::receive_in::<#ty>(critical, &proxy.entry, &#n); })
        .collect();
    // An argument that holds a lent `RRef` (lent to a call its caller
    // abandoned) must not change hands: the call is refused.
    let movables: Vec<_> = arg_names
        .iter()
        .zip(arg_types)
        .filter(|(_, ty)| by_value(ty))
        .map(|(n, ty)| quote! { ::rrpc::proxy::movable::<#ty>(&#n) })
        .collect();
    let lends: Vec<_> = arg_names
        .iter()
        .zip(arg_types)
        .filter(|(_, ty)| !by_value(ty))
        .map(|(n, _)| {
            let guard = format_ident!("__lent_{}", n);
            let mut n = n.clone();
            n.set_span(name);
            let lend = quote_spanned! {name=> ::rrpc::RRef::lend(#n) };
            quote! { let #guard = #lend; }
        })
        .collect();
    // For async calls, the callee gets a reference to a copy of each
    // lent handle kept in the call's own (boxed) state: memory the
    // caller cannot reuse even if it abandons the call, which the
    // kernel may still drop inside the callee when the caller dies.
    let copies: Vec<_> = arg_names
        .iter()
        .zip(arg_types)
        .filter(|(_, ty)| !by_value(ty))
        .map(|(n, _)| {
            let copy = format_ident!("__copy_{}", n);
            let mut lent = n.clone();
            lent.set_span(name);
            let alias = quote_spanned! {name=> ::rrpc::RRef::alias(#lent) };
            let borrow = respan(quote!(&*#copy), name);
            // SAFETY (in the generated code): only read through `&`,
            // never dropped, and alive as long as the lend above.
            quote! {
                let #copy = unsafe { #alias };
                let #n = #borrow;
            }
        })
        .collect();
    // Whether no by-value argument can hold an `RRef` (nothing to move;
    // folded at compile time).
    let plain_args: Vec<_> = arg_types
        .iter()
        .filter(by_value)
        .map(|ty| quote! { <#ty as ::rrpc::Exchangeable>::PLAIN })
        .collect();
    let plain = quote! { true #( && #plain_args )* };
    // First, so that the error for a type that is not exchangeable is
    // this one (its note names `must_be_exchangeable`).
    // (Each type once: an argument's type is often the result's too.)
    let mut checked: Vec<String> = Vec::new();
    let checks: Vec<_> = arg_types
        .iter()
        .filter(by_value)
        .chain([*result_type])
        .filter(|ty| {
            let mut key = String::new();
            normalised(ty.to_token_stream(), &mut key);
            let new = !checked.contains(&key);
            checked.push(key);
            new
        })
        .map(assert_exchangeable)
        .collect();
    let has_refs = arg_types.iter().any(|ty| !by_value(&ty));
    // `RRef<T>` of a `T` that is not exchangeable is not well-formed:
    // rustc reports it in the trait, at the type (saying why), and again
    // for the proxy's method, at the method's own span, and for each use
    // of such a type in the method's body, at that use. The method's own
    // span is made its name (`at_name`), and so are the uses that are not
    // written with the type's tokens (the call of the implementation, the
    // lent handles, `RpcFuture`s of the result type): rustc reports the
    // same unmet bound at the same span once. A lent `&RRef<T>`'s type
    // is named first, at the name, so that the body's report there is the
    // same as the method's (and the two merge).
    let lent_types: Vec<_> = arg_types
        .iter()
        .filter_map(|ty| match ty {
            Type::Reference(r) => {
                let elem = &r.elem;
                Some(respan(quote!(::core::marker::PhantomData<#elem>), name))
            }
            _ => None,
        })
        .collect();
    let lent_checks = quote! {
        #( let _: #lent_types; )*
    };
    let call = quote_spanned! {name=> inner.#method_name(#( #arg_names ),*) };
    let failed = quote_spanned! {name=> ::rrpc::RpcFuture::failed };
    // `fn`, then `signature` (from the name on), then `body` in braces:
    // the method's span (from `fn` to its generics) is then its name. Only
    // those tokens: the rest of the body stays the macro's (lints skip it).
    let at_name = |signature: TokenStream, body: TokenStream| {
        let fn_token = syn::Token![fn](name);
        // (An empty `where` clause: rustc extends the method's span to
        // the end of its generics, which is where that clause starts.)
        let where_token = syn::Token![where](name);
        let mut body = proc_macro2::Group::new(Delimiter::Brace, body);
        body.set_span(name);
        quote! { #fn_token #signature #where_token #body }
    };
    if is_async && has_refs {
        // Borrowed `&RRef` arguments of an async method: the returned
        // future borrows them (explicit lifetime) and keeps them lent
        // until it completes or is dropped, so a crash of the callee
        // leaves them with the caller.
        let ref_types: Vec<_> = arg_types.iter().map(with_lifetime).collect();
        // (The boxed future holds the `&RRef`s: it is `Send` only if they
        // are well-formed, which is reported at the name too.)
        let boxed = quote_spanned! {name=> ::rrpc::RpcFuture::new };
        let async_move = quote_spanned! {name=> async move };
        let mut lending = proc_macro2::Group::new(
            Delimiter::Brace,
            quote! {
                #( #lends )*
                #( #copies )*
                ::rrpc::start_async::<#result_type, _>(&proxy.entry, move |moved| {
                    moved.receive_all(#plain, |critical| { #( #moves )* });
                    #call
                }).await
            },
        );
        lending.set_span(name);
        return at_name(
            quote! {
                #method_name<'rrpc>(&'rrpc self, #( #arg_names: #ref_types ),*)
                    -> ::rrpc::RpcFuture<'rrpc, #result_type>
            },
            quote! {
                    #( #checks )*
                    #lent_checks
                    let inner = self.inner.get();
                    #( if let Err(e) = #movables {
                        return #failed(e);
                    } )*
                    // Boxed in the caller, lazily: the call starts at the
                    // first poll, with the arguments lent until it ends.
                    let proxy = self;
                    #boxed(#async_move #lending)
            },
        );
    }
    if is_async {
        return at_name(
            quote! {
                #method_name(&self, #( #arg_names: #arg_types ),*)
                    -> ::rrpc::RpcFuture<'_, #result_type>
            },
            quote! {
                    #( #checks )*
                    #( if let Err(e) = #movables {
                        return #failed(e);
                    } )*
                    // The call is kept in the future (no box of our own) and
                    // runs inside the callee at the first poll. It holds the
                    // proxy (one word) rather than the object.
                    let proxy = self;
                    ::rrpc::start_async::<#result_type, _>(&self.entry, move |moved| {
                        moved.receive_all(#plain, |critical| { #( #moves )* });
                        let inner = proxy.inner.get();
                        #call
                    })
            },
        );
    }
    at_name(
        quote! { #method_name(&self, #( #arg_names: #arg_types ),*) #output },
        quote! {
                #( #checks )*
                #lent_checks
                // `&RRef` arguments are lent for the call (borrow count).
                #( #lends )*
                let inner = self.inner.get();
                #( #movables?; )*
                let proxy = self;
                let result = ::rrpc::proxy::call_method(&self.entry, move |moved| {
                    moved.receive_all(#plain, |critical| { #( #moves )* });
                    #call
                });
                // Back in the caller: the result's RRefs become the
                // caller's (unless one is lent: see `returned`).
                ::rrpc::proxy::returned::<#result_type>(&proxy.entry, result)
        },
    )
}

#[cfg(test)]
mod tests {
    use super::fingerprint;

    fn of(source: &str) -> u64 {
        fingerprint(&syn::parse_str(source).expect("a trait"))
    }

    #[test]
    fn the_fingerprint_ignores_comments_docs_and_layout() {
        let written = of("
            /// A service.
            pub trait Service {
                /// Reads.
                async fn read(&self, batch: RRef<Batch>) -> rrpc::RpcResult<RRef<Batch>>;
                fn count(&self) -> RpcResult<u64>;
            }");
        let reformatted = of("
            pub trait Service {
                // (A comment.)
                async fn read(
                    &self,
                    buffers: RRef < Batch >, // renamed
                ) -> RpcResult<RRef<Batch>>;
                #[doc = \"Counts.\"]
                fn count(&self)
                    -> rrpc::RpcResult<u64>;
            }");
        assert_eq!(written, reformatted);
    }

    #[test]
    fn the_fingerprint_covers_every_part_of_a_signature() {
        let base = of("trait S { async fn f(&self, a: u32, b: RRef<X>) -> RpcResult<u64>; }");
        for changed in [
            "trait S { async fn f(&self, a: u64, b: RRef<X>) -> RpcResult<u64>; }",
            "trait S { async fn f(&self, a: u32, b: &RRef<X>) -> RpcResult<u64>; }",
            "trait S { async fn f(&self, b: RRef<X>, a: u32) -> RpcResult<u64>; }",
            "trait S { async fn f(&self, a: u32, b: RRef<X>) -> RpcResult<u32>; }",
            "trait S { fn f(&self, a: u32, b: RRef<X>) -> RpcResult<u64>; }",
            "trait S { async fn g(&self, a: u32, b: RRef<X>) -> RpcResult<u64>; }",
            "trait T { async fn f(&self, a: u32, b: RRef<X>) -> RpcResult<u64>; }",
        ] {
            assert_ne!(base, of(changed), "{changed}");
        }
    }
}
