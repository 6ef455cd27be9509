//! The serial console's line editor: a state machine fed one byte at a
//! time, which echoes through a [`Sink`] and reports finished lines.
//!
//! Keys: printable ASCII inserts at the cursor; Enter (CR, LF, or CR LF as
//! one) finishes the line; Backspace (0x08) and DEL (0x7f) delete before the
//! cursor; Ctrl-C abandons the line; Ctrl-U kills it; Ctrl-A / Ctrl-E and
//! Home / End move to its ends; Ctrl-L clears the screen; the arrow keys
//! move the cursor (left/right) and walk a small history (up/down); the
//! Delete key deletes under the cursor. Other control bytes, unknown escape
//! sequences and non-ASCII bytes are ignored; a full line refuses more input
//! with a bell. Fixed buffers only: no allocation.
//!
//! Echo uses only CR, BS, spaces and the screen-clear sequence, which every
//! terminal understands.

#[cfg(test)]
mod tests;

/// Longest line, in bytes.
pub const MAX_LINE: usize = 256;
/// Lines of history kept.
pub const HISTORY_LEN: usize = 16;

const BELL: u8 = 0x07;
const BACKSPACE: u8 = 0x08;
const DEL: u8 = 0x7f;
const ESC: u8 = 0x1b;
const CTRL_A: u8 = 0x01;
const CTRL_C: u8 = 0x03;
const CTRL_E: u8 = 0x05;
const CTRL_L: u8 = 0x0c;
const CTRL_U: u8 = 0x15;
const CLEAR_SCREEN: &[u8] = b"\x1b[2J\x1b[H";
/// Longest CSI parameter we track; longer sequences are consumed and ignored.
const MAX_CSI_PARAM: u16 = 999;

/// Where echoed bytes go (the serial port).
pub trait Sink {
    /// Writes `bytes` to the terminal.
    fn write(&mut self, bytes: &[u8]);
}

/// What a byte did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// Nothing for the caller to do.
    None,
    /// Enter finished this line (already echoed as CR LF).
    Line(&'a str),
    /// Ctrl-C abandoned the line (echoed as `^C` CR LF): print a prompt.
    Cancelled,
    /// Ctrl-L cleared the screen: print the prompt, then call
    /// [`LineEditor::redraw`].
    ClearedScreen,
}

/// Where we are in an escape sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escape {
    None,
    /// Saw ESC.
    Start,
    /// Saw ESC [ and this much of the first numeric parameter; `first`
    /// while still in it; `valid` unless the sequence is one we ignore.
    Csi {
        param: u16,
        first: bool,
        valid: bool,
    },
    /// Saw ESC O (cursor keys in application mode).
    Ss3,
}

/// A fixed-size line with the characters all printable ASCII.
#[derive(Debug, Clone, Copy)]
struct Line {
    bytes: [u8; MAX_LINE],
    len: usize,
}

impl Line {
    const EMPTY: Line = Line {
        bytes: [0; MAX_LINE],
        len: 0,
    };

    fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }

    fn as_str(&self) -> &str {
        core::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }
}

/// The editor's state.
#[derive(Debug, Clone)]
pub struct LineEditor {
    line: Line,
    cursor: usize,
    /// The previous line was handed out; clear before the next byte.
    finished: bool,
    escape: Escape,
    /// The last byte was CR, so an LF right after it is not another Enter.
    after_cr: bool,
    history: [Line; HISTORY_LEN],
    history_count: usize,
    /// Slot the next history line goes to.
    history_next: usize,
    /// How far back we are while browsing (0 = newest), if browsing.
    browsing: Option<usize>,
    /// The line being typed before browsing started.
    stash: Line,
}

impl Default for LineEditor {
    fn default() -> Self {
        Self::new()
    }
}

static BACKSPACES: [u8; MAX_LINE + 1] = [BACKSPACE; MAX_LINE + 1];
static SPACES: [u8; MAX_LINE + 1] = [b' '; MAX_LINE + 1];

fn back(sink: &mut impl Sink, n: usize) {
    sink.write(BACKSPACES.get(..n).unwrap_or(&BACKSPACES));
}

fn blank(sink: &mut impl Sink, n: usize) {
    sink.write(SPACES.get(..n).unwrap_or(&SPACES));
}

