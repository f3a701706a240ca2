//! Registered catalogs, by name.
