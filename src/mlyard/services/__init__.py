"""Use cases. Each owns its transactions and is the only layer that combines the adapters."""
