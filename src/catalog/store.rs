//! The in-memory and embedded persistent catalogs.
