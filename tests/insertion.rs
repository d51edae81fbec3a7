//! Insertion tests (to be written).
