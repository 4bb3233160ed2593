//! Semantic routing state: a route's example prompts, their embeddings once the server has
//! computed them, and the similarity of a request to each target.

use std::sync::OnceLock;

/// The `semantic` part of a route. The table is built without embeddings (building does no I/O);
/// the server embeds [`examples`](Self::examples) once with `embedding_model` and hands the vectors
/// to [`set_example_embeddings`](Self::set_example_embeddings). Until then requests go to the
/// default.
pub struct Semantic {
    /// `provider/model` of the embedding model, served by the gateway's own providers.
    pub embedding_model: String,
    /// Cosine similarity a request must reach to go to the closest target.
    pub threshold: f32,
    /// Where unmatched requests go, as an index into the route's candidates (a target, or the one
    /// extra candidate after them when the default is not a target).
    pub(super) default: usize,
    targets: usize,
    examples: Vec<(usize, String)>,
    /// Unit vectors, so a request's similarity is one dot product per example. Set once: a
    /// request reads them without any lock.
    embeddings: OnceLock<Vec<(usize, Vec<f32>)>>,
}

impl Semantic {
    pub(super) fn new(
        embedding_model: String,
        threshold: f32,
        default: usize,
        targets: usize,
        examples: Vec<(usize, String)>,
    ) -> Self {
        Self { embedding_model, threshold, default, targets, examples, embeddings: OnceLock::new() }
    }

    /// The example texts that still need embeddings, as (target index, text); empty once set.
    pub fn examples(&self) -> Vec<(usize, String)> {
        if self.ready() { Vec::new() } else { self.examples.clone() }
    }

    /// Stores the examples' embeddings, as (target index, vector), one per example. Only the first
    /// call counts: the table is immutable, and a second embedding run would change nothing.
    /// Entries for unknown targets and zero vectors are dropped.
    pub fn set_example_embeddings(&self, embeddings: Vec<(usize, Vec<f32>)>) {
        let units = embeddings
            .into_iter()
            .filter(|(t, _)| *t < self.targets)
            .filter_map(|(t, v)| unit(v).map(|v| (t, v)))
            .collect();
        let _ = self.embeddings.set(units);
    }

    pub fn ready(&self) -> bool {
        self.embeddings.get().is_some()
    }

    /// Each target's highest similarity to `query` (`None` for a target without a usable example);
    /// `None` before the embeddings are set.
    pub(super) fn scores(&self, query: &[f32]) -> Option<Vec<Option<f32>>> {
        let examples = self.embeddings.get()?;
        let mut best = vec![None; self.targets];
        let norm = norm(query);
        if norm == 0.0 {
            return Some(best);
        }
        for (target, example) in examples {
            // An example embedded by another model (other length) cannot be compared.
            if example.len() != query.len() {
                continue;
            }
            let s = dot(example, query) / norm;
            let slot: &mut Option<f32> = &mut best[*target];
            *slot = Some(slot.map_or(s, |b| b.max(s)));
        }
        Some(best)
    }
}

/// Cosine similarity of two vectors; 0 when their lengths differ or either is zero.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return 0.0;
    }
    let n = norm(a) * norm(b);
    if n == 0.0 { 0.0 } else { dot(a, b) / n }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn norm(a: &[f32]) -> f32 {
    dot(a, a).sqrt()
}

fn unit(mut v: Vec<f32>) -> Option<Vec<f32>> {
    let n = norm(&v);
    if n == 0.0 || !n.is_finite() {
        return None;
    }
    v.iter_mut().for_each(|x| *x /= n);
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_of_known_vectors() {
        assert!((cosine(&[1.0, 0.0], &[2.0, 0.0]) - 1.0).abs() < 1e-6);
        assert!(cosine(&[1.0, 0.0], &[0.0, 3.0]).abs() < 1e-6);
        assert!((cosine(&[1.0, 1.0], &[-1.0, -1.0]) + 1.0).abs() < 1e-6);
        assert_eq!(cosine(&[1.0], &[1.0, 0.0]), 0.0);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
    }

    #[test]
    fn embeddings_are_set_once_and_scored_per_target() {
        let s =
            Semantic::new("a/emb".into(), 0.5, 0, 2, vec![(0, "code".into()), (1, "poem".into()), (1, "song".into())]);
        assert!(!s.ready());
        assert_eq!(s.examples().len(), 3);
        assert_eq!(s.scores(&[1.0, 0.0]), None);
        s.set_example_embeddings(vec![
            (0, vec![2.0, 0.0]),
            (1, vec![0.0, 1.0]),
            (1, vec![1.0, 1.0]),
            (7, vec![1.0, 0.0]),
        ]);
        assert!(s.ready() && s.examples().is_empty());
        let scores = s.scores(&[0.0, 5.0]).unwrap();
        assert!(scores[0].unwrap().abs() < 1e-6);
        assert!((scores[1].unwrap() - 1.0).abs() < 1e-6, "the best of the target's examples");
        s.set_example_embeddings(vec![(0, vec![0.0, 1.0])]);
        assert!(s.scores(&[0.0, 1.0]).unwrap()[0].unwrap().abs() < 1e-6, "later calls are ignored");
        assert_eq!(s.scores(&[1.0, 0.0, 0.0]).unwrap(), vec![None, None], "other dimensions are not compared");
    }
}
