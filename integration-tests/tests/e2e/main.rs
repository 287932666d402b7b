//! End-to-end tests of issue 2: the real control plane and data planes,
//! in-process on 127.0.0.1:0, against mock EVM nodes (and one real ganache).
//!
//! One test binary with one module per theme, so the whole suite links once.

// Test code throughout (helpers included): a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin;
mod bad_input;
mod cache;
mod distribution;
mod failover;
mod ganache;
mod health;
mod heights;
mod icon;
mod nack;
mod sandbox;
mod shared_cache;
mod static_stability;
