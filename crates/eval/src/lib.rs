//! Evaluation of SAFE-PIT-CM: metrics, result files, the direct fit of loaded videos, and
//! (later) the paper-reproduction report.

pub mod api;
pub mod bench;
pub mod channels;
pub mod explain;
pub mod fitting;
pub mod intensity;
pub mod metrics;
pub mod plots;
pub mod report;
pub mod reproduce;
pub mod results;
pub mod robustness;
pub mod training;
pub mod universal;
pub mod weak_form;
pub mod zeroshot;
