"""Training data: the sample schema, one streaming adapter per source format, the soup."""
