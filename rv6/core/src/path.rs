//! Paths: a process's relative paths made absolute against its working
//! directory, with `.` and `..` resolved by name (rv6 has no symbolic
//! links, so this is what the file system would resolve).

use alloc::string::String;
use alloc::vec::Vec;

/// `path` from directory `cwd` (absolute, normalized), normalized: no
/// `.`, no `..` (at the root, `..` is the root), no empty component. A
/// trailing `/` is kept (it asks for a directory).
pub fn absolute(cwd: &str, path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    let joined_cwd = if path.starts_with('/') { "" } else { cwd };
    for part in joined_cwd.split('/').chain(path.split('/')) {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    let mut out = String::from("/");
    out.push_str(&parts.join("/"));
    if path.ends_with('/') && out.len() > 1 {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::absolute;

    #[test]
    fn paths_resolve_against_the_working_directory() {
        assert_eq!(absolute("/", "a"), "/a");
        assert_eq!(absolute("/a/b", "c"), "/a/b/c");
        assert_eq!(absolute("/a/b", "../c"), "/a/c");
        assert_eq!(absolute("/a/b", "/x/./y/../z"), "/x/z");
        assert_eq!(absolute("/", "../.."), "/");
        assert_eq!(absolute("/a", "."), "/a");
        assert_eq!(absolute("/a", "b/"), "/a/b/");
        assert_eq!(absolute("/a", ""), "/a");
        assert_eq!(absolute("/", "//a//b"), "/a/b");
    }
}
