//! `quarry eval ask QA.jsonl`: answer quality of a running server, over
//! gRPC, as a user sees it. Optionally loads a corpus first (as `quarry
//! ingest` does; unchanged documents are skipped, so re-runs are quick),
//! then asks every question in each answer mode and scores the answers:
//! - answerable items (accepted short answers, gold passage ids): does the
//!   answer contain an accepted answer, does a citation shown in it name a
//!   gold passage, both; was it refused (a false refusal); was a gold
//!   passage given, and first;
//! - unanswerable items (no answers): was it refused ("not found");
//! - every answer: the share of the model's sentences verification
//!   supported, shown sentences without a citation, latency.
//!
//! The QA file is JSON lines: `{"id", "question", "answers": [...],
//! "gold": [...]}`, with `answers` empty (or `"answerable": false`) for a
//! question the corpus cannot answer. `query`/`text`, `answer`, and
//! `gold_ids`/`doc_ids`/`positive_ids` are accepted too.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use quarry::proto::{self, ask_event::Event, rag_client::RagClient};
use serde_json::{json, Value};

use super::ask::{answer_mode_name, AnswerModeArg};
use super::{call_failed, ClientArgs};

/// Flags of `quarry eval ask`.
#[derive(Debug, clap::Args)]
pub struct EvalAskArgs {
    /// Questions, JSON lines: {"id", "question", "answers": [...], "gold":
    /// [...]}; empty answers mark a question the corpus cannot answer.
    pub qa: PathBuf,
    /// Load this corpus into the collection first (creating it): what
    /// `quarry ingest` reads (BEIR corpus.jsonl, JSON lines, folders).
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    /// The collection to ask.
    #[arg(long, short, default_value = "eval-ask")]
    pub collection: String,
    /// Answer modes to compare, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "grounded")]
    pub answer_mode: Vec<AnswerModeArg>,
    /// Passages to retrieve (0: the server's default).
    #[arg(long, default_value_t = 0)]
    pub top_k: u32,
    /// Most tokens to generate (default: the server's).
    #[arg(long)]
    pub max_new_tokens: Option<u32>,
    /// Only the first N questions.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Write one JSON line per question and mode here: the answer, its
    /// citations, sentences and verdicts.
    #[arg(long)]
    pub details: Option<PathBuf>,
    /// Print every question and answer as it is scored.
    #[arg(long, short)]
    pub verbose: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// One question of the QA file.
#[derive(Debug, Clone, PartialEq)]
pub struct QaItem {
    /// Its id.
    pub id: String,
    /// The question.
    pub question: String,
    /// Accepted short answers (empty: unanswerable).
    pub answers: Vec<String>,
    /// Passages (document ids) that answer it.
    pub gold: Vec<String>,
}

impl QaItem {
    fn answerable(&self) -> bool {
        !self.answers.is_empty()
    }
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Number(n) => vec![n.to_string()],
        Value::Array(a) => a.iter().flat_map(strings).collect(),
        _ => Vec::new(),
    }
}

/// Parses the QA file's lines, naming file:line on errors.
pub fn read_qa(path: &Path) -> anyhow::Result<Vec<QaItem>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    let mut items = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{}:{}", path.display(), n + 1);
        let v: Value =
            serde_json::from_str(line).with_context(|| format!("{}: invalid JSON", at()))?;
        let first = |keys: &[&str]| keys.iter().map(|k| &v[*k]).find(|x| !x.is_null());
        let id = first(&["id", "_id", "qid"])
            .map(strings)
            .and_then(|s| s.into_iter().next())
            .unwrap_or_else(|| format!("line-{}", n + 1));
        let question = first(&["question", "query", "text"])
            .and_then(Value::as_str)
            .with_context(|| format!("{}: no \"question\" string", at()))?
            .to_owned();
        let mut answers = first(&["answers", "answer"])
            .map(strings)
            .unwrap_or_default();
        if v["answerable"] == Value::Bool(false) {
            answers.clear();
        }
        let gold = first(&["gold", "gold_ids", "doc_ids", "positive_ids", "passages"])
            .map(strings)
            .unwrap_or_default();
        anyhow::ensure!(
            answers.is_empty() || !gold.is_empty(),
            "{}: an answerable item needs \"gold\" passage ids",
            at()
        );
        items.push(QaItem {
            id,
            question,
            answers,
            gold,
        });
    }
    anyhow::ensure!(!items.is_empty(), "{} holds no questions", path.display());
    Ok(items)
}

