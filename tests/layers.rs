//! The house has layers that point one way: each module of the library uses only modules declared
//! before it in src/lib.rs, so no two modules import each other, directly or in a circle.
//!
//! Read from the code (syn), not its text: `use` items and paths, `crate::`, `super::` and
//! `self::`, in every file of a module (a folder module's sub-folders included) and in its inline
//! modules; comments and strings do not count. The operator's command (src/bin) sits on top: it
//! may name any module of the library, and none that does not exist.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use syn::visit::Visit;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn parse(path: &Path) -> syn::File {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The library's modules in the order src/lib.rs declares them.
fn modules() -> Vec<String> {
    parse(&src().join("lib.rs"))
        .items
        .iter()
        .filter_map(|i| match i {
            syn::Item::Mod(m) => Some(m.ident.to_string()),
            _ => None,
        })
        .collect()
}

/// Every .rs file under a folder, with its module path below the folder (`mod.rs` is the folder's own).
fn rs_files(dir: &Path, path: Vec<String>, out: &mut Vec<(PathBuf, Vec<String>)>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for e in entries {
        let name = e.file_stem().unwrap().to_string_lossy().into_owned();
        if e.is_dir() {
            rs_files(&e, [path.clone(), vec![name]].concat(), out);
        } else if e.extension().is_some_and(|x| x == "rs") {
            let here = if name == "mod" || name == "main" { path.clone() } else { [path.clone(), vec![name]].concat() };
            out.push((e, here));
        }
    }
}

/// The library's top-level modules a file names. `here` is the file's module path in its crate;
/// `in_lib`: the file belongs to the library (`crate::`, `self::` and `super::` are the library),
/// else only paths through the library's name (`jwk_aggregator::`) count.
struct Names {
    here: Vec<String>,
    in_lib: bool,
    found: BTreeSet<String>,
}

impl Names {
    fn record(&mut self, segs: &[String]) {
        let absolute: Vec<String> = match segs.first().map(String::as_str) {
            Some("jwk_aggregator") => segs[1..].to_vec(),
            _ if !self.in_lib => return,
            Some("crate") => segs[1..].to_vec(),
            Some("self") => [self.here.clone(), segs[1..].to_vec()].concat(),
            Some("super") => {
                let ups = segs.iter().take_while(|s| *s == "super").count();
                let base = &self.here[..self.here.len().saturating_sub(ups)];
                [base.to_vec(), segs[ups..].to_vec()].concat()
            }
            _ => return,
        };
        if let Some(top) = absolute.first() {
            self.found.insert(top.clone());
        }
    }
}

/// A `use` tree flattened into the paths it names (`crate::a::{b, c::*}`: `crate::a::b`, `crate::a::c`).
fn use_paths(tree: &syn::UseTree, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match tree {
        syn::UseTree::Path(p) => {
            prefix.push(p.ident.to_string());
            use_paths(&p.tree, prefix, out);
            prefix.pop();
        }
        syn::UseTree::Name(n) => out.push([prefix.clone(), vec![n.ident.to_string()]].concat()),
        syn::UseTree::Rename(r) => out.push([prefix.clone(), vec![r.ident.to_string()]].concat()),
        syn::UseTree::Glob(_) => out.push(prefix.clone()),
        syn::UseTree::Group(g) => g.items.iter().for_each(|t| use_paths(t, prefix, out)),
    }
}

impl<'ast> Visit<'ast> for Names {
    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        self.here.push(m.ident.to_string());
        syn::visit::visit_item_mod(self, m);
        self.here.pop();
    }
    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        let mut paths = Vec::new();
        use_paths(&u.tree, &mut Vec::new(), &mut paths);
        for p in paths {
            self.record(&p);
        }
    }
    fn visit_path(&mut self, p: &'ast syn::Path) {
        let segs: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
        self.record(&segs);
        syn::visit::visit_path(self, p);
    }
}

fn names_in(file: &syn::File, here: Vec<String>, in_lib: bool) -> BTreeSet<String> {
    let mut v = Names { here, in_lib, found: BTreeSet::new() };
    v.visit_file(file);
    v.found
}

/// The library modules a module's files name (its own excluded).
fn imports(module: &str) -> BTreeSet<String> {
    let mut files = Vec::new();
    let dir = src().join(module);
    if dir.is_dir() {
        rs_files(&dir, vec![module.to_owned()], &mut files);
    } else {
        files.push((src().join(format!("{module}.rs")), vec![module.to_owned()]));
    }
    let mut out = BTreeSet::new();
    for (path, here) in files {
        out.extend(names_in(&parse(&path), here, true));
    }
    out.remove(module);
    out
}

#[test]
fn every_module_uses_only_modules_below_it() {
    let order = modules();
    assert!(order.len() >= 10, "{order:?}");
    let rank: HashMap<&str, usize> = order.iter().enumerate().map(|(i, m)| (m.as_str(), i)).collect();
    let mut wrong = Vec::new();
    for m in &order {
        for used in imports(m) {
            match rank.get(used.as_str()) {
                Some(&r) if r < rank[m.as_str()] => {}
                Some(_) => wrong.push(format!("{m} uses {used}, declared after it")),
                None => wrong.push(format!("{m} uses {used}, which is not a module of src/lib.rs")),
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_operators_command_names_only_modules_of_the_library() {
    let order: BTreeSet<String> = modules().into_iter().collect();
    let mut files = Vec::new();
    rs_files(&src().join("bin"), vec![], &mut files);
    assert!(!files.is_empty());
    for (path, here) in files {
        for m in names_in(&parse(&path), here, false) {
            assert!(order.contains(&m), "{} names jwk_aggregator::{m}, which is not a module of src/lib.rs", path.display());
        }
    }
}

// The reader itself: code counts, comments and strings do not; `super::` climbs from where it is.
#[test]
fn the_reader_sees_code_not_text() {
    let file = syn::parse_file(
        r#"
        // crate::ffi is mentioned in a comment only
        use crate::read::{self, expect};
        use super::verify::Alg;
        fn f() { let _ = "crate::auth"; crate::log::push(); }
        mod tests { use super::super::issuer::x; use super::*; }
        "#,
    )
    .unwrap();
    let found = names_in(&file, vec!["auth".into()], true);
    let want: BTreeSet<String> = ["read", "verify", "log", "issuer", "auth"].iter().map(|s| s.to_string()).collect();
    assert_eq!(found, want);
    // From a file of a folder module, `super::` is that folder's module.
    let found = names_in(&file, vec!["policy".into(), "claims".into()], true);
    let want: BTreeSet<String> = ["read", "policy", "log"].iter().map(|s| s.to_string()).collect();
    assert_eq!(found, want);
}
