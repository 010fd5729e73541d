//! tiered-engine (being written).
