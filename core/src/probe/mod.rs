//! Probes: what the app shows and the CLI writes. Every map of a forward pass (`activations`),
//! effective receptive fields (`erf`), theoretical
//! receptive fields (`rf`), the receptive-field arithmetic of every layer (`rf_table`), receptive
//! field against depth for a model and its CNN (`rf_depth`, drawn by `plot`) and the analysis of recurrence matrices (`recurrence`).

pub mod activations;
pub mod contribution;
pub mod erf;
pub mod plot;
pub mod recurrence;
pub mod recurrence_history;
pub mod render;
pub mod rf;
pub mod rf_depth;
pub mod rf_table;
