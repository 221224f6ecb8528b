//! Examples, feature rows in sparse form, batches and their order.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor, TensorData};

use crate::error::TrainError;
use crate::input::FeatureMatrix;
use crate::model::SparseBranchBatch;
use crate::spec::LexicalDropout;
use crate::vectors::Embeddings;

/// Tokenized (fine-tuning) or pre-encoded (frozen encoder) examples. `rows[i]` is example
/// i's row in the feature matrices and the embeddings.
pub(crate) struct Examples {
    /// Token ids per example; empty with a frozen encoder.
    pub tokens: Vec<Vec<u32>>,
    pub labels: Vec<u32>,
    pub rows: Vec<usize>,
    /// Pad every batch to this length (GPU: static shapes, so CubeCL compiles and
    /// autotunes each kernel once instead of once per batch length). `None`: pad to the
    /// batch's longest row (CPU).
    pub pad_to: Option<usize>,
}

impl Examples {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    fn token_len(&self, i: usize) -> usize {
        self.tokens.get(i).map_or(0, Vec::len)
    }
}

/// A feature matrix as its nonzero entries per row, with what the branch's pooling needs.
pub(crate) struct SparseRows {
    cols: usize,
    nonzero: Vec<Vec<(u32, f32)>>,
    /// Per-class pooling: the class of each column (`None`: the columns are the classes).
    column_class: Option<Vec<u32>>,
    /// 0 for global max pooling.
    classes: usize,
    /// Columns per class (per-class pooling) and their inverses (`[1]` for global max).
    count: Vec<f32>,
    inv_count: Vec<f32>,
}

impl SparseRows {
    pub fn new(m: &FeatureMatrix, column_class: Option<Vec<u32>>, classes: usize) -> SparseRows {
        let nonzero = (0..m.rows)
            .map(|r| {
                m.row(r)
                    .iter()
                    .enumerate()
                    .filter(|(_, &v)| v != 0)
                    .map(|(c, &v)| (c as u32, f32::from(v)))
                    .collect()
            })
            .collect();
        let mut count = vec![0f32; classes.max(1)];
        if classes == 0 {
            count[0] = 1.0;
        } else {
            for col in 0..m.cols {
                let c = column_class.as_ref().map_or(col, |cc| cc[col] as usize);
                count[c] += 1.0;
            }
        }
        // A class without columns averages nothing: 0, as in the dense form.
        let inv_count = count.iter().map(|&n| 1.0 / n.max(1.0)).collect();
        SparseRows {
            cols: m.cols,
            nonzero,
            column_class,
            classes,
            count,
            inv_count,
        }
    }

    fn class_of(&self, col: usize) -> usize {
        self.column_class
            .as_ref()
            .map_or(col, |cc| cc[col] as usize)
    }

    /// The convolution windows of `rows` for a kernel of `kernel` columns ("same"
    /// padding), as burn tensors ([`SparseWindows::tensors`]).
    pub fn batch<B: Backend>(
        &self,
        rows: &[usize],
        kernel: usize,
        hide: Option<HideLexical>,
        device: &B::Device,
    ) -> SparseBranchBatch<B> {
        self.windows(rows, kernel, hide).tensors(device)
    }

