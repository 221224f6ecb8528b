//! hhnas-features stage (work in progress).
