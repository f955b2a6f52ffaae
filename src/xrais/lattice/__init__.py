"""Lattices in reciprocal space: indexing of a still's spots without a known cell or with one
(:mod:`xrais.lattice.indexing`; cells from their parameters: :mod:`xrais.lattice.cell`), the classical
multi-lattice baseline, and the evidence of several lattices in an indexed still
(:mod:`xrais.lattice.evidence`)."""
from .evidence import FEATURE_NAMES, lattice_evidence
from .indexing import (IndexedLattice, IndexingResult, IndexingSettings, index_frame, index_lattice, index_lattices,
                       index_spots, indexing_input)

__all__ = ["FEATURE_NAMES", "lattice_evidence", "IndexedLattice", "IndexingResult", "IndexingSettings", "index_frame",
           "index_lattice", "index_lattices", "index_spots", "indexing_input"]
