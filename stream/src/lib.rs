//! `fjord-stream`: the speed layer (SPEC §4.1, §4.2, §5).
//!
//! Not built yet: a consumer group on `fjord.readings` computing event-time occupancy windows with
//! watermarks and exactly-once state, and alert rules with webhook delivery. The command
//! `fjord stream` says so and exits non-zero until then.
