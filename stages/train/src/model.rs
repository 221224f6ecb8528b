//! burn modules: RoBERTa/BERT-layout encoder, CNN feature branches, classification head.

use burn::module::Module;
use burn::nn::conv::{Conv1d, Conv1dConfig};
use burn::nn::transformer::{
    TransformerEncoder, TransformerEncoderConfig, TransformerEncoderInput,
};
use burn::nn::{
    Dropout, DropoutConfig, Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear,
    LinearConfig, PaddingConfig1d,
};
use burn::tensor::activation::relu;
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, IndexingUpdateOp, Int, Tensor};
use serde::{Deserialize, Serialize};

use crate::arch::EncoderArch;

/// Word + position + token-type embeddings, LayerNorm, dropout (HF `embeddings.*`).
#[derive(Module, Debug)]
pub struct Embeddings<B: Backend> {
    pub word_embeddings: Embedding<B>,
    pub position_embeddings: Embedding<B>,
    pub token_type_embeddings: Embedding<B>,
    pub layer_norm: LayerNorm<B>,
    pub dropout: Dropout,
    pub position_offset: usize,
}

/// The text encoder; its parameter paths are what the HF key remapping targets.
#[derive(Module, Debug)]
pub struct TextEncoder<B: Backend> {
    pub embeddings: Embeddings<B>,
    pub transformer: TransformerEncoder<B>,
}

impl<B: Backend> TextEncoder<B> {
    pub fn new(arch: &EncoderArch, device: &B::Device) -> Self {
        let eps = arch.layer_norm_eps;
        let embeddings = Embeddings {
            word_embeddings: EmbeddingConfig::new(arch.vocab_size, arch.hidden).init(device),
            position_embeddings: EmbeddingConfig::new(arch.max_positions, arch.hidden).init(device),
            token_type_embeddings: EmbeddingConfig::new(arch.type_vocab_size.max(1), arch.hidden)
                .init(device),
            layer_norm: LayerNormConfig::new(arch.hidden)
                .with_epsilon(eps)
                .init(device),
            dropout: DropoutConfig::new(arch.hidden_dropout).init(),
            position_offset: arch.position_offset(),
        };
        let transformer =
            TransformerEncoderConfig::new(arch.hidden, arch.intermediate, arch.heads, arch.layers)
                .with_dropout(arch.hidden_dropout)
                .with_norm_first(false)
                .with_layer_norm_eps(eps)
                .init(device);
        Self {
            embeddings,
            transformer,
        }
    }

    /// Last hidden state `[batch, seq, hidden]`. `mask_pad` is true at padding.
    pub fn forward(&self, ids: Tensor<B, 2, Int>, mask_pad: Tensor<B, 2, Bool>) -> Tensor<B, 3> {
        let [batch, seq] = ids.dims();
        let device = ids.device();
        let off = self.embeddings.position_offset as i64;
        let pos = Tensor::<B, 1, Int>::arange(off..off + seq as i64, &device)
            .reshape([1, seq])
            .expand([batch, seq]);
        let types = Tensor::<B, 2, Int>::zeros([batch, seq], &device);
        let e = &self.embeddings;
        let x = e.word_embeddings.forward(ids)
            + e.position_embeddings.forward(pos)
            + e.token_type_embeddings.forward(types);
        let x = e.dropout.forward(e.layer_norm.forward(x));
        self.transformer
            .forward(TransformerEncoderInput::new(x).mask_pad(mask_pad))
    }
}

/// How a CNN branch turns its `[channels, features]` activations into a vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BranchPool {
    /// SPEC §3: global max pool -> `channels` values. Keeps *that* a pattern fired, not
    /// *where*, so the branch cannot say which class its features point to.
    #[default]
    GlobalMax,
    /// Mean over each class's feature columns -> `channels * classes` values, so the head
    /// sees per-class evidence (e.g. what share of a class's rules fired). LLM features
    /// have one column per class and are kept as they are.
    PerClass,
}

impl BranchPool {
    pub fn is_global_max(&self) -> bool {
        *self == BranchPool::GlobalMax
    }
}

/// Feature vector as a 1-channel sequence -> Conv1d(same) -> ReLU -> pool ([`BranchPool`]).
#[derive(Module, Debug)]
pub struct CnnBranch<B: Backend> {
    pub conv: Conv1d<B>,
    /// 0: global max pool; otherwise per-class pooling into this many classes.
    pub classes: usize,
}

impl<B: Backend> CnnBranch<B> {
    pub fn new(channels: usize, kernel: usize, classes: usize, device: &B::Device) -> Self {
        Self {
            conv: Conv1dConfig::new(1, channels, kernel)
                .with_padding(PaddingConfig1d::Same)
                .init(device),
            classes,
        }
    }

