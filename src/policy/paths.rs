//! Which request paths a rule's KrakenD path patterns match, under every spelling KrakenD's router
//! may serve an endpoint for.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Literal(String),
    Param,
    Rest,
}



pub fn parse_path(p: &str) -> Option<Vec<Segment>> {
    let rest = p.strip_prefix('/')?;
    let parts: Vec<&str> = if rest.is_empty() { vec![] } else { rest.split('/').collect() };
    let last = parts.len().saturating_sub(1);
    parts
        .iter()
        .enumerate()
        .map(|(i, s)| match *s {
            "*" if i == last => Some(Segment::Rest),
            s if s.starts_with('{') && s.ends_with('}') && s.len() > 2 => Some(Segment::Param),
            "" | "*" => None,
            s if s.contains(['{', '}', '*']) => None,
            s => Some(Segment::Literal(s.to_owned())),
        })
        .collect()
}

/// Whether a request path matches a pattern, as the router may route it: segment by segment as
/// it came (gin gives a parameter an empty segment: `/users//orders/1` reaches
/// `/users/{id}/orders/{oid}`), or with empty segments ignored ("/a//b/" is "/a/b", as gin routes
/// with `remove_extra_slash` or redirects to). A path the router would not send to the endpoint
/// may be protected too, but a path it would send there is never missed.
pub fn path_matches(pattern: &[Segment], path: &str) -> bool {
    let exact = path.strip_prefix('/').is_some_and(|rest| segments_match(pattern, rest.split('/')));
    exact || segments_match(pattern, path.split('/').filter(|p| !p.is_empty()))
}

fn segments_match<'a>(pattern: &[Segment], mut parts: impl Iterator<Item = &'a str>) -> bool {
    if pattern.is_empty() {
        // The root: "/" itself (as it came, its only segment is empty).
        return parts.all(str::is_empty);
    }
    for seg in pattern {
        match (seg, parts.next()) {
            (Segment::Rest, _) => return true,
            (Segment::Param, Some(_)) => {}
            (Segment::Literal(l), Some(p)) if l == p => {}
            _ => return false,
        }
    }
    parts.next().is_none()
}

/// A path with its dot segments resolved the way gin's `cleanPath` does (`.` dropped, `..` takes
/// the segment before it away, never past the root), when it has any; `None` when the path has
/// none and so cleans to itself (empty segments are already ignored by `path_matches`).
pub fn resolve_dots(path: &str) -> Option<String> {
    if !path.split('/').any(|s| s == "." || s == "..") {
        return None;
    }
    let mut out: Vec<&str> = Vec::new();
    for s in path.split('/') {
        match s {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    Some(format!("/{}", out.join("/")))
}

