"""Source adapters, one module per on-disk format (see neon_ros.data.registry.SOURCE_TYPES)."""
