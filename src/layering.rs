//! The dependency rule of ARCHITECTURE.md ("Layers"), checked: every `crate::…` path in `src/`
//! (in `use` trees and inline, `#[cfg(test)]` code included) must name a module its layer may
//! import. Test-only; reads the source files as text.

use std::path::{Path, PathBuf};

/// Who may import whom (a space-separated list per unit; `layering` is this test). A unit is a
/// top-level module, or `store::sqlite` / `store::mongo` (the backends, apart from the ports in
/// `store`); a unit may always import itself. Keep in step with ARCHITECTURE.md's table.
const ALLOWED: &[(&str, &str)] = &[
    ("domain", ""),
    ("tasks", "telemetry"),
    ("fsutil", ""),
    ("telemetry", "domain"),
    ("config", "domain"),
    ("analytics", "tasks domain store telemetry"),
    ("ai", "domain config"),
    ("reports", "tasks domain ai analytics store config"),
    (
        "store",
        "tasks domain analytics ai reports config fsutil telemetry",
    ),
    (
        "store::sqlite",
        "tasks domain analytics ai reports config fsutil telemetry store",
    ),
    (
        "store::mongo",
        "tasks domain analytics ai reports config fsutil telemetry store",
    ),
    ("runtime", "tasks domain store config telemetry fsutil"),
    (
        "ingest",
        "tasks domain store runtime config fsutil telemetry",
    ),
    (
        "services",
        "tasks domain analytics ai reports store runtime ingest config fsutil telemetry",
    ),
    ("error", "domain store ingest"),
    (
        "state",
        "domain store runtime ingest services config telemetry reports",
    ),
    (
        "http",
        "tasks domain analytics ai reports store runtime \
         ingest services config fsutil telemetry error state server",
    ),
    ("server", "tasks config telemetry domain error"),
    (
        "startup",
        "tasks domain analytics ai reports store runtime ingest \
         services config fsutil telemetry error state http server",
    ),
    (
        "cli",
        "tasks domain analytics ai reports store runtime \
         ingest services config fsutil telemetry state startup",
    ),
    ("layering", ""),
];

/// What `#[cfg(test)]` code may name besides its unit's list: a real backend to run against.
const TESTS_MAY_ALSO: &[&str] = &["store::sqlite", "store::mongo"];

/// The unit a path inside the crate belongs to (`["store", "sqlite", "mod"]` → `store::sqlite`).
fn unit_of(segments: &[&str]) -> String {
    match segments {
        [first, second, ..] if *first == "store" && (*second == "sqlite" || *second == "mongo") => {
            format!("store::{second}")
        }
        [first, ..] => first.to_string(),
        [] => String::new(),
    }
}

fn allowed(from: &str, to: &str, in_test: bool) -> bool {
    if from == to || (in_test && TESTS_MAY_ALSO.contains(&to)) {
        return true;
    }
    let Some((_, list)) = ALLOWED.iter().find(|(unit, _)| *unit == from) else {
        return false;
    };
    let list: Vec<&str> = list.split_whitespace().collect();
    // `store::sqlite` may name `store` (the ports); a backend naming the other backend is not
    // in any list.
    list.contains(&to)
}

