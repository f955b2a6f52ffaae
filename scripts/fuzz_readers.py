"""Fuzz the image readers at depth, outside CI: for every format, ``--count`` mutated files (10,000
by default; CI reads 730 in all) must each give a Frame or one clean FrameError line, within
GUARD_SECONDS per file and the worker's 6 GiB address-space cap. The seeds, the mutations and the
worker are those of the CI test (tests/io/io_fuzz_worker.py); only the count and the seed differ.

    python scripts/fuzz_readers.py [--seed 0] [--count 10000] [--formats smv,nexus] [--output fuzz_output]

Needs the project's shared data beside the checkout (or XRAIS_SHARED) and cctbx-base (the ADSC
image), like the test. Prints one summary line per format as it finishes: files read, frames and
clean errors among the results, failures, the slowest file and the workers' peak resident memory.
A failing file is kept, with what was done to it, under OUTPUT/FORMAT/failures/; the exit status is 1
when there is any failure.
"""
import argparse
import pathlib
import sys
import time

TESTS = pathlib.Path(__file__).resolve().parents[1] / "tests"
sys.path[:0] = [str(TESTS), str(TESTS / "io")]

from conftest import SHARED, adsc_image_path  # noqa: E402  (the tests' own data locations)
from io_fuzz_worker import GUARD_SECONDS, build_corpus, fuzz_format  # noqa: E402

FORMATS = ("smv", "minicbf", "imgcif", "mccd", "nexus", "expt")


def summary_line(summary: dict, seconds: float) -> str:
    """One line: the counts, the slowest file and the peak memory of one format's run."""
    slowest = summary["slowest"]
    slowest_text = (f"{slowest['seconds']:.2f} s ({slowest['seed']} {slowest['mutations']} {slowest['edit']})"
                    if slowest else "none")
    return (f"{summary['format']:8s} files {summary['examples']:6d}  frames {summary['frames']:6d}  "
            f"clean errors {summary['errors']:6d}  failures {len(summary['failures']):3d}  "
            f"peak memory {summary['peak_rss_mib']} MiB  {seconds:.0f} s  slowest {slowest_text}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0, help="hypothesis seed of the mutations (default 0)")
    parser.add_argument("--count", type=int, default=10000, help="mutated files per format (default 10000)")
    parser.add_argument("--formats", default=",".join(FORMATS), help="comma-separated formats (default: all)")
    parser.add_argument("--output", type=pathlib.Path, default=pathlib.Path("fuzz_output"),
                        help="folder for the seeds, work files, logs and failing files (default fuzz_output)")
    args = parser.parse_args(argv)
    formats = args.formats.split(",")
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        parser.error(f"unknown format(s) {', '.join(unknown)}; known: {', '.join(FORMATS)}")
    adsc_image = adsc_image_path()
    if not (SHARED / "data").is_dir() or adsc_image is None:
        parser.error(f"needs the shared data ({SHARED / 'data'}) and cctbx-base (iotbx/detectors/adsc.img)")
    seeds = args.output / "seeds"
    seeds.mkdir(parents=True, exist_ok=True)
    corpus = build_corpus(seeds, SHARED / "data", adsc_image)
    print(f"fuzzing {', '.join(formats)}: {args.count} files each, seed {args.seed}, "
          f"{GUARD_SECONDS} s per file, output in {args.output}", flush=True)
    failures = 0
    for name in formats:
        start = time.perf_counter()
        summary = fuzz_format(name, corpus[name], args.count, args.output / name, random_seed=args.seed)
        print(summary_line(summary, time.perf_counter() - start), flush=True)
        for failure in summary["failures"]:
            print(f"  FAILURE {failure['failure']} — {failure['seed']} {failure['mutations']} {failure['edit']} "
                  f"(files in {failure['files']})", flush=True)
        failures += len(summary["failures"])
    print(f"{failures} failure(s)" if failures else "no failures", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
