//! How well a conditioned model obeys its labels (`vaegan sample --measure`), read by a
//! classifier whose heads predict those labels: per factor, the share of samples read as the
//! class they were asked for; the share read with every requested class; and Larsen et
//! al.'s attribute similarity, the mean cosine between the requested attribute vector and
//! the one the classifier predicts (beside the same figure for real images and their own
//! labels).

use super::classifier::{argmax, Spec};
use crate::train::{Result, TrainError};

/// What a conditioned model's label columns (`names`, the model's `conditions`) mean to a
/// classifier: for each head, the column of each of its classes (a categorical head's
/// attributes; a binary head's one attribute, on its "with" class), or none where the model
/// has no such label. Heads with no column are not conditioned and not scored.
#[derive(Clone, Debug)]
pub struct LabelMap {
    pub spec: Spec,
    /// Per head: per class, the model's label column (binary heads: class 1's).
    columns: Vec<Vec<Option<usize>>>,
    /// The model's label count.
    labels: usize,
}

impl LabelMap {
    /// Refuses a model label the classifier does not predict.
    pub fn new(spec: &Spec, names: &[String]) -> Result<LabelMap> {
        let known: Vec<&String> = spec.heads.iter().flat_map(|h| &h.attributes).collect();
        if let Some(unknown) = names.iter().find(|n| !known.contains(n)) {
            return Err(TrainError::Invalid(format!(
                "the model is conditioned on {unknown:?}, which the classifier ({}) does not predict",
                spec.heads.iter().map(|h| h.name.as_str()).collect::<Vec<_>>().join(", ")
            )));
        }
        let column = |a: &String| names.iter().position(|n| n == a);
        let columns =
            spec.heads.iter().map(|h| if h.binary { vec![None, column(&h.attributes[0])] } else { h.attributes.iter().map(column).collect() }).collect();
        Ok(LabelMap { spec: spec.clone(), columns, labels: names.len() })
    }

    /// Whether head `h` is conditioned: a categorical head needs a label per class (a
    /// combination must name one), a binary one its attribute.
    pub fn conditioned(&self, h: usize) -> bool {
        if self.spec.heads[h].binary {
            self.columns[h][1].is_some()
        } else {
            self.columns[h].iter().all(Option::is_some)
        }
    }

    /// The class a label row asks of head `h`, if it asks one.
    fn requested(&self, h: usize, row: &[f32]) -> Option<usize> {
        if !self.conditioned(h) {
            return None;
        }
        if self.spec.heads[h].binary {
            return Some(usize::from(row[self.columns[h][1].expect("conditioned")] > 0.5));
        }
        let on: Vec<usize> = (0..self.columns[h].len()).filter(|&k| row[self.columns[h][k].expect("conditioned")] > 0.5).collect();
        (on.len() == 1).then(|| on[0])
    }

    /// `n` label rows, each a full combination: the classes `fixed` names (label names, at
    /// most one class per head), and every other conditioned head's class cycling, sample
    /// by sample (the first free head fastest), so that n ≥ the free combinations covers
    /// each equally. Also returns the free heads' class counts, fastest first.
    pub fn combinations(&self, names: &[String], fixed: &[&str], n: usize) -> Result<(Vec<f32>, Vec<usize>)> {
        let mut chosen: Vec<Option<usize>> = vec![None; self.spec.heads.len()];
        for want in fixed {
            let Some(col) = names.iter().position(|name| name == want) else {
                return Err(TrainError::Invalid(format!("{want:?}: the model's labels are {}", names.join(", "))));
            };
            let (h, k) = (0..self.columns.len())
                .find_map(|h| self.columns[h].iter().position(|&c| c == Some(col)).map(|k| (h, k)))
                .expect("every model label is a classifier attribute (LabelMap::new)");
            if let Some(other) = chosen[h].filter(|&o| o != k) {
                let head = &self.spec.heads[h];
                return Err(TrainError::Invalid(format!("{want:?} and {:?} are both classes of {:?}: name one per factor", head.classes[other], head.name)));
            }
            chosen[h] = Some(k);
        }
        let free: Vec<usize> = (0..self.columns.len()).filter(|&h| chosen[h].is_none() && self.conditioned(h)).collect();
        let mut rows = vec![0.0; n * self.labels];
        for (i, row) in rows.chunks_mut(self.labels).enumerate() {
            let mut rest = i;
            for (h, chose) in chosen.iter().enumerate() {
                let class = match *chose {
                    Some(k) => k,
                    None if free.contains(&h) => {
                        let k = rest % self.columns[h].len();
                        rest /= self.columns[h].len();
                        k
                    }
                    None => continue,
                };
                if let Some(col) = self.columns[h][class] {
                    row[col] = 1.0;
                }
            }
        }
        Ok((rows, free.iter().map(|&h| self.columns[h].len()).collect()))
    }

    /// The attribute vector (over the model's labels) a classifier's probability row
    /// predicts: each label's class probability.
    fn predicted(&self, p: &[f32]) -> Vec<f32> {
        let mut v = vec![0.0; self.labels];
        for (h, o) in self.spec.offsets().into_iter().enumerate() {
            for (k, col) in self.columns[h].iter().enumerate() {
                if let Some(c) = col {
                    v[*c] = p[o + k];
                }
            }
        }
        v
    }
}

/// Per conditioned head: (the head's name, per class: (class, samples asked for it, read as
/// it)).
pub type HeadTable = (String, Vec<(String, usize, usize)>);

#[derive(Clone, Debug)]
pub struct ConditionScore {
    pub heads: Vec<HeadTable>,
    /// Samples, and the share read with every class they asked for.
    pub samples: usize,
    pub all: f64,
    /// Mean cosine of the requested and the predicted attribute vectors.
    pub similarity: f64,
}

impl ConditionScore {
    /// The share of a head's samples read as the class they asked for.
    pub fn head_share(table: &HeadTable) -> f64 {
        let (asked, hit) = table.1.iter().fold((0, 0), |(a, h), (_, n, k)| (a + n, h + k));
        hit as f64 / asked.max(1) as f64
    }
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let norm = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b)).max(1e-12)
}

/// Scores `probs` (the classifier's, n × every head's classes) against the label rows the
/// images were made with (or, for real images, their own labels).
pub fn score(map: &LabelMap, labels: &[f32], probs: &[f32]) -> ConditionScore {
    let spec = &map.spec;
    let heads: Vec<usize> = (0..spec.heads.len()).filter(|&h| map.conditioned(h)).collect();
    let mut tables: Vec<HeadTable> =
        heads.iter().map(|&h| (spec.heads[h].name.clone(), spec.heads[h].classes.iter().map(|c| (c.clone(), 0, 0)).collect())).collect();
    let offsets = spec.offsets();
    let (mut all, mut similarity, mut n) = (0usize, 0.0f64, 0usize);
    for (row, p) in labels.chunks(map.labels).zip(probs.chunks(spec.total_classes())) {
        n += 1;
        let mut every = true;
        for (t, &h) in heads.iter().enumerate() {
            let got = argmax(&p[offsets[h]..offsets[h] + spec.heads[h].classes.len()]);
            match map.requested(h, row) {
                Some(k) => {
                    tables[t].1[k].1 += 1;
                    tables[t].1[k].2 += usize::from(got == k);
                    every &= got == k;
                }
                None => every = false,
            }
        }
        all += usize::from(every);
        similarity += cosine(row, &map.predicted(p));
    }
    ConditionScore { heads: tables, samples: n, all: all as f64 / n.max(1) as f64, similarity: similarity / n.max(1) as f64 }
}
