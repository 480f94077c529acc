//! `fjord-queries`: the serving layer (SPEC §4.3, §7).
//!
//! Not built yet: DataFusion SQL over the lake merged with the speed layer, served over HTTP, the
//! Postgres wire protocol and Arrow Flight SQL, plus the live dashboard. `fjord serve` and
//! `fjord sql` say so and exit non-zero until then.
