//! `fjord-batch`: the batch layer (SPEC §4.3, §6).
//!
//! Not built yet: exactly-once landing of `fjord.readings` into the Delta table `readings`,
//! compaction, the batch views `occupancy_1m` / `occupancy_10m`, vacuum, import and scheduling. The
//! `fjord batch …` commands say so and exit non-zero until then.
