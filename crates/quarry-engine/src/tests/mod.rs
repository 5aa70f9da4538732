//! Engine unit tests with a small deterministic embedder instead of the
//! real model: they open a real engine (store, indexes, queue threads) in a
//! temporary directory (and, in [`memory`], on a second storage backend) and run in milliseconds without model files. The
//! end-to-end tests (tests/e2e) keep the real models.

mod ask;
mod documents;
mod memory;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use quarry_core::{CollectionName, CollectionSettings, Document};
use quarry_embed::{EmbedError, EmbedQueue, Embedder, Encoding, QueueConfig, Tokenizer};
use quarry_generate::{
    Decoder, GenerateConfig, GenerateError, GenerateQueue, Sequence, Step, Vocab,
};
use quarry_models::{ModelCache, ModelSource};
use tokenizers::decoders::fuse::Fuse;
use tokenizers::models::wordlevel::WordLevel;
use tokenizers::normalizers::Lowercase;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::whitespace::Whitespace;
use tokenizers::{AddedToken, SplitDelimiterBehavior};

use crate::{CreateCollection, Engine, EngineConfig};

/// Vector dimension of the test embedder.
const DIMENSION: usize = 64;

/// A bag-of-words embedder: each word of its vocabulary (lower-cased)
/// adds a fixed pseudo-random vector; the sum is normalised. Texts that
/// share words are close, so dense search behaves plausibly, and every
/// run gives the same vectors.
pub(crate) struct HashEmbedder {
    tokenizer: Tokenizer,
}

impl HashEmbedder {
    /// An embedder knowing every word of `texts` (others are one unknown
    /// token, which contributes nothing).
    pub(crate) fn for_texts(texts: &[&str]) -> Self {
        let lower: Vec<String> = texts.iter().map(|t| t.to_lowercase()).collect();
        let words = lower
            .iter()
            .flat_map(|t| t.split(|c: char| !c.is_alphanumeric()))
            .filter(|w| !w.is_empty())
            .map(str::to_owned);
        let mut tokenizer = word_level(words);
        let _ = tokenizer.with_normalizer(Some(Lowercase));
        tokenizer.with_pre_tokenizer(Some(Whitespace {}));
        Self { tokenizer }
    }

    fn word_vector(id: u32) -> impl Iterator<Item = f32> {
        // SplitMix64 from the token id: fixed, well spread.
        let mut x = u64::from(id).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (0..DIMENSION).map(move |_| {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) as f64 / u64::MAX as f64 * 2.0 - 1.0) as f32
        })
    }
}

impl Embedder for HashEmbedder {
    fn tokenize(&self, texts: &[&str]) -> Result<Vec<Encoding>, EmbedError> {
        texts
            .iter()
            .map(|t| {
                self.tokenizer
                    .encode(*t, false)
                    .map_err(|e| EmbedError::Tokenizer(e.to_string()))
            })
            .collect()
    }

    fn embed_encodings(&self, batch: &[&Encoding]) -> Result<Vec<Vec<f32>>, EmbedError> {
        Ok(batch
            .iter()
            .map(|e| {
                let mut v = vec![0.0f32; DIMENSION];
                for &id in e.get_ids().iter().filter(|&&id| id != 0) {
                    for (x, w) in v.iter_mut().zip(Self::word_vector(id)) {
                        *x += w;
                    }
                }
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                if norm > 0.0 {
                    v.iter_mut().for_each(|x| *x /= norm);
                }
                v
            })
            .collect())
    }

    fn dimension(&self) -> usize {
        DIMENSION
    }

    fn max_seq_length(&self) -> usize {
        256
    }

    fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }
}

/// ChatML, as SmolLM2's template writes it.
const CHATML: &str = "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

/// A decoder that writes whatever its script says, whatever the prompt:
/// one character a token (greedy sampling picks the scripted one), then
/// the end of its turn. Tests set the script before each Ask.
pub(crate) struct ScriptedDecoder {
    tokenizer: Tokenizer,
    script: Arc<Mutex<String>>,
    end: u32,
}

struct ScriptedSequence {
    tokens: Vec<u32>,
    next: usize,
    len: usize,
}

impl Sequence for ScriptedSequence {
    fn len(&self) -> usize {
        self.len
    }

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

impl Decoder for ScriptedDecoder {
    fn context_length(&self) -> usize {
        1 << 16
    }

    fn kv_bytes_per_token(&self) -> usize {
        1
    }

    fn sequence(&self, _: usize) -> Box<dyn Sequence> {
        let script = self.script.lock().unwrap().clone();
        let mut tokens = self
            .tokenizer
            .encode(script.as_str(), false)
            .unwrap()
            .get_ids()
            .to_vec();
        tokens.push(self.end);
        Box::new(ScriptedSequence {
            tokens,
            next: 0,
            len: 0,
        })
    }

