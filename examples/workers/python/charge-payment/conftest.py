"""Lets pytest run here, from this directory, as well as from the repository's root:
the SDK comes from the repository (workers-sdk/python)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[4] / "workers-sdk" / "python"))
