"""Fuzz test: real files of every format (or files written from real pixels where no real file
exists), mutated — bytes flipped, truncated, header numbers edited, dimension fields blown up,
HDF5 objects edited — must give Frames or one-line errors: never another exception, a crash, a
hang or unbounded memory.

The corpus, the mutations and the worker are in io_fuzz_worker.py, shared with the long run outside
CI (``make fuzz``, scripts/fuzz_readers.py: 10,000 files per format). Each format runs in child
processes under a 6 GiB address-space cap, so that a crash in HDF5 or CBFlib fails this test with
the file that caused it instead of killing pytest. Deterministic (hypothesis ``derandomize=True``),
730 files, about 30 s in all.
"""
import pytest

from io_fuzz_worker import build_corpus, fuzz_format

EXAMPLES = {"smv": 120, "minicbf": 80, "imgcif": 100, "mccd": 150, "nexus": 200, "expt": 80}
PEAK_MEMORY_MIB = 3000


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, shared_data, adsc_image):
    return build_corpus(tmp_path_factory.mktemp("fuzz_seeds"), shared_data, adsc_image)


@pytest.mark.parametrize("format_name", sorted(EXAMPLES))
def test_mutated_files_give_frames_or_clear_errors(format_name, corpus, tmp_path):
    summary = fuzz_format(format_name, corpus[format_name], EXAMPLES[format_name], tmp_path)
    assert not summary["failures"], "\n".join(
        f"{failure['failure']} — {failure['seed']} {failure['mutations']} {failure['edit']} (files in {failure['files']})"
        for failure in summary["failures"])
    assert summary["examples"] == EXAMPLES[format_name]
    assert summary["errors"] > 0 and summary["peak_rss_mib"] < PEAK_MEMORY_MIB
