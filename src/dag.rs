//! The DAG's nodes as this binary declares them: their names, versions and order, and
//! the store folders that are no node (a candidate's weights and probabilities, the LLM's
//! answers). The engine's executor runs any [`hhnas_engine::replay::Node`].

use hhnas_engine::journal::StageName;
use hhnas_engine::replay::Node;
use hhnas_engine::store::KeyBuilder;

/// The executor over this DAG's nodes.
pub type Replay<'a> = hhnas_engine::replay::Replay<'a, Stage>;
/// A journal line of this DAG.
pub type Event = hhnas_engine::journal::Event<Stage>;
/// A journal line of a completed node of this DAG.
pub type StageRecord = hhnas_engine::journal::StageRecord<Stage>;

/// The nodes of the DAG. Each names its store folder and journal lines, and has a version:
/// bump one when its output for the same inputs changes, so old entries stop matching.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stage {
    Spider,
    /// A labelled text file of the user's own, in place of Spider.
    Labelled,
    Rules,
    LlmJudge,
    Encoder,
    /// Warm encoder: the encoder fine-tuned once with a Model 1 head (nodes/warm.rs).
    Warm,
    /// Frozen encoder: the encoder run once over every question.
    Encode,
    /// Frozen encoder: each row's per-class evidence (nodes/evidence.rs declares them).
    Evidence(Evidence),
    /// Not stored: its key is the first search state's, the input of iteration 0.
    SearchInit,
    Sample,
    Train,
    Update,
    /// After the search: ensemble selection over its candidates.
    Ensemble,
    /// A candidate of the final model retrained on training + validation rows.
    Refit,
    /// The model eval and predict use.
    Final,
}

impl Stage {
    /// Every node, in DAG order.
    pub fn all() -> Vec<Stage> {
        let mut all = vec![
            Stage::Spider,
            Stage::Labelled,
            Stage::Rules,
            Stage::LlmJudge,
            Stage::Encoder,
            Stage::Warm,
            Stage::Encode,
        ];
        all.extend(Evidence::ALL.map(Stage::Evidence));
        all.extend([
            Stage::SearchInit,
            Stage::Sample,
            Stage::Train,
            Stage::Update,
            Stage::Ensemble,
            Stage::Refit,
            Stage::Final,
        ]);
        all
    }

    /// The name in keys, store paths and journal lines.
    pub const fn name(self) -> &'static str {
        match self {
            Stage::Spider => "spider",
            Stage::Labelled => "labelled",
            Stage::Rules => "rules",
            Stage::LlmJudge => "llm_judge",
            Stage::Encoder => "encoder",
            Stage::Warm => "warm",
            Stage::Encode => "encode",
            Stage::Evidence(e) => e.name(),
            Stage::SearchInit => "search_init",
            Stage::Sample => "sample",
            Stage::Train => "train",
            Stage::Update => "update",
            Stage::Ensemble => "ensemble",
            Stage::Refit => "refit",
            Stage::Final => "final",
        }
    }

    pub const fn version(self) -> u32 {
        match self {
            Stage::Spider => 1,
            Stage::Labelled => 1,
            Stage::Rules => 1,
            // 2: leave-one-out for training rows.
            Stage::LlmJudge => 2,
            Stage::Encoder => 1,
            Stage::Warm => 1,
            Stage::Encode => 1,
            Stage::Evidence(e) => e.version(),
            Stage::SearchInit => 1,
            // 2: SPEC §3/§5 fidelity (own parameters only, prose variance rule, half flips).
            Stage::Sample => 2,
            Stage::Update => 2,
            // 2: PyTorch's optimizer constants, a late divergence keeps the best epoch.
            Stage::Train => 2,
            Stage::Ensemble => 1,
            Stage::Refit => 1,
            Stage::Final => 1,
        }
    }

    /// The stage a journal line names, if it is a node.
    pub fn from_name(name: &str) -> Option<Stage> {
        Stage::all().into_iter().find(|s| s.name() == name)
    }
}

impl Stage {
    /// A key builder seeded with this stage's name and version.
    pub fn key(self) -> KeyBuilder {
        Node::key(self)
    }
}

/// Journal lines name a node by [`Stage::name`].
impl StageName for Stage {
    fn as_str(&self) -> &str {
        self.name()
    }

    fn parse(name: &str) -> Option<Self> {
        Stage::from_name(name)
    }
}

