//! The import graph flows one way: no cycle among the top-level modules of the crate, and
//! none among the submodules of any one top-level module.
//!
//! Every file under `src/` (but `lib.rs` and `main.rs`, the roots) is scanned for paths
//! `crate::a::b...`, `super::...` and `self::...` (also inside `use ...::{...}` groups),
//! comments removed. A path from a file of module `m` into top-level module `t != m` is an
//! edge `m -> t`; a path from submodule `m::s` into `m::u` (`u != s`, a submodule file or
//! directory of `m`) is an edge `s -> u` of `m`'s graph. Items of a module's own `mod.rs` are
//! its shared foundation and make no edge.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Edges that close a known cycle and cannot be removed yet, each with the reason. The test
/// fails when one of them disappears, so that the list only shrinks.
const KNOWN: &[(&str, &str, &str)] = &[];

/// The node of a module path in the top-level graph: a stage's own config section
/// (`catalog::config`, `detect::config::unek`, ...) belongs to the config layer that
/// `config.rs` composes into the experiment, below every stage; everything else to its
/// top-level module.
fn layer_of(path: &[String]) -> String {
    if path.len() >= 2 && path[1] == "config" {
        "config".to_string()
    } else {
        path[0].clone()
    }
}

type Graph = BTreeMap<String, BTreeSet<String>>;

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Module path of a file relative to `src/` (`detect/mod.rs` -> `[detect]`).
fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs").to_string();
    if stem != "mod" {
        parts.push(stem);
    }
    parts
}

