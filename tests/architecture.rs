//! The shape of the source that ARCHITECTURE.md promises, checked on the source itself: the
//! library's modules depend on each other one way (no circle), clap stays in the binary, no file
//! or function outgrows a sitting, and every file says its job on its first line.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use regex::Regex;

/// The binary's own files: they may use clap.
const BINARY: [&str; 3] = ["src/main.rs", "src/cli.rs", "src/render.rs"];

fn sources() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    files.sort();
    files
}

/// A source file's path relative to the crate (`src/sweep/pool.rs`), as the messages name it.
fn shown(path: &Path) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    path.strip_prefix(root).unwrap().display().to_string()
}

/// The module a library file holds: `sweep::pool` for src/sweep/pool.rs, `sweep` for its mod.rs.
fn module_of(file: &str) -> String {
    let inner = file.trim_start_matches("src/").trim_end_matches(".rs");
    inner.trim_end_matches("/mod").replace('/', "::")
}

/// The source without its unit tests (they may reach anywhere in their module's tree).
fn without_tests(text: &str) -> &str {
    text.find("#[cfg(test)]\nmod tests")
        .map_or(text, |at| &text[..at])
}

/// The modules `text` (the source of module `me`) names through `crate::` or `super::`, but its
/// own ancestors, whose items a module may use.
fn dependencies(me: &str, text: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let path = Regex::new(r"\b(crate|super)::((?:\w+::)*\w+)(::\{([^;]*))?").unwrap();
    let resolve = |full: &str| {
        let parts: Vec<&str> = full.split("::").collect();
        (1..=parts.len())
            .rev()
            .map(|n| parts[..n].join("::"))
            .find(|m| modules.contains(m))
    };
    let parent = me.rsplit_once("::").map_or("", |(p, _)| p);
    let mut found = BTreeSet::new();
    for capture in path.captures_iter(text) {
        let base = match &capture[1] {
            "crate" => capture[2].to_string(),
            _ if parent.is_empty() => continue,
            _ => format!("{parent}::{}", &capture[2]),
        };
        let mut named = vec![base.clone()];
        if let Some(group) = capture.get(4) {
            let items = group.as_str().split(['{', '}', ',']).map(str::trim);
            named.extend(items.filter(|i| !i.is_empty() && *i != "self").map(|item| {
                let first = item.split("::").next().unwrap_or(item);
                format!("{base}::{first}")
            }));
        }
        for target in named.iter().filter_map(|n| resolve(n)) {
            let ancestor = me == target || me.starts_with(&format!("{target}::"));
            if !ancestor {
                found.insert(target);
            }
        }
    }
    found
}

/// The library's modules and, for each, the modules it uses.
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let files: Vec<(String, String)> = sources()
        .iter()
        .map(|p| (shown(p), std::fs::read_to_string(p).unwrap()))
        .filter(|(file, _)| !BINARY.contains(&file.as_str()) && file != "src/lib.rs")
        .collect();
    let modules: BTreeSet<String> = files.iter().map(|(f, _)| module_of(f)).collect();
    files
        .iter()
        .map(|(file, text)| {
            let me = module_of(file);
            let uses = dependencies(&me, without_tests(text), &modules);
            (me, uses)
        })
        .collect()
}

/// A circle of modules in `graph`, if there is one (depth-first search).
fn circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut found = path[at..].to_vec();
            found.push(node.to_string());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, graph, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_modules_depend_on_each_other_one_way() {
    let graph = module_graph();
    assert!(
        graph["sweep::halving"].contains("rundir"),
        "the graph is read"
    );
    assert!(graph["report::search"].contains("sweep::halving"));
    if let Some(found) = circle(&graph) {
        panic!("a circle of modules: {}", found.join(" → "));
    }
}

/// The circle the check exists for is one it finds.
#[test]
fn a_circle_is_found() {
    let mut graph = module_graph();
    graph
        .get_mut("sweep::search")
        .unwrap()
        .insert("sweep::halving".into());
    graph
        .get_mut("sweep::halving")
        .unwrap()
        .insert("sweep::search".into());
    assert!(circle(&graph).is_some());
}

#[test]
fn clap_stays_in_the_binary() {
    let offenders: Vec<String> = sources()
        .iter()
        .map(|p| (shown(p), std::fs::read_to_string(p).unwrap()))
        .filter(|(file, text)| !BINARY.contains(&file.as_str()) && text.contains("clap"))
        .map(|(file, _)| file)
        .collect();
    assert!(offenders.is_empty(), "clap in the library: {offenders:?}");
}

#[test]
fn no_file_is_over_500_lines() {
    let long: Vec<(String, usize)> = sources()
        .iter()
        .map(|p| {
            (
                shown(p),
                std::fs::read_to_string(p).unwrap().lines().count(),
            )
        })
        .filter(|(_, lines)| *lines > 500)
        .collect();
    assert!(long.is_empty(), "files over 500 lines: {long:?}");
}

/// Each function's length in lines, from its `fn` line to the brace that closes it (string and
/// character literals and comments set aside, so that their braces do not count).
fn function_lengths(text: &str) -> Vec<(String, usize, usize)> {
    let start = Regex::new(r"^\s*(pub(\([^)]*\))? )?(const )?(unsafe )?fn (\w+)").unwrap();
    let noise = Regex::new(r#""([^"\\]|\\.)*"|'(\\.|[^'\\])'|//.*$"#).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(name) = start.captures(line).map(|c| c[5].to_string()) else {
            continue;
        };
        let mut depth = 0i64;
        for (j, line) in lines.iter().enumerate().skip(i) {
            let code = noise.replace_all(line, "");
            depth += code.matches('{').count() as i64 - code.matches('}').count() as i64;
            let opened = lines[i..=j]
                .iter()
                .any(|l| noise.replace_all(l, "").contains('{'));
            if (opened && depth <= 0) || (!opened && code.trim_end().ends_with(';')) {
                found.push((name, i + 1, j - i + 1));
                break;
            }
        }
    }
    found
}

#[test]
fn no_function_is_over_80_lines() {
    let mut long = Vec::new();
    for path in sources() {
        let text = std::fs::read_to_string(&path).unwrap();
        for (name, line, length) in function_lengths(&text) {
            if length > 80 {
                long.push(format!("{}:{line} {name} ({length} lines)", shown(&path)));
            }
        }
    }
    assert!(long.is_empty(), "functions over 80 lines: {long:#?}");
}

#[test]
fn a_function_is_measured_to_its_closing_brace() {
    let text = "fn a() {\n    let s = \"}\";\n    if x {\n        y();\n    }\n}\nfn b();\n";
    let lengths = function_lengths(text);
    assert_eq!(lengths, [("a".to_string(), 1, 6), ("b".to_string(), 7, 1)]);
}

#[test]
fn every_file_says_its_job_on_its_first_line() {
    let silent: Vec<String> = sources()
        .iter()
        .filter(|p| !std::fs::read_to_string(p).unwrap().starts_with("//! "))
        .map(|p| shown(p))
        .collect();
    assert!(
        silent.is_empty(),
        "files without a //! first line: {silent:?}"
    );
}