    /// The convolution windows of `rows` for a kernel of `kernel` columns ("same"
    /// padding): every position within `kernel / 2` of a nonzero column, with the `kernel`
    /// input values it sees. A row `hide` hides has no nonzero column: every class is
    /// equally uncovered, so the branch favours none.
    pub fn windows(
        &self,
        rows: &[usize],
        kernel: usize,
        hide: Option<HideLexical>,
    ) -> SparseWindows {
        let pad = (kernel - 1) / 2;
        let slots = self.classes.max(1);
        // Each row's nonzero columns, decided once.
        let nonzero: Vec<&[(u32, f32)]> = rows
            .iter()
            .map(|&r| match hide {
                Some(h) if h.hides(r) => &[][..],
                _ => &self.nonzero[r][..],
            })
            .collect();
        let mut dense = vec![0f32; self.cols];
        let mut covered: Vec<Vec<usize>> = Vec::with_capacity(rows.len());
        for &row in &nonzero {
            let mut pos: Vec<usize> = Vec::new();
            for &(c, _) in row {
                let c = c as usize;
                let lo = c.saturating_sub(pad).max(pos.last().map_or(0, |&p| p + 1));
                let hi = (c + pad).min(self.cols - 1);
                pos.extend(lo..=hi);
            }
            covered.push(pos);
        }
        let positions = covered.iter().map(Vec::len).max().unwrap_or(0).max(1);
        let n = rows.len() * positions;
        let mut windows = vec![0f32; n * kernel];
        let mut valid = vec![0f32; n];
        let mut target = vec![0usize; n];
        let mut uncovered = vec![0f32; rows.len() * slots];
        for (k, (&row, pos)) in nonzero.iter().zip(&covered).enumerate() {
            for &(c, v) in row {
                dense[c as usize] = v;
            }
            let un = &mut uncovered[k * slots..(k + 1) * slots];
            if self.classes == 0 {
                un[0] = f32::from(pos.len() < self.cols);
            } else {
                un.copy_from_slice(&self.count);
            }
            for (j, &p) in pos.iter().enumerate() {
                let e = k * positions + j;
                valid[e] = 1.0;
                for w in 0..kernel {
                    if let Some(col) = (p + w).checked_sub(pad).filter(|&c| c < self.cols) {
                        windows[e * kernel + w] = dense[col];
                    }
                }
                if self.classes > 0 {
                    let class = self.class_of(p);
                    target[e] = k * slots + class;
                    un[class] -= 1.0;
                }
            }
            for &(c, _) in row {
                dense[c as usize] = 0.0;
            }
        }
        SparseWindows {
            rows: rows.len(),
            positions,
            kernel,
            windows,
            valid,
            target,
            uncovered,
            inv_count: self.inv_count.clone(),
        }
    }
}

/// One batch of a CNN branch's input in sparse form, as plain arrays (the fields of
/// [`SparseBranchBatch`], which documents them); the native head reads them as they are.
pub(crate) struct SparseWindows {
    pub rows: usize,
    pub positions: usize,
    pub kernel: usize,
    pub windows: Vec<f32>,
    pub valid: Vec<f32>,
    pub target: Vec<usize>,
    pub uncovered: Vec<f32>,
    pub inv_count: Vec<f32>,
}

impl SparseWindows {
    pub fn tensors<B: Backend>(self, device: &B::Device) -> SparseBranchBatch<B> {
        let n = self.rows * self.positions;
        let slots = self.uncovered.len() / self.rows.max(1);
        let f2 =
            |v: Vec<f32>, shape: [usize; 2]| Tensor::from_data(TensorData::new(v, shape), device);
        let target: Vec<i64> = self.target.iter().map(|&t| t as i64).collect();
        let classes = self.inv_count.len();
        SparseBranchBatch {
            rows: self.rows,
            positions: self.positions,
            windows: f2(self.windows, [n, self.kernel]),
            valid: f2(self.valid, [n, 1]),
            target: Tensor::from_data(TensorData::new(target, [n]), device),
            uncovered: f2(self.uncovered, [self.rows, slots]),
            inv_count: Tensor::from_data(TensorData::new(self.inv_count, [classes]), device),
        }
    }
}

/// What the model reads besides the branches.
pub(crate) enum ModelInput<B: Backend> {
    Tokens {
        ids: Tensor<B, 2, Int>,
        mask_pad: Tensor<B, 2, Bool>,
    },
    Vectors(Tensor<B, 2>),
    /// The evidence head's input, split on the host ([`EvidenceLayout`]).
    Evidence {
        /// `[batch, encoder width]`.
        vectors: Tensor<B, 2>,
        /// `[batch, classes, blocks]`: each class's per-class values side by side; `None`
        /// when the vectors carry no blocks.
        blocks: Option<Tensor<B, 3>>,
    },
}

/// How the evidence head reads a frozen vector: the encoder's `width` values, then whole
/// blocks of one value per class. Splitting (and transposing the blocks to class-major)
/// while the batch is copied out costs nothing, where the same on burn tensors was a
/// strided copy per batch, forward and backward (docs/PERF.md, "Candidate heads").
#[derive(Debug, Clone, Copy)]
pub(crate) struct EvidenceLayout {
    pub width: usize,
    pub classes: usize,
}

