//! Command lines: the kernel's (`key=value` and bare flags), the console
//! shell's (whitespace-separated words), and typed values in them (sizes,
//! numbers, durations).
//!
//! Quoting is the same everywhere and deliberately simple, so that every
//! token is a slice of the input (no allocation): double quotes group
//! whitespace, and may only enclose a whole word (`"a b"`) or a whole value
//! (`key="a b"`). There are no escapes.

#[cfg(test)]
mod tests;
mod value;

use core::fmt;

pub use value::{ValueError, parse_duration_ms, parse_size, parse_u64};

/// Why a command line could not be split into tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmdlineError {
    /// A `"` is never closed; the byte offset of the opening quote.
    UnterminatedQuote(usize),
    /// A `"` inside a word or a key rather than around it; its offset.
    MisplacedQuote(usize),
    /// A `key=value` token with an empty key; the token's offset.
    EmptyKey(usize),
}

impl fmt::Display for CmdlineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CmdlineError::UnterminatedQuote(at) => {
                write!(f, "unterminated quote at column {}", at + 1)
            }
            CmdlineError::MisplacedQuote(at) => {
                write!(
                    f,
                    "quote at column {} must enclose a whole word or value",
                    at + 1
                )
            }
            CmdlineError::EmptyKey(at) => write!(f, "'=' without a name at column {}", at + 1),
        }
    }
}

/// Splits `s` into whitespace-separated raw tokens, quotes included: a
/// token ends at whitespace outside quotes.
#[derive(Debug, Clone)]
struct RawTokens<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Iterator for RawTokens<'a> {
    /// Offset of the token, and the token.
    type Item = Result<(usize, &'a str), CmdlineError>;

    fn next(&mut self) -> Option<Self::Item> {
        let bytes = self.s.as_bytes();
        let start = self.pos
            + bytes
                .get(self.pos..)?
                .iter()
                .position(|b| !b.is_ascii_whitespace())?;
        let mut quote = None;
        let mut end = start;
        while let Some(&b) = bytes.get(end) {
            match (b, quote) {
                (b'"', None) => quote = Some(end),
                (b'"', Some(_)) => quote = None,
                (b, None) if b.is_ascii_whitespace() => break,
                _ => {}
            }
            end += 1;
        }
        if let Some(open) = quote {
            self.pos = bytes.len();
            return Some(Err(CmdlineError::UnterminatedQuote(open)));
        }
        self.pos = end;
        // Both ends are ASCII (whitespace, quote) or the string's ends.
        Some(
            self.s
                .get(start..end)
                .map(|t| (start, t))
                .ok_or(CmdlineError::MisplacedQuote(start)),
        )
    }
}

/// `token` (at offset `at`) without its enclosing quotes; quotes anywhere
/// else are an error.
fn unquote(token: &str, at: usize) -> Result<&str, CmdlineError> {
    let inner = match token.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(inner) => inner,
        None => token,
    };
    match inner.find('"') {
        None => Ok(inner),
        Some(i) => Err(CmdlineError::MisplacedQuote(
            at + i + usize::from(inner.len() != token.len()),
        )),
    }
}

/// The words of a console command line: whitespace separates words, and a
/// word in double quotes may contain whitespace (`echo "a  b"` gives `echo`,
/// `a  b`). Each malformed word is an `Err`, after which iteration stops.
pub fn split_args(line: &str) -> SplitArgs<'_> {
    SplitArgs {
        tokens: RawTokens { s: line, pos: 0 },
    }
}

/// Iterator returned by [`split_args`].
#[derive(Debug, Clone)]
pub struct SplitArgs<'a> {
    tokens: RawTokens<'a>,
}

impl<'a> Iterator for SplitArgs<'a> {
    type Item = Result<&'a str, CmdlineError>;

    fn next(&mut self) -> Option<Self::Item> {
        let item = self.tokens.next()?.and_then(|(at, t)| unquote(t, at));
        if item.is_err() {
            self.tokens.pos = self.tokens.s.len();
        }
        Some(item)
    }
}

/// One kernel command-line parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param<'a> {
    /// The name (`log` in `log=debug`).
    pub key: &'a str,
    /// The value without its quotes, or `None` for a bare flag.
    pub value: Option<&'a str>,
}

fn param(at: usize, token: &str) -> Result<Param<'_>, CmdlineError> {
    match token.split_once('=') {
        Some(("", _)) => Err(CmdlineError::EmptyKey(at)),
        Some((key, value)) => {
            if let Some(i) = key.find('"') {
                return Err(CmdlineError::MisplacedQuote(at + i));
            }
            Ok(Param {
                key,
                value: Some(unquote(value, at + key.len() + 1)?),
            })
        }
        None => Ok(Param {
            key: unquote(token, at)?,
            value: None,
        }),
    }
}

/// A validated kernel command line: `key=value` pairs and bare flags.
#[derive(Debug, Clone, Copy, Default)]
pub struct CmdLine<'a> {
    text: &'a str,
}

impl<'a> CmdLine<'a> {
    /// Checks the quoting and the keys of every parameter.
    pub fn parse(text: &'a str) -> Result<CmdLine<'a>, CmdlineError> {
        for token in (RawTokens { s: text, pos: 0 }) {
            let (at, token) = token?;
            param(at, token)?;
        }
        Ok(CmdLine { text })
    }

    /// The text it was parsed from.
    pub fn as_str(&self) -> &'a str {
        self.text
    }

    /// The parameters, in order.
    pub fn params(&self) -> impl Iterator<Item = Param<'a>> + 'a {
        // Validated by `parse`, so no token fails here.
        RawTokens {
            s: self.text,
            pos: 0,
        }
        .filter_map(|t| t.ok())
        .filter_map(|(at, t)| param(at, t).ok())
    }

    /// The value of the last `key=value` for `key`; a bare `key` flag gives
    /// `Some("")`.
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.params()
            .filter(|p| p.key == key)
            .last()
            .map(|p| p.value.unwrap_or(""))
    }

    /// Whether `key` appears at all, as a flag or with a value.
    pub fn has(&self, key: &str) -> bool {
        self.params().any(|p| p.key == key)
    }
}