/// Text for answer matching: lower case, thousands separators dropped,
/// "%" read as "percent", every other non-alphanumeric character a space.
pub fn normalise(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len() + 2);
    out.push(' ');
    for (i, &c) in chars.iter().enumerate() {
        let digit_at = |j: Option<usize>| {
            j.and_then(|j| chars.get(j))
                .is_some_and(char::is_ascii_digit)
        };
        if c == ',' && digit_at(i.checked_sub(1)) && digit_at(Some(i + 1)) {
            continue;
        }
        if c == '%' {
            out.push_str(" percent ");
        } else if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
        } else {
            out.push(' ');
        }
    }
    out.push(' ');
    let collapsed: Vec<&str> = out.split_whitespace().collect();
    format!(" {} ", collapsed.join(" "))
}

/// Whether `answer` contains one of `accepted` (as whole words, after
/// [`normalise`]).
pub fn contains_answer(answer: &str, accepted: &[String]) -> bool {
    let text = normalise(answer);
    accepted.iter().any(|a| {
        let a = normalise(a);
        !a.trim().is_empty() && text.contains(&a)
    })
}

/// Phrases with which a generative answer declines.
const REFUSALS: &[&str] = &[
    "cannot find",
    "could not find",
    "can't find",
    "not found",
    "no information",
    "does not contain",
    "do not contain",
    "doesn't contain",
    "not mentioned",
    "does not mention",
    "do not mention",
    "don't know",
    "do not know",
    "cannot answer",
    "can't answer",
    "unable to",
];

/// The `[n]`-free sentences of a shown answer (for "no sentence is shown
/// without a citation").
fn uncited_sentences(answer: &str) -> usize {
    // A marker written after the period ("... 1874. [1]") is its own span
    // to the splitter; it belongs to the sentence before it.
    let mut cited: Vec<bool> = Vec::new();
    for span in quarry_ground::split(answer) {
        let mut text = span.text(answer);
        // Markers opening a span close the sentence before it.
        let mut leading = false;
        while let Some(rest) = text.strip_prefix('[') {
            match rest.find(']') {
                Some(close) if !quarry_ground::markers(&text[..close + 2]).is_empty() => {
                    leading = true;
                    text = rest[close + 1..].trim_start();
                }
                _ => break,
            }
        }
        if leading {
            if let Some(last) = cited.last_mut() {
                *last = true;
            }
        }
        if !text.trim().is_empty() {
            cited.push(!quarry_ground::markers(text).is_empty());
        }
    }
    cited.iter().filter(|c| !**c).count()
}

/// One answer, scored.
#[derive(Debug, Clone, Default)]
struct Outcome {
    answer: String,
    finish: String,
    refused: bool,
    contains: bool,
    cites_gold: bool,
    gold_given: bool,
    gold_first: bool,
    supported_share: Option<f64>,
    uncited: usize,
    total_ms: f64,
    first_ms: f64,
    cited: Vec<String>,
    checks: Vec<Value>,
}

