//! Bad input of every kind.
