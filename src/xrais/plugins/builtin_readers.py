"""xrais's own image readers, registered through the ``xrais`` entry-point group like any plugin."""
import importlib

from .hookspecs import hookimpl


@hookimpl
def xrais_readers():
    from ..io import BUILTIN_READER_MODULES

    readers = (importlib.import_module(f"xrais.io.{name}").READER for name in BUILTIN_READER_MODULES)
    return [reader for reader in readers if reader is not None]
