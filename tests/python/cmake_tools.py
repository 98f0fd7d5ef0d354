"""Finding the build tools the tests that compile C++ need (imported by those tests)."""

from __future__ import annotations

import os
import shutil


def find_tool(name: str) -> str | None:
    """cmake or ninja from PATH, else from the PyPI cmake / ninja packages; None when absent."""
    found = shutil.which(name)
    if found:
        return found
    try:
        if name == "cmake":
            import cmake

            return os.path.join(cmake.CMAKE_BIN_DIR, "cmake")
        if name == "ninja":
            import ninja

            return os.path.join(ninja.BIN_DIR, "ninja")
    except (ImportError, AttributeError):
        return None
    return None
