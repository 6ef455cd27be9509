//! The shell's command language: words (quoted with `"` or `'`), `$?`,
//! `|`, `<`, `>`, `>>`, `;` and `&`.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// One command of a pipeline.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Command {
    pub argv: Vec<String>,
    pub input: Option<String>,
    pub output: Option<String>,
    /// `>>` rather than `>`.
    pub append: bool,
}

/// A pipeline.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Job {
    pub commands: Vec<Command>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Word(String),
    Pipe,
    In,
    Out,
    Append,
    Semi,
    Amp,
}

fn tokens(line: &str, status: u32) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            ' ' | '\t' => {
                chars.next();
            }
            '|' => {
                chars.next();
                out.push(Token::Pipe);
            }
            '<' => {
                chars.next();
                out.push(Token::In);
            }
            '>' => {
                chars.next();
                if chars.peek() == Some(&'>') {
                    chars.next();
                    out.push(Token::Append);
                } else {
                    out.push(Token::Out);
                }
            }
            ';' => {
                chars.next();
                out.push(Token::Semi);
            }
            '&' => {
                chars.next();
                out.push(Token::Amp);
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    match c {
                        ' ' | '\t' | '|' | '<' | '>' | ';' | '&' => break,
                        '"' | '\'' => {
                            chars.next();
                            let mut closed = false;
                            for q in chars.by_ref() {
                                if q == c {
                                    closed = true;
                                    break;
                                }
                                word.push(q);
                            }
                            if !closed {
                                return Err(format!("unterminated {c}"));
                            }
                        }
                        '$' => {
                            chars.next();
                            if chars.peek() == Some(&'?') {
                                chars.next();
                                word.push_str(&format!("{status}"));
                            } else {
                                word.push('$');
                            }
                        }
                        _ => {
                            word.push(c);
                            chars.next();
                        }
                    }
                }
                out.push(Token::Word(word));
            }
        }
    }
    Ok(out)
}

/// The jobs of `line`, each with whether it runs in the background.
/// `status` is what `$?` stands for.
pub fn parse(line: &str, status: u32) -> Result<Vec<(Job, bool)>, String> {
    let mut jobs = Vec::new();
    let mut job = Job::default();
    let mut cmd = Command::default();
    let mut tokens = tokens(line, status)?.into_iter().peekable();
    let end_cmd = |cmd: &mut Command, job: &mut Job| -> Result<(), String> {
        if cmd.argv.is_empty() {
            if cmd.input.is_some() || cmd.output.is_some() || !job.commands.is_empty() {
                return Err(String::from("syntax error: a command is missing"));
            }
            return Ok(());
        }
        job.commands.push(core::mem::take(cmd));
        Ok(())
    };
    while let Some(t) = tokens.next() {
        match t {
            Token::Word(w) => cmd.argv.push(w),
            Token::In | Token::Out | Token::Append => {
                let Some(Token::Word(target)) = tokens.next() else {
                    return Err(String::from("syntax error: a redirection needs a file"));
                };
                match t {
                    Token::In => cmd.input = Some(target),
                    _ => {
                        cmd.output = Some(target);
                        cmd.append = t == Token::Append;
                    }
                }
            }
            Token::Pipe => {
                if cmd.argv.is_empty() {
                    return Err(String::from("syntax error near '|'"));
                }
                end_cmd(&mut cmd, &mut job)?;
                if tokens.peek().is_none() {
                    return Err(String::from("syntax error: nothing after '|'"));
                }
            }
            Token::Semi | Token::Amp => {
                end_cmd(&mut cmd, &mut job)?;
                if !job.commands.is_empty() {
                    jobs.push((core::mem::take(&mut job), t == Token::Amp));
                } else if t == Token::Amp {
                    return Err(String::from("syntax error near '&'"));
                }
            }
        }
    }
    end_cmd(&mut cmd, &mut job)?;
    if !job.commands.is_empty() {
        jobs.push((job, false));
    }
    Ok(jobs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| String::from(*w)).collect()
    }

    #[test]
    fn pipelines_redirections_and_lists() {
        let jobs = parse("cat < in | grep x > out ; echo hi & wc >> log", 3).unwrap();
        assert_eq!(jobs.len(), 3);
        let (first, bg) = &jobs[0];
        assert!(!bg);
        assert_eq!(first.commands[0].argv, argv(&["cat"]));
        assert_eq!(first.commands[0].input.as_deref(), Some("in"));
        assert_eq!(first.commands[1].argv, argv(&["grep", "x"]));
        assert_eq!(first.commands[1].output.as_deref(), Some("out"));
        assert!(!first.commands[1].append);
        assert!(jobs[1].1, "echo hi runs in the background");
        assert!(jobs[2].0.commands[0].append);
    }

    #[test]
    fn quotes_and_status() {
        let jobs = parse("echo \"a b\" 'c|d' $? x$?y", 42).unwrap();
        assert_eq!(
            jobs[0].0.commands[0].argv,
            argv(&["echo", "a b", "c|d", "42", "x42y"])
        );
    }

    #[test]
    fn syntax_errors_are_reported() {
        for bad in ["| a", "a |", "a >", "a < ", "& a", "echo \"x", "a | | b"] {
            assert!(parse(bad, 0).is_err(), "{bad}");
        }
        assert_eq!(parse("", 0).unwrap(), vec![]);
        assert_eq!(parse("  ;  ", 0).unwrap(), vec![]);
    }
}
