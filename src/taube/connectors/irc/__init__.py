"""The IRC connector: channels and queries as portal conversations (pydle)."""
