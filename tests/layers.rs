//! The house has layers that point one way: each module of the library uses only modules declared
//! before it in src/lib.rs, so no two modules import each other, directly or in a circle.

use std::collections::HashMap;
use std::path::Path;

fn modules() -> Vec<String> {
    let lib = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    lib.lines().filter_map(|l| l.strip_prefix("pub mod ")).map(|m| m.trim_end_matches(';').to_owned()).collect()
}

/// The `crate::<module>` paths a module's files name (a folder module: every file in it).
fn imports(module: &str) -> Vec<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files: Vec<std::path::PathBuf> = if src.join(module).is_dir() {
        std::fs::read_dir(src.join(module)).unwrap().map(|e| e.unwrap().path()).collect()
    } else {
        vec![src.join(format!("{module}.rs"))]
    };
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for (i, _) in text.match_indices("crate::") {
            let name: String = text[i + 7..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if name != module && !out.contains(&name) {
                out.push(name);
            }
        }
    }
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
