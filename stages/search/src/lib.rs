//! hhnas-search stage (work in progress).
