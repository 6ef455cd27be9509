use super::*;
use std::string::String;
use std::vec::Vec;

/// Records echo.
#[derive(Default)]
struct Echo(Vec<u8>);

impl Sink for Echo {
    fn write(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }
}

impl Echo {
    fn take(&mut self) -> String {
        String::from_utf8(core::mem::take(&mut self.0)).unwrap()
    }
}

/// Feeds `input`, returning the events that were not `None` (lines as
/// owned strings) and the echo.
fn run(ed: &mut LineEditor, input: &[u8]) -> (Vec<String>, String) {
    let mut echo = Echo::default();
    let mut events = Vec::new();
    for &b in input {
        match ed.feed(b, &mut echo) {
            Event::None => {}
            Event::Line(l) => events.push(format!("line:{l}")),
            Event::Cancelled => events.push("cancelled".into()),
            Event::ClearedScreen => events.push("cleared".into()),
        }
    }
    (events, echo.take())
}

fn lines(input: &[u8]) -> Vec<String> {
    run(&mut LineEditor::new(), input).0
}

#[test]
fn enter_finishes_lines() {
    let mut ed = LineEditor::new();
    let (ev, echo) = run(&mut ed, b"help\r");
    assert_eq!((ev, echo.as_str()), (vec!["line:help".into()], "help\r\n"));
    assert_eq!(ed.line(), "");
    assert_eq!(
        lines(b"a\r\nb\nc\n\n"),
        ["line:a", "line:b", "line:c", "line:"]
    );
    assert_eq!(
        lines(b"a\r\rb\r\n\r\n"),
        ["line:a", "line:", "line:b", "line:"]
    );
    // LF then CR are two Enters; CR x LF too.
    assert_eq!(lines(b"\n\r"), ["line:", "line:"]);
    assert_eq!(lines(b"\rx\n"), ["line:", "line:x"]);
}

#[test]
fn backspace_and_del() {
    let mut ed = LineEditor::new();
    let (ev, echo) = run(&mut ed, b"ab\x08c\x7f\x7f\x7fd\r");
    assert_eq!(ev, ["line:d"]);
    assert_eq!(echo, "ab\x08 \x08c\x08 \x08\x08 \x08d\r\n");
}

#[test]
fn ctrl_c_and_ctrl_u() {
    let mut ed = LineEditor::new();
    let (ev, echo) = run(&mut ed, b"abc\x03");
    assert_eq!((ev, echo.as_str()), (vec!["cancelled".into()], "abc^C\r\n"));
    assert_eq!(ed.line(), "");
    assert_eq!(run(&mut ed, b"x\r").0, ["line:x"]);
    assert_eq!(ed.history().collect::<Vec<_>>(), ["x"]);

    let (ev, echo) = run(&mut ed, b"hello\x15");
    assert!(ev.is_empty());
    assert_eq!(echo, "hello\x08\x08\x08\x08\x08     \x08\x08\x08\x08\x08");
    assert_eq!(run(&mut ed, b"ok\r").0, ["line:ok"]);
}

#[test]
fn cursor_movement_and_insertion() {
    assert_eq!(lines(b"ac\x1b[Db\r"), ["line:abc"]);
    assert_eq!(lines(b"abc\x1b[D\x1b[D\x1b[C\x1b[3~\r"), ["line:ab"]);
    assert_eq!(lines(b"bc\x01a\x05d\r"), ["line:abcd"]);
    assert_eq!(lines(b"bc\x1b[Ha\x1b[Fd\r"), ["line:abcd"]);
    assert_eq!(
        lines(b"bc\x1b[1~a\x1b[4~d\x1b[7~_\x1b[8~!\r"),
        ["line:_abcd!"]
    );
    assert_eq!(lines(b"xy\x1bOD\x1bODz\r"), ["line:zxy"]);
    // Backspace in the middle, delete at the end, moves past the ends.
    assert_eq!(
        lines(b"abcd\x1b[D\x1b[D\x7f\x1b[3~\x1b[C\x1b[C\x1b[C\x1b[3~\r"),
        ["line:ad"]
    );
    assert_eq!(lines(b"\x1b[D\x1b[D\x7fq\r"), ["line:q"]);
    // Modifier parameters are accepted (Ctrl-Left moves left).
    assert_eq!(lines(b"ab\x1b[1;5Dc\r"), ["line:acb"]);
    let mut ed = LineEditor::new();
    let (_, echo) = run(&mut ed, b"acd\x1b[D\x1b[Db");
    assert_eq!(echo, "acd\x08\x08bcd\x08\x08");
    assert_eq!(ed.line(), "abcd");
}

