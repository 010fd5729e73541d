//! tiered-plugin (being written).
