"""The DIALS-style program framework: parameters, -h, -c, errors, exit codes, log file."""
import pytest

from xrais.command_line.params import Param, ParameterError, Parameters
from xrais.command_line.program import Program

PARAMS = Parameters([
    Param("quadrants", 4, "how many", "int", choices=("1", "4")),
    Param("output.json", "out.json", "results", "path"),
    Param("output.csv", None, "table", "path", optional=True),
    Param("geometry.beam_centre", None, "fast,slow", "floats", length=2, optional=True),
    Param("nproc", 1, "processes", "int", minimum=1),
    Param("mpi", False, "use MPI", "bool"),
])


def test_parse_values_scopes_and_inputs(tmp_path):
    image = tmp_path / "a.cbf"
    image.write_bytes(b"x")
    params, inputs = PARAMS.parse([str(image), "json=r.json", "geometry.beam_centre=10.5,20", "mpi=True", "nproc=2"])
    assert inputs == [str(image)]
    assert params.output.json == "r.json" and params.geometry.beam_centre == (10.5, 20.0)
    assert params.mpi is True and params.nproc == 2 and params.quadrants == 4 and params.output.csv is None


@pytest.mark.parametrize("word, problem", [
    ("nope=1", "unknown parameter"),
    ("quadrants=3", "expected one of"),
    ("nproc=0", "out of range"),
    ("nproc=two", "^nproc=two: expected a whole number$"),
    ("beam_centre=1,y", "^geometry.beam_centre=1,y: expected numbers separated by commas \\('y' is not one\\)$"),
    ("beam_centre=1", "expected 2 values"),
    ("mpi=maybe", "expected True or False"),
    ("--frobnicate", "unknown option"),
])
def test_bad_words_are_reported(word, problem):
    with pytest.raises(ParameterError, match=problem):
        PARAMS.parse([word])


def test_parameter_file_and_show_round_trip(tmp_path):
    phil = tmp_path / "my.phil"
    phil.write_text(PARAMS.show() .replace("nproc = 1", "nproc = 3") + "\n# comment\n")
    params, _ = PARAMS.parse([str(phil)])
    assert params.nproc == 3 and params.output.json == "out.json"


def _program(run):
    return Program("xrais.test", "A test program.", "xrais.test <inputs>", list(PARAMS.params), run)


