"""The core is the rulebook: the standard library only, so it runs anywhere and tests fast."""

from __future__ import annotations

import json
import subprocess
import sys


def test_the_core_imports_only_the_standard_library() -> None:
    script = "import json, sys, streams.core; print(json.dumps(sorted(sys.modules)))"
    loaded = json.loads(subprocess.check_output([sys.executable, "-c", script], text=True))
    outside = {
        name
        for name in loaded
        if name.split(".")[0] not in sys.stdlib_module_names
        and name.split(".")[0] != "streams"
        and not name.startswith("_")
    }
    assert outside == set()
    ours = {name for name in loaded if name.startswith("streams.")}
    assert all(name.startswith("streams.core") for name in ours), ours
