//! hhnas-report (work in progress).