    fn forward(&self, steps: &mut [Step<'_>]) -> Result<Vec<Option<Vec<f32>>>, GenerateError> {
        let vocab_size = self.tokenizer.get_vocab_size(true);
        let mut out = Vec::with_capacity(steps.len());
        for step in steps.iter_mut() {
            let seq = step
                .sequence
                .as_any_mut()
                .downcast_mut::<ScriptedSequence>()
                .expect("a scripted sequence");
            seq.len += step.tokens.len();
            if !step.logits {
                out.push(None);
                continue;
            }
            let token = seq.tokens[seq.next.min(seq.tokens.len() - 1)];
            seq.next += 1;
            let mut logits = vec![0.0; vocab_size];
            logits[token as usize] = 100.0;
            out.push(Some(logits));
        }
        Ok(out)
    }
}

/// A tokenizer over `tokens` (id 0 is the unknown token), in order of
/// first appearance.
fn word_level(tokens: impl Iterator<Item = String>) -> Tokenizer {
    let mut vocab: HashMap<String, u32> = HashMap::new();
    vocab.insert("[UNK]".into(), 0);
    for token in tokens {
        let next = vocab.len() as u32;
        vocab.entry(token).or_insert(next);
    }
    let model = WordLevel::builder()
        .vocab(vocab.into_iter().collect())
        .unk_token("[UNK]".into())
        .build()
        .unwrap();
    Tokenizer::new(model)
}

/// A character-level tokenizer over `texts`' characters and printable
/// ASCII, with ChatML's two control tokens; decoding concatenates.
fn char_tokenizer(texts: &[&str]) -> Tokenizer {
    let chars = texts
        .iter()
        .flat_map(|t| t.chars())
        .chain((32u8..127).map(char::from))
        .chain(['\n', '\u{200B}'])
        .map(|c| c.to_string());
    let mut tokenizer = word_level(chars);
    let split = Split::new(
        SplitPattern::Regex(r"[\s\S]".into()),
        SplitDelimiterBehavior::Isolated,
        false,
    )
    .unwrap();
    tokenizer.with_pre_tokenizer(Some(split));
    tokenizer.with_decoder(Some(Fuse::new()));
    let _ = tokenizer.add_special_tokens(vec![
        AddedToken::from("<|im_start|>", true),
        AddedToken::from("<|im_end|>", true),
    ]);
    tokenizer
}

/// The generation queue over a [`ScriptedDecoder`], and its script.
fn scripted_generator(texts: &[&str]) -> (GenerateQueue, Arc<Mutex<String>>) {
    let tokenizer = char_tokenizer(texts);
    let id = |t: &str| tokenizer.token_to_id(t).unwrap();
    let (start, end) = (id("<|im_start|>"), id("<|im_end|>"));
    let script = Arc::new(Mutex::new(String::new()));
    let vocab = Vocab {
        tokenizer: tokenizer.clone(),
        bos: None,
        eos: Some((end, "<|im_end|>".into())),
        add_bos: false,
        control: vec![(start, "<|im_start|>".into()), (end, "<|im_end|>".into())],
        chat_template: Some(CHATML.into()),
    };
    let decoder = ScriptedDecoder {
        tokenizer,
        script: Arc::clone(&script),
        end,
    };
    let config = GenerateConfig {
        queue_capacity: 4,
        ..GenerateConfig::default()
    };
    let queue = GenerateQueue::with_model(Box::new(decoder), vocab, config).unwrap();
    (queue, script)
}

/// A document with no title or metadata.
pub(crate) fn doc(id: &str, text: &str) -> Document {
    Document {
        id: id.into(),
        title: String::new(),
        text: text.into(),
        metadata: Default::default(),
    }
}

/// An engine over a temporary directory with the hashing embedder
/// knowing `texts`, and no generation model.
pub(crate) struct TestEngine {
    pub engine: Engine,
    script: Option<Arc<Mutex<String>>>,
    // Dropped after the engine.
    _dir: tempfile::TempDir,
}

impl TestEngine {
    pub(crate) fn new(texts: &[&str]) -> Self {
        Self::open(texts, false)
    }

    /// As [`TestEngine::new`], with a scripted generation model: set
    /// [`TestEngine::script`] to what it answers.
    pub(crate) fn with_generator(texts: &[&str]) -> Self {
        Self::open(texts, true)
    }

    /// As [`TestEngine::new`], over another storage backend.
    pub(crate) fn on_storage(texts: &[&str], storage: Arc<dyn crate::storage::Storage>) -> Self {
        Self::open_on(texts, false, Some(storage))
    }

    fn open(texts: &[&str], generate: bool) -> Self {
        Self::open_on(texts, generate, None)
    }

    fn open_on(
        texts: &[&str],
        generate: bool,
        storage: Option<Arc<dyn crate::storage::Storage>>,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = EngineConfig::retrieval_only(
            dir.path().join("data"),
            ModelCache::new(dir.path().join("models")),
            "path:/nonexistent".parse::<ModelSource>().unwrap(),
        );
        config.min_free_disk_bytes = 0;
        let embedder = EmbedQueue::with_models(
            vec![Box::new(HashEmbedder::for_texts(texts))],
            QueueConfig::default(),
        )
        .unwrap();
        let (generator, script) = if generate {
            let (queue, script) = scripted_generator(texts);
            (Some((queue, "scripted".to_owned())), Some(script))
        } else {
            (None, None)
        };
        let engine = match storage {
            Some(storage) => Engine::with_storage(config, storage, embedder, generator),
            None => Engine::open_with_models(config, embedder, generator).unwrap(),
        };
        Self {
            engine,
            script,
            _dir: dir,
        }
    }

    /// Sets what the scripted model answers next.
    pub(crate) fn script(&self, answer: &str) {
        if let Some(s) = &self.script {
            *s.lock().unwrap() = answer.to_owned();
        }
    }

    /// Creates collection `name` (default settings) and loads `docs`
    /// (id, text).
    pub(crate) async fn load(&self, name: &str, docs: &[(&str, &str)]) -> CollectionName {
        let name = CollectionName::parse(name).unwrap();
        self.engine
            .create_collection(CreateCollection {
                name: name.clone(),
                settings: CollectionSettings::default(),
                placement: Default::default(),
            })
            .await
            .unwrap();
        let docs = docs.iter().map(|(id, text)| doc(id, text)).collect();
        self.engine
            .upsert_documents(name.clone(), docs)
            .await
            .unwrap();
        name
    }
}