def test_program_help_config_and_exit_codes(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    seen = {}

    def run(params, inputs):
        seen["inputs"] = inputs
        return 0

    program = _program(run)
    assert program(["-h"]) == 0 and "Usage: xrais.test" in capsys.readouterr().out
    assert program(["-c", "nproc=5"]) == 0 and "nproc = 5" in capsys.readouterr().out
    assert program(["nproc=0"]) == 2
    assert "xrais.test: error: nproc=0" in capsys.readouterr().err
    assert program(["a", "b"]) == 0 and seen["inputs"] == ["a", "b"]
    assert (tmp_path / "xrais.test.log").exists()


def test_program_turns_failures_into_one_line(tmp_path, capsys, monkeypatch):
    from xrais.io import ImageError

    monkeypatch.chdir(tmp_path)

    def bad_input(params, inputs):
        raise ImageError("x.cbf", "CBF data truncated")

    def bug(params, inputs):
        raise RuntimeError("boom")

    assert _program(bad_input)([]) == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines() == ["xrais.test: error: x.cbf: CBF data truncated"]
    assert _program(bug)(["output.log=bug.log"]) == 1
    captured = capsys.readouterr()
    assert "internal error: RuntimeError: boom (details in bug.log)" in captured.err
    assert "Traceback" not in captured.out + captured.err
    assert "Traceback" in (tmp_path / "bug.log").read_text()


def test_log_file_folder_is_made_and_an_unwritable_log_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _program(lambda params, inputs: 0)(["output.log=logs/new/run.log"]) == 0
    assert "xrais.test" in (tmp_path / "logs/new/run.log").read_text()
    (tmp_path / "taken").write_text("a file, not a folder")
    assert _program(lambda params, inputs: 0)(["output.log=taken/run.log"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("xrais.test: error: cannot write the log file taken/run.log") and len(err) == 1


def test_usage_errors_go_to_stderr_with_exit_code_2(tmp_path, capsys, monkeypatch):
    """Issue 18, item 2: a bad command line found by the parser or by the program (no inputs, an
    unknown predictor, an unreadable parameter file) is two lines on stderr and exit code 2."""
    from xrais.command_line.monitor import main as monitor_main
    from xrais.command_line.predict import resolution_program
    from xrais.command_line.simulate import program as simulate_program

    monkeypatch.chdir(tmp_path)

    def needs_inputs(params, inputs):
        raise ParameterError("no input images given")

    (tmp_path / "binary.phil").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    cases = [
        (_program(needs_inputs), ["output.log=None"], "xrais.test: error: no input images given"),
        (_program(needs_inputs), ["binary.phil"], "xrais.test: error: binary.phil: not a parameter file (not UTF-8 text)"),
        (resolution_program, ["output.log=None"], "dials.xrais_resolution: error: no input images given"),
        (resolution_program, ["x.cbf", "predictors=nope", "output.log=None"],
         "dials.xrais_resolution: error: unknown predictor nope; installed: "),
        (simulate_program, ["detector=nope", "output.log=None"],
         "xrais.simulate: error: detector=nope: unknown detector model 'nope'; known: PILATUS 6M"),
    ]
    for program, argv, problem in cases:
        assert program(argv) == 2, argv
        captured = capsys.readouterr()
        first, hint = captured.err.strip().splitlines()
        assert first.startswith(problem) and hint.startswith("Run '") and "error" not in captured.out
    assert monitor_main([]) == 2 and capsys.readouterr().out == ""


def test_log_file_keeps_earlier_runs_and_leaves_out_library_debug_lines(tmp_path, monkeypatch):
    """Issue 18, item 4: each run is appended to the log under a header with its date, time and
    command line (the earlier run's log is kept), and the debug lines of the libraries xrais uses
    (hdf5plugin registering its filters) are in it only with verbose=True."""
    import logging
    import re

    monkeypatch.chdir(tmp_path)

    def run(params, inputs):
        logging.getLogger("hdf5plugin._utils").debug("Registered filter: bshuf")
        logging.getLogger("xrais.test").debug("our own detail for %s", inputs[0])
        return 0

    program = _program(run)
    assert program(["first.cbf"]) == 0 and program(["second.cbf", "verbose=True"]) == 0
    text = (tmp_path / "xrais.test.log").read_text()
    headers = re.findall(r"^=+ xrais\.test \(xrais [^)]+\), (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", text, re.M)
    assert len(headers) == 2
    first, second = text.split("command line: xrais.test second.cbf verbose=True\n")
    assert "command line: xrais.test first.cbf\n" in first and "our own detail for first.cbf" in first
    assert "Registered filter" not in first
    assert "our own detail for second.cbf" in second and "Registered filter: bshuf" in second


def test_readme_and_makefile_give_the_same_gpu_set_up_and_it_installs_no_torch(tmp_path):
    """Issue 18, item 10: the GPU set-up commands (``make <target> TORCH_SPEC=``) the README gives
    are those the Makefile gives, and each sets up .venv without installing PyTorch (dry run)."""
    import re
    import shutil
    import subprocess
    from pathlib import Path

    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    root = Path(__file__).resolve().parents[1]
    command = re.compile(r"`make (\w+) TORCH_SPEC=`")
    readme = set(command.findall((root / "README.md").read_text(encoding="utf-8")))
    makefile_text = (root / "Makefile").read_text(encoding="utf-8")
    assert readme and readme == set(command.findall(makefile_text))
    (tmp_path / "Makefile").write_text(makefile_text)
    for name in ("setup.cfg", "pyproject.toml"):
        (tmp_path / name).write_text("")
    default = subprocess.run(["make", "-n", "setup"], cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert 'pip install --quiet "torch==' in default
    for target in readme:
        dry_run = subprocess.run(["make", "-n", target, "TORCH_SPEC="], cwd=tmp_path, capture_output=True, text=True,
                                 check=True).stdout
        assert 'if [ -n "" ]' in dry_run and '"torch' not in dry_run and 'pip install --quiet -e ".[dev]"' in dry_run
    assert "xrais.demo" in subprocess.run(["make", "-n", "demo", "TORCH_SPEC="], cwd=tmp_path, capture_output=True,
                                          text=True, check=True).stdout
