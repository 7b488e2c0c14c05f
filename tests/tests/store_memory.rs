//! The conformance suite on `MemoryStore`.

use haltway_core::MemoryStore;
use haltway_testkit::Fixture;

haltway_testkit::store_conformance!(async || Fixture::new(MemoryStore::new()));
