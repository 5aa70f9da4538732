//! The graph's tests: recall against exact search, small batches, filters,
//! repair, saved arrays and levels.

use super::*;
use crate::dense::tests::vectors;

type Items = Vec<(u64, Vec<f32>)>;

/// A copy of link words, as a checkpoint would load them.
fn copy(w: &[AtomicU32]) -> Vec<AtomicU32> {
    w.iter().map(|x| AtomicU32::new(x.load(Relaxed))).collect()
}

fn graph(n: usize, threads: usize) -> (Graph, Items) {
    build(Graph::new(Metric::Dot, 16, 200), n, threads)
}

fn build(mut g: Graph, n: usize, threads: usize) -> (Graph, Items) {
    let items = vectors(n, 24, 11);
    let refs: Vec<(u64, &[f32])> = items.iter().map(|(i, v)| (*i, v.as_slice())).collect();
    g.insert(&refs, threads);
    (g, items)
}

fn recall(g: &Graph, items: &Items, ef: usize) -> usize {
    let kernel = Metric::Dot.kernel();
    let mut found = 0;
    for (_, q) in items.iter().step_by(60) {
        let mut exact: Vec<(u64, f32)> = items.iter().map(|(id, v)| (*id, kernel(q, v))).collect();
        exact.sort_by(|a, b| a.1.total_cmp(&b.1));
        let hits = g.search(q, 10, ef, |_| true);
        assert_eq!(hits.len(), 10);
        assert!(hits.windows(2).all(|w| w[0].1 <= w[1].1));
        found += hits
            .iter()
            .filter(|h| exact[..10].iter().any(|e| e.0 == g.id(h.0)))
            .count();
    }
    found
}

#[test]
fn search_finds_what_exact_search_finds_whether_built_by_one_thread_or_two() {
    for threads in [1, 2] {
        let (g, items) = graph(3000, threads);
        assert_eq!(g.len(), 3000);
        // 50 queries x 10: recall@10 of at least 0.95.
        let found = recall(&g, &items, 64);
        assert!(found >= 475, "recall {found}/500 with {threads} threads");
    }
}

#[test]
fn points_added_in_small_batches_are_found() {
    let items = vectors(1500, 24, 3);
    let mut g = Graph::new(Metric::Dot, 8, 100);
    for batch in items.chunks(37) {
        let refs: Vec<(u64, &[f32])> = batch.iter().map(|(i, v)| (*i, v.as_slice())).collect();
        g.insert(&refs, 2);
    }
    g.repair();
    for (id, v) in items.iter().step_by(7) {
        let hit = g.search(v, 1, 64, |_| true)[0];
        assert_eq!(g.id(hit.0), *id);
    }
    // Every list within its capacity, every link to a real point.
    for s in 0..g.len() as u32 {
        for layer in 0..=g.levels[s as usize] {
            let (list, cap) = g.list(s, layer);
            assert!((list[0].load(Relaxed) & COUNT) as usize <= cap);
            assert!(g.links(s, layer).all(|l| (l as usize) < g.len() && l != s));
        }
    }
}

#[test]
fn rejected_points_are_walked_through_but_never_returned() {
    let (g, items) = graph(2000, 2);
    let hits = g.search(&items[7].1, 10, 100, |s| g.id(s) % 2 == 0);
    assert_eq!(hits.len(), 10);
    assert!(hits.iter().all(|(s, _)| g.id(*s) % 2 == 0));
    let empty = Graph::new(Metric::Dot, 16, 200);
    assert!(empty.search(&items[0].1, 5, 10, |_| true).is_empty());
    // A query of the wrong length finds nothing rather than panicking.
    assert!(g.search(&[0.5; 3], 5, 10, |_| true).is_empty());
}

#[test]
fn a_point_nothing_links_to_is_linked_back() {
    let (mut g, items) = graph(500, 1);
    // Cut every link to point 123 (as pruning can).
    let lost = 123u32;
    for s in 0..g.len() as u32 {
        for layer in 0..=g.levels[s as usize] {
            let kept: Vec<(f32, u32)> = g
                .links(s, layer)
                .filter(|&l| l != lost)
                .map(|l| (0.0, l))
                .collect();
            g.write_list(s, layer, &kept);
        }
    }
    if g.entry == lost {
        return;
    }
    assert!(!g.reachable()[lost as usize]);
    assert!(g.repair() > 0);
    assert!(g.reachable().iter().all(|&r| r));
    let hit = g.search(&items[lost as usize].1, 1, 64, |_| true)[0];
    assert_eq!(hit.0, lost);
    // A connected graph is left as it is.
    assert_eq!(g.repair(), 0);
}

