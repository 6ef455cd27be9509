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

/// Where `$?` stood in a word of [`parse_deferred`]'s jobs (a character no
/// line may contain: `tokens` refuses it).
const STATUS: char = '\u{0}';

fn expand(word: &str, status: u32) -> String {
    word.replace(STATUS, &format!("{status}"))
}

impl Job {
    /// This job with `$?` replaced by `status`: the status of the command
    /// that ran last before it (in `a; echo $?`, `a`'s).
    pub fn with_status(&self, status: u32) -> Job {
        let commands = self
            .commands
            .iter()
            .map(|c| Command {
                argv: c.argv.iter().map(|w| expand(w, status)).collect(),
                input: c.input.as_deref().map(|w| expand(w, status)),
                output: c.output.as_deref().map(|w| expand(w, status)),
                append: c.append,
            })
            .collect();
        Job { commands }
    }
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

fn tokens(line: &str) -> Result<Vec<Token>, String> {
    if line.contains(STATUS) {
        return Err(String::from("a NUL character in the line"));
    }
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
                                word.push(STATUS);
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

/// The jobs of `line`, each with whether it runs in the background, with
/// `$?` standing for `status` in all of them.
pub fn parse(line: &str, status: u32) -> Result<Vec<(Job, bool)>, String> {
    Ok(parse_deferred(line)?
        .into_iter()
        .map(|(job, background)| (job.with_status(status), background))
        .collect())
}

/// The jobs of `line`, each with whether it runs in the background; `$?`
/// is left to [`Job::with_status`], since it is the status of whatever ran
/// just before each job (a POSIX shell expands it as it runs a command,
/// not when it reads the line).
pub fn parse_deferred(line: &str) -> Result<Vec<(Job, bool)>, String> {
    let mut jobs = Vec::new();
    let mut job = Job::default();
    let mut cmd = Command::default();
    let mut tokens = tokens(line)?.into_iter().peekable();
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
    fn status_is_that_of_the_job_before() {
        // `false; echo $?; echo $?` after a 0: the first echo sees
        // false's 1, the second echo's 0.
        let jobs = parse_deferred("false; echo $?; echo x$?").unwrap();
        let mut last = 0;
        let mut seen = Vec::new();
        for (job, _) in &jobs {
            let job = job.with_status(last);
            let argv = &job.commands[0].argv;
            seen.push(argv.join(" "));
            last = u32::from(argv[0] == "false");
        }
        assert_eq!(seen, ["false", "echo 1", "echo x0"]);
        assert!(parse_deferred("echo \u{0}").is_err());
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
