//! Probes: what the app shows and the CLI writes. Effective receptive fields (`erf`), theoretical
//! receptive fields (`rf`) and the analysis of recurrence matrices (`recurrence`).

pub mod contribution;
pub mod erf;
pub mod recurrence;
pub mod render;
pub mod rf;
