"""Export targets (one module each) and the `vit_edge.export(...)` verb.

`vit_edge.export` is both this subpackage and the public verb: Python binds a subpackage as an attribute of its
parent on import, which would shadow a function of the same name, so the package itself is made callable and
forwards to `vit_edge.api.export`.
"""
from __future__ import annotations

import sys
import types
from typing import Any


class _CallableExportPackage(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from vit_edge.api import export

        return export(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableExportPackage
