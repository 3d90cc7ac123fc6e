//! Language-balanced search over a multilingual store.
//!
//! A multilingual embedder places every text of one language a little closer to every other
//! text of that language: on nfai's labelled set, multilingual-e5-small scores a Vietnamese
//! question a few hundredths higher against any Vietnamese chunk than against the English chunk
//! that answers it, which is enough to push the answer out of the top five. The bias is the
//! language's mean vector: a chunk's score against a query is the query's dot product with
//! the chunk, and the part of the chunk that every chunk of its language shares (the mean)
//! adds the same amount to all of them.
//!
//! So a search scores each chunk as `q · p − q · (μ_lang(p) − μ̄)`: the language means `μ` are
//! measured on a sample of the store, `μ̄` is their average, and chunks of each language
//! lose their language's lead over the average. This is language-mean centering (Libovický et
//! al., "On the Language Neutrality of Pre-trained Multilingual Representations", 2020) applied
//! at ranking time: the correction is constant within a language, so it is exact with one
//! filtered search per language, merged by corrected score, and the index is unchanged.
//! Chunks of one language keep their order, and a store with one language is searched as is.

use std::collections::BTreeMap;

use futures::future::try_join_all;

use crate::error::Result;
use crate::store::VectorStore;
use crate::types::{LanguageScope, SampledChunk, SearchHit, SearchQuery};

/// Chunks sampled to measure a store's languages; the means of a larger store are estimated
/// from this many.
pub const SAMPLE_CHUNKS: usize = 4096;

/// Fewest sampled chunks for a language to be balanced on its own; rarer languages (and chunks
/// of no known language) form one group together, balanced only if it is as large.
const MIN_GROUP: usize = 8;

/// One language group: which chunks, and how far its mean lies from the average of the means.
#[derive(Debug, Clone, PartialEq)]
struct Group {
    scope: LanguageScope,
    /// `μ_group − μ̄`.
    lead: Vec<f32>,
}

/// A store's language groups, measured on a sample of its chunks.
#[derive(Debug, Clone, PartialEq)]
pub struct LanguageBalance {
    groups: Vec<Group>,
    /// Chunks the measure was made on.
    sampled: usize,
}

impl LanguageBalance {
    /// Samples `name` and measures its languages; `None` when it holds fewer than two groups
    /// (nothing to balance).
    pub async fn measure(store: &dyn VectorStore, name: &str) -> Result<Option<Self>> {
        Ok(Self::from_sample(&store.sample(name, SAMPLE_CHUNKS).await?))
    }

    /// The groups of `sample`; `None` when it holds fewer than two.
    pub fn from_sample(sample: &[SampledChunk]) -> Option<Self> {
        let dim = sample.first()?.vector.len();
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for chunk in sample {
            if let Some(lang) = &chunk.lang {
                *counts.entry(lang).or_default() += 1;
            }
        }
        let known: Vec<String> = counts
            .into_iter()
            .filter(|&(_, n)| n >= MIN_GROUP)
            .map(|(lang, _)| lang.to_owned())
            .collect();
        let group_of = |chunk: &SampledChunk| {
            chunk
                .lang
                .as_ref()
                .and_then(|lang| known.iter().position(|k| k == lang))
                .unwrap_or(known.len())
        };
        // Sums in f64: a few thousand vectors of components near ±0.1.
        let mut sums = vec![(vec![0f64; dim], 0usize); known.len() + 1];
        for chunk in sample.iter().filter(|c| c.vector.len() == dim) {
            let (sum, n) = &mut sums[group_of(chunk)];
            for (s, x) in sum.iter_mut().zip(&chunk.vector) {
                *s += f64::from(*x);
            }
            *n += 1;
        }
        // Groups too small for a stable mean (only the rest group can be) are left as they
        // are: no lead, and no part in the average.
        // The rest group is searched even when the sample holds none of it: chunks of no known
        // language stored since, or missed by the sample of a large store, stay findable.
        let mut means = Vec::new();
        for (i, (sum, n)) in sums.into_iter().enumerate() {
            if n == 0 && i < known.len() {
                continue;
            }
            let scope = match known.get(i) {
                Some(lang) => LanguageScope::Is(lang.clone()),
                None => LanguageScope::NoneOf(known.clone()),
            };
            let mean = (n >= MIN_GROUP).then(|| sum.iter().map(|s| s / n as f64).collect());
            means.push((scope, mean));
        }
        let measured: Vec<&Vec<f64>> = means.iter().filter_map(|(_, m)| m.as_ref()).collect();
        if measured.len() < 2 {
            return None;
        }
        let average: Vec<f64> = (0..dim)
            .map(|d| measured.iter().map(|m| m[d]).sum::<f64>() / measured.len() as f64)
            .collect();
        let groups = means
            .into_iter()
            .map(|(scope, mean)| Group {
                scope,
                lead: match mean {
                    Some(mean) => mean
                        .iter()
                        .zip(&average)
                        .map(|(m, a)| (m - a) as f32)
                        .collect(),
                    None => vec![0.0; dim],
                },
            })
            .collect();
        Some(Self {
            groups,
            sampled: sample.len(),
        })
    }

