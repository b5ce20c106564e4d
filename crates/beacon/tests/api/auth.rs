//! Tokens and permissions.