impl LineEditor {
    /// An editor with an empty line and no history.
    pub const fn new() -> Self {
        LineEditor {
            line: Line::EMPTY,
            cursor: 0,
            finished: false,
            escape: Escape::None,
            after_cr: false,
            history: [Line::EMPTY; HISTORY_LEN],
            history_count: 0,
            history_next: 0,
            browsing: None,
            stash: Line::EMPTY,
        }
    }

    /// The line as typed so far.
    pub fn line(&self) -> &str {
        if self.finished {
            ""
        } else {
            self.line.as_str()
        }
    }

    /// The history, newest first.
    pub fn history(&self) -> impl Iterator<Item = &str> + '_ {
        (0..self.history_count)
            .filter_map(|age| self.history_entry(age))
            .map(Line::as_str)
    }

    fn history_entry(&self, age: usize) -> Option<&Line> {
        let slot = (self.history_next + HISTORY_LEN - 1 - age % HISTORY_LEN) % HISTORY_LEN;
        self.history.get(slot).filter(|_| age < self.history_count)
    }

    /// Writes the current line and puts the terminal cursor where ours is
    /// (after a prompt, e.g. following [`Event::ClearedScreen`]).
    pub fn redraw(&self, sink: &mut impl Sink) {
        sink.write(self.line.as_bytes());
        back(sink, self.line.len - self.cursor);
    }

    /// Feeds one byte from the terminal.
    pub fn feed(&mut self, byte: u8, sink: &mut impl Sink) -> Event<'_> {
        if self.finished {
            self.finished = false;
            self.line.len = 0;
            self.cursor = 0;
        }
        let after_cr = core::mem::replace(&mut self.after_cr, byte == b'\r');
        if self.escape != Escape::None {
            // A control byte aborts the sequence and is handled normally.
            if byte >= 0x20 {
                self.escape_byte(byte, sink);
                return Event::None;
            }
            self.escape = Escape::None;
        }
        match byte {
            b'\r' => self.finish(sink),
            b'\n' if after_cr => Event::None,
            b'\n' => self.finish(sink),
            CTRL_C => {
                sink.write(b"^C\r\n");
                self.line.len = 0;
                self.cursor = 0;
                self.browsing = None;
                Event::Cancelled
            }
            BACKSPACE | DEL => {
                if self.cursor > 0 {
                    self.cursor -= 1;
                    sink.write(&[BACKSPACE]);
                    self.delete_at_cursor(sink);
                }
                Event::None
            }
            CTRL_U => {
                self.replace_line(None, sink);
                Event::None
            }
            CTRL_A => {
                self.home(sink);
                Event::None
            }
            CTRL_E => {
                self.end(sink);
                Event::None
            }
            CTRL_L => {
                sink.write(CLEAR_SCREEN);
                Event::ClearedScreen
            }
            ESC => {
                self.escape = Escape::Start;
                Event::None
            }
            0x20..=0x7e => {
                self.insert(byte, sink);
                Event::None
            }
            _ => Event::None,
        }
    }

    fn finish(&mut self, sink: &mut impl Sink) -> Event<'_> {
        sink.write(b"\r\n");
        self.finished = true;
        self.browsing = None;
        self.remember();
        Event::Line(self.line.as_str())
    }

    /// Adds the line to the history unless it is empty or repeats the newest.
    fn remember(&mut self) {
        let text = self.line.as_bytes();
        if text.iter().all(|&b| b == b' ')
            || self.history_entry(0).is_some_and(|l| l.as_bytes() == text)
        {
            return;
        }
        if let Some(slot) = self.history.get_mut(self.history_next) {
            *slot = self.line;
        }
        self.history_next = (self.history_next + 1) % HISTORY_LEN;
        self.history_count = (self.history_count + 1).min(HISTORY_LEN);
    }

    fn insert(&mut self, byte: u8, sink: &mut impl Sink) {
        let len = self.line.len;
        if len >= MAX_LINE {
            sink.write(&[BELL]);
            return;
        }
        let bytes = &mut self.line.bytes;
        // `cursor <= len < MAX_LINE`, so the shifted tail still fits.
        bytes.copy_within(self.cursor..len, self.cursor + 1);
        if let Some(slot) = bytes.get_mut(self.cursor) {
            *slot = byte;
        }
        self.line.len += 1;
        sink.write(self.line.bytes.get(self.cursor..=len).unwrap_or_default());
        self.cursor += 1;
        back(sink, self.line.len - self.cursor);
    }

    /// Removes the byte under the cursor and redraws the tail.
    fn delete_at_cursor(&mut self, sink: &mut impl Sink) {
        let len = self.line.len;
        if self.cursor >= len {
            return;
        }
        self.line
            .bytes
            .copy_within(self.cursor + 1..len, self.cursor);
        self.line.len -= 1;
        sink.write(
            self.line
                .bytes
                .get(self.cursor..len - 1)
                .unwrap_or_default(),
        );
        blank(sink, 1);
        back(sink, len - self.cursor);
    }

    fn home(&mut self, sink: &mut impl Sink) {
        back(sink, self.cursor);
        self.cursor = 0;
    }

    fn end(&mut self, sink: &mut impl Sink) {
        sink.write(
            self.line
                .bytes
                .get(self.cursor..self.line.len)
                .unwrap_or_default(),
        );
        self.cursor = self.line.len;
    }

    /// Replaces the whole line (with a history entry or the stash, or
    /// empties it), leaving the cursor at its end.
    fn replace_line(&mut self, with: Option<Line>, sink: &mut impl Sink) {
        let old = self.line.len;
        self.home(sink);
        self.line = with.unwrap_or(Line::EMPTY);
        sink.write(self.line.as_bytes());
        let new = self.line.len;
        if old > new {
            blank(sink, old - new);
            back(sink, old - new);
        }
        self.cursor = new;
    }

    fn history_up(&mut self, sink: &mut impl Sink) {
        let age = self.browsing.map_or(0, |a| a + 1);
        let Some(&entry) = self.history_entry(age) else {
            sink.write(&[BELL]);
            return;
        };
        if self.browsing.is_none() {
            self.stash = self.line;
        }
        self.browsing = Some(age);
        self.replace_line(Some(entry), sink);
    }

    fn history_down(&mut self, sink: &mut impl Sink) {
        match self.browsing {
            None => sink.write(&[BELL]),
            Some(0) => {
                self.browsing = None;
                self.replace_line(Some(self.stash), sink);
            }
            Some(age) => {
                self.browsing = Some(age - 1);
                let entry = self.history_entry(age - 1).copied();
                self.replace_line(entry, sink);
            }
        }
    }

    fn escape_byte(&mut self, byte: u8, sink: &mut impl Sink) {
        self.escape = match (self.escape, byte) {
            (Escape::Start, b'[') => Escape::Csi {
                param: 0,
                first: true,
                valid: true,
            },
            (Escape::Start, b'O') => Escape::Ss3,
            (
                Escape::Csi {
                    param,
                    first: true,
                    valid,
                },
                b'0'..=b'9',
            ) => {
                let param = param * 10 + u16::from(byte - b'0');
                let valid = valid && param <= MAX_CSI_PARAM;
                Escape::Csi {
                    param: if valid { param } else { 0 },
                    first: true,
                    valid,
                }
            }
            (Escape::Csi { param, valid, .. }, b'0'..=b'9' | b';') => Escape::Csi {
                param,
                first: false,
                valid,
            },
            // Private or intermediate bytes: a sequence we do not use.
            (Escape::Csi { param, first, .. }, 0x20..=0x3f) => Escape::Csi {
                param,
                first,
                valid: false,
            },
            (Escape::Csi { param, valid, .. }, final_byte @ 0x40..=0x7e) => {
                if valid {
                    self.key(final_byte, param, sink);
                }
                Escape::None
            }
            (Escape::Ss3, final_byte) => {
                self.key(final_byte, 0, sink);
                Escape::None
            }
            // Anything else (Alt+key, DEL, non-ASCII) ends the sequence.
            _ => Escape::None,
        };
    }

    /// A decoded cursor key: CSI/SS3 final byte and first parameter.
    fn key(&mut self, final_byte: u8, param: u16, sink: &mut impl Sink) {
        match (final_byte, param) {
            (b'A', _) => self.history_up(sink),
            (b'B', _) => self.history_down(sink),
            (b'C', _) => {
                if let Some(&b) = self
                    .line
                    .bytes
                    .get(self.cursor)
                    .filter(|_| self.cursor < self.line.len)
                {
                    sink.write(&[b]);
                    self.cursor += 1;
                }
            }
            (b'D', _) if self.cursor > 0 => {
                self.cursor -= 1;
                sink.write(&[BACKSPACE]);
            }
            (b'H', _) | (b'~', 1 | 7) => self.home(sink),
            (b'F', _) | (b'~', 4 | 8) => self.end(sink),
            (b'~', 3) => self.delete_at_cursor(sink),
            _ => {}
        }
    }
}
