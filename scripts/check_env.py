"""Fail the install when pip replaced the pinned CPU torch or pulled torchvision (a CUDA build that cannot load)."""
from __future__ import annotations

import importlib.metadata
import re
import sys
from pathlib import Path


def pinned(name: str) -> str | None:
    for line in Path(__file__).resolve().parents[1].joinpath("constraints.txt").read_text().splitlines():
        match = re.fullmatch(rf"{re.escape(name)}==(\S+)", line.strip())
        if match:
            return match.group(1)
    return None


def main() -> int:
    problems = []
    torch_version = importlib.metadata.version("torch")
    want = pinned("torch")
    if want and torch_version.split("+")[0] != want:
        problems.append(f"torch {torch_version} is installed, constraints.txt pins {want}")
    try:
        importlib.metadata.version("torchvision")
        problems.append("torchvision is installed; vit-edge does not use it and its registry build cannot load here")
    except importlib.metadata.PackageNotFoundError:
        pass
    cuda = [d.metadata["Name"] for d in importlib.metadata.distributions() if d.metadata["Name"].startswith("nvidia-")]
    if cuda:
        problems.append(f"CUDA packages were pulled in: {', '.join(sorted(cuda)[:4])} …")
    for problem in problems:
        print(f"check_env: {problem}", file=sys.stderr)
    if not problems:
        print(f"check_env: torch {torch_version}, no torchvision, no CUDA packages")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
