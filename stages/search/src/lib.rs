//! hhnas-search: the HHNAS-AM adaptive mutation search (SPEC §3-5) and its baselines
//! (random, regularized evolution, fixed), as pure functions of typed inputs.
//!
//! The engine drives one loop: `state_0 = init_state(cfg)`; for each iteration t,
//! `proposal = sample(&state_t, cfg, run_seed, t)`, train `proposal.candidate`, then
//! `state_{t+1} = update(&state_t, cfg, &proposal, validation_accuracy)`. All randomness comes
//! from ChaCha20 streams keyed by blake3(run seed, iteration, purpose), so a resumed run
//! proposes exactly what an uninterrupted one would.
//!
//! Readings where the paper and SPEC leave room (each documented at its item):
//! - Bits (SPEC §3): p2 = `rule_branch` (rule-feature CNN), p3 = `llm_branch` (LLM-feature
//!   CNN), so Model = 2*p2 + p3 + 1 matches the paper's model names (Model 2 = LLM-feature
//!   CNN, Model 3 = rule-feature CNN).
//! - Each model mutates only its own parameters (SPEC §3): `kernel_size` belongs to the CNN
//!   branches, so a Model 1 candidate neither mutates it nor credits or blames it in the
//!   Q-table. "The model" is the child's architecture after this iteration's macro flips
//!   ("once an architecture is selected, micro-level mutation is applied"): bits mutate
//!   first, then the micro parameters the resulting architecture has. The at-least-one
//!   fallback only forces a parameter of the (unchanged) parent's model.
//! - A flip updates both halves of a bit's Q(s,+) = Q(s,-) by half of alpha (r - r_parent),
//!   so Q(s) moves as much as a micro parameter's (SPEC §5).
//! - Variance: `distance` follows the paper's prose (case 2, inside one sigma, subtracts);
//!   `distance-literal` is the printed formula, kept for ablation.
//! - Every strategy evaluates `initial` first; HHNAS-AM then mutates its parent.
//! - A drawn mutation that changes nothing (a grid step off the end, a clipped continuous
//!   value equal to the old one) is dropped, not recorded, and gets no Q update; the
//!   at-least-one rule counts only real changes, so a proposal always differs from its parent.
//! - Continuous values are drawn around the stored mean mu (as the paper writes), not around
//!   the parent's value; the learning rate lives in log10 units.
//! - Mean and variance are updated only for continuous parameters that were mutated, both
//!   with the old mean, with p_bar = the running average before this accuracy; the mean is
//!   clipped to the parameter's range, the variance to [var_min, var_max].
//! - Accuracy that is NaN or infinite (a failed run) counts as 0; others are clipped to [0, 1].

mod candidate;
mod config;
pub mod formulas;
mod sample;
mod space;
mod state;

pub use candidate::{
    arch_index_3bit, arch_index_restricted, criterion_name, describe, display_value, Action,
    Candidate, Mutation, Param, ParamKind, Proposal,
};
pub use config::{
    ConfigError, ContinuousSetting, Reward, SearchConfig, SearchSpace, Select, Strategy,
    VarianceRule,
};
pub use sample::{mutation_probabilities, rng_stream, sample};
pub use space::{in_space, search_value};
pub use state::{
    init_state, sanitize_accuracy, update, Evaluated, Moments, QPair, Recent, SearchState,
};
