"""xrais's own image readers, registered through the ``xrais`` entry-point group like any plugin."""
from ..io import builtin_readers
from .hookspecs import hookimpl


@hookimpl
def xrais_readers():
    return builtin_readers()