    /// How many chunks the measure was made on.
    pub fn sampled(&self) -> usize {
        self.sampled
    }

    /// The languages balanced, as their scopes.
    pub fn scopes(&self) -> impl Iterator<Item = &LanguageScope> {
        self.groups.iter().map(|g| &g.scope)
    }

    /// The best chunks for `query` with each language's lead taken off their scores, best
    /// first: one search per language group, each with the query's filter, limit and
    /// (shifted) score threshold.
    pub async fn search(
        &self,
        store: &dyn VectorStore,
        name: &str,
        query: SearchQuery,
    ) -> Result<Vec<SearchHit>> {
        let limit = query.limit;
        // Scores are cosines: the lead is measured against the query's direction.
        let norm = dot(&query.vector, &query.vector)
            .sqrt()
            .max(f32::MIN_POSITIVE);
        let searches = self.groups.iter().map(|group| {
            let lead = dot(&query.vector, &group.lead) / norm;
            let scoped = SearchQuery {
                languages: Some(group.scope.clone()),
                score_threshold: query.score_threshold.map(|t| t + lead),
                ..query.clone()
            };
            async move {
                let mut hits = store.search(name, scoped).await?;
                for hit in &mut hits {
                    hit.score = (hit.score - lead).min(1.0);
                }
                Ok::<_, crate::RetrievalError>(hits)
            }
        });
        let mut hits: Vec<SearchHit> = try_join_all(searches)
            .await?
            .into_iter()
            .flatten()
            .collect();
        hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
        hits.truncate(limit);
        Ok(hits)
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(vector: [f32; 3], lang: Option<&str>) -> SampledChunk {
        SampledChunk {
            vector: vector.to_vec(),
            lang: lang.map(str::to_owned),
        }
    }

    #[test]
    fn one_language_has_nothing_to_balance() {
        let sample: Vec<_> = (0..10)
            .map(|_| chunk([1.0, 0.0, 0.0], Some("vie")))
            .collect();
        assert_eq!(LanguageBalance::from_sample(&sample), None);
        assert_eq!(LanguageBalance::from_sample(&[]), None);
    }

    #[test]
    fn leads_are_each_mean_less_the_average_of_the_means() {
        // Vietnamese leans on axis 1, English on axis 2; unlabelled chunks and a rare language
        // form the rest group.
        let mut sample = Vec::new();
        sample.extend((0..10).map(|_| chunk([1.0, 0.5, 0.0], Some("vie"))));
        sample.extend((0..8).map(|_| chunk([1.0, 0.0, 0.5], Some("eng"))));
        sample.extend((0..5).map(|_| chunk([1.0, 0.0, 0.0], None)));
        sample.extend((0..3).map(|_| chunk([1.0, 0.0, 0.0], Some("fra"))));
        let balance = LanguageBalance::from_sample(&sample).unwrap();
        assert_eq!(balance.sampled(), 26);
        let scopes: Vec<_> = balance.scopes().cloned().collect();
        assert_eq!(
            scopes,
            [
                LanguageScope::Is("eng".into()),
                LanguageScope::Is("vie".into()),
                LanguageScope::NoneOf(vec!["eng".into(), "vie".into()]),
            ]
        );
        // Means: eng (1, 0, .5), vie (1, .5, 0), rest (1, 0, 0); average (1, 1/6, 1/6).
        let leads: Vec<&[f32]> = balance.groups.iter().map(|g| g.lead.as_slice()).collect();
        let close = |a: &[f32], b: [f32; 3]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6);
        assert!(close(leads[0], [0.0, -1.0 / 6.0, 1.0 / 3.0]), "{leads:?}");
        assert!(close(leads[1], [0.0, 1.0 / 3.0, -1.0 / 6.0]), "{leads:?}");
        assert!(close(leads[2], [0.0, -1.0 / 6.0, -1.0 / 6.0]), "{leads:?}");
        // A query leaning like the Vietnamese chunks loses that lead on them only.
        let q = [0.8, 0.6, 0.0];
        assert!(dot(&q, leads[1]) > 0.0 && dot(&q, leads[0]) < 0.0);
    }

    #[test]
    fn a_small_rest_group_keeps_its_scores() {
        let mut sample = Vec::new();
        sample.extend((0..8).map(|_| chunk([1.0, 0.5, 0.0], Some("vie"))));
        sample.extend((0..8).map(|_| chunk([1.0, 0.0, 0.5], Some("eng"))));
        sample.push(chunk([0.0, 0.0, 1.0], None));
        let balance = LanguageBalance::from_sample(&sample).unwrap();
        let leads: Vec<&[f32]> = balance.groups.iter().map(|g| g.lead.as_slice()).collect();
        assert_eq!(leads.len(), 3);
        assert_eq!(leads[2], [0.0; 3]);
        // The average is of the two measured languages only: (1, .25, .25).
        assert!((leads[0][2] - 0.25).abs() < 1e-6 && (leads[1][1] - 0.25).abs() < 1e-6);
    }
}
