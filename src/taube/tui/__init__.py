"""``taube tui``: a terminal UI on the SDK (Textual), usable at 80x24 over SSH."""

from taube.tui.app import TaubeApp, run

__all__ = ["TaubeApp", "run"]
