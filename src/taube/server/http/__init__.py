"""HTTP handlers, one module per area; each function is named for its endpoint."""