pub(crate) struct Batch<B: Backend> {
    pub input: ModelInput<B>,
    pub llm: Option<SparseBranchBatch<B>>,
    pub rules: Option<SparseBranchBatch<B>>,
    pub labels: Tensor<B, 1, Int>,
}

/// Everything a batch is cut from besides the examples.
pub(crate) struct Sources<'a> {
    pub embeddings: Option<&'a Embeddings>,
    /// Set for the evidence head: its vectors come split ([`ModelInput::Evidence`]).
    pub evidence: Option<EvidenceLayout>,
    pub llm: Option<SparseRows>,
    pub rules: Option<SparseRows>,
    pub kernel: usize,
    pub pad_id: u32,
}

/// The batch of examples `idx`; `hide`: the training epoch's lexical dropout, if any
/// (never for validation, test or inference rows).
pub(crate) fn make_batch<B: Backend>(
    ex: &Examples,
    idx: &[usize],
    src: &Sources,
    hide: Option<HideLexical>,
    device: &B::Device,
) -> Batch<B> {
    let rows: Vec<usize> = idx.iter().map(|&i| ex.rows[i]).collect();
    let input = match src.embeddings {
        Some(e) if src.evidence.is_some() => {
            let layout = src.evidence.expect("checked");
            evidence_input(e, &rows, layout, hide, device)
        }
        Some(e) => {
            let mut v = Vec::with_capacity(rows.len() * e.dim);
            for &r in &rows {
                v.extend_from_slice(e.row(r));
            }
            ModelInput::Vectors(Tensor::from_data(
                TensorData::new(v, [rows.len(), e.dim]),
                device,
            ))
        }
        None => {
            let longest = idx
                .iter()
                .map(|&i| ex.token_len(i))
                .max()
                .unwrap_or(1)
                .max(1);
            let len = ex.pad_to.map_or(longest, |p| p.max(longest));
            let mut ids = Vec::with_capacity(idx.len() * len);
            let mut mask = Vec::with_capacity(idx.len() * len);
            for &i in idx {
                let t = &ex.tokens[i];
                for p in 0..len {
                    ids.push(t.get(p).map_or(src.pad_id, |&x| x) as i64);
                    mask.push(p >= t.len());
                }
            }
            ModelInput::Tokens {
                ids: Tensor::from_data(TensorData::new(ids, [idx.len(), len]), device),
                mask_pad: Tensor::from_data(TensorData::new(mask, [idx.len(), len]), device),
            }
        }
    };
    let labels: Vec<i64> = idx.iter().map(|&i| i64::from(ex.labels[i])).collect();
    Batch {
        input,
        llm: src
            .llm
            .as_ref()
            .map(|s| s.batch(&rows, src.kernel, hide, device)),
        rules: src
            .rules
            .as_ref()
            .map(|s| s.batch(&rows, src.kernel, hide, device)),
        labels: Tensor::from_data(TensorData::new(labels, [idx.len()]), device),
    }
}

/// The evidence head's input of `rows`: their first `width` values, and their blocks
/// transposed from `[blocks, classes]` to `[classes, blocks]`.
pub(crate) fn evidence_input<B: Backend>(
    e: &Embeddings,
    rows: &[usize],
    layout: EvidenceLayout,
    hide: Option<HideLexical>,
    device: &B::Device,
) -> ModelInput<B> {
    let (vectors, per_class, blocks) = evidence_parts(e, rows, layout, hide);
    let (n, w, c) = (rows.len(), layout.width, layout.classes);
    ModelInput::Evidence {
        vectors: Tensor::from_data(TensorData::new(vectors, [n, w]), device),
        blocks: (blocks > 0)
            .then(|| Tensor::from_data(TensorData::new(per_class, [n, c, blocks]), device)),
    }
}

