//! Shared by the chain tests.
#![allow(dead_code)]

pub mod conformance;
pub mod fake_subtensor;
