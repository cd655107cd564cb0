"""Reading a JSON file a user handed us, bounded: size, nesting and kind checked, every failure one error line.

Python's json module recurses once per nesting level (a file of 100,000 '[' is a RecursionError) and reads any
size into memory; configs and manifests are kilobytes, so anything past MAX_JSON_BYTES is refused unread.
"""
from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

from vit_edge.core.errors import VitEdgeError

__all__ = ["MAX_JSON_BYTES", "read_json_object"]

MAX_JSON_BYTES = 16 << 20


def read_json_object(path: Path, error: type[VitEdgeError], max_bytes: int = MAX_JSON_BYTES) -> dict[str, Any]:
    """The JSON object in `path`; anything else (absent, not a regular file, too big, unreadable, not JSON, nested
    too deep, not an object) is `error` naming the file and what is wrong."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{path} is not a regular file")
        if info.st_size > max_bytes:
            raise error(f"{path} is {info.st_size / 2**20:.0f} MiB, over the {max_bytes >> 20} MiB a JSON "
                        "config or manifest can be: not the file vit-edge expects")
        data = json.loads(path.read_bytes().decode("utf-8-sig"))
    except OSError as exc:
        raise error(f"cannot read {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise error(f"{path} is not UTF-8 text: {exc.reason} at byte {exc.start}") from exc
    except json.JSONDecodeError as exc:
        raise error(f"{path} is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise error(f"{path} is nested too deeply to be a config or manifest") from exc
    if not isinstance(data, dict):
        raise error(f"{path} does not hold a JSON object (found a {type(data).__name__})")
    return data
