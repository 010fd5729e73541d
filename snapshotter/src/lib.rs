//! tiered-snapshotter (being written).