impl Node for Stage {
    fn name(self) -> &'static str {
        Stage::name(self)
    }

    fn version(self) -> u32 {
        Stage::version(self)
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The evidence nodes, in DAG order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Evidence {
    /// `encoder.neighbours`: cosine to the nearest bank question of each class, by the
    /// encoder's vectors.
    Neighbours,
    /// `features.schema_semantic`: per class, the idf-weighted mean over the question's
    /// content words of each word's encoder cosine to the nearest schema word of the class.
    SchemaSemantic,
    /// `features.char_neighbours`: the same by character 2-5-gram TF-IDF.
    CharNeighbours,
    /// `features.char_svm`: a one-vs-rest linear SVM's decision value per class over the
    /// same n-grams, cross-fitted for bank rows.
    CharSvm,
    /// `features.schema_evidence`: the share of the question's content words found among
    /// each class's schema words.
    SchemaShare,
    /// `features.schema_evidence`: the cosine of the question's word TF-IDF to each
    /// class's schema words.
    SchemaCosine,
    /// `features.partner_evidence`: the probability that each class's bank holds the
    /// question's paraphrase partner (Spider: the other wording of its SQL).
    Partner,
}

impl Evidence {
    /// The head reads the blocks in this order. A new kind goes last, or, when it is not
    /// lexical, after the last kind that is not: lexical dropout hides a tail of blocks
    /// (a run's enabled blocks keep their order as long as a new kind is off in it).
    pub const ALL: [Evidence; 7] = [
        Evidence::Neighbours,
        Evidence::SchemaSemantic,
        Evidence::CharNeighbours,
        Evidence::CharSvm,
        Evidence::SchemaShare,
        Evidence::SchemaCosine,
        Evidence::Partner,
    ];

    /// The node's name in keys, store paths and journal lines.
    pub const fn name(self) -> &'static str {
        match self {
            Evidence::Neighbours => "neighbours",
            Evidence::SchemaSemantic => "schema_semantic",
            Evidence::CharNeighbours => "char_neighbours",
            Evidence::CharSvm => "char_svm",
            Evidence::SchemaShare => "schema_share",
            Evidence::SchemaCosine => "schema_cosine",
            Evidence::Partner => "partner",
        }
    }

    /// Bump when the values for the same inputs change.
    pub const fn version(self) -> u32 {
        match self {
            Evidence::Neighbours
            | Evidence::SchemaSemantic
            | Evidence::CharNeighbours
            | Evidence::CharSvm
            | Evidence::SchemaShare
            | Evidence::SchemaCosine => 1,
            // 2: the "taken" pair feature (other bank wordings of the candidate's query).
            Evidence::Partner => 2,
        }
    }
}

/// Store folder of a trained candidate's weights, under its train key.
pub const WEIGHTS: &str = "weights";
/// Store folder of a trained candidate's validation and test class probabilities, under
/// its train (or refit) key: what ensemble selection reads.
pub const PROBS: &str = "probs";
/// Store folder of the LLM's answers, under the features crate's key. Never collected.
pub const LLM_ANSWERS: &str = "llm_answers";

#[cfg(test)]
mod tests {
    use super::*;

    /// Names and versions are part of every key: they must never change by accident.
    #[test]
    fn stage_names_and_versions_are_the_keyed_ones() {
        let names: Vec<&str> = Stage::all().iter().map(|s| s.name()).collect();
        assert_eq!(
            names,
            [
                "spider",
                "labelled",
                "rules",
                "llm_judge",
                "encoder",
                "warm",
                "encode",
                "neighbours",
                "schema_semantic",
                "char_neighbours",
                "char_svm",
                "schema_share",
                "schema_cosine",
                "partner",
                "search_init",
                "sample",
                "train",
                "update",
                "ensemble",
                "refit",
                "final"
            ]
        );
        let versions: Vec<u32> = Stage::all().iter().map(|s| s.version()).collect();
        assert_eq!(
            versions,
            [1, 1, 1, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 1, 2, 2, 2, 1, 1, 1]
        );
        for s in Stage::all() {
            assert_eq!(Stage::from_name(s.name()), Some(s));
            assert_eq!(
                s.key().finish(),
                KeyBuilder::new(s.name(), s.version()).finish()
            );
        }
        assert_eq!(Stage::from_name(WEIGHTS), None);
    }
}