async fn ask_one(
    rpc: &mut RagClient<super::AuthChannel>,
    args: &EvalAskArgs,
    item: &QaItem,
    mode: AnswerModeArg,
) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let mut stream = rpc
        .ask(proto::AskRequest {
            collection: args.collection.clone(),
            question: item.question.clone(),
            top_k: args.top_k,
            answer_mode: proto::AnswerMode::from(mode) as i32,
            generation: Some(proto::GenerationParams {
                max_new_tokens: args.max_new_tokens,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .map_err(call_failed)
        .with_context(|| format!("question {}", item.id))?
        .into_inner();
    let mut out = Outcome::default();
    let mut citations = Vec::new();
    let mut done = None;
    let mut first = None;
    while let Some(event) = stream.message().await.map_err(call_failed)? {
        match event.event {
            Some(Event::Citations(c)) => citations = c.citations,
            Some(Event::Delta(d)) => {
                first.get_or_insert_with(|| started.elapsed());
                out.answer.push_str(&d.text);
            }
            Some(Event::Check(c)) => out.checks.push(super::ask::check_json(&c)),
            Some(Event::Done(d)) => done = Some(d),
            None => {}
        }
    }
    out.total_ms = started.elapsed().as_secs_f64() * 1000.0;
    out.first_ms = first.unwrap_or_default().as_secs_f64() * 1000.0;
    let done = done.context("the answer stream ended without its final event")?;
    let reason = proto::FinishReason::try_from(done.finish_reason)
        .unwrap_or(proto::FinishReason::Unspecified);
    out.finish = reason
        .as_str_name()
        .trim_start_matches("FINISH_REASON_")
        .to_lowercase();
    let lower = out.answer.to_lowercase();
    out.refused = matches!(
        reason,
        proto::FinishReason::NoContext | proto::FinishReason::NotSupported
    ) || (mode == AnswerModeArg::Generative
        && REFUSALS.iter().any(|r| lower.contains(r)));
    out.supported_share = done.supported_share;
    out.cited = done
        .used_citations
        .iter()
        .map(|c| c.document_id.clone())
        .collect();
    let gold = |d: &String| item.gold.contains(d);
    out.cites_gold = out.cited.iter().any(gold);
    out.gold_given = citations.iter().any(|c| gold(&c.document_id));
    out.gold_first = citations.first().is_some_and(|c| gold(&c.document_id));
    out.contains = !out.refused && contains_answer(&out.answer, &item.answers);
    if !out.refused {
        out.uncited = uncited_sentences(&out.answer);
    }
    Ok(out)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Runs `quarry eval ask`.
pub async fn run(args: EvalAskArgs) -> anyhow::Result<()> {
    let mut items = read_qa(&args.qa)?;
    if let Some(n) = args.limit {
        items.truncate(n);
    }
    if let Some(corpus) = &args.corpus {
        eprintln!("loading {} into {:?}", corpus.display(), args.collection);
        let report = super::ingest::load(super::ingest::IngestArgs::for_collection(
            vec![corpus.clone()],
            &args.collection,
            args.client.clone(),
        ))
        .await?;
        eprintln!(
            "loaded in {:.1} s: {} documents added, {} updated, {} unchanged",
            report.seconds, report.reply.added, report.reply.updated, report.reply.unchanged
        );
    }
    let mut rpc = RagClient::new(args.client.connect().await?)
        .max_decoding_message_size(args.client.max_message_bytes());
    let mut details = match &args.details {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("create {}", p.display()))?,
        )),
        None => None,
    };
    let answerable = items.iter().filter(|i| i.answerable()).count();
    let unanswerable = items.len() - answerable;
    let mut report = BTreeMap::new();
    for &mode in &args.answer_mode {
        let name = answer_mode_name(proto::AnswerMode::from(mode) as i32);
        let mut outcomes = Vec::new();
        for item in &items {
            let o = ask_one(&mut rpc, &args, item, mode).await?;
            if args.verbose {
                eprintln!(
                    "[{name}] {} {}\n    Q: {}\n    A: {}\n    finish {} · contains {} · cites gold {} · refused {}",
                    item.id,
                    if item.answerable() { "answerable" } else { "unanswerable" },
                    item.question,
                    o.answer.replace('\n', " "),
                    o.finish,
                    o.contains,
                    o.cites_gold,
                    o.refused
                );
            }
            if let Some(f) = details.as_mut() {
                serde_json::to_writer(
                    &mut *f,
                    &json!({
                        "mode": name, "id": item.id, "question": item.question,
                        "answerable": item.answerable(), "answers": item.answers, "gold": item.gold,
                        "answer": o.answer, "finish_reason": o.finish, "refused": o.refused,
                        "contains": o.contains, "cites_gold": o.cites_gold, "cited": o.cited,
                        "gold_given": o.gold_given, "gold_first": o.gold_first,
                        "supported_share": o.supported_share, "uncited_sentences": o.uncited,
                        "total_ms": o.total_ms, "first_delta_ms": o.first_ms,
                        "sentences": o.checks,
                    }),
                )?;
                f.write_all(b"\n")?;
            }
            outcomes.push((item, o));
        }
        let ans: Vec<&Outcome> = outcomes
            .iter()
            .filter(|(i, _)| i.answerable())
            .map(|(_, o)| o)
            .collect();
        let una: Vec<&Outcome> = outcomes
            .iter()
            .filter(|(i, _)| !i.answerable())
            .map(|(_, o)| o)
            .collect();
        let count =
            |v: &[&Outcome], f: &dyn Fn(&Outcome) -> bool| v.iter().filter(|o| f(o)).count();
        let shares: Vec<f64> = outcomes
            .iter()
            .filter_map(|(_, o)| o.supported_share)
            .collect();
        let mut total: Vec<f64> = outcomes.iter().map(|(_, o)| o.total_ms).collect();
        total.sort_by(f64::total_cmp);
        let mut first: Vec<f64> = outcomes.iter().map(|(_, o)| o.first_ms).collect();
        first.sort_by(f64::total_cmp);
        report.insert(
            name.clone(),
            json!({
                "answerable": ans.len(),
                "unanswerable": una.len(),
                "contains_answer": count(&ans, &|o| o.contains),
                "cites_gold": count(&ans, &|o| o.cites_gold),
                "contains_and_cites_gold": count(&ans, &|o| o.contains && o.cites_gold),
                "false_refusals": count(&ans, &|o| o.refused),
                "refused_unanswerable": count(&una, &|o| o.refused),
                "gold_given": count(&ans, &|o| o.gold_given),
                "gold_first": count(&ans, &|o| o.gold_first),
                "answers_with_uncited_sentences": outcomes.iter().filter(|(_, o)| o.uncited > 0).count(),
                "supported_share_mean": if shares.is_empty() { Value::Null } else { json!(shares.iter().sum::<f64>() / shares.len() as f64) },
                "latency_ms": {
                    "p50": percentile(&total, 0.5), "p95": percentile(&total, 0.95),
                    "first_delta_p50": percentile(&first, 0.5),
                },
            }),
        );
    }
    if let Some(mut f) = details {
        f.flush()?;
    }
    let value = json!({
        "qa": args.qa.display().to_string(),
        "collection": args.collection,
        "questions": items.len(),
        "answerable": answerable,
        "unanswerable": unanswerable,
        "modes": report,
    });
    if args.client.json {
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    println!(
        "{}: {} questions ({answerable} answerable, {unanswerable} unanswerable), collection {}",
        args.qa.display(),
        items.len(),
        args.collection
    );
    let pct = |n: &Value, d: usize| {
        let n = n.as_u64().unwrap_or(0);
        format!("{n}/{d} ({:.0}%)", 100.0 * n as f64 / d.max(1) as f64)
    };
    println!(
        "{:<11} {:>15} {:>15} {:>15} {:>15} {:>15} {:>9} {:>9} {:>9} {:>9}",
        "mode",
        "fact",
        "cites gold",
        "fact+gold",
        "refused (unans)",
        "false refusal",
        "supported",
        "uncited",
        "p50 ms",
        "p95 ms"
    );
    for (mode, r) in &report {
        println!(
            "{:<11} {:>15} {:>15} {:>15} {:>15} {:>15} {:>9} {:>9} {:>9.0} {:>9.0}",
            mode,
            pct(&r["contains_answer"], answerable),
            pct(&r["cites_gold"], answerable),
            pct(&r["contains_and_cites_gold"], answerable),
            pct(&r["refused_unanswerable"], unanswerable),
            pct(&r["false_refusals"], answerable),
            r["supported_share_mean"]
                .as_f64()
                .map_or("-".to_owned(), |s| format!("{:.0}%", s * 100.0)),
            r["answers_with_uncited_sentences"],
            r["latency_ms"]["p50"].as_f64().unwrap_or_default(),
            r["latency_ms"]["p95"].as_f64().unwrap_or_default(),
        );
    }
    if let Some(r) = report.values().next() {
        println!(
            "retrieval: gold passage given {} · first {}",
            pct(&r["gold_given"], answerable),
            pct(&r["gold_first"], answerable)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_match_after_normalising() {
        let accepted = vec!["$5.5 trillion".to_owned(), "40%".to_owned()];
        assert!(contains_answer(
            "Revenue hit 5.5 trillion dollars [1].",
            &accepted
        ));
        assert!(contains_answer("up 40 percent", &accepted));
        assert!(!contains_answer("up 140 percent", &accepted));
        assert!(contains_answer("15000 lanterns", &["15,000".to_owned()]));
        assert!(!contains_answer("in 18745", &["1874".to_owned()]));
        assert!(contains_answer(
            "It was built in 1874.",
            &["1874".to_owned()]
        ));
    }

    #[test]
    fn qa_lines_accept_common_field_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qa.jsonl");
        std::fs::write(
            &path,
            "{\"id\":\"a\",\"question\":\"Q1?\",\"answers\":[\"x\"],\"gold\":[\"d1\"]}\n\n{\"_id\":7,\"query\":\"Q2?\",\"answer\":\"y\",\"gold_ids\":[\"d2\",\"d3\"]}\n{\"id\":\"u\",\"question\":\"Q3?\",\"answers\":[]}\n",
        )
        .unwrap();
        let items = read_qa(&path).unwrap();
        assert_eq!(items.len(), 3);
        assert_eq!(items[1].id, "7");
        assert_eq!(items[1].answers, ["y"]);
        assert_eq!(items[1].gold, ["d2", "d3"]);
        assert!(!items[2].answerable());
        std::fs::write(
            &path,
            "{\"id\":\"a\",\"question\":\"Q?\",\"answers\":[\"x\"]}\n",
        )
        .unwrap();
        assert!(read_qa(&path).unwrap_err().to_string().contains("gold"));
    }

    #[test]
    fn uncited_sentences_are_counted() {
        assert_eq!(uncited_sentences("It was 1874 [1]. It is tall."), 1);
        assert_eq!(uncited_sentences("“It was 1874.” [2]"), 0);
        assert_eq!(uncited_sentences("“It was 1874.” [2] “It is tall.” [1]"), 0);
        assert_eq!(uncited_sentences("It was 1874. [2] It is tall."), 1);
    }
}
