"""Lattices in reciprocal space: indexing of a still's spots without a known cell
(:mod:`xrais.lattice.indexing`), the classical multi-lattice baseline."""
from .indexing import IndexedLattice, IndexingResult, IndexingSettings, index_frame, index_lattice, index_lattices

__all__ = ["IndexedLattice", "IndexingResult", "IndexingSettings", "index_frame", "index_lattice", "index_lattices"]
