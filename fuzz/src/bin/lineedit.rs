//! Any bytes typed at the console: the line editor must never panic, never
//! hold a line longer than `MAX_LINE`, and hand out only valid text.

use kcore::lineedit::{Event, LineEditor, MAX_LINE, Sink};

struct Count(usize);

impl Sink for Count {
    fn write(&mut self, bytes: &[u8]) {
        self.0 += bytes.len();
    }
}

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let mut editor = LineEditor::new();
        let mut sink = Count(0);
        for &byte in data {
            match editor.feed(byte, &mut sink) {
                Event::Line(line) => assert!(line.len() <= MAX_LINE),
                Event::ClearedScreen => editor.redraw(&mut sink),
                Event::None | Event::Cancelled => {}
            }
            assert!(editor.line().len() <= MAX_LINE);
        }
        for line in editor.history() {
            assert!(line.len() <= MAX_LINE);
        }
        core::hint::black_box(sink.0);
    });
}
