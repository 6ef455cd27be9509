//! `vet`: screens the sources of an untrusted domain crate for the code
//! shapes through which known rustc soundness bugs let safe code
//! (`#![forbid(unsafe_code)]`) transmute, before the crate is built into
//! an image and signed.
//!
//! The check is lexical, on tokens (`proc-macro2`): comments are gone,
//! strings are literals, and the bodies of `macro_rules!` are token trees
//! like any other code, so a pattern hidden in a macro is seen as well.
//! Where a macro metavariable (`$x`) stands in a place that decides
//! whether a pattern is formed (`fn $x`, `for $x`, `Fn $x`), the token
//! stream cannot be checked and is rejected too. The rules (see
//! [`Rule`]) over-approximate on purpose: a domain that trips one must
//! be written without the construct, which every domain of this
//! repository can.
//!
//! What it cannot see: unknown or unlisted compiler bugs, and code that
//! allowed (trusted) dependencies generate through their macros.

use std::collections::BTreeSet;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use proc_macro2::{Delimiter, Spacing, TokenStream, TokenTree};

/// One screened construct, and the compiler issue(s) it stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// A function pointer type (`fn(..)`, `extern "C" fn(..)`), or `fn`
    /// not followed by an item name: the higher-ranked fn-pointer
    /// coercion that loses implied bounds.
    FnPointer,
    /// An explicit higher-ranked binder `for<..>`, or `for` where it could
    /// start one.
    HigherRanked,
    /// `Fn`/`FnMut`/`FnOnce(..)` whose arguments hold references that can
    /// carry implied bounds (implicitly higher-ranked closure bounds).
    FnTraitRefs,
    /// `dyn Trait<Assoc = ..>` for a trait declared in the same crate.
    DynAssocBinding,
    /// `include!` or `#[path = ..]`: code from outside the checked tree.
    OutsideCode,
    /// A file that cannot be lexed, or a symbolic link.
    Unreadable,
}

impl Rule {
    /// The rust-lang/rust issues the rule covers.
    pub fn issues(self) -> &'static str {
        match self {
            Rule::FnPointer => "rust-lang/rust#25860",
            Rule::HigherRanked => "rust-lang/rust#25860, rust-lang/rust#84591",
            Rule::FnTraitRefs => "rust-lang/rust#25860",
            Rule::DynAssocBinding => "rust-lang/rust#57893",
            Rule::OutsideCode | Rule::Unreadable => "code the vet cannot see",
        }
    }
}

/// A rejected construct at `file:line`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub file: PathBuf,
    pub line: usize,
    pub rule: Rule,
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {} ({})",
            self.file.display(),
            self.line,
            self.message,
            self.rule.issues()
        )
    }
}

/// Vets every `.rs` file under each of `dirs`, each directory being one
/// crate (the set of traits it declares is per directory).
pub fn vet_dirs(dirs: &[PathBuf]) -> io::Result<Vec<Finding>> {
    let mut findings = Vec::new();
    for dir in dirs {
        findings.extend(vet_dir(dir)?);
    }
    Ok(findings)
}

/// Vets every `.rs` file under `dir` (one crate). Symbolic links are
/// findings: they could bring files from outside the tree.
pub fn vet_dir(dir: &Path) -> io::Result<Vec<Finding>> {
    let mut files = Vec::new();
    let mut findings = Vec::new();
    collect(dir, &mut files, &mut findings)?;
    files.sort();
    let mut sources = Vec::new();
    for file in files {
        let text = fs::read_to_string(&file)?;
        sources.push((file, text));
    }
    findings.extend(vet_sources(&sources));
    Ok(findings)
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>, findings: &mut Vec<Finding>) -> io::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.path());
    for entry in entries {
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_symlink() {
            findings.push(Finding {
                file: path,
                line: 0,
                rule: Rule::Unreadable,
                message: "symbolic link in a domain's tree".into(),
            });
        } else if kind.is_dir() {
            // A build's output is not source.
            if path.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            collect(&path, files, findings)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    Ok(())
}

/// Vets the sources of one crate, given as (file name, text).
pub fn vet_sources<P: AsRef<Path>, S: AsRef<str>>(sources: &[(P, S)]) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut parsed = Vec::new();
    for (file, text) in sources {
        let file = file.as_ref().to_path_buf();
        match text.as_ref().parse::<TokenStream>() {
            Ok(tokens) => parsed.push((file, tokens.into_iter().collect::<Vec<_>>())),
            Err(error) => findings.push(Finding {
                line: error.span().start().line,
                file,
                rule: Rule::Unreadable,
                message: format!("cannot be lexed: {error}"),
            }),
        }
    }
    // First pass: the traits the crate declares.
    let mut traits = Traits::default();
    for (_, tokens) in &parsed {
        traits.collect(tokens);
    }
    for (file, tokens) in &parsed {
        let mut scan = Scan {
            file,
            traits: &traits,
            findings: &mut findings,
        };
        scan.stream(tokens);
    }
    findings
}