/// [`evidence_input`] as plain arrays: `[rows, width]`, `[rows, classes, blocks]` and the
/// number of blocks.
pub(crate) fn evidence_parts(
    e: &Embeddings,
    rows: &[usize],
    layout: EvidenceLayout,
    hide: Option<HideLexical>,
) -> (Vec<f32>, Vec<f32>, usize) {
    let (w, c) = (layout.width, layout.classes);
    let blocks = (e.dim - w) / c;
    let mut vectors = Vec::with_capacity(rows.len() * w);
    let mut per_class = Vec::with_capacity(rows.len() * c * blocks);
    for &r in rows {
        let row = e.row(r);
        vectors.extend_from_slice(&row[..w]);
        for class in 0..c {
            per_class.extend((0..blocks).map(|k| row[w + k * c + class]));
        }
        if let Some(h) = hide.filter(|h| h.hides(r)) {
            let values = &row[w..];
            let cells = per_class.len() - c * blocks;
            for k in h.dropout.from_block.min(blocks)..blocks {
                let mean = values[k * c..(k + 1) * c].iter().sum::<f32>() / c as f32;
                for class in 0..c {
                    per_class[cells + class * blocks + k] = mean;
                }
            }
        }
    }
    (vectors, per_class, blocks)
}

/// The training rows of one epoch whose lexical evidence is hidden
/// ([`LexicalDropout`]): decided per dataset row from the epoch's seed, so every trainer,
/// batch order and thread count hides the same rows.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HideLexical {
    pub dropout: LexicalDropout,
    seed: u64,
}

impl HideLexical {
    /// Epoch `epoch`'s rows of a candidate seeded `seed`; `None` when the dropout is off.
    pub fn for_epoch(dropout: Option<LexicalDropout>, seed: u64, epoch: usize) -> Option<Self> {
        dropout.map(|dropout| HideLexical {
            dropout,
            seed: derive_seed(seed, P_LEXICAL, epoch as u64),
        })
    }

    /// Whether dataset row `row` is hidden this epoch.
    pub fn hides(&self, row: usize) -> bool {
        let u = derive_seed(self.seed, P_LEXICAL, row as u64) >> 11;
        (u as f64) < self.dropout.rate * (1u64 << 53) as f64
    }
}

/// Mix a seed with a purpose and an index (splitmix64).
pub(crate) fn derive_seed(seed: u64, purpose: u64, index: u64) -> u64 {
    let mut z = seed
        ^ purpose.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub(crate) const P_INIT: u64 = 1;
pub(crate) const P_EPOCH: u64 = 2;
pub(crate) const P_SUBSAMPLE: u64 = 3;
pub(crate) const P_SHUFFLE: u64 = 4;
pub(crate) const P_LEXICAL: u64 = 5;

/// Batches of one epoch: a seeded permutation; with `sort_by_length` (and tokens), windows
/// of 50 batches are sorted by length and the batch order is shuffled again.
pub(crate) fn epoch_batches(
    ex: &Examples,
    batch: usize,
    sort: bool,
    seed: u64,
    epoch: usize,
) -> Vec<Vec<usize>> {
    let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(seed, P_SHUFFLE, epoch as u64));
    let mut perm: Vec<usize> = (0..ex.len()).collect();
    perm.shuffle(&mut rng);
    if !sort || ex.tokens.is_empty() {
        return perm.chunks(batch).map(<[usize]>::to_vec).collect();
    }
    let mut batches = Vec::new();
    for window in perm.chunks(batch * 50) {
        let mut w = window.to_vec();
        w.sort_by_key(|&i| ex.token_len(i));
        batches.extend(w.chunks(batch).map(<[usize]>::to_vec));
    }
    batches.shuffle(&mut rng);
    batches
}

/// Evaluation order: by length, in batches of 64.
pub(crate) fn eval_batches(ex: &Examples) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..ex.len()).collect();
    order.sort_by_key(|&i| ex.token_len(i));
    order.chunks(64).map(<[usize]>::to_vec).collect()
}

/// Check a feature matrix against the rows it must describe.
pub(crate) fn check_matrix(
    name: &str,
    m: Option<&FeatureMatrix>,
    wanted: bool,
    rows: usize,
) -> Result<(), TrainError> {
    match (m, wanted) {
        (None, true) => Err(TrainError::Input(format!(
            "the model uses the {name} branch but no {name} feature matrix was given"
        ))),
        (Some(m), true) => {
            if m.rows != rows || m.data.len() != m.rows * m.cols || m.cols == 0 {
                Err(TrainError::Input(format!(
                    "{name} feature matrix is {}x{} with {} bytes; expected {rows} rows (one per input row), cols > 0, rows*cols bytes",
                    m.rows,
                    m.cols,
                    m.data.len()
                )))
            } else {
                Ok(())
            }
        }
        _ => Ok(()),
    }
}

