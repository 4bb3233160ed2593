//! The mock's embeddings: a deterministic bag of words, so that texts sharing their content
//! words are close and texts sharing none are orthogonal — enough for semantic routing tests,
//! without a model. The same text always gets the same vector, on every protocol and every run.

use serde_json::Value;

/// Length of every vector.
pub const DIMENSIONS: usize = 256;

/// Words too common to say what a text is about.
const STOPWORDS: &[&str] = &[
    "a", "about", "an", "and", "are", "as", "at", "be", "by", "can", "could", "do", "does", "for", "from", "how", "i",
    "in", "is", "it", "its", "me", "my", "of", "on", "or", "please", "s", "so", "that", "the", "this", "to", "was",
    "we", "what", "will", "with", "would", "you", "your",
];

/// FNV-1a, 64 bits: stable across runs, platforms and Rust versions (unlike `DefaultHasher`).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The content words of `text`: lower-cased, split on anything not alphanumeric, stopwords out.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .filter(|w| !STOPWORDS.contains(&w.as_str()))
        .collect()
}

/// The embedding of `text`: each content word adds 1 to the dimension its hash picks, and the sum
/// is scaled to length 1. A text without content words gets one fixed unit vector, so every
/// vector has length 1 and a cosine is always defined.
pub fn embed(text: &str) -> Vec<f64> {
    let mut v = vec![0.0; DIMENSIONS];
    let words = words(text);
    if words.is_empty() {
        v[(fnv1a(b"") % DIMENSIONS as u64) as usize] = 1.0;
        return v;
    }
    for w in &words {
        v[(fnv1a(w.as_bytes()) % DIMENSIONS as u64) as usize] += 1.0;
    }
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

/// Cosine similarity of two vectors of equal length (both unit length here, so their dot product).
pub fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

/// The text of one embeddings input as a request carries it: a string, token ids (embedded as
/// their decimal words), or a Gemini `Content` (its parts' texts).
pub(crate) fn text_of_input(input: &Value) -> String {
    match input {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Array(items) => items.iter().map(text_of_input).collect::<Vec<_>>().join(" "),
        Value::Object(m) => m.get("parts").or_else(|| m.get("text")).map(text_of_input).unwrap_or_default(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn paraphrases_are_close_and_other_topics_are_not() {
        let weather = embed("What's the weather in Paris?");
        let forecast = embed("Tell me the weather forecast for Paris");
        let code = embed("Write a python function to sort a list");
        assert!(cosine(&weather, &forecast) > 0.7, "{}", cosine(&weather, &forecast));
        assert!(cosine(&weather, &code) < 0.1, "{}", cosine(&weather, &code));
        assert!(cosine(&forecast, &code) < 0.1, "{}", cosine(&forecast, &code));
        assert!((cosine(&weather, &embed("paris WEATHER")) - 1.0).abs() < 1e-12, "case and order do not matter");
    }

    #[test]
    fn vectors_are_unit_length_and_stable() {
        for text in ["", "the", "hello world", "été ☀️ 東京"] {
            let v = embed(text);
            assert_eq!(v.len(), DIMENSIONS);
            assert!((v.iter().map(|x| x * x).sum::<f64>() - 1.0).abs() < 1e-12, "{text:?}");
            assert_eq!(v, embed(text));
        }
        assert_eq!(words("What's the weather in Paris?"), ["weather", "paris"]);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c, "the published FNV-1a test vector");
    }

    #[test]
    fn inputs_of_every_shape_have_a_text() {
        assert_eq!(text_of_input(&json!("hi there")), "hi there");
        assert_eq!(text_of_input(&json!([101, 7])), "101 7");
        assert_eq!(text_of_input(&json!({"parts": [{"text": "a"}, {"text": "b"}]})), "a b");
    }
}