/// Replaces comments and string/char literals by spaces, keeping line breaks, so only code is
/// scanned and offsets still give line numbers.
fn code_only(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let blank = |out: &mut String, c: char| out.push(if c == '\n' { '\n' } else { ' ' });
    let chars: Vec<char> = text.chars().collect();
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, chars[i]);
                    i += 1;
                }
            }
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && !prev_is_ident(&chars, i)
        {
            // Raw string: r"…", r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                match chars.get(j) {
                    None => break,
                    Some('"') if (1..=hashes).all(|k| chars.get(j + k) == Some(&'#')) => {
                        j += 1 + hashes;
                        break;
                    }
                    _ => j += 1,
                }
            }
            for &ch in &chars[i..j.min(chars.len())] {
                blank(&mut out, ch);
            }
            i = j;
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    blank(&mut out, chars[i]);
                    i += 1;
                }
                if i < chars.len() {
                    blank(&mut out, chars[i]);
                    i += 1;
                }
            }
            out.push(' ');
            i += 1;
        } else if c == '\''
            && (chars.get(i + 2) == Some(&'\'')
                || (next == Some('\\') && chars[i..].iter().take(12).skip(2).any(|&x| x == '\'')))
        {
            // A char literal ('x', '\n', '\u{..}'); lifetimes are left alone.
            out.push(' ');
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                if chars[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                out.push(' ');
                i += 1;
            }
            out.push(' ');
            i += 1;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// The character ranges of `#[cfg(test)]` items (a `mod tests { … }`, a `fn`, a `use`).
fn test_regions(code: &str) -> Vec<std::ops::Range<usize>> {
    let chars: Vec<char> = code.chars().collect();
    let text: String = chars.iter().collect();
    let mut regions = Vec::new();
    let mut search = 0;
    while let Some(found) = text[search..].find("#[cfg(test)]") {
        // `text` is indexed by bytes; convert to a char offset.
        let byte = search + found;
        let start = text[..byte].chars().count();
        let mut j = start + "#[cfg(test)]".len();
        let mut depth = 0usize;
        while let Some(&c) = chars.get(j) {
            j += 1;
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                ';' if depth == 0 => break,
                _ => {}
            }
        }
        regions.push(start..j);
        search = byte + "#[cfg(test)]".len();
    }
    regions
}

fn prev_is_ident(chars: &[char], i: usize) -> bool {
    i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_')
}

/// Every module path named after `crate::` (each leaf of a `use crate::{…}` tree), with the
/// character offset of the `crate` keyword.
fn crate_paths(code: &str) -> Vec<(usize, Vec<String>)> {
    let chars: Vec<char> = code.chars().collect();
    let mut found = Vec::new();
    let mut i = 0;
    while i + 7 <= chars.len() {
        let is_crate = chars[i..i + 7].iter().collect::<String>() == "crate::";
        if is_crate && !prev_is_ident(&chars, i) {
            let mut j = i + 7;
            let mut paths = Vec::new();
            parse_tree(&chars, &mut j, Vec::new(), &mut paths);
            for path in paths {
                found.push((i, path));
            }
            i = j.max(i + 7);
        } else {
            i += 1;
        }
    }
    found
}

/// Parses a use tree at `*j` (`a::b`, `a::{b, c::d}`, `{a, b}`), pushing every path's first two
/// segments under `prefix`.
fn parse_tree(chars: &[char], j: &mut usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let skip_ws = |j: &mut usize| {
        while *j < chars.len() && chars[*j].is_whitespace() {
            *j += 1;
        }
    };
    skip_ws(j);
    if chars.get(*j) == Some(&'{') {
        *j += 1;
        loop {
            skip_ws(j);
            match chars.get(*j) {
                None => return,
                Some('}') => {
                    *j += 1;
                    return;
                }
                Some(',') => *j += 1,
                _ => {
                    let before = *j;
                    parse_tree(chars, j, prefix.clone(), out);
                    if *j == before {
                        *j += 1;
                    }
                }
            }
        }
    }
    let start = *j;
    while *j < chars.len() && (chars[*j].is_alphanumeric() || chars[*j] == '_') {
        *j += 1;
    }
    if *j == start {
        if !prefix.is_empty() {
            out.push(prefix);
        }
        return;
    }
    let mut path = prefix;
    path.push(chars[start..*j].iter().collect());
    skip_rename(chars, j);
    let more = chars.get(*j) == Some(&':') && chars.get(*j + 1) == Some(&':');
    if more && path.len() < 2 {
        *j += 2;
        parse_tree(chars, j, path, out);
        return;
    }
    out.push(path);
    if more {
        // Deeper segments do not change the unit: skip them, braces included.
        let mut depth = 0usize;
        while let Some(&c) = chars.get(*j) {
            let ident = c == '_' || c == '*' || c.is_alphanumeric();
            match c {
                // Only a `::{` opens a nested tree; `Path {` is a struct literal.
                '{' if *j > 0 && chars[*j - 1] == ':' => depth += 1,
                '}' if depth > 0 => depth -= 1,
                ':' => {}
                _ if ident => {}
                _ if depth > 0 => {}
                _ => break,
            }
            *j += 1;
        }
        skip_rename(chars, j);
    }
}

