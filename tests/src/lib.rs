//! Behaviour tests for haltway live in `tests/tests/`.
