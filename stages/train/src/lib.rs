//! hhnas-train stage (work in progress).