    /// `[batch, features]` -> `[batch, channels]` (global max) or `[batch, channels *
    /// classes]` (per class), from the sparse form of the input ([`SparseBranchBatch`]).
    ///
    /// A feature row has a handful of nonzero columns among thousands (about 14 of 4,018
    /// schema rules fire per Spider question), so almost every position of the
    /// convolution sees only zeros and outputs ReLU(bias). Only the positions within
    /// `kernel / 2` of a nonzero column are computed; the rest enter the pooling as
    /// ReLU(bias) times their count. Same values as [`Self::forward_dense`].
    pub fn forward(&self, x: SparseBranchBatch<B>) -> Tensor<B, 2> {
        let (y, base) = self.covered(&x);
        let (b, channels) = (x.rows, y.dims()[1]);
        if self.classes == 0 {
            let covered = y
                .reshape([b, x.positions, channels])
                .max_dim(1)
                .reshape([b, channels]);
            // A zero from padding never wins: ReLU outputs are >= 0.
            return covered.max_pair(x.uncovered * base);
        }
        // Channel-major, as a Conv1d's [batch, channels, classes] output flattens.
        self.per_class_mean(y, x, base)
            .swap_dims(1, 2)
            .reshape([b, channels * self.classes])
    }

    /// Per-class pooling's output class-major, `[batch, classes, channels]` (what the
    /// evidence head reads; no transpose). Same values as [`Self::forward`].
    pub fn forward_per_class(&self, x: SparseBranchBatch<B>) -> Tensor<B, 3> {
        assert!(self.classes > 0, "per-class output of a global-max branch");
        let (y, base) = self.covered(&x);
        self.per_class_mean(y, x, base)
    }

    /// ReLU(conv) at the covered positions, `[rows * positions, channels]` (0 at
    /// padding), and ReLU(bias) `[1, channels]`, what every uncovered position outputs.
    fn covered(&self, x: &SparseBranchBatch<B>) -> (Tensor<B, 2>, Tensor<B, 2>) {
        let w = self.conv.weight.val();
        let [channels, _, k] = w.dims();
        let mut y = x
            .windows
            .clone()
            .matmul(w.reshape([channels, k]).transpose());
        let mut base = Tensor::<B, 2>::zeros([1, channels], &y.device());
        if let Some(bias) = &self.conv.bias {
            let bias = bias.val().reshape([1, channels]);
            y = y + bias.clone();
            base = relu(bias);
        }
        // Padding entries have all-zero windows; `valid` zeroes their ReLU(bias).
        (relu(y) * x.valid.clone(), base)
    }

    /// The mean of each class's activations, `[batch, classes, channels]`, from the
    /// covered positions' `y` and ReLU(bias) `base` for the positions no window covers.
    fn per_class_mean(
        &self,
        y: Tensor<B, 2>,
        x: SparseBranchBatch<B>,
        base: Tensor<B, 2>,
    ) -> Tensor<B, 3> {
        let (b, c) = (x.rows, self.classes);
        let channels = y.dims()[1];
        let device = y.device();
        let sums = Tensor::<B, 2>::zeros([b * c, channels], &device)
            .select_assign(0, x.target, y, IndexingUpdateOp::Add)
            .reshape([b, c, channels]);
        // The constant factors are widened first (times 1, exact) so that every product
        // below is one that burn-flex broadcasts with a contiguous kernel: a row shared by
        // all rows, or one scalar per row. Broadcasting [b, c, 1] against [1, 1, channels],
        // or [b, c, channels] against [1, c, 1], fell to its element-by-element strided
        // path, forward and backward: 30 % of Model 4's time (docs/PERF.md). Same values,
        // same gradients.
        let uncovered =
            Tensor::<B, 3>::ones([b, c, channels], &device) * x.uncovered.reshape([b, c, 1]);
        let sums = sums + uncovered * base.reshape([1, 1, channels]);
        let inv_count = Tensor::<B, 2>::ones([b, c], &device) * x.inv_count.reshape([1, c]);
        sums * inv_count.reshape([b, c, 1])
    }

