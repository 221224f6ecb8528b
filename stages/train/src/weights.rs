//! The stored weights format: a small JSON header (what the model looks like) + a burn
//! record, so `predict` and `evaluate` rebuild exactly the trained model or refuse.

use burn::module::{Module, ModuleMapper, Param, ParamId};
use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor};
use serde::{Deserialize, Serialize};

use crate::encoder::EncoderAssets;
use crate::error::TrainError;
use crate::model::ClassifierShape;

const MAGIC: &[u8; 6] = b"HHNW1\n";

/// What the weights are: the classifier's layout and the encoder's size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct WeightsHeader {
    #[serde(flatten)]
    pub shape: ClassifierShape,
    pub hidden: usize,
    pub layers: usize,
    pub vocab: usize,
    /// With a frozen encoder: the identity of the vectors the head was trained on
    /// ([`crate::Embeddings::identity`]); the weights then hold only the head.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frozen: Option<String>,
}

pub(crate) fn header_of(
    shape: &ClassifierShape,
    assets: &EncoderAssets,
    frozen: Option<String>,
) -> WeightsHeader {
    WeightsHeader {
        shape: shape.layout(),
        hidden: assets.arch.hidden,
        layers: assets.arch.layers,
        vocab: assets.arch.vocab_size,
        frozen,
    }
}

fn recorder() -> BinBytesRecorder<FullPrecisionSettings> {
    BinBytesRecorder::<FullPrecisionSettings>::default()
}

/// A module's record as bytes (burn bincode, full precision).
pub(crate) fn record_bytes<B: Backend, M: Module<B>>(model: &M) -> Result<Vec<u8>, TrainError> {
    Recorder::<B>::record(&recorder(), model.clone().into_record(), ())
        .map_err(|e| TrainError::Weights(format!("cannot encode model record: {e}")))
}

/// Any record (model or optimizer) as bytes.
pub(crate) fn encode_record<B: Backend, R: burn::record::Record<B>>(
    rec: R,
) -> Result<Vec<u8>, TrainError> {
    Recorder::<B>::record(&recorder(), rec, ())
        .map_err(|e| TrainError::Weights(format!("cannot encode record: {e}")))
}

pub(crate) fn decode_record<B: Backend, R: burn::record::Record<B>>(
    bytes: &[u8],
    device: &B::Device,
) -> Result<R, TrainError> {
    Recorder::<B>::load(&recorder(), bytes.to_vec(), device)
        .map_err(|e| TrainError::Weights(format!("cannot decode record: {e}")))
}

pub(crate) fn load_record<B: Backend, M: Module<B>>(
    model: M,
    bytes: &[u8],
    device: &B::Device,
) -> Result<M, TrainError> {
    Ok(model.load_record(decode_record::<B, M::Record>(bytes, device)?))
}

pub(crate) fn pack_weights(header: &WeightsHeader, record: &[u8]) -> Vec<u8> {
    let h = serde_json::to_vec(header).expect("header serializes");
    let mut out = Vec::with_capacity(MAGIC.len() + 4 + h.len() + record.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(h.len() as u32).to_le_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(record);
    out
}

pub(crate) fn unpack_weights(bytes: &[u8]) -> Result<(WeightsHeader, &[u8]), TrainError> {
    let bad = || TrainError::Weights("not an hhnas-train weights blob (bad magic)".into());
    let rest = bytes.strip_prefix(MAGIC.as_slice()).ok_or_else(bad)?;
    let n = u32::from_le_bytes(rest.get(..4).ok_or_else(bad)?.try_into().expect("4")) as usize;
    let h = rest.get(4..4 + n).ok_or_else(bad)?;
    let header = serde_json::from_slice(h)
        .map_err(|e| TrainError::Weights(format!("bad weights header: {e}")))?;
    Ok((header, &rest[4 + n..]))
}

const BAG_MAGIC: &[u8; 8] = b"HHNBAG1\n";

/// The weights of a cross-fitted candidate: one blob per fold model, in fold order. Its
/// predictions are the fold models' probabilities averaged.
pub fn pack_bag(folds: &[Vec<u8>]) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(BAG_MAGIC.len() + 4 + folds.iter().map(|f| 8 + f.len()).sum::<usize>());
    out.extend_from_slice(BAG_MAGIC);
    out.extend_from_slice(&(folds.len() as u32).to_le_bytes());
    for f in folds {
        out.extend_from_slice(&(f.len() as u64).to_le_bytes());
        out.extend_from_slice(f);
    }
    out
}