#[test]
fn history_walks_and_restores_the_stash() {
    let mut ed = LineEditor::new();
    run(&mut ed, b"one\rtwo\rtwo\r\r   \r");
    assert_eq!(ed.history().collect::<Vec<_>>(), ["two", "one"]);
    let (_, echo) = run(&mut ed, b"par\x1b[A");
    assert_eq!(ed.line(), "two");
    assert_eq!(echo, "par\x08\x08\x08two");
    run(&mut ed, b"\x1b[A");
    assert_eq!(ed.line(), "one");
    let (_, echo) = run(&mut ed, b"\x1b[A");
    assert_eq!((ed.line(), echo.as_str()), ("one", "\x07"));
    run(&mut ed, b"\x1b[B");
    assert_eq!(ed.line(), "two");
    run(&mut ed, b"\x1b[B");
    assert_eq!(ed.line(), "par");
    let (_, echo) = run(&mut ed, b"\x1b[B");
    assert_eq!(echo, "\x07");
    // A recalled line can be edited and entered.
    assert_eq!(run(&mut ed, b"\x15\x1bOA!\r").0, ["line:two!"]);
    assert_eq!(ed.history().next(), Some("two!"));
    // Shorter recalled lines blank out the rest.
    let (_, echo) = run(&mut ed, b"longer line\x1b[A");
    assert!(
        echo.ends_with("two!       \x08\x08\x08\x08\x08\x08\x08"),
        "{echo:?}"
    );
    assert_eq!(run(&mut LineEditor::new(), b"\x1b[A").1, "\x07");
}

#[test]
fn history_keeps_the_newest_lines() {
    let mut ed = LineEditor::new();
    for i in 0..40 {
        run(&mut ed, format!("cmd{i}\r").as_bytes());
    }
    let h: Vec<_> = ed.history().collect();
    assert_eq!(h.len(), HISTORY_LEN);
    assert_eq!(h[0], "cmd39");
    assert_eq!(h[HISTORY_LEN - 1], format!("cmd{}", 40 - HISTORY_LEN));
    for _ in 0..HISTORY_LEN {
        run(&mut ed, b"\x1b[A");
    }
    assert_eq!(ed.line(), format!("cmd{}", 40 - HISTORY_LEN));
    assert_eq!(run(&mut ed, b"\x1b[A").1, "\x07");
}

#[test]
fn lines_are_bounded() {
    let mut ed = LineEditor::new();
    let input = [b'x'; MAX_LINE + 10];
    let (_, echo) = run(&mut ed, &input);
    assert_eq!(ed.line().len(), MAX_LINE);
    assert_eq!(echo.matches('\x07').count(), 10);
    // Inserting in the middle of a full line is refused too.
    let (_, echo) = run(&mut ed, b"\x1b[Dy");
    assert_eq!(echo, "\x08\x07");
    let (ev, _) = run(&mut ed, b"\r");
    assert_eq!(ev[0].len(), "line:".len() + MAX_LINE);
}