    /// The dense reference of [`Self::forward`]: `[batch, features]` with, for per-class
    /// pooling, the class of every column (`None`: the columns are the classes). Kept for
    /// the equality test and the benches.
    pub fn forward_dense(
        &self,
        feats: Tensor<B, 2>,
        column_class: Option<Tensor<B, 1, Int>>,
    ) -> Tensor<B, 2> {
        let b = feats.dims()[0];
        let x = self.conv_one_channel(feats);
        let c = x.dims()[2];
        if self.classes == 0 {
            return x.max_dim(1).reshape([b, c]);
        }
        let per_class = match column_class {
            Some(cc) => {
                let device = x.device();
                let f = x.dims()[1];
                let counts = Tensor::<B, 1>::zeros([self.classes], &device).select_assign(
                    0,
                    cc.clone(),
                    Tensor::ones([f], &device),
                    IndexingUpdateOp::Add,
                );
                let scale = counts.clamp_min(1.0).recip().reshape([1, self.classes, 1]);
                Tensor::zeros([b, self.classes, c], &device).select_assign(
                    1,
                    cc,
                    x,
                    IndexingUpdateOp::Add,
                ) * scale
            }
            None => x,
        };
        let k = per_class.dims()[1];
        per_class.swap_dims(1, 2).reshape([b, c * k])
    }

    /// ReLU(Conv1d(same)) of a 1-channel input `[batch, features]` -> `[batch, features,
    /// channels]`, as one matmul of the input's k shifted copies with the kernel.
    fn conv_one_channel(&self, feats: Tensor<B, 2>) -> Tensor<B, 3> {
        let [b, f] = feats.dims();
        let w = self.conv.weight.val();
        let [channels, _, k] = w.dims();
        let pad = (k - 1) / 2;
        let device = feats.device();
        let padded = if pad > 0 {
            let z = || Tensor::<B, 2>::zeros([b, pad], &device);
            Tensor::cat(vec![z(), feats, z()], 1)
        } else {
            feats
        };
        let shifted: Vec<Tensor<B, 3>> = (0..k)
            .map(|j| padded.clone().slice([0..b, j..j + f]).reshape([b, f, 1]))
            .collect();
        let unfolded = Tensor::cat(shifted, 2).reshape([b * f, k]);
        let mut y = unfolded.matmul(w.reshape([channels, k]).transpose());
        if let Some(bias) = &self.conv.bias {
            y = y + bias.val().reshape([1, channels]);
        }
        relu(y).reshape([b, f, channels])
    }
}

/// One batch of a CNN branch's input in sparse form: for every row, the convolution
/// windows around its nonzero columns (`positions` per row, padded), built by
/// `data::sparse_branch_batch`.
#[derive(Debug, Clone)]
pub struct SparseBranchBatch<B: Backend> {
    pub rows: usize,
    pub positions: usize,
    /// `[rows * positions, kernel]`: the input values each covered position sees.
    pub windows: Tensor<B, 2>,
    /// `[rows * positions, 1]`: 1 for a covered position, 0 for padding.
    pub valid: Tensor<B, 2>,
    /// `[rows * positions]`: `row * classes + class` of each position (per-class pooling;
    /// 0 for global max).
    pub target: Tensor<B, 1, Int>,
    /// Positions no window covers: `[rows, classes]` per class (per-class pooling), or
    /// `[rows, 1]` = 1 if the row has any (global max).
    pub uncovered: Tensor<B, 2>,
    /// `[classes]`: 1 / the number of columns of each class (per-class pooling; `[1]`
    /// otherwise).
    pub inv_count: Tensor<B, 1>,
}

/// fc1 -> ReLU -> dropout -> fc2 -> ReLU -> dropout -> out: the dense layers of every
/// head (SPEC §3), sized by the candidate's layer_size1/2 and dropout.
#[derive(Module, Debug)]
pub struct DenseLayers<B: Backend> {
    pub fc1: Linear<B>,
    pub fc2: Linear<B>,
    pub out: Linear<B>,
    pub dropout: Dropout,
}

impl<B: Backend> DenseLayers<B> {
    pub fn new(input: usize, s: &ClassifierShape, device: &B::Device) -> Self {
        Self {
            fc1: LinearConfig::new(input, s.layer_size1).init(device),
            fc2: LinearConfig::new(s.layer_size1, s.layer_size2).init(device),
            out: LinearConfig::new(s.layer_size2, s.classes).init(device),
            dropout: DropoutConfig::new(s.dropout).init(),
        }
    }

    /// Logits `[batch, classes]` from `[batch, input]`.
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let x = self.dropout.forward(relu(self.fc1.forward(x)));
        let x = self.dropout.forward(relu(self.fc2.forward(x)));
        self.out.forward(x)
    }
}

/// The classification head of Models 1-4: the CNN branches and the three dense layers
/// over `concat(encoder vector, branch outputs)`. With a frozen encoder it is the whole
/// trained model; fine-tuning wraps it with the encoder in [`Classifier`]. The dense
/// layers follow the branches in the record, as their fields did before they were one
/// module (bincode has no struct boundaries), so stored weights still load.
#[derive(Module, Debug)]
pub struct Head<B: Backend> {
    pub llm: Option<CnnBranch<B>>,
    pub rules: Option<CnnBranch<B>>,
    pub dense: DenseLayers<B>,
}

