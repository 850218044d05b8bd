"""The lab's experiments: importing this package registers each (one module per experiment or
per family of experiments)."""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
