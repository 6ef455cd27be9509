//! The recent log lines of one domain, in a fixed byte ring (no
//! allocation): what `log show NAME` prints. Each line is stored as its
//! time, level, length and text; the oldest lines go first to make room,
//! and a line longer than [`LogRing::MAX_TEXT`] is cut there (at a
//! character boundary).

/// Bytes of a record before its text: time (8), level (1), length (2).
const HEADER: usize = 11;

/// A ring of recent lines in `N` bytes.
#[derive(Debug)]
pub struct LogRing<const N: usize> {
    bytes: [u8; N],
    /// Offset of the oldest record.
    head: usize,
    /// Bytes in use.
    used: usize,
    lines: usize,
    dropped: u64,
}

impl<const N: usize> Default for LogRing<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> LogRing<N> {
    /// The longest text kept for one line.
    pub const MAX_TEXT: usize = N.saturating_sub(HEADER);

    /// An empty ring.
    pub const fn new() -> LogRing<N> {
        LogRing {
            bytes: [0; N],
            head: 0,
            used: 0,
            lines: 0,
            dropped: 0,
        }
    }

    fn byte(&self, offset: usize) -> u8 {
        self.bytes[(self.head + offset) % N]
    }

    fn put(&mut self, offset: usize, byte: u8) {
        self.bytes[(self.head + offset) % N] = byte;
    }

    /// The length of the text of the record at `offset` (from the head).
    fn text_len(&self, offset: usize) -> usize {
        usize::from(u16::from_le_bytes([
            self.byte(offset + 9),
            self.byte(offset + 10),
        ]))
    }

    fn drop_oldest(&mut self) {
        let size = HEADER + self.text_len(0);
        self.head = (self.head + size) % N;
        self.used -= size;
        self.lines -= 1;
        self.dropped += 1;
    }

    /// Adds a line (nanoseconds since boot, level 1 error .. 5 trace),
    /// dropping the oldest ones to make room. Nothing if `N` cannot hold a
    /// header.
    pub fn push(&mut self, at_ns: u64, level: u8, text: &str) {
        if Self::MAX_TEXT == 0 {
            return;
        }
        let mut end = text.len().min(Self::MAX_TEXT).min(usize::from(u16::MAX));
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let text = &text.as_bytes()[..end];
        let size = HEADER + text.len();
        while N - self.used < size {
            self.drop_oldest();
        }
        let start = self.used;
        for (i, byte) in at_ns.to_le_bytes().into_iter().enumerate() {
            self.put(start + i, byte);
        }
        self.put(start + 8, level);
        let [low, high] = (text.len() as u16).to_le_bytes();
        self.put(start + 9, low);
        self.put(start + 10, high);
        for (i, &byte) in text.iter().enumerate() {
            self.put(start + HEADER + i, byte);
        }
        self.used += size;
        self.lines += 1;
    }

    /// Lines kept.
    pub fn len(&self) -> usize {
        self.lines
    }

    /// Whether no line is kept.
    pub fn is_empty(&self) -> bool {
        self.lines == 0
    }

    /// Lines dropped to make room, ever.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Calls `f(at_ns, level, text)` for the last `n` lines, oldest first.
    /// `text` is copied into `scratch` (at least [`MAX_TEXT`](Self::MAX_TEXT)
    /// bytes long to see whole lines; longer texts are cut to it).
    pub fn for_each_last(&self, n: usize, scratch: &mut [u8], mut f: impl FnMut(u64, u8, &str)) {
        let mut offset = 0;
        for index in 0..self.lines {
            let len = self.text_len(offset);
            if index >= self.lines.saturating_sub(n) {
                let mut at = [0u8; 8];
                for (i, byte) in at.iter_mut().enumerate() {
                    *byte = self.byte(offset + i);
                }
                let take = len.min(scratch.len());
                for (i, byte) in scratch[..take].iter_mut().enumerate() {
                    *byte = self.byte(offset + HEADER + i);
                }
                let mut end = take;
                while core::str::from_utf8(&scratch[..end]).is_err() {
                    end -= 1; // cut inside a character by a short scratch
                }
                let text = core::str::from_utf8(&scratch[..end]).unwrap_or("");
                f(u64::from_le_bytes(at), self.byte(offset + 8), text);
            }
            offset += HEADER + len;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::String;
    use std::vec::Vec;

    fn lines<const N: usize>(ring: &LogRing<N>, n: usize) -> Vec<(u64, u8, String)> {
        let mut out = Vec::new();
        let mut scratch = [0u8; 1024];
        ring.for_each_last(n, &mut scratch, |at, level, text| {
            out.push((at, level, String::from(text)))
        });
        out
    }

    #[test]
    fn keeps_the_newest_lines_and_wraps_around() {
        let mut ring = LogRing::<64>::new(); // 53 bytes of text at most
        for i in 0..20u64 {
            ring.push(i, 3, &std::format!("line {i}"));
        }
        // Each record is 11 + 6 or 7 bytes: the last three fit.
        let kept = lines(&ring, usize::MAX);
        assert_eq!(
            kept.iter().map(|l| l.2.as_str()).collect::<Vec<_>>(),
            ["line 17", "line 18", "line 19"]
        );
        assert_eq!(kept[2], (19, 3, String::from("line 19")));
        assert_eq!(ring.len(), 3);
        assert_eq!(ring.dropped(), 17);
        assert_eq!(lines(&ring, 1)[0].2, "line 19");
        assert!(lines(&ring, 0).is_empty());
    }

    #[test]
    fn a_long_line_is_cut_at_a_character_boundary_and_evicts_the_rest() {
        let mut ring = LogRing::<32>::new(); // 21 bytes of text at most
        ring.push(1, 2, "short");
        ring.push(2, 1, "ééééééééééééééé"); // 30 bytes: cut to 20 (10 é)
        let kept = lines(&ring, 10);
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].2, "éééééééééé");
        assert_eq!(kept[0].1, 1);
    }

    #[test]
    fn a_short_scratch_cuts_the_text_it_shows_not_the_ring() {
        let mut ring = LogRing::<256>::new();
        ring.push(7, 4, "ab€cd");
        let mut scratch = [0u8; 4]; // "ab" and 2 of the 3 bytes of '€'
        let mut seen = String::new();
        ring.for_each_last(1, &mut scratch, |_, _, text| seen.push_str(text));
        assert_eq!(seen, "ab");
        assert_eq!(lines(&ring, 1)[0].2, "ab€cd");
    }

    #[test]
    fn a_ring_too_small_for_a_header_keeps_nothing() {
        let mut ring = LogRing::<8>::new();
        ring.push(0, 3, "x");
        assert!(ring.is_empty());
    }
}
