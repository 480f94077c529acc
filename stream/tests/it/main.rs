//! Integration tests of the speed layer against tansu, in one test binary. Run one file with
//! `cargo test -p fjord-stream --test it alerts::`.

mod alerts;
mod common;
mod tansu;