/// Source text without comments, string literals and char literals.
pub fn strip_comments(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let (mut i, mut in_str) = (0, false);
    while i < b.len() {
        if in_str {
            if b[i] == b'\\' {
                i += 2;
                continue;
            }
            if b[i] == b'"' {
                in_str = false;
            }
            i += 1;
            continue;
        }
        if b[i] == b'\'' {
            // A char literal ('x', '\n', '"'); otherwise a lifetime.
            if b.get(i + 1) == Some(&b'\\') {
                i += 2;
                while i < b.len() && b[i] != b'\'' {
                    i += 1;
                }
                i += 1;
                continue;
            }
            if b.get(i + 2) == Some(&b'\'') {
                i += 3;
                continue;
            }
        }
        if b[i] == b'r'
            && (b.get(i + 1) == Some(&b'#') || b.get(i + 1) == Some(&b'"'))
            && (i == 0 || !is_ident(b[i - 1]))
        {
            // A raw string r"..." or r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&b'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) == Some(&b'"') {
                let close: Vec<u8> = std::iter::once(b'"')
                    .chain(std::iter::repeat_n(b'#', hashes))
                    .collect();
                j += 1;
                while j < b.len() && !b[j..].starts_with(&close) {
                    j += 1;
                }
                i = j + close.len();
                out.push(' ');
                continue;
            }
        }
        if b[i] == b'"' {
            in_str = true;
            i += 1;
            out.push(' ');
            continue;
        }
        if b[i] == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            continue;
        }
        out.push(b[i] as char);
        i += 1;
    }
    out
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Parses a path tree at `s[i..]` (after `crate::`, `super::` or `self::`): `a::b::{c, d::e}`.
/// Pushes every path (relative to the start) into `out`.
fn parse_tree(s: &[u8], mut i: usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) -> usize {
    let skip_ws = |mut i: usize| {
        while i < s.len() && s[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    let mut path = prefix;
    loop {
        i = skip_ws(i);
        if i < s.len() && s[i] == b'{' {
            i += 1;
            loop {
                i = skip_ws(i);
                if i >= s.len() || s[i] == b'}' {
                    return i + 1;
                }
                i = parse_tree(s, i, path.clone(), out);
                i = skip_ws(i);
                if i < s.len() && s[i] == b',' {
                    i += 1;
                }
            }
        }
        let start = i;
        while i < s.len() && is_ident(s[i]) {
            i += 1;
        }
        if start == i {
            // `*` or anything else ends the path.
            if i < s.len() && s[i] == b'*' {
                i += 1;
            }
            out.push(path);
            return i;
        }
        path.push(String::from_utf8_lossy(&s[start..i]).into_owned());
        let j = skip_ws(i);
        if s.get(j) == Some(&b':') && s.get(j + 1) == Some(&b':') {
            i = j + 2;
        } else {
            out.push(path);
            return i;
        }
    }
}

/// Every absolute module path the text of module `m` refers to.
pub fn references(text: &str, m: &[String]) -> Vec<Vec<String>> {
    let s = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        let at_word = i == 0 || !is_ident(s[i - 1]) && s[i - 1] != b':';
        let rest = &s[i..];
        let base: Option<(Vec<String>, usize)> = if !at_word {
            None
        } else if rest.starts_with(b"crate::") {
            Some((Vec::new(), 7))
        } else if rest.starts_with(b"self::") {
            Some((m.to_vec(), 6))
        } else if rest.starts_with(b"super::") {
            let mut base = m.to_vec();
            let mut k = 0;
            while s[i + k..].starts_with(b"super::") {
                base.pop();
                k += 7;
            }
            Some((base, k))
        } else {
            None
        };
        match base {
            Some((prefix, k)) => {
                i = parse_tree(s, i + k, prefix, &mut out);
            }
            None => i += 1,
        }
    }
    out
}

/// The crate's module graphs from the files under `src`: top-level edges and, per top-level
/// module, the edges among its submodules.
pub fn graphs(src: &Path) -> (Graph, BTreeMap<String, Graph>) {
    let mut files = Vec::new();
    rs_files(src, &mut files);
    files.sort();
    let mut top = Graph::new();
    let mut subs: BTreeMap<String, Graph> = BTreeMap::new();
    for f in &files {
        let rel = f.strip_prefix(src).unwrap();
        let m = module_of(rel);
        if m == ["lib"] || m == ["main"] {
            continue;
        }
        let text = strip_comments(&std::fs::read_to_string(f).unwrap());
        let from_node = layer_of(&m);
        top.entry(from_node.clone()).or_default();
        for p in references(&text, &m) {
            let Some(t) = p.first() else { continue };
            let to_node = layer_of(&p);
            if to_node != from_node {
                top.entry(from_node.clone()).or_default().insert(to_node);
                continue;
            }
            if *t != m[0] || from_node == "config" {
                continue;
            }
            let (Some(from), Some(to)) = (m.get(1), p.get(1)) else {
                continue;
            };
            let dir = src.join(t);
            let is_sub = dir.join(format!("{to}.rs")).is_file() || dir.join(to).is_dir();
            if is_sub && to != from {
                subs.entry(t.clone())
                    .or_default()
                    .entry(from.clone())
                    .or_default()
                    .insert(to.clone());
            }
        }
    }
    (top, subs)
}

/// One cycle of `g` (as `a -> b -> ... -> a`), if any.
pub fn find_cycle(g: &Graph) -> Option<Vec<String>> {
    fn dfs(
        g: &Graph,
        n: &str,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for m in g.get(n).into_iter().flatten() {
            match state.get(m.as_str()).copied().unwrap_or(0) {
                1 => {
                    let at = stack.iter().position(|x| x == m).unwrap();
                    let mut c = stack[at..].to_vec();
                    c.push(m.clone());
                    return Some(c);
                }
                0 => {
                    if let Some(c) = dfs(g, m, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in g.keys() {
        if state.get(n.as_str()).copied().unwrap_or(0) == 0 {
            let mut stack = Vec::new();
            if let Some(c) = dfs(g, n, &mut state, &mut stack) {
                return Some(c);
            }
        }
    }
    None
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn top_level_modules_form_no_cycle() {
    let (mut top, _) = graphs(&src_dir());
    for (a, b, why) in KNOWN {
        let present = top.get_mut(*a).is_some_and(|s| s.remove(*b));
        assert!(
            present,
            "known edge {a} -> {b} is gone ({why}): remove it from KNOWN"
        );
    }
    if let Some(c) = find_cycle(&top) {
        panic!(
            "import cycle among top-level modules: {}\n(graph: {top:#?})",
            c.join(" -> ")
        );
    }
    // The training loop sits below the detectors.
    assert!(!top["train"].contains("detect"), "train imports detect");
}

#[test]
fn submodules_form_no_cycle() {
    let (_, subs) = graphs(&src_dir());
    for (m, g) in &subs {
        if let Some(c) = find_cycle(g) {
            panic!(
                "import cycle among the submodules of {m}: {}\n(graph: {g:#?})",
                c.join(" -> ")
            );
        }
    }
}

#[test]
fn the_scanner_sees_cycles() {
    // A fake crate with a top-level cycle (a -> b -> a, one of them through a `use` group)
    // and a submodule cycle (c::x -> c::y -> c::x through `super::`).
    let tmp = tempfile::tempdir().unwrap();
    let s = tmp.path();
    std::fs::create_dir_all(s.join("a")).unwrap();
    std::fs::create_dir_all(s.join("c")).unwrap();
    std::fs::write(s.join("a/mod.rs"), "use crate::{b::{self, Thing}, e};\n").unwrap();
    std::fs::write(
        s.join("b.rs"),
        "// crate::zz in a comment\nfn f() { crate::a::g(); }\n",
    )
    .unwrap();
    std::fs::write(s.join("c/mod.rs"), "pub mod x; pub mod y;\n").unwrap();
    std::fs::write(s.join("c/x.rs"), "use super::y::Y;\n").unwrap();
    std::fs::write(
        s.join("c/y.rs"),
        "use super::{Shared, x};\nmod tests { use super::*; }\n",
    )
    .unwrap();
    let (top, subs) = graphs(s);
    assert_eq!(top["a"], ["b", "e"].iter().map(|x| x.to_string()).collect());
    assert_eq!(top["b"], ["a"].iter().map(|x| x.to_string()).collect());
    assert!(find_cycle(&top).is_some());
    let c = &subs["c"];
    assert!(find_cycle(c).is_some(), "{c:?}");
    // Without the back edges there is none.
    std::fs::write(s.join("b.rs"), "fn f() {}\n").unwrap();
    std::fs::write(s.join("c/y.rs"), "use super::Shared;\n").unwrap();
    let (top, subs) = graphs(s);
    assert!(find_cycle(&top).is_none());
    assert!(subs.get("c").is_none_or(|g| find_cycle(g).is_none()));
}
