"""The ``taube`` command."""
