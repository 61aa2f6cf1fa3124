//! The house rules, checked on the source itself: no module of a crate
//! depends on another that depends back on it, no file of spike-node's
//! `src/` is past 600 lines, and every source file opens with a module
//! comment saying its job.
//!
//! A module depends on another when its code (comments and unit tests
//! aside) names it through `crate::` or `super::`. A module and its own
//! ancestors are one room and may name each other.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// A module's path inside its crate (`["node", "purchase"]`).
type ModulePath = Vec<String>;

fn crates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn source_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            source_files(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
}

/// Every crate's `src/` files, by crate name.
fn crates() -> BTreeMap<String, Vec<PathBuf>> {
    let mut crates = BTreeMap::new();
    for entry in fs::read_dir(crates_dir()).expect("crates/").flatten() {
        let src = entry.path().join("src");
        if src.is_dir() {
            let mut files = Vec::new();
            source_files(&src, &mut files);
            crates.insert(entry.file_name().to_string_lossy().into_owned(), files);
        }
    }
    crates
}

fn module_path(src: &Path, file: &Path) -> ModulePath {
    let relative = file
        .strip_prefix(src)
        .expect("under src/")
        .with_extension("");
    let mut path: ModulePath = (relative.components())
        .map(|part| part.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        path.last().map(String::as_str),
        Some("lib" | "main" | "mod")
    ) {
        path.pop();
    }
    path
}

/// The code of a file without its comments and its unit tests.
fn code_of(text: &str) -> String {
    let before_tests = text.split("#[cfg(test)]").next().unwrap_or_default();
    (before_tests.lines())
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The modules `code` (of module `from`) names through `crate::` or `super::`.
fn named_modules(
    code: &str,
    from: &ModulePath,
    modules: &BTreeSet<ModulePath>,
) -> BTreeSet<ModulePath> {
    let mut named = BTreeSet::new();
    for (at, _) in code.match_indices("::") {
        let head_start = code[..at]
            .rfind(|c: char| !(c.is_alphanumeric() || c == '_'))
            .map_or(0, |i| i + 1);
        let head = &code[head_start..at];
        let preceded_by_path = code[..head_start].ends_with("::");
        if preceded_by_path || !(head == "crate" || head == "super") {
            continue;
        }
        let mut path: ModulePath = match head {
            "crate" => Vec::new(),
            _ => from[..from.len().saturating_sub(1)].to_vec(),
        };
        let rest = &code[at + 2..];
        for segment in rest.split("::") {
            let segment: String = (segment.chars())
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if segment == "super" {
                path.pop();
                continue;
            }
            let mut longer = path.clone();
            longer.push(segment);
            if !modules.contains(&longer) {
                break;
            }
            path = longer;
        }
        named.insert(path);
    }
    named
}

fn is_ancestor_or_self(a: &ModulePath, b: &ModulePath) -> bool {
    b.starts_with(a) || a.starts_with(b)
}

/// The strongly connected groups of more than one module (Tarjan).
fn cycles(edges: &BTreeMap<ModulePath, BTreeSet<ModulePath>>) -> Vec<Vec<ModulePath>> {
    struct Walk<'a> {
        edges: &'a BTreeMap<ModulePath, BTreeSet<ModulePath>>,
        index: BTreeMap<&'a ModulePath, usize>,
        low: BTreeMap<&'a ModulePath, usize>,
        stack: Vec<&'a ModulePath>,
        found: Vec<Vec<ModulePath>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, module: &'a ModulePath) {
            let next = self.index.len();
            self.index.insert(module, next);
            self.low.insert(module, next);
            self.stack.push(module);
            for target in &self.edges[module] {
                if !self.index.contains_key(target) {
                    self.visit(target);
                    let low = self.low[module].min(self.low[target]);
                    self.low.insert(module, low);
                } else if self.stack.contains(&target) {
                    let low = self.low[module].min(self.index[target]);
                    self.low.insert(module, low);
                }
            }
            if self.low[module] == self.index[module] {
                let mut group = Vec::new();
                while let Some(member) = self.stack.pop() {
                    group.push(member.clone());
                    if member == module {
                        break;
                    }
                }
                if group.len() > 1 {
                    self.found.push(group);
                }
            }
        }
    }
    let mut walk = Walk {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for module in edges.keys() {
        if !walk.index.contains_key(module) {
            walk.visit(module);
        }
    }
    walk.found
}

#[test]
fn no_crate_has_a_module_cycle() {
    let mut found = Vec::new();
    for (name, files) in crates() {
        let src = crates_dir().join(&name).join("src");
        let modules: BTreeMap<ModulePath, &PathBuf> = (files.iter())
            .map(|file| (module_path(&src, file), file))
            .collect();
        let known: BTreeSet<ModulePath> = modules.keys().cloned().collect();
        let edges = (modules.iter())
            .map(|(module, file)| {
                let code = code_of(&fs::read_to_string(file).expect("readable source"));
                let targets = named_modules(&code, module, &known)
                    .into_iter()
                    .filter(|target| !is_ancestor_or_self(module, target))
                    .collect();
                (module.clone(), targets)
            })
            .collect();
        for group in cycles(&edges) {
            let names: Vec<String> = group.iter().map(|m| m.join("::")).collect();
            found.push(format!("{name}: {}", names.join(" <-> ")));
        }
    }
    assert!(found.is_empty(), "module cycles: {found:#?}");
}

#[test]
fn the_cycle_check_sees_a_cycle() {
    let modules: BTreeSet<ModulePath> = [vec!["a".to_owned()], vec!["b".to_owned()]].into();
    let a = named_modules("use crate::b::Thing;", &vec!["a".into()], &modules);
    let b = named_modules("fn f() { super::a::g() }", &vec!["b".into()], &modules);
    let edges = BTreeMap::from([(vec!["a".to_owned()], a), (vec!["b".to_owned()], b)]);
    assert_eq!(cycles(&edges).len(), 1, "{edges:?}");
}

#[test]
fn no_file_of_spike_node_is_past_600_lines() {
    let src = crates_dir().join("spike-node").join("src");
    let mut files = Vec::new();
    source_files(&src, &mut files);
    let long: Vec<String> = (files.iter())
        .map(|file| {
            (
                file,
                fs::read_to_string(file).expect("readable").lines().count(),
            )
        })
        .filter(|(_, lines)| *lines > 600)
        .map(|(file, lines)| format!("{}: {lines} lines", file.display()))
        .collect();
    assert!(!files.is_empty());
    assert!(long.is_empty(), "split these by job: {long:#?}");
}

#[test]
fn every_source_file_says_its_job_first() {
    let silent: Vec<String> = (crates().into_values().flatten())
        .filter(|file| {
            let text = fs::read_to_string(file).expect("readable");
            !text.trim_start().starts_with("//!")
        })
        .map(|file| file.display().to_string())
        .collect();
    assert!(silent.is_empty(), "no module comment: {silent:#?}");
}
