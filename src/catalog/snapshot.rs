//! The planning snapshot.
