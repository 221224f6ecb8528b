//! The commands besides `run` and `resume` (in [`crate::run`]), one module each.

pub mod cancel;
pub mod data;
pub mod eval;
pub mod gc;
pub mod report;
pub mod status;

pub use cancel::cmd_cancel;
pub use data::{cmd_data_stats, cmd_fetch_data};
pub use eval::{cmd_eval, cmd_predict};
pub use gc::cmd_gc;
pub use report::cmd_report;
pub use status::cmd_status;
