//! hhnas-search: the HHNAS-AM adaptive mutation search (SPEC §3-5) and its baselines
//! (random, regularized evolution, fixed), as pure functions of typed inputs.
//!
//! The engine drives one loop: `state_0 = init_state(cfg)`; for each iteration t,
//! `proposal = sample(&state_t, cfg, run_seed, t)`, train `proposal.candidate`, then
//! `state_{t+1} = update(&state_t, cfg, &proposal, validation_accuracy)`. All randomness comes
//! from ChaCha20 streams keyed by blake3(run seed, iteration, purpose), so a resumed run
//! proposes exactly what an uninterrupted one would.

mod candidate;
mod config;
pub mod formulas;
mod sample;
mod space;
mod state;

pub use candidate::{
    arch_index_3bit, arch_index_restricted, criterion_name, describe, display_value, Action,
    Candidate, Param, ParamKind,
};
pub use config::{
    ConfigError, ContinuousSetting, SearchConfig, SearchSpace, Select, Strategy, VarianceRule,
};
pub use sample::{mutation_probabilities, rng_stream, sample, Mutation, Proposal};
pub use space::{in_space, search_value};
pub use state::{init_state, sanitize_accuracy, update, Evaluated, Moments, QPair, SearchState};
