//! Integration tests of the batch layer against tansu, a local and an S3 lake, in one test binary
//! (one link of DataFusion and delta-rs). Run one file with `cargo test --test it lake::`.

mod alerts;
mod common;
mod forecast;
mod import;
mod lake;
