//! [`Control`]: what the console's `call NAME OP [ARG]` and `call NAME
//! help` call.

use rrpc::{RRef, RpcResult};

/// The `op` of `call NAME help`: [`Control::control_text`] answers with
/// one line per operation.
pub const HELP: u32 = u32::MAX;

/// A domain's console hook: `call NAME OP [ARG]` ends up here. What
/// `op` and `arg` mean is up to the domain; `call NAME help` shows what it
/// says about them ([`control_text`](Control::control_text) with [`HELP`]).
#[rrpc::interface]
pub trait Control {
    /// A number-valued operation.
    fn control(&self, op: u32, arg: u64) -> RpcResult<u64>;
    /// Text answers: for [`HELP`], one line per operation (`OP [ARG]:
    /// what it answers`); for another `op`, `Some` if that operation
    /// answers in text (`call` prints it), `None` if its answer is
    /// `control`'s number (then this must do nothing else: `call` asks
    /// here first). By default a domain describes nothing and answers
    /// only numbers.
    fn control_text(&self, op: u32, arg: u64) -> RpcResult<Option<RRef<Text>>> {
        let _ = (op, arg);
        Ok(None)
    }
}

/// Text that crosses to the console: UTF-8, at most [`Text::CAPACITY`]
/// bytes (longer text is cut at a character boundary).
#[derive(rrpc::Exchangeable)]
pub struct Text {
    len: u16,
    bytes: [u8; Text::CAPACITY],
}

impl Text {
    /// Bytes of text it holds at most.
    pub const CAPACITY: usize = 2048;

    /// `text`, cut to [`CAPACITY`](Self::CAPACITY) bytes if longer.
    pub fn new(text: &str) -> Text {
        let mut end = text.len().min(Self::CAPACITY);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let mut bytes = [0; Self::CAPACITY];
        bytes[..end].copy_from_slice(&text.as_bytes()[..end]);
        Text {
            len: end as u16,
            bytes,
        }
    }

    /// Text in a new `RRef` (owned by the running domain until it is
    /// returned from a call): what `control_text` answers with.
    pub fn answer(text: &str) -> RpcResult<Option<RRef<Text>>> {
        RRef::try_new(Text::new(text)).map(Some)
    }

    /// The text (empty if what arrived is not UTF-8: the fields are
    /// private, so only `new` makes one, but the check costs nothing).
    pub fn as_str(&self) -> &str {
        let len = usize::from(self.len).min(Self::CAPACITY);
        core::str::from_utf8(&self.bytes[..len]).unwrap_or("")
    }
}
