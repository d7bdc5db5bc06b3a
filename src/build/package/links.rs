//! Links inside packages: resolved the way the container will resolve them.

use crate::build::{Context, Entry};

/// Every link resolved the way the container will (following the links it
/// meets, one after another) stays inside, and no entry lies below a link (the
/// engine would put it wherever the link points) or below a file (the build
/// would fail on it). Err: the entry and why.
pub fn check_links(ctx: &Context) -> Result<(), (String, String)> {
    let is_link = |p: &str| matches!(ctx.get(p), Some(Entry::Symlink { .. }));
    for path in ctx.paths() {
        let mut prefix = String::new();
        for part in path
            .split('/')
            .collect::<Vec<_>>()
            .split_last()
            .map(|(_, dirs)| dirs)
            .unwrap_or(&[])
        {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            if is_link(&prefix) {
                return Err((
                    path.to_string(),
                    format!("it lies below the symlink `{prefix}`"),
                ));
            }
            if matches!(ctx.get(&prefix), Some(Entry::File { .. })) {
                return Err((
                    path.to_string(),
                    format!("it lies below the file `{prefix}`"),
                ));
            }
        }
        if let Some(Entry::Symlink { target }) = ctx.get(path) {
            if !resolves_inside(ctx, path, target) {
                return Err((
                    path.to_string(),
                    format!("it is a symlink to `{target}`, which resolves outside the package through the links it passes"),
                ));
            }
        }
    }
    Ok(())
}

/// Follows `target` from the link at `entry` through every link it meets (at
/// most 40, as the kernel does); `false` when it climbs out or loops.
fn resolves_inside(ctx: &Context, entry: &str, target: &str) -> bool {
    if target.starts_with('/') {
        return false;
    }
    let mut at: Vec<String> = entry.split('/').map(String::from).collect();
    at.pop();
    let mut todo: std::collections::VecDeque<String> =
        target.split('/').map(String::from).collect();
    let mut hops = 0;
    while let Some(part) = todo.pop_front() {
        match part.as_str() {
            "" | "." => {}
            ".." => {
                if at.pop().is_none() {
                    return false;
                }
            }
            name => {
                at.push(name.to_string());
                if let Some(Entry::Symlink { target }) = ctx.get(&at.join("/")) {
                    hops += 1;
                    if hops > 40 || target.starts_with('/') {
                        return false;
                    }
                    at.pop();
                    for p in target.split('/').rev() {
                        todo.push_front(p.to_string());
                    }
                }
            }
        }
    }
    true
}