/// Traits declared in the crate, by name; `unknown` if one is declared
/// under a macro metavariable (`trait $name`).
#[derive(Default)]
struct Traits {
    names: BTreeSet<String>,
    unknown: bool,
}

impl Traits {
    fn collect(&mut self, tokens: &[TokenTree]) {
        for (i, token) in tokens.iter().enumerate() {
            match token {
                TokenTree::Ident(ident) if ident == "trait" => match tokens.get(i + 1) {
                    Some(TokenTree::Ident(name)) => {
                        self.names.insert(name.to_string());
                    }
                    Some(TokenTree::Punct(p)) if p.as_char() == '$' => self.unknown = true,
                    _ => {}
                },
                TokenTree::Group(group) => {
                    self.collect(&group.stream().into_iter().collect::<Vec<_>>());
                }
                _ => {}
            }
        }
    }

    fn local(&self, name: &str) -> bool {
        self.unknown || self.names.contains(name)
    }
}

struct Scan<'a> {
    file: &'a Path,
    traits: &'a Traits,
    findings: &'a mut Vec<Finding>,
}

fn is_punct(token: Option<&TokenTree>, c: char) -> bool {
    matches!(token, Some(TokenTree::Punct(p)) if p.as_char() == c)
}

fn is_ident(token: Option<&TokenTree>, name: &str) -> bool {
    matches!(token, Some(TokenTree::Ident(i)) if i == name)
}

fn line(token: &TokenTree) -> usize {
    token.span().start().line
}

