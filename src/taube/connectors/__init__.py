"""Connectors: SDK clients that carry a user's conversations to other networks (DESIGN §9)."""
