use super::*;
use std::vec::Vec;

fn args(line: &str) -> Result<Vec<&str>, CmdlineError> {
    split_args(line).collect()
}

#[test]
fn split_words_and_quotes() {
    assert_eq!(args(""), Ok(Vec::new()));
    assert_eq!(args("   \t "), Ok(Vec::new()));
    assert_eq!(args("help"), Ok(vec!["help"]));
    assert_eq!(
        args("  crash  net0 \t panic  "),
        Ok(vec!["crash", "net0", "panic"])
    );
    assert_eq!(args(r#"echo "a  b" c"#), Ok(vec!["echo", "a  b", "c"]));
    assert_eq!(args(r#"x "" y"#), Ok(vec!["x", "", "y"]));
    assert_eq!(args("héllo wörld"), Ok(vec!["héllo", "wörld"]));
    assert_eq!(args("a\r\nb"), Ok(vec!["a", "b"]));
}

#[test]
fn split_rejects_bad_quotes() {
    assert_eq!(
        args(r#"echo "abc"#),
        Err(CmdlineError::UnterminatedQuote(5))
    );
    assert_eq!(args(r#"""#), Err(CmdlineError::UnterminatedQuote(0)));
    assert_eq!(args(r#"echo a"b"#), Err(CmdlineError::UnterminatedQuote(6)));
    assert_eq!(
        args(r#"echo a"b c"d"#),
        Err(CmdlineError::MisplacedQuote(6))
    );
    assert_eq!(args(r#"echo "a"b"#), Err(CmdlineError::MisplacedQuote(5)));
    assert_eq!(args(r#""a"b"c""#), Err(CmdlineError::MisplacedQuote(2)));
    // Iteration stops after an error; earlier words came out fine.
    let mut it = split_args(r#"ok a"b"c more"#);
    assert_eq!(it.next(), Some(Ok("ok")));
    assert_eq!(it.next(), Some(Err(CmdlineError::MisplacedQuote(4))));
    assert_eq!(it.next(), None);
}

#[test]
fn kernel_cmdline_params() {
    let c =
        CmdLine::parse(r#" log=debug test  hz=100 name="my  kernel" log=info empty= "#).unwrap();
    let params: Vec<_> = c.params().collect();
    assert_eq!(params.len(), 6);
    assert_eq!(
        params[1],
        Param {
            key: "test",
            value: None
        }
    );
    assert_eq!(
        params[3],
        Param {
            key: "name",
            value: Some("my  kernel")
        }
    );
    assert_eq!(c.get("log"), Some("info"));
    assert_eq!(c.get("test"), Some(""));
    assert_eq!(c.get("name"), Some("my  kernel"));
    assert_eq!(c.get("empty"), Some(""));
    assert_eq!(c.get("missing"), None);
    assert!(c.has("test") && c.has("hz") && !c.has("tes"));
    assert_eq!(c.get("hz").map(parse_u64), Some(Ok(100)));
    // Values may contain '='.
    let c = CmdLine::parse("opt=a=b").unwrap();
    assert_eq!(c.get("opt"), Some("a=b"));
    let empty = CmdLine::parse("").unwrap();
    assert_eq!(
        (empty.params().count(), empty.get("x"), empty.as_str()),
        (0, None, "")
    );
    assert_eq!(CmdLine::default().params().count(), 0);
}

#[test]
fn kernel_cmdline_errors() {
    assert_eq!(
        CmdLine::parse("a=1 =2").unwrap_err(),
        CmdlineError::EmptyKey(4)
    );
    assert_eq!(
        CmdLine::parse(r#"a="unterminated"#).unwrap_err(),
        CmdlineError::UnterminatedQuote(2)
    );
    assert_eq!(
        CmdLine::parse(r#""k"=v"#).unwrap_err(),
        CmdlineError::MisplacedQuote(0)
    );
    assert_eq!(
        CmdLine::parse(r#"k=a"b c""#).unwrap_err(),
        CmdlineError::MisplacedQuote(3)
    );
    assert_eq!(
        CmdLine::parse(r#"k="a"b"#).unwrap_err(),
        CmdlineError::MisplacedQuote(2)
    );
    assert_eq!(
        CmdLine::parse(r#"fl"ag""#).unwrap_err(),
        CmdlineError::MisplacedQuote(2)
    );
    // A quoted bare flag is just the flag.
    assert_eq!(CmdLine::parse(r#""quiet""#).unwrap().get("quiet"), Some(""));
    for e in [
        CmdlineError::UnterminatedQuote(0),
        CmdlineError::MisplacedQuote(1),
        CmdlineError::EmptyKey(2),
    ] {
        assert!(!e.to_string().is_empty());
    }
    assert_eq!(
        CmdlineError::EmptyKey(2).to_string(),
        "'=' without a name at column 3"
    );
}

#[test]
fn numbers() {
    assert_eq!(parse_u64("0"), Ok(0));
    assert_eq!(parse_u64("4096"), Ok(4096));
    assert_eq!(parse_u64("0x1000"), Ok(0x1000));
    assert_eq!(parse_u64("0XfF"), Ok(255));
    assert_eq!(parse_u64("18446744073709551615"), Ok(u64::MAX));
    assert_eq!(parse_u64("0xffffffffffffffff"), Ok(u64::MAX));
    assert_eq!(parse_u64("18446744073709551616"), Err(ValueError::Overflow));
    assert_eq!(parse_u64("0x10000000000000000"), Err(ValueError::Overflow));
    assert_eq!(parse_u64(""), Err(ValueError::Empty));
    assert_eq!(parse_u64("0x"), Err(ValueError::Empty));
    for bad in [
        "-1", "+1", " 1", "1 ", "1_000", "12a", "0x1g", "١٢", "0b101",
    ] {
        assert_eq!(parse_u64(bad), Err(ValueError::InvalidDigit), "{bad}");
    }
}

#[test]
fn sizes() {
    assert_eq!(parse_size("4096"), Ok(4096));
    assert_eq!(parse_size("64K"), Ok(64 << 10));
    assert_eq!(parse_size("64k"), Ok(64 << 10));
    assert_eq!(parse_size("64M"), Ok(64 << 20));
    assert_eq!(parse_size("1G"), Ok(1 << 30));
    assert_eq!(parse_size("2T"), Ok(2 << 40));
    assert_eq!(parse_size("16MiB"), Ok(16 << 20));
    assert_eq!(parse_size("16mib"), Ok(16 << 20));
    assert_eq!(parse_size("0x10M"), Ok(16 << 20));
    assert_eq!(parse_size("0M"), Ok(0));
    assert_eq!(parse_size("M"), Err(ValueError::Empty));
    assert_eq!(parse_size(""), Err(ValueError::Empty));
    assert_eq!(parse_size("16777216T"), Err(ValueError::Overflow));
    assert_eq!(parse_size("64X"), Err(ValueError::InvalidDigit));
    assert_eq!(parse_size("64 M"), Err(ValueError::InvalidDigit));
    assert_eq!(parse_size("1MM"), Err(ValueError::InvalidDigit));
    assert_eq!(parse_size("4é"), Err(ValueError::InvalidDigit));
}

#[test]
fn durations() {
    assert_eq!(parse_duration_ms("100ms"), Ok(100));
    assert_eq!(parse_duration_ms("2s"), Ok(2000));
    assert_eq!(parse_duration_ms("5m"), Ok(300_000));
    assert_eq!(parse_duration_ms("1h"), Ok(3_600_000));
    assert_eq!(parse_duration_ms("0ms"), Ok(0));
    assert_eq!(parse_duration_ms("2S"), Ok(2000));
    assert_eq!(parse_duration_ms("100"), Err(ValueError::BadUnit));
    assert_eq!(parse_duration_ms(""), Err(ValueError::BadUnit));
    assert_eq!(parse_duration_ms("ms"), Err(ValueError::Empty));
    assert_eq!(parse_duration_ms("1.5s"), Err(ValueError::InvalidDigit));
    assert_eq!(parse_duration_ms("10us"), Err(ValueError::InvalidDigit));
    assert_eq!(
        parse_duration_ms("18446744073709552s"),
        Err(ValueError::Overflow)
    );
    for e in [
        ValueError::Empty,
        ValueError::InvalidDigit,
        ValueError::Overflow,
        ValueError::BadUnit,
    ] {
        assert!(!e.to_string().is_empty());
    }
}

/// Arbitrary bytes (as text) never make the parsers panic, and whatever
/// `CmdLine::parse` accepts, `params` yields in full.
#[test]
fn fuzzed_lines_never_panic() {
    let alphabet = ['a', 'b', '=', '"', ' ', '\t', 'é', '0', 'x', 'K', 'm', 's'];
    let mut seed = 0xfeed_f00d_u64;
    let mut rand = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    for _ in 0..5000 {
        let len = rand(16);
        let line: std::string::String = (0..len).map(|_| alphabet[rand(alphabet.len())]).collect();
        let _ = args(&line);
        if let Ok(c) = CmdLine::parse(&line) {
            let raw = RawTokens { s: &line, pos: 0 }.count();
            assert_eq!(c.params().count(), raw, "{line:?}");
            let _ = c.get("a");
        }
        let _ = (
            parse_size(&line),
            parse_duration_ms(&line),
            parse_u64(&line),
        );
    }
}
