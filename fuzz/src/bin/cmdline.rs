//! Any bytes as the kernel command line and as a console line: parsing,
//! every parameter, the value parsers and argument splitting must answer
//! without a panic or an overflow.

use kcore::cmdline::{CmdLine, parse_duration_ms, parse_size, parse_u64, split_args};

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Ok(text) = core::str::from_utf8(data) else {
            return;
        };
        if let Ok(line) = CmdLine::parse(text) {
            for param in line.params() {
                core::hint::black_box(param);
            }
            let _ = line.get("iommu");
            let _ = line.has("quiet");
        }
        for arg in split_args(text).flatten() {
            let _ = parse_u64(arg);
            let _ = parse_size(arg);
            let _ = parse_duration_ms(arg);
        }
    });
}