/// The model blobs of stored weights: the fold models of a bag ([`pack_bag`]), or the one
/// blob of any other candidate.
pub fn unpack_bag(bytes: &[u8]) -> Result<Vec<&[u8]>, TrainError> {
    let Some(mut rest) = bytes.strip_prefix(BAG_MAGIC.as_slice()) else {
        return Ok(vec![bytes]);
    };
    let bad = || TrainError::Weights("truncated bag of fold weights".into());
    let mut take = |n: usize| -> Result<&[u8], TrainError> {
        let (head, tail) = rest.split_at_checked(n).ok_or_else(bad)?;
        rest = tail;
        Ok(head)
    };
    let count = u32::from_le_bytes(take(4)?.try_into().expect("4"));
    let mut folds = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let n = u64::from_le_bytes(take(8)?.try_into().expect("8"));
        folds.push(take(usize::try_from(n).map_err(|_| bad())?)?);
    }
    Ok(folds)
}

/// Give parameters ids 1, 2, 3, ... in module order: burn draws `ParamId`s at random, and
/// they are part of the record bytes, so without this two identical runs would store
/// different weight bytes.
pub(crate) struct Renumber(pub u64);

impl<B: Backend> ModuleMapper<B> for Renumber {
    fn map_float<const D: usize>(&mut self, p: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (_, t, m) = p.consume();
        self.0 += 1;
        Param::from_mapped_value(ParamId::from(self.0), t, m)
    }
    fn map_int<const D: usize>(&mut self, p: Param<Tensor<B, D, Int>>) -> Param<Tensor<B, D, Int>> {
        let (_, t, m) = p.consume();
        self.0 += 1;
        Param::from_mapped_value(ParamId::from(self.0), t, m)
    }
    fn map_bool<const D: usize>(
        &mut self,
        p: Param<Tensor<B, D, Bool>>,
    ) -> Param<Tensor<B, D, Bool>> {
        let (_, t, m) = p.consume();
        self.0 += 1;
        Param::from_mapped_value(ParamId::from(self.0), t, m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{BranchPool, HeadKind};

    #[test]
    fn a_bag_unpacks_to_its_fold_blobs_and_a_plain_blob_to_itself() {
        let folds = vec![b"HHNW1\none".to_vec(), Vec::new(), b"three".to_vec()];
        let bag = pack_bag(&folds);
        let back: Vec<Vec<u8>> = unpack_bag(&bag)
            .unwrap()
            .iter()
            .map(|b| b.to_vec())
            .collect();
        assert_eq!(back, folds);
        assert_eq!(
            unpack_bag(b"HHNW1\nplain").unwrap(),
            vec![b"HHNW1\nplain".as_slice()]
        );
        assert!(unpack_bag(&bag[..bag.len() - 1]).is_err());
    }

    #[test]
    fn weights_blob_roundtrip_and_bad_magic() {
        let h = WeightsHeader {
            shape: ClassifierShape {
                llm: true,
                rules: false,
                channels: 8,
                kernel: 3,
                layer_size1: 4,
                layer_size2: 2,
                dropout: 0.0,
                classes: 3,
                pool: BranchPool::GlobalMax,
                extra_inputs: 0,
                head: HeadKind::Dense,
            },
            hidden: 16,
            layers: 1,
            vocab: 100,
            frozen: None,
        };
        let b = pack_weights(&h, &[1, 2, 3]);
        let (h2, rec) = unpack_weights(&b).unwrap();
        assert_eq!(h, h2);
        assert_eq!(rec, &[1, 2, 3]);
        assert!(unpack_weights(b"nope").is_err());
        // A header written before `frozen` existed reads as fine-tuned.
        let old = br#"{"llm":true,"rules":false,"channels":8,"kernel":3,"layer_size1":4,"layer_size2":2,"classes":3,"hidden":16,"layers":1,"vocab":100}"#;
        let parsed: WeightsHeader = serde_json::from_slice(old).unwrap();
        assert_eq!(parsed, h);
        // Written as earlier releases wrote it: a default pool and head are left out.
        assert_eq!(serde_json::to_vec(&h).unwrap(), old.to_vec());
        let per_class = WeightsHeader {
            shape: ClassifierShape {
                pool: BranchPool::PerClass,
                head: HeadKind::Evidence,
                ..h.shape.clone()
            },
            frozen: Some("vectors".into()),
            ..h.clone()
        };
        let text = String::from_utf8(pack_weights(&per_class, &[])[10..].to_vec()).unwrap();
        assert!(
            text.contains("\"pool\"") && text.contains("\"head\""),
            "{text}"
        );
        assert_eq!(
            unpack_weights(&pack_weights(&per_class, &[])).unwrap().0,
            per_class
        );
    }
}
