"""The xrais plugin hooks (pluggy), in the manner of pytest's hookspecs.

A plugin is a module (or object) with functions decorated by :data:`hookimpl` and named after
these specs, announced to xrais through the ``xrais`` entry-point group of its package::

    [options.entry_points]
    xrais =
        my_plugin = my_package.xrais_plugin

xrais's own predictors, readers and detector models are registered exactly this way.
"""
import pluggy

hookspec = pluggy.HookspecMarker("xrais")
hookimpl = pluggy.HookimplMarker("xrais")


@hookspec
def xrais_predictors():
    """Return a list of predictors (:class:`xrais.plugins.PredictorPlugin` instances).

    Each has a unique ``name`` (what users write in ``predictors=``), the ``fields`` it adds to
    every result, what input it ``needs`` ("quadrants": conditioned 512×512 quadrants, or
    "frame": the raw frame), and a batched ``predict``.
    """


@hookspec
def xrais_readers():
    """Return a list of image readers (:class:`xrais.io.Reader` instances), tried in order."""


@hookspec
def xrais_detector_models():
    """Return a list of detector models (:class:`xrais.io.detectors.DetectorModel`) for the catalogue."""
