//! Prometheus text lines (exposition format 0.0.4) for `/metrics`: one counter, or a counter
//! family by one label, each with its HELP and TYPE lines.

use std::fmt::Write as _;

/// A counter without labels.
pub fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
}

/// A counter family: one line per value of `label`.
pub fn family(out: &mut String, name: &str, help: &str, label: &str, values: &[(&str, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    for (v, n) in values {
        let _ = writeln!(out, "{name}{{{label}=\"{v}\"}} {n}");
    }
}
