//! The evidence head's split input (host-side split, class-major parts) and the branches'
//! widened constants against the formulation they replaced (slices, a transpose and
//! strided broadcasts on burn tensors): same logits and same gradients, bit for bit, so
//! candidates train to the same weights as before.

use burn::backend::flex::{Flex, FlexDevice};
use burn::backend::Autodiff;
use burn::tensor::activation::relu;
use burn::tensor::{IndexingUpdateOp, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::EvidenceHead;
use crate::data::{evidence_input, sparse_batch, EvidenceLayout, ModelInput};
use crate::input::FeatureMatrix;
use crate::model::{BranchPool, ClassifierShape, CnnBranch, HeadKind, SparseBranchBatch};
use crate::vectors::{Embeddings, Pooling};

type B = Autodiff<Flex>;

/// A per-class branch's forward as it was written before `forward_per_class`: channel-major
/// `[batch, channels * classes]`, broadcasting its constants.
fn reference_branch(branch: &CnnBranch<B>, x: SparseBranchBatch<B>) -> Tensor<B, 2> {
    let w = branch.conv.weight.val();
    let [channels, _, k] = w.dims();
    let b = x.rows;
    let bias = branch
        .conv
        .bias
        .as_ref()
        .expect("bias")
        .val()
        .reshape([1, channels]);
    let y = x.windows.matmul(w.reshape([channels, k]).transpose()) + bias.clone();
    let base = relu(bias);
    let y = relu(y) * x.valid;
    let c = branch.classes;
    let sums = Tensor::<B, 2>::zeros([b * c, channels], &y.device())
        .select_assign(0, x.target, y, IndexingUpdateOp::Add)
        .reshape([b, c, channels]);
    let sums = sums + x.uncovered.reshape([b, c, 1]) * base.reshape([1, 1, channels]);
    let mean = sums * x.inv_count.reshape([1, c, 1]);
    mean.swap_dims(1, 2).reshape([b, channels * c])
}

/// The evidence head's forward as it was written before `forward_split`.
fn reference(
    head: &EvidenceHead<B>,
    vectors: Tensor<B, 2>,
    llm: SparseBranchBatch<B>,
    rules: SparseBranchBatch<B>,
) -> Tensor<B, 2> {
    let [b, width] = vectors.dims();
    let (h, c) = (head.encoder_width, head.classes);
    let dense = head.dense.forward(vectors.clone().slice([0..b, 0..h]));
    let scorer = head.scorer.as_ref().expect("evidence");
    let mut parts = vec![vectors
        .slice([0..b, h..width])
        .reshape([b, (width - h) / c, c])];
    for (branch, input) in [(&head.llm, llm), (&head.rules, rules)] {
        let branch = branch.as_ref().expect("both branches");
        let channels = branch.conv.weight.dims()[0];
        parts.push(reference_branch(branch, input).reshape([b, channels, c]));
    }
    let evidence = Tensor::cat(parts, 1).swap_dims(1, 2);
    let scores = scorer.out.forward(relu(scorer.hidden.forward(evidence)));
    dense + scores.reshape([b, c])
}

fn bits<const D: usize>(t: Tensor<Flex, D>) -> Vec<u32> {
    let v: Vec<f32> = t.into_data().convert::<f32>().into_vec().expect("f32");
    v.into_iter().map(f32::to_bits).collect()
}

/// A 0/1..3 matrix with about 15 % nonzero entries (also the native head's tests).
pub(crate) fn random_matrix(rng: &mut ChaCha8Rng, rows: usize, cols: usize) -> FeatureMatrix {
    let data = (0..rows * cols)
        .map(|_| {
            if rng.random_bool(0.15) {
                rng.random_range(1..4)
            } else {
                0
            }
        })
        .collect();
    FeatureMatrix { rows, cols, data }
}

#[test]
fn split_input_gives_the_same_logits_and_gradients_bit_for_bit() {
    let (rows, width, classes, blocks) = (7, 12, 5, 3);
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let dim = width + blocks * classes;
    let data: Vec<f32> = (0..rows * dim)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    let shape = ClassifierShape {
        llm: true,
        rules: true,
        channels: 3,
        kernel: 3,
        layer_size1: 8,
        layer_size2: 6,
        dropout: 0.0,
        classes,
        pool: BranchPool::PerClass,
        extra_inputs: blocks * classes,
        head: HeadKind::Evidence,
    };
    let device = FlexDevice;
    let head = EvidenceHead::<B>::new(width, &shape, &device);
    let judge = random_matrix(&mut rng, rows, classes);
    let rule_cols = 17;
    let rule_matrix = random_matrix(&mut rng, rows, rule_cols);
    let column_class: Vec<u32> = (0..rule_cols as u32).map(|c| c * 5 / 17).collect();
    let llm = sparse_batch::<B>(&judge, None, classes, 3, &device);
    let rules = sparse_batch::<B>(&rule_matrix, Some(column_class), classes, 3, &device);
    let out_weights: Vec<f32> = (0..rows * classes)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    let out_weights =
        Tensor::<B, 2>::from_data(TensorData::new(out_weights, [rows, classes]), &device);

    let vectors = Tensor::<B, 2>::from_data(TensorData::new(data.clone(), [rows, dim]), &device);
    let want = reference(&head, vectors, llm.clone(), rules.clone());
    let want_grads = (want.clone() * out_weights.clone()).sum().backward();

    let e = Embeddings {
        pooling: Pooling::Mean,
        dim,
        rows,
        data,
        encoder_id: "test".into(),
    };
    let all: Vec<usize> = (0..rows).collect();
    let layout = EvidenceLayout { width, classes };
    let ModelInput::Evidence { vectors, blocks } =
        evidence_input::<B>(&e, &all, layout, None, &device)
    else {
        panic!("the evidence layout gives the split input");
    };
    let got = head.forward_split(vectors, blocks, Some(llm), Some(rules));
    let got_grads = (got.clone() * out_weights).sum().backward();

    assert_eq!(bits(got.inner()), bits(want.inner()), "logits");
    let scorer = head.scorer.as_ref().expect("evidence");
    let (llm_conv, rules_conv) = (
        &head.llm.as_ref().unwrap().conv,
        &head.rules.as_ref().unwrap().conv,
    );
    let weights = [
        ("fc1", &head.dense.fc1.weight),
        ("fc2", &head.dense.fc2.weight),
        ("out", &head.dense.out.weight),
        ("scorer.hidden", &scorer.hidden.weight),
        ("scorer.out", &scorer.out.weight),
    ];
    for (name, p) in weights {
        assert_eq!(
            bits(p.grad(&got_grads).unwrap()),
            bits(p.grad(&want_grads).unwrap()),
            "{name}"
        );
    }
    for (name, p) in [
        ("llm conv", &llm_conv.weight),
        ("rules conv", &rules_conv.weight),
    ] {
        assert_eq!(
            bits(p.grad(&got_grads).unwrap()),
            bits(p.grad(&want_grads).unwrap()),
            "{name}"
        );
    }
    let biases = [
        ("fc1 bias", &head.dense.fc1.bias),
        ("scorer.hidden bias", &scorer.hidden.bias),
        ("llm conv bias", &llm_conv.bias),
        ("rules conv bias", &rules_conv.bias),
    ];
    for (name, p) in biases {
        let p = p.as_ref().expect("bias");
        assert_eq!(
            bits(p.grad(&got_grads).unwrap()),
            bits(p.grad(&want_grads).unwrap()),
            "{name}"
        );
    }
}
