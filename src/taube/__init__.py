"""taube: an end-to-end encrypted, self-hostable, all-in-one messenger."""

__version__ = "0.1.0"