impl Scan<'_> {
    fn report(&mut self, at: &TokenTree, rule: Rule, message: impl Into<String>) {
        self.findings.push(Finding {
            file: self.file.to_path_buf(),
            line: line(at),
            rule,
            message: message.into(),
        });
    }

    fn stream(&mut self, tokens: &[TokenTree]) {
        for (i, token) in tokens.iter().enumerate() {
            let next = tokens.get(i + 1);
            match token {
                TokenTree::Group(group) => {
                    let inner: Vec<_> = group.stream().into_iter().collect();
                    // `#[..]` / `#![..]`: an attribute.
                    let attribute = group.delimiter() == Delimiter::Bracket
                        && (is_punct(i.checked_sub(1).map(|j| &tokens[j]), '#')
                            || (is_punct(i.checked_sub(1).map(|j| &tokens[j]), '!')
                                && is_punct(i.checked_sub(2).map(|j| &tokens[j]), '#')));
                    if attribute {
                        self.attribute(token, &inner);
                    }
                    self.stream(&inner);
                }
                TokenTree::Ident(ident) => {
                    let name = ident.to_string();
                    match name.as_str() {
                        "fn" => self.fn_keyword(token, next),
                        "for" => self.for_keyword(token, next),
                        "Fn" | "FnMut" | "FnOnce" => self.fn_trait(token, &name, next),
                        "dyn" => self.dyn_type(token, &tokens[i + 1..]),
                        "include" => self.report(
                            token,
                            Rule::OutsideCode,
                            "`include`: code from outside the checked tree",
                        ),
                        _ => {}
                    }
                }
                _ => {}
            }
        }
    }

    /// Rule 1: `fn` must be followed by the name of the item it declares.
    fn fn_keyword(&mut self, at: &TokenTree, next: Option<&TokenTree>) {
        match next {
            Some(TokenTree::Ident(_)) => {}
            Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Parenthesis => {
                self.report(at, Rule::FnPointer, "function pointer type `fn(..)`")
            }
            _ => self.report(
                at,
                Rule::FnPointer,
                "`fn` not followed by an item name (may form a function pointer type)",
            ),
        }
    }

    /// Rule 2: `for` must start a loop pattern or the type of an `impl
    /// .. for`, never a binder `for<..>`.
    fn for_keyword(&mut self, at: &TokenTree, next: Option<&TokenTree>) {
        let fine = match next {
            Some(TokenTree::Ident(_) | TokenTree::Literal(_)) => true,
            Some(TokenTree::Group(g)) => g.delimiter() != Delimiter::Brace,
            Some(TokenTree::Punct(p)) => matches!(p.as_char(), '&' | '*' | ':'),
            None => false,
        };
        if !fine {
            let what = if is_punct(next, '<') {
                "higher-ranked binder `for<..>`"
            } else {
                "`for` not followed by a pattern or type (may form a binder `for<..>`)"
            };
            self.report(at, Rule::HigherRanked, what);
        }
    }

    /// Rule 3: `Fn(..)` sugar is implicitly higher-ranked over its elided
    /// lifetimes. Arguments may hold at most one reference, and only
    /// `&dyn Path` / `&mut dyn Path` without lifetimes or further
    /// references inside (its implied bounds relate no two lifetimes);
    /// anything else (a nested or second reference, a named lifetime, a
    /// macro metavariable) is rejected.
    fn fn_trait(&mut self, at: &TokenTree, name: &str, next: Option<&TokenTree>) {
        let Some(TokenTree::Group(group)) = next.filter(
            |t| matches!(t, TokenTree::Group(g) if g.delimiter() == Delimiter::Parenthesis),
        ) else {
            self.report(
                at,
                Rule::FnTraitRefs,
                format!("`{name}` not followed by its arguments (cannot be checked)"),
            );
            return;
        };
        let mut flat = Vec::new();
        flatten(group.stream(), &mut flat);
        let refs: Vec<usize> = (0..flat.len())
            .filter(|&i| is_punct(Some(&flat[i]), '&'))
            .collect();
        let lifetimes = flat.iter().any(|t| is_punct(Some(t), '\''));
        let metavariables = flat.iter().any(|t| is_punct(Some(t), '$'));
        let plain_dyn = |i: usize| {
            let mut j = i + 1;
            if is_ident(flat.get(j), "mut") {
                j += 1;
            }
            is_ident(flat.get(j), "dyn")
        };
        if metavariables {
            self.report(
                at,
                Rule::FnTraitRefs,
                format!("`{name}(..)` with a macro metavariable in its arguments"),
            );
        } else if !refs.is_empty() && (lifetimes || refs.len() > 1 || !plain_dyn(refs[0])) {
            self.report(
                at,
                Rule::FnTraitRefs,
                format!("`{name}(..)` taking references (implicitly higher-ranked bound)"),
            );
        }
    }

    /// Rule 4: `dyn Trait<.., Name = ..>` where `Trait` is declared in
    /// this crate.
    fn dyn_type(&mut self, at: &TokenTree, rest: &[TokenTree]) {
        if matches!(rest.first(), None | Some(TokenTree::Punct(_)))
            && !is_punct(rest.first(), ':')
            && !is_punct(rest.first(), '\'')
            && !is_punct(rest.first(), '?')
        {
            self.report(
                at,
                Rule::DynAssocBinding,
                "`dyn` not followed by a trait path (cannot be checked)",
            );
            return;
        }
        let mut depth = 0usize;
        let mut trait_name = String::new();
        let mut last_ident = String::new();
        for (i, token) in rest.iter().enumerate() {
            match token {
                TokenTree::Ident(ident) => {
                    if depth == 0 && (ident == "as" || ident == "where") {
                        return;
                    }
                    if depth == 1
                        && is_punct(rest.get(i + 1), '=')
                        && !is_punct(rest.get(i + 2), '=')
                        && self.traits.local(&trait_name)
                    {
                        self.report(
                            at,
                            Rule::DynAssocBinding,
                            format!(
                                "`dyn {trait_name}<{ident} = ..>`: associated type bound on a trait object of a trait declared in this crate"
                            ),
                        );
                        return;
                    }
                    last_ident = ident.to_string();
                }
                TokenTree::Punct(p) => match p.as_char() {
                    '<' => {
                        if depth == 0 {
                            trait_name = last_ident.clone();
                        }
                        depth += 1;
                    }
                    '>' => {
                        // `->` inside `Fn(..) -> T` does not close.
                        let arrow = i > 0
                            && matches!(&rest[i - 1], TokenTree::Punct(q) if q.as_char() == '-' && q.spacing() == Spacing::Joint);
                        if !arrow {
                            if depth == 0 {
                                return;
                            }
                            depth -= 1;
                        }
                    }
                    ':' | '+' | '\'' | '?' | '-' => {}
                    _ if depth > 0 => {}
                    _ => return,
                },
                TokenTree::Group(g) => {
                    if depth == 0 && g.delimiter() != Delimiter::Parenthesis {
                        return;
                    }
                }
                TokenTree::Literal(_) => {
                    if depth == 0 {
                        return;
                    }
                }
            }
        }
    }

    /// Rule 5: `#[path = ..]` (also inside `cfg_attr`), and attribute
    /// names given by a macro metavariable.
    fn attribute(&mut self, at: &TokenTree, inner: &[TokenTree]) {
        let mut flat = Vec::new();
        flatten(inner.iter().cloned().collect(), &mut flat);
        for (i, token) in flat.iter().enumerate() {
            if is_ident(Some(token), "path") && is_punct(flat.get(i + 1), '=') {
                self.report(
                    at,
                    Rule::OutsideCode,
                    "`#[path = ..]`: module file from outside the checked tree",
                );
                return;
            }
            if is_punct(Some(token), '$') && !(i > 0 && is_punct(flat.get(i - 1), '=')) {
                self.report(
                    at,
                    Rule::OutsideCode,
                    "attribute built from a macro metavariable (cannot be checked)",
                );
                return;
            }
        }
    }
}

/// The tokens of `stream` with groups opened (their delimiters dropped).
fn flatten(stream: TokenStream, out: &mut Vec<TokenTree>) {
    for token in stream {
        match token {
            TokenTree::Group(g) => flatten(g.stream(), out),
            other => out.push(other),
        }
    }
}
