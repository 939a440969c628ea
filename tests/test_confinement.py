"""Files a scenario names stay inside its folder tree, are regular, bounded and never echoed (issue 8).

A scenario may read a policy pack, the packs it extends and empirical CSVs from its own folder and
below; more folders only when allowed explicitly (``allow=`` or MILESTONE_SIM_ALLOW_PATHS).
Devices, FIFOs and folders are refused without reading, the size limit holds while reading, and no
message quotes the contents of a refused file.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sim.app.cli import main
from sim.core.yamlio import ALLOW_ENV, InputError, read_text_bounded
from sim.inputs.scenario import load_scenario
from sim.policy import load_policy

SECRET = "SECRET_TOKEN=hunter2"

POPULATION = """\
scenario: Confined
policy: {policy}
until: 20d
population:
  arrivals: {{count: 3, over: 5d}}
  milestones:
    amount: {{empirical: {{file: {file}, column: amount}}}}
"""

PACK = "policy: mine\nextends: {parent}\nreview:\n  window: 9d\n"


@pytest.fixture(autouse=True)
def _no_allowance_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ALLOW_ENV, raising=False)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """``tmp/scen/`` holds the scenario; ``tmp/outside/`` holds files it must not read."""
    (tmp_path / "scen" / "data").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.csv").write_text(f"amount,{SECRET}\n100,1\n", encoding="utf-8")
    (tmp_path / "outside" / "pack.yaml").write_text(f"{SECRET}: x\n", encoding="utf-8")
    (tmp_path / "scen" / "data" / "amounts.csv").write_text("amount\n100\n250\n", encoding="utf-8")
    return tmp_path


def _scenario(tree: Path, *, policy: str = "upwork", file: str = "data/amounts.csv") -> Path:
    path = tree / "scen" / "s.yaml"
    path.write_text(POPULATION.format(policy=policy, file=file), encoding="utf-8")
    return path


def _refused(capsys: pytest.CaptureFixture, path: Path, tree: Path, line: int, *says: str) -> str:
    out_dir = tree / "out"
    code = main(["run", str(path), "--out", str(out_dir), "--no-charts"])
    out, err = capsys.readouterr()
    assert code == 2, err
    assert "Traceback" not in out + err
    assert f"error: {path}:{line}:" in err, err
    for fragment in says:
        assert fragment in err, err
    assert SECRET not in out + err
    assert "hunter2" not in out + err
    assert not out_dir.exists()
    return err


# ------------------------------------------------------------------------------ empirical CSVs


def test_csv_inside_the_folder_tree_is_read(tree: Path):
    sc = load_scenario(_scenario(tree))
    assert sc.population is not None
    assert sorted(sc.population.ms_amount.values) == [100.0, 250.0]


@pytest.mark.parametrize(
    "ref", ["../outside/secret.csv", "{tree}/outside/secret.csv", "data/../../outside/secret.csv"]
)
def test_csv_outside_the_folder_is_refused(tree: Path, capsys, ref: str):
    path = _scenario(tree, file=ref.format(tree=tree))
    err = _refused(
        capsys, path, tree, 7, "population.milestones.amount.empirical.file", "outside the allowed"
    )
    assert "--allow-path" in err and ALLOW_ENV in err


def test_symlink_inside_the_folder_pointing_outside_is_refused(tree: Path, capsys):
    (tree / "scen" / "data" / "link.csv").symlink_to(tree / "outside" / "secret.csv")
    path = _scenario(tree, file="data/link.csv")
    _refused(capsys, path, tree, 7, "outside the allowed folders")


def test_system_files_are_refused_without_being_read(tree: Path, capsys):
    path = _scenario(tree, file="/proc/self/environ")
    _refused(capsys, path, tree, 7, "outside the allowed folders")


def test_allow_argument_admits_another_folder(tree: Path):
    path = _scenario(tree, file="../outside/secret.csv")
    with pytest.raises(InputError):
        load_scenario(path)
    sc = load_scenario(path, allow=[tree / "outside"])
    assert sc.population is not None
    assert list(sc.population.ms_amount.values) == [100.0]


def test_environment_variable_admits_another_folder(tree: Path, monkeypatch: pytest.MonkeyPatch):
    path = _scenario(tree, file="../outside/secret.csv")
    monkeypatch.setenv(ALLOW_ENV, os.pathsep.join(["/nonexistent-folder", str(tree / "outside")]))
    sc = load_scenario(path)
    assert sc.population is not None


@pytest.mark.parametrize("name", ["fifo.csv", "dir.csv", "/dev/zero", "/dev/urandom"])
def test_csv_must_be_a_regular_file(tree: Path, capsys, monkeypatch: pytest.MonkeyPatch, name: str):
    if name == "fifo.csv":
        os.mkfifo(tree / "scen" / "fifo.csv")  # opening it blocking would hang forever
    elif name == "dir.csv":
        (tree / "scen" / "dir.csv").mkdir()
    monkeypatch.setenv(ALLOW_ENV, "/dev")
    path = _scenario(tree, file=name)
    _refused(capsys, path, tree, 7, "not a regular file")


def test_csv_that_is_not_utf8(tree: Path, capsys):
    (tree / "scen" / "data" / "latin1.csv").write_bytes(b"amount\n100\ncaf\xe9\n")
    path = _scenario(tree, file="data/latin1.csv")
    _refused(capsys, path, tree, 7, "data/latin1.csv is not UTF-8 text (byte 14) (line 3, column 4)")


def test_csv_column_error_names_the_columns_only(tree: Path, capsys):
    (tree / "scen" / "data" / "cols.csv").write_text("price,days\n100,2\n", encoding="utf-8")
    path = _scenario(tree, file="data/cols.csv")
    err = _refused(capsys, path, tree, 7, "has no column 'amount'; columns: 'price', 'days'")
    assert "100" not in err


# ------------------------------------------------------------------------------ policy packs and extends


@pytest.mark.parametrize("ref", ["../outside/pack.yaml", "{tree}/outside/pack.yaml", "/proc/self/environ"])
def test_policy_path_outside_the_folder_is_refused(tree: Path, capsys, ref: str):
    path = _scenario(tree, policy=ref.format(tree=tree))
    _refused(capsys, path, tree, 2, "policy:", "outside the allowed folders")


def test_policy_symlink_pointing_outside_is_refused(tree: Path, capsys):
    (tree / "scen" / "pack.yaml").symlink_to(tree / "outside" / "pack.yaml")
    path = _scenario(tree, policy="pack.yaml")
    _refused(capsys, path, tree, 2, "outside the allowed folders")


def test_extends_outside_the_folder_is_refused(tree: Path, capsys):
    (tree / "scen" / "mine.yaml").write_text(PACK.format(parent="../outside/pack.yaml"), encoding="utf-8")
    path = _scenario(tree, policy="mine.yaml")
    code = main(["run", str(path), "--out", str(tree / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert f"error: {tree / 'scen' / 'mine.yaml'}:2:10: extends: " in err
    assert "outside the allowed folders" in err
    assert SECRET not in err
    assert not (tree / "out").exists()


def test_pack_in_a_subfolder_extending_a_builtin_is_fine(tree: Path):
    (tree / "scen" / "packs").mkdir()
    (tree / "scen" / "packs" / "mine.yaml").write_text(PACK.format(parent="upwork"), encoding="utf-8")
    sc = load_scenario(_scenario(tree, policy="packs/mine.yaml"))
    assert sc.policy.review.window == 9.0


def test_policy_loaded_directly_extends_only_inside_its_folder(tree: Path):
    pack = tree / "scen" / "mine.yaml"
    (tree / "scen" / "base.yaml").write_text(PACK.format(parent="upwork").replace("mine", "base"), "utf-8")
    pack.write_text(PACK.format(parent="base.yaml"), encoding="utf-8")
    assert load_policy(str(pack)).review.window == 9.0
    pack.write_text(PACK.format(parent="../outside/pack.yaml"), encoding="utf-8")
    with pytest.raises(InputError) as info:
        load_policy(str(pack))
    [problem] = info.value.problems
    assert (problem.file, problem.line, problem.key) == (str(pack), 2, "extends")
    assert "outside the allowed folders" in problem.message


def test_policy_loaded_directly_with_allowance_reads_the_parent(tree: Path):
    (tree / "outside" / "base.yaml").write_text(PACK.format(parent="upwork").replace("mine", "base"), "utf-8")
    pack = tree / "scen" / "mine.yaml"
    pack.write_text(PACK.format(parent="../outside/base.yaml"), encoding="utf-8")
    with pytest.raises(InputError):
        load_policy(str(pack))
    assert load_policy(str(pack), allow=[tree / "outside"]).review.window == 9.0


def test_allowance_is_kept_by_with_overrides(tree: Path):
    (tree / "outside" / "base.yaml").write_text(PACK.format(parent="upwork").replace("mine", "base"), "utf-8")
    path = _scenario(tree, policy="../outside/base.yaml")
    sc = load_scenario(path, allow=[tree / "outside"])
    assert sc.with_overrides([("review.window", "3d")]).policy.review.window == 3.0


def test_builtin_pack_by_name_needs_no_allowance(tree: Path):
    sc = load_scenario(_scenario(tree, policy="upwork_fees"))
    assert sc.policy.extends == "upwork"


def test_validate_refuses_a_pack_path_outside(tree: Path, capsys):
    (tree / "scen" / "mine.yaml").write_text(PACK.format(parent="../outside/pack.yaml"), encoding="utf-8")
    code = main(["validate", str(tree / "scen" / "mine.yaml")])
    err = capsys.readouterr().err
    assert code == 2
    assert "outside the allowed folders" in err
    assert SECRET not in err


# ------------------------------------------------------------------------------ the scenario file itself


@pytest.mark.parametrize("name", ["/dev/zero", "/dev/urandom", "/dev/stdin"])
def test_scenario_that_is_a_device(tmp_path: Path, capsys, name: str):
    code = main(["run", name, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert f"error: {name}: cannot read file: it is a device, pipe or socket, not a regular file" in err
    assert not (tmp_path / "out").exists()


def test_scenario_that_is_a_fifo(tmp_path: Path, capsys):
    fifo = tmp_path / "s.yaml"
    os.mkfifo(fifo)
    code = main(["run", str(fifo), "--out", str(tmp_path / "out")])
    assert code == 2
    assert "not a regular file" in capsys.readouterr().err


def test_size_limit_holds_while_reading_not_from_st_size():
    # /proc files report st_size 0 and yet have contents
    assert os.stat("/proc/self/maps").st_size == 0
    with pytest.raises(InputError) as info:
        read_text_bounded("/proc/self/maps", 16, "file")
    assert info.value.problems[0].message == "file is larger than 16 bytes"


def test_read_text_bounded_reads_a_regular_file(tmp_path: Path):
    path = tmp_path / "a.txt"
    path.write_text("héllo\n", encoding="utf-8")
    assert read_text_bounded(path, 7, "file") == "héllo\n"
    with pytest.raises(InputError, match="larger than 6 bytes"):
        read_text_bounded(path, 6, "file")


def test_control_characters_are_named_not_quoted(tmp_path: Path, capsys):
    path = tmp_path / "s.yaml"
    path.write_bytes(f"scenario: x\npolicy: upwork\n{SECRET}\x00more\n".encode())
    code = main(["validate", str(path)])
    err = capsys.readouterr().err
    assert code == 2
    assert f"error: {path}:3:21: YAML error: unacceptable character #x0000" in err
    assert "hunter2" not in err
