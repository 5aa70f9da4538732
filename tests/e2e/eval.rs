//! End to end: `quarry eval` on a small BEIR folder written by the test
//! (with a qrels header line, a query without judgments, and graded gains).

use crate::common;

use common::quarry_bin;

#[test]
fn eval_scores_a_beir_folder() {
    common::ensure_models();
    let dir = tempfile::tempdir().unwrap();
    let corpus = [
        (
            "d1",
            "The Eiffel Tower is a wrought-iron tower in Paris, France.",
        ),
        (
            "d2",
            "Photosynthesis turns light into chemical energy in plants.",
        ),
        (
            "d3",
            "The Great Wall of China stretches thousands of kilometres.",
        ),
        (
            "d4",
            "Mount Everest is the highest mountain above sea level.",
        ),
    ];
    let lines: Vec<String> = corpus
        .iter()
        .map(|(id, text)| {
            serde_json::json!({"_id": id, "title": "", "text": text, "metadata": {}}).to_string()
        })
        .collect();
    std::fs::write(dir.path().join("corpus.jsonl"), lines.join("\n")).unwrap();
    std::fs::write(
        dir.path().join("queries.jsonl"),
        [
            r#"{"_id": "q1", "text": "tower in Paris"}"#,
            r#"{"_id": "q2", "text": "highest mountain on earth"}"#,
            r#"{"_id": "q3", "text": "a query nobody judged"}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("qrels")).unwrap();
    std::fs::write(
        dir.path().join("qrels/test.tsv"),
        "query-id\tcorpus-id\tscore\nq1\td1\t2\nq2\td4\t1\nq2\td3\t0\n",
    )
    .unwrap();

    let out = std::process::Command::new(quarry_bin())
        .arg("eval")
        .arg(dir.path())
        .args(["--json", "--run-dir"])
        .arg(dir.path().join("runs"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["documents"], 4);
    assert_eq!(report["queries"], 3);
    assert_eq!(report["scored_queries"], 2, "the unjudged query is skipped");
    for mode in ["keyword", "dense", "hybrid"] {
        let r = &report["results"][mode];
        // Each judged query's one relevant document is an easy first hit.
        assert_eq!(r["ndcg@10"], 1.0, "{mode}: {r}");
        assert_eq!(r["mrr@10"], 1.0, "{mode}: {r}");
        assert_eq!(r["recall@100"], 1.0, "{mode}: {r}");
        let run = std::fs::read_to_string(dir.path().join(format!("runs/{mode}.run"))).unwrap();
        assert!(
            run.lines().next().unwrap().starts_with("q1 Q0 d1 1 "),
            "{run}"
        );
    }
}