#[test]
fn saved_arrays_load_back_to_the_same_graph_and_damage_is_refused() {
    let (mut g, items) = graph(700, 2);
    g.add_extra(3, 9);
    let load = |links0: Vec<AtomicU32>, levels: Vec<u8>| {
        let p = g.parts();
        Graph::from_parts(
            Metric::Dot,
            g.shape(),
            g.entry,
            Rows::owned(p.vectors.concat(), g.shape().dim),
            p.ids.to_vec(),
            levels,
            links0,
            copy(p.upper),
            &p.extra,
            None,
        )
    };
    let back = load(copy(g.parts().links0), g.levels.clone()).unwrap();
    assert_eq!(back.entry(), g.entry());
    assert!(back.links(3, 0).any(|l| l == 9));
    for (_, q) in items.iter().step_by(50) {
        assert_eq!(
            back.search(q, 10, 64, |_| true),
            g.search(q, 10, 64, |_| true)
        );
    }
    // A link past the end, an overfull list, a lost level.
    let bad = copy(g.parts().links0);
    bad[1].store(700, Relaxed);
    assert!(load(bad, g.levels.clone())
        .unwrap_err()
        .contains("point 700"));
    let bad = copy(g.parts().links0);
    bad[0].store(33, Relaxed);
    assert!(load(bad, g.levels.clone())
        .unwrap_err()
        .contains("33 links"));
    let mut levels = g.levels.clone();
    levels.pop();
    assert!(load(copy(g.parts().links0), levels).is_err());
}

#[test]
fn levels_follow_the_id_and_thin_out_by_m() {
    let g = Graph::new(Metric::Dot, 16, 200);
    let levels: Vec<u8> = (0..100_000u64).map(|id| g.level_of(id)).collect();
    assert_eq!(
        levels,
        (0..100_000u64).map(|id| g.level_of(id)).collect::<Vec<_>>()
    );
    let above = levels.iter().filter(|&&l| l > 0).count() as f64 / 1e5;
    assert!((above - 1.0 / 16.0).abs() < 0.005, "{above}");
}

#[test]
fn a_quantised_graph_finds_what_exact_search_finds_and_reports_exact_distances() {
    let (g, items) = build(Graph::new(Metric::Dot, 16, 200).quantized(), 3000, 2);
    assert!(g.is_quantized());
    let found = recall(&g, &items, 64);
    assert!(found >= 475, "recall {found}/500 quantised");
    let kernel = Metric::Dot.kernel();
    for (_, q) in items.iter().step_by(300) {
        for (slot, d) in g.search(q, 10, 64, |_| true) {
            assert_eq!(d, kernel(q, g.vector(slot)), "rescored with the floats");
        }
    }
    // Squared L2 over the codes (the same data, another metric).
    let (g, items) = build(Graph::new(Metric::L2, 16, 200).quantized(), 2000, 1);
    let hit = g.search(&items[77].1, 1, 64, |_| true)[0];
    assert_eq!(g.id(hit.0), items[77].0);
    assert_eq!(hit.1, 0.0);
}

#[test]
fn a_quantised_graph_saves_and_loads_its_codes_and_refuses_short_ones() {
    let (g, items) = build(Graph::new(Metric::Dot, 16, 200).quantized(), 600, 2);
    let load = |codes: Vec<i8>| {
        let p = g.parts();
        Graph::from_parts(
            Metric::Dot,
            g.shape(),
            g.entry,
            Rows::owned(p.vectors.concat(), g.shape().dim),
            p.ids.to_vec(),
            g.levels.clone(),
            copy(p.links0),
            copy(p.upper),
            &p.extra,
            Some(Rows::owned(codes, Codes::width(g.shape().dim))),
        )
    };
    let codes = g.parts().codes.unwrap().concat();
    assert_eq!(codes.len(), 600 * (24 + 12));
    let back = load(codes.clone()).unwrap();
    assert!(back.is_quantized());
    for (_, q) in items.iter().step_by(50) {
        assert_eq!(
            back.search(q, 10, 64, |_| true),
            g.search(q, 10, 64, |_| true)
        );
    }
    let short = codes[..codes.len() - 36].to_vec();
    assert!(load(short).unwrap_err().contains("rows of codes"));
}
