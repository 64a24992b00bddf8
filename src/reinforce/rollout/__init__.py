"""Episodes from environments: `RolloutBatch`, batched collection, env construction and Ray workers."""
