//! CLI tests (to be written).
