//! CPU and memory over the last hour, per container, as the dashboard's
//! small charts draw them: the samples the daemon takes while a dashboard
//! is open, kept for [`WINDOW`] seconds, and the SVG path of a series.

use std::collections::{BTreeMap, VecDeque};

/// How far back the charts go, in seconds.
pub const WINDOW: u64 = 3600;

/// One sample: when (Unix seconds), CPU in percent of one core, memory in bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub at: u64,
    pub cpu_percent: f64,
    pub memory_bytes: u64,
}

/// Each container's samples of the last hour, oldest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    by_container: BTreeMap<String, VecDeque<Sample>>,
}

impl History {
    /// Adds a sample, dropping those older than the window.
    pub fn push(&mut self, container: &str, s: Sample) {
        let q = self.by_container.entry(container.to_string()).or_default();
        q.push_back(s);
        while q.front().is_some_and(|f| f.at + WINDOW < s.at) {
            q.pop_front();
        }
    }

    /// Forgets containers that no longer run (their names are not in `live`).
    pub fn retain(&mut self, live: &[&str]) {
        self.by_container.retain(|k, _| live.contains(&k.as_str()));
    }

    pub fn of(&self, container: &str) -> Vec<Sample> {
        self.by_container
            .get(container)
            .map(|q| q.iter().copied().collect())
            .unwrap_or_default()
    }
}

/// The containers to sample this round: every one of the services a page
/// follows (`focus`), then up to `budget` others, going round from `cursor`,
/// so a big project is sampled a slice a round and a service's page every
/// round. `running`: (container, service) pairs.
pub fn round(
    running: &[(String, String)],
    focus: &std::collections::BTreeSet<String>,
    cursor: &mut usize,
    budget: usize,
) -> Vec<String> {
    let (mut picked, others): (Vec<_>, Vec<_>) =
        running.iter().partition(|(_, s)| focus.contains(s));
    let take = budget.min(others.len());
    let start = if others.is_empty() {
        0
    } else {
        *cursor % others.len()
    };
    picked.extend(others.iter().cycle().skip(start).take(take).copied());
    *cursor = start + take;
    picked.into_iter().map(|(c, _)| c.clone()).collect()
}

/// The SVG path (`M x y L x y …`) of `values` taken at `ats`, drawn in a box
/// `width` by `height` whose right edge is `now` and left edge an hour
/// before; the top is the largest value (at least `floor`). Empty: no path.
pub fn path(points: &[(u64, f64)], now: u64, width: f64, height: f64, floor: f64) -> String {
    let top = points.iter().map(|p| p.1).fold(floor, f64::max);
    let start = now.saturating_sub(WINDOW);
    let mut d = String::new();
    for (i, (at, v)) in points.iter().enumerate() {
        let x = (at.saturating_sub(start)) as f64 / WINDOW as f64 * width;
        let y = height - (v / top).clamp(0.0, 1.0) * height;
        d.push_str(&format!("{}{x:.1} {y:.1}", if i == 0 { "M" } else { " L" }));
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(at: u64, cpu: f64) -> Sample {
        Sample {
            at,
            cpu_percent: cpu,
            memory_bytes: 0,
        }
    }

    #[test]
    fn samples_older_than_an_hour_go_and_gone_containers_are_forgotten() {
        let mut h = History::default();
        h.push("a", s(0, 1.0));
        h.push("a", s(10, 2.0));
        h.push("a", s(WINDOW + 5, 3.0));
        assert_eq!(h.of("a"), [s(10, 2.0), s(WINDOW + 5, 3.0)]);
        h.push("b", s(1, 1.0));
        h.retain(&["b"]);
        assert!(h.of("a").is_empty() && h.of("b").len() == 1);
    }

    #[test]
    fn a_round_samples_the_followed_services_and_a_slice_of_the_rest_in_turn() {
        let running: Vec<(String, String)> =
            (0..5).map(|i| (format!("c{i}"), format!("s{i}"))).collect();
        let focus = std::collections::BTreeSet::from(["s3".to_string()]);
        let mut cursor = 0;
        assert_eq!(round(&running, &focus, &mut cursor, 2), ["c3", "c0", "c1"]);
        assert_eq!(round(&running, &focus, &mut cursor, 2), ["c3", "c2", "c4"]);
        assert_eq!(round(&running, &focus, &mut cursor, 2), ["c3", "c0", "c1"]);
        let all = round(&running, &Default::default(), &mut cursor, 10);
        assert_eq!(all.len(), 5, "no container twice in a round: {all:?}");
    }

    #[test]
    fn a_path_spans_the_hour_to_the_right_edge_and_scales_to_its_top() {
        let now = 10_000;
        let points = [(now - WINDOW, 0.0), (now - WINDOW / 2, 50.0), (now, 100.0)];
        assert_eq!(
            path(&points, now, 100.0, 20.0, 1.0),
            "M0.0 20.0 L50.0 10.0 L100.0 0.0"
        );
        assert_eq!(path(&[(now, 0.5)], now, 100.0, 20.0, 1.0), "M100.0 10.0");
        assert_eq!(path(&[], now, 100.0, 20.0, 1.0), "");
    }
}