impl<B: Backend> Head<B> {
    pub fn new(input: usize, s: &ClassifierShape, device: &B::Device) -> Self {
        let branches = usize::from(s.llm) + usize::from(s.rules);
        let width = input + branches * s.branch_width();
        let branch = || CnnBranch::new(s.channels, s.kernel, s.pooled_classes(), device);
        Self {
            llm: s.llm.then(branch),
            rules: s.rules.then(branch),
            dense: DenseLayers::new(width, s, device),
        }
    }

    /// Logits `[batch, classes]` from the encoder vector `[batch, hidden]`.
    pub fn forward(
        &self,
        pooled: Tensor<B, 2>,
        llm: Option<SparseBranchBatch<B>>,
        rules: Option<SparseBranchBatch<B>>,
    ) -> Tensor<B, 2> {
        let mut parts = vec![pooled];
        if let (Some(branch), Some(f)) = (&self.llm, llm) {
            parts.push(branch.forward(f));
        }
        if let (Some(branch), Some(f)) = (&self.rules, rules) {
            parts.push(branch.forward(f));
        }
        let x = if parts.len() == 1 {
            parts.pop().expect("one part")
        } else {
            Tensor::cat(parts, 1)
        };
        self.dense.forward(x)
    }
}

/// Models 1-4 with the encoder trained too: its first token's final state -> [`Head`].
/// The record lists the encoder's parameters, then the head's, in the order of the
/// earlier flat struct, so weights stored before the head was split out still load.
#[derive(Module, Debug)]
pub struct Classifier<B: Backend> {
    pub encoder: TextEncoder<B>,
    pub head: Head<B>,
}

/// Shape of the classifier (everything needed to rebuild it before loading weights),
/// derived from a candidate's [`crate::ModelSpec`] in one place (`prepare::shape_of`).
/// The stored weights' header records it ([`crate::weights`]), less what has no
/// parameters or is read at load time (`dropout`, `extra_inputs`), in the header's
/// spelling of earlier releases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassifierShape {
    pub llm: bool,
    pub rules: bool,
    pub channels: usize,
    pub kernel: usize,
    pub layer_size1: usize,
    pub layer_size2: usize,
    #[serde(skip)]
    pub dropout: f64,
    pub classes: usize,
    #[serde(default, skip_serializing_if = "BranchPool::is_global_max")]
    pub pool: BranchPool,
    /// Values a frozen-encoder head reads after the encoder's vector (the neighbour
    /// evidence of [`crate::neighbours`]); 0 otherwise.
    #[serde(skip)]
    pub extra_inputs: usize,
    /// Which head a frozen-encoder candidate trains.
    #[serde(default, skip_serializing_if = "HeadKind::is_dense")]
    pub head: HeadKind,
}

impl ClassifierShape {
    /// The part the weights' header records: the parameters' layout.
    pub(crate) fn layout(&self) -> ClassifierShape {
        ClassifierShape {
            dropout: 0.0,
            extra_inputs: 0,
            ..self.clone()
        }
    }

    /// Width of one branch's output.
    pub fn branch_width(&self) -> usize {
        match self.pool {
            BranchPool::GlobalMax => self.channels,
            BranchPool::PerClass => self.channels * self.classes,
        }
    }

    pub(crate) fn pooled_classes(&self) -> usize {
        match self.pool {
            BranchPool::GlobalMax => 0,
            BranchPool::PerClass => self.classes,
        }
    }
}

impl<B: Backend> Classifier<B> {
    pub fn new(arch: &EncoderArch, s: &ClassifierShape, device: &B::Device) -> Self {
        Self {
            encoder: TextEncoder::new(arch, device),
            head: Head::new(arch.hidden, s, device),
        }
    }

    /// Logits `[batch, classes]`.
    pub fn forward(
        &self,
        ids: Tensor<B, 2, Int>,
        mask_pad: Tensor<B, 2, Bool>,
        llm: Option<SparseBranchBatch<B>>,
        rules: Option<SparseBranchBatch<B>>,
    ) -> Tensor<B, 2> {
        let hidden = self.encoder.forward(ids, mask_pad);
        let [b, _, h] = hidden.dims();
        let cls = hidden.slice([0..b, 0..1, 0..h]).reshape([b, h]);
        self.head.forward(cls, llm, rules)
    }
}

/// Which head a frozen-encoder candidate trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HeadKind {
    /// SPEC §3: concat(vector, branch outputs) -> fc1 -> fc2 -> out.
    #[default]
    Dense,
    /// [`EvidenceHead`]: dense layers over the vector + a shared per-class scorer.
    Evidence,
}

impl HeadKind {
    pub fn is_dense(&self) -> bool {
        *self == HeadKind::Dense
    }
}
