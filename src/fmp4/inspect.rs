//! Inspect (placeholder).
