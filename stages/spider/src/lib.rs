//! hhnas-spider stage (work in progress).
