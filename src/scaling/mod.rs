//! Autoscaling advice: how many instances a cluster needs, from what each
//! instance measures, exported as metrics for KEDA or the Kubernetes HPA
//! (`multiagents_advised_instances`).
//!
//! | module | owns |
//! |---|---|
//! | [`advisor`] | [`Advisor`]: the model (utilisation and Little's laws, hysteresis) |
//! | [`members`] | [`Membership`]: live instances counted by broadcast heartbeats |
//! | `cpu` | this process's CPU share, from `/proc/self/stat` |
//! | `sampler` | the loop that samples, advises and exports every few seconds |

pub mod advisor;
mod cpu;
pub mod members;
pub mod sampler;

pub use advisor::{Advice, Advisor, AdvisorConfig, Sample};
pub use members::Membership;
pub use sampler::{Sampled, spawn};
