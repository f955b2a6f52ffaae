"""Plugins: predictors, image readers and detector models, discovered through the ``xrais``
entry-point group (pluggy). xrais's own are registered the same way as third-party ones."""
from __future__ import annotations

import functools
import importlib
import logging
from typing import Dict, List

import pluggy

from ..io import base as io_base
from ..io import detectors as io_detectors
from . import hookspecs
from .base import NEEDS, PredictionInput, PredictorPlugin
from .hookspecs import hookimpl

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "xrais"
#: xrais's own plugin modules, also declared as entry points in setup.cfg; registered directly when
#: the package metadata is not installed (a source checkout on sys.path).
BUILTIN_PLUGINS = {"builtin_readers": "xrais.plugins.builtin_readers",
                   "builtin_predictors": "xrais.plugins.builtin_predictors"}


@functools.lru_cache(maxsize=None)
def plugin_manager() -> pluggy.PluginManager:
    """The plugin manager, with every installed plugin registered (once per process)."""
    manager = pluggy.PluginManager("xrais")
    manager.add_hookspecs(hookspecs)
    from importlib.metadata import entry_points

    for entry_point in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name not in BUILTIN_PLUGINS):
        if manager.get_plugin(entry_point.name) is not None:
            continue
        try:
            plugin = entry_point.load()
        except Exception as exc:  # a broken third-party plugin must not break xrais
            log.warning("xrais plugin %s (%s) could not be loaded: %s", entry_point.name, entry_point.value, exc)
            continue
        manager.register(plugin, name=entry_point.name)
    for name, module in BUILTIN_PLUGINS.items():
        if manager.get_plugin(name) is None:
            manager.register(importlib.import_module(module), name=name)
    return manager


@functools.lru_cache(maxsize=None)
def predictors() -> Dict[str, PredictorPlugin]:
    """Installed predictors by name, one shared instance each per process (the first registered
    wins on a name clash, with a warning)."""
    found: Dict[str, PredictorPlugin] = {}
    for plugin_list in plugin_manager().hook.xrais_predictors():
        for predictor in plugin_list or ():
            if predictor.needs not in NEEDS:
                log.warning("predictor %s needs %r: expected one of %s; ignored", predictor.name, predictor.needs, NEEDS)
            elif predictor.name in found:
                log.warning("two predictors are named %r; keeping %s", predictor.name, type(found[predictor.name]).__name__)
            else:
                found[predictor.name] = predictor
    return found


@functools.lru_cache(maxsize=None)
def reader_list() -> tuple:
    """Image readers from every plugin: third-party readers first (pluggy calls the most recently
    registered plugin first), then xrais's own, whose last one is the dxtbx fallback."""
    return tuple(reader for readers in plugin_manager().hook.xrais_readers() for reader in readers or ())


@functools.lru_cache(maxsize=None)
def detector_models() -> tuple:
    """Detector models added by plugins."""
    return tuple(model for models in plugin_manager().hook.xrais_detector_models() for model in models or ())


# The io layer imports nothing above it: it is handed the installed readers and detector models here.
io_base.set_reader_source(reader_list)
io_detectors.register_source(detector_models)


def describe() -> List[Dict[str, str]]:
    """What is installed: one row per plugin module with its predictors, readers and detectors."""
    manager = plugin_manager()
    rows = []
    for name, plugin in manager.list_name_plugin():
        row = {"plugin": name, "module": getattr(plugin, "__name__", type(plugin).__name__)}
        for hook, kind in (("xrais_predictors", "predictors"), ("xrais_readers", "readers"),
                           ("xrais_detector_models", "detectors")):
            impl = getattr(plugin, hook, None)
            items = impl() if impl is not None else []
            row[kind] = ", ".join(getattr(item, "name", str(item)) for item in items or [])
        rows.append(row)
    return rows


__all__ = ["PredictionInput", "PredictorPlugin", "hookimpl", "plugin_manager", "predictors", "reader_list",
           "detector_models", "describe"]