#[test]
fn junk_is_ignored() {
    let mut ed = LineEditor::new();
    let mut junk: Vec<u8> = (0x80..=0xffu8).collect();
    junk.extend_from_slice(b"\x00\x02\x04\x06\x09\x0b\x0e\x1a\x1f");
    let (ev, echo) = run(&mut ed, &junk);
    assert!(ev.is_empty() && echo.is_empty());
    // Unknown or overlong escape sequences are swallowed whole.
    let seqs: [&[u8]; 7] = [
        b"\x1b[5~",
        b"\x1b[?25h",
        b"\x1bx",
        b"\x1b[99999999A",
        b"\x1b[200~",
        b"\x1b[12;34;56Z",
        b"\x1bOQ",
    ];
    for seq in seqs {
        let (ev, _) = run(&mut ed, seq);
        assert!(ev.is_empty());
    }
    run(&mut ed, b"k");
    assert_eq!(ed.line(), "k");
    // A control byte inside a sequence ends it and takes effect.
    assert_eq!(lines(b"a\x1b[\r"), ["line:a"]);
    assert_eq!(lines(b"a\x1b\x1b[Db\r"), ["line:ba"]);
    assert_eq!(lines(b"a\x1b[1\x03"), ["cancelled"]);
}

#[test]
fn ctrl_l_clears_and_redraws() {
    let mut ed = LineEditor::new();
    let (ev, echo) = run(&mut ed, b"abc\x1b[D\x0c");
    assert_eq!(ev, ["cleared"]);
    assert!(echo.ends_with("\x1b[2J\x1b[H"));
    let mut out = Echo::default();
    ed.redraw(&mut out);
    assert_eq!(out.take(), "abc\x08");
}

/// A dumb terminal: interprets our echo and shows the line and cursor.
#[derive(Default)]
struct Screen {
    row: Vec<u8>,
    col: usize,
    done: Vec<String>,
}

impl Screen {
    fn apply(&mut self, bytes: &[u8]) {
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'\r' => self.col = 0,
                b'\n' => {
                    self.done.push(
                        String::from_utf8(self.row.clone())
                            .unwrap()
                            .trim_end()
                            .into(),
                    );
                    self.row.clear();
                }
                0x08 => self.col = self.col.checked_sub(1).expect("backspace past column 0"),
                0x07 => {}
                0x1b => {
                    assert_eq!(&bytes[i..i + 7], b"\x1b[2J\x1b[H");
                    self.row.clear();
                    self.col = 0;
                    i += 6;
                }
                b => {
                    if self.col == self.row.len() {
                        self.row.push(b);
                    } else {
                        self.row[self.col] = b;
                    }
                    self.col += 1;
                }
            }
            i += 1;
        }
    }
}

/// Random keys: the terminal always shows exactly the editor's line, with
/// the cursor in the same place, and entered lines match what is shown.
#[test]
fn randomised_screen_matches_the_editor() {
    let keys: [&[u8]; 16] = [
        b"a", b"b", b"Z", b" ", b"\x7f", b"\x08", b"\x1b[D", b"\x1b[C", b"\x1b[A", b"\x1b[B",
        b"\x1b[3~", b"\x01", b"\x05", b"\x15", b"\r", b"\xc3",
    ];
    let mut seed = 0xabcdef_u64;
    let mut rand = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let mut ed = LineEditor::new();
    let mut screen = Screen::default();
    for step in 0..20_000 {
        let key = if rand(50) == 0 {
            b"\x03" as &[u8]
        } else {
            keys[rand(keys.len())]
        };
        let mut echo = Echo::default();
        let mut entered = None;
        for &b in key {
            if let Event::Line(l) = ed.feed(b, &mut echo) {
                entered = Some(String::from(l));
            }
        }
        screen.apply(&echo.0);
        if let Some(line) = entered {
            assert_eq!(
                screen.done.last().map(String::as_str),
                Some(line.trim_end()),
                "step {step}"
            );
        }
        let shown = String::from_utf8(screen.row.clone()).unwrap();
        assert_eq!(shown.trim_end(), ed.line().trim_end(), "step {step}");
        assert_eq!(screen.col, ed.cursor.min(ed.line().len()), "step {step}");
    }
}