/// Every row of `m` as one sparse branch batch (for tests and benches).
pub fn sparse_batch<B: Backend>(
    m: &FeatureMatrix,
    column_class: Option<Vec<u32>>,
    classes: usize,
    kernel: usize,
    device: &B::Device,
) -> SparseBranchBatch<B> {
    let rows: Vec<usize> = (0..m.rows).collect();
    SparseRows::new(m, column_class, classes).batch(&rows, kernel, None, device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexical_dropout_hides_the_lexical_blocks_and_branch_inputs_of_the_rows_it_hides() {
        let (w, c, blocks) = (2, 3, 3);
        let rows = 400;
        let dim = w + blocks * c;
        let data: Vec<f32> = (0..rows * dim).map(|i| (i % 7) as f32 + 0.5).collect();
        let e = Embeddings {
            rows,
            dim,
            data,
            pooling: crate::vectors::Pooling::Mean,
            encoder_id: String::new(),
        };
        let layout = EvidenceLayout {
            width: w,
            classes: c,
        };
        let all: Vec<usize> = (0..rows).collect();
        let dropout = LexicalDropout {
            rate: 0.5,
            from_block: 1,
        };
        let hide = HideLexical::for_epoch(Some(dropout), 7, 3);
        let (v0, plain, _) = evidence_parts(&e, &all, layout, None);
        let (v1, hidden, _) = evidence_parts(&e, &all, layout, hide);
        assert_eq!(v0, v1, "the encoder's values are never touched");
        let h = hide.unwrap();
        let hidden_rows = all.iter().filter(|&&r| h.hides(r)).count();
        assert!((150..250).contains(&hidden_rows), "{hidden_rows} of {rows}");
        for r in 0..rows {
            let cell = |m: &[f32], class: usize, k: usize| m[(r * c + class) * blocks + k];
            for k in 0..blocks {
                let column: Vec<f32> = (0..c).map(|class| cell(&hidden, class, k)).collect();
                let original: Vec<f32> = (0..c).map(|class| cell(&plain, class, k)).collect();
                if h.hides(r) && k >= 1 {
                    let mean = original.iter().sum::<f32>() / c as f32;
                    assert!(column.iter().all(|&x| x == mean), "row {r} block {k}");
                } else {
                    assert_eq!(column, original, "row {r} block {k}");
                }
            }
        }
        // Another epoch hides other rows; the same epoch the same ones.
        let other = HideLexical::for_epoch(Some(dropout), 7, 4).unwrap();
        assert!(all.iter().any(|&r| other.hides(r) != h.hides(r)));
        let again = HideLexical::for_epoch(Some(dropout), 7, 3).unwrap();
        assert!(all.iter().all(|&r| again.hides(r) == h.hides(r)));
        assert!(HideLexical::for_epoch(None, 7, 3).is_none());

        // A CNN branch's input: a hidden row has no covered position, every class all
        // uncovered; the others are as without the dropout.
        let m = FeatureMatrix {
            rows,
            cols: 6,
            data: (0..rows * 6).map(|i| u8::from(i % 4 == 0)).collect(),
        };
        let sparse = SparseRows::new(&m, Some(vec![0, 0, 1, 1, 2, 2]), c);
        let plain = sparse.windows(&all, 3, None);
        let hidden = sparse.windows(&all, 3, hide);
        let p = plain.positions;
        for r in 0..rows {
            let valid = |x: &SparseWindows| x.valid[r * x.positions..][..x.positions].to_vec();
            let uncovered = |x: &SparseWindows| x.uncovered[r * c..][..c].to_vec();
            if h.hides(r) {
                assert!(valid(&hidden).iter().all(|&v| v == 0.0), "row {r}");
                assert_eq!(uncovered(&hidden), vec![2.0; c], "row {r}");
            } else {
                assert_eq!(valid(&hidden)[..p], valid(&plain)[..], "row {r}");
                assert_eq!(uncovered(&hidden), uncovered(&plain), "row {r}");
            }
        }
    }

    #[test]
    fn seeds_differ_by_purpose_and_index() {
        assert_ne!(derive_seed(1, P_EPOCH, 0), derive_seed(1, P_EPOCH, 1));
        assert_ne!(derive_seed(1, P_EPOCH, 0), derive_seed(1, P_SHUFFLE, 0));
    }
}