/// Skips ` as name` after a use-tree leaf.
fn skip_rename(chars: &[char], j: &mut usize) {
    let mut k = *j;
    while k < chars.len() && chars[k].is_whitespace() {
        k += 1;
    }
    let word = |k: usize, w: &str| {
        chars[k..].iter().take(w.len()).copied().eq(w.chars())
            && !chars
                .get(k + w.len())
                .is_some_and(|c| c.is_alphanumeric() || *c == '_')
    };
    if word(k, "as") {
        k += 2;
        while k < chars.len() && chars[k].is_whitespace() {
            k += 1;
        }
        while k < chars.len() && (chars[k].is_alphanumeric() || chars[k] == '_') {
            k += 1;
        }
        *j = k;
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every upward import in `src/` as `file:line: unit → target (crate::…)`.
fn violations() -> Vec<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut found = Vec::new();
    for file in files {
        let relative = file.strip_prefix(&src).unwrap().with_extension("");
        let segments: Vec<String> = relative
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        // main.rs and lib.rs are the crate's roots.
        if matches!(segments.as_slice(), ["main"] | ["lib"]) {
            continue;
        }
        let from = unit_of(&segments);
        let text = std::fs::read_to_string(&file).unwrap();
        let code = code_only(&text);
        let tests = test_regions(&code);
        for (offset, path) in crate_paths(&code) {
            let path: Vec<&str> = path.iter().map(String::as_str).collect();
            let to = unit_of(&path);
            let in_test = tests.iter().any(|r| r.contains(&offset));
            if !allowed(&from, &to, in_test) {
                let line = code.chars().take(offset).filter(|&c| c == '\n').count() + 1;
                found.push(format!(
                    "src/{}:{line}: {from} → {to} (crate::{})",
                    relative.with_extension("rs").display(),
                    path.join("::")
                ));
            }
        }
    }
    found
}

#[test]
fn layers_import_only_downward() {
    let found = violations();
    assert!(
        found.is_empty(),
        "{} upward import(s); see ARCHITECTURE.md \"Layers\":\n{}",
        found.len(),
        found.join("\n")
    );
}

#[test]
fn the_scanner_sees_use_trees_inline_paths_and_skips_comments_and_strings() {
    let code = code_only(
        "use crate::{a::X, b::{c::Y, d}};\n// crate::e\nlet s = \"crate::f\";\nlet v = crate::g::h();\n\
         use crate::store::sqlite::Z;\nlet c = '\"'; crate::k::l;\nuse crate::{m::n as o, p, q::r::S as T, u};",
    );
    let paths: Vec<String> = crate_paths(&code)
        .into_iter()
        .map(|(_, p)| unit_of(&p.iter().map(String::as_str).collect::<Vec<_>>()))
        .collect();
    assert_eq!(
        paths,
        ["a", "b", "b", "g", "store::sqlite", "k", "m", "p", "q", "u"]
    );
    assert!(allowed("http", "services", false));
    assert!(!allowed("services", "http", false));
    assert!(!allowed("services", "http", true));
    assert!(!allowed("store::sqlite", "store::mongo", false));
    assert!(!allowed("runtime", "services", false));
    assert!(!allowed("runtime", "store::sqlite", false));
    assert!(allowed("runtime", "store::sqlite", true));
    let code = code_only("use a;\n#[cfg(test)]\nmod tests {\n    fn f() { g() }\n}\nfn h() {}");
    let regions = test_regions(&code);
    assert_eq!(regions.len(), 1);
    assert!(regions[0].contains(&code.find("g()").unwrap()));
    assert!(!regions[0].contains(&code.find("h()").unwrap()));
}
