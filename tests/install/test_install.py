"""``wheelpatch-install`` in-process, into ``--target`` directories: what lands where, what RECORD
says, replacing an installed version, and every failure rolled back to exactly what was there.

With wheel files and ``--no-deps`` no pip runs, so these tests are fast; resolution through pip
and a real index is covered by ``test_install_e2e.py``.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from installer.sources import WheelFile

from wheelpatch.cli.wheelpatch_install import main
from wheelpatch.install.environment import probe
from wheelpatch.install.wheel_source import PatchedWheelSource
from wheelpatch.patch.plan import plan_patch
from wheelpatch.wheel.source_wheel import read_wheel

from ..conftest import CliResult, WheelSpec, build_wheel, snapshot
from ..sboms import SBOM, ancestors, metadata_diff, patch_text, validated_sbom

CONFIG = """\
[tool.wheelpatch]
local-version = "stripe.2"

[tool.wheelpatch.overrides.torch]
remove = ["triton", "nvidia-*"]
"""

TORCH_FILES = {
    "torch/__init__.py": b"VALUE = 1\n",
    "torch/core.py": b"def run():\n    return 'core'\n",
    "torch/lib/big.bin": os.urandom(3 << 20),  # a member written in pieces
    "torch/lib/zeros.bin": bytes(6 << 20),
}
ENTRY_POINTS = b"[console_scripts]\ntorchrun = torch.core:run\n"


def torch_spec(**changes: object) -> WheelSpec:
    spec = WheelSpec(
        name="torch",
        version="2.0.1",
        files=dict(TORCH_FILES),
        requires=["filelock", "triton==2.0.0", "nvidia-cublas-cu12; sys_platform == 'linux'"],
        data={"scripts/torch-tool": b"#!python\nprint('tool')\n", "headers/torch.h": b"int x;\n"},
        extra_dist_info={"entry_points.txt": ENTRY_POINTS},
    )
    for key, value in changes.items():
        setattr(spec, key, value)
    return spec


def drain(leader: int) -> str:
    """Everything written to a pty whose other end is closed, as text; the leader is closed."""
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the other end is closed and drained
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    return b"".join(chunks).decode()


@pytest.fixture
def install(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    config = tmp_path / "pyproject.toml"
    config.write_text(CONFIG, encoding="utf-8")

    def run(*argv: str | Path, target: Path | None = None) -> CliResult:
        capsys.readouterr()
        where = ["--target", str(target or tmp_path / "env")]
        args = ["--config", str(config), "--no-deps", *where, *map(str, argv)]
        try:
            code = main(args)
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def _record(dist_info: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO((dist_info / "RECORD").read_text("utf-8"))))


def _check_record(site: Path, dist_info: Path) -> set[str]:
    """Every RECORD row matches the file on disk; return the listed paths (resolved)."""
    listed = set()
    for path, digest, size in _record(dist_info):
        file = Path(os.path.normpath(site / path))
        listed.add(str(file))
        if not digest:
            assert path.endswith("/RECORD")
            continue
        data = file.read_bytes()
        algorithm, _, value = digest.partition("=")
        expected = base64.urlsafe_b64encode(hashlib.new(algorithm, data).digest()).rstrip(b"=")
        assert value == expected.decode(), path
        assert int(size) == len(data), path
    return listed


def test_installs_patched_wheel_with_every_scheme(
    tmp_path: Path, make_wheel: Callable[..., Path], install: Callable[..., CliResult]
) -> None:
    wheel = make_wheel(torch_spec())
    result = install(wheel)
    assert result.code == 0, result.err
    assert "installed torch 2.0.1+stripe.2 (patched from 2.0.1" in result.out
    env = tmp_path / "env"
    dist_info = env / "torch-2.0.1+stripe.2.dist-info"
    metadata = (dist_info / "METADATA").read_text("utf-8")
    assert "Version: 2.0.1+stripe.2" in metadata
    assert "triton" not in metadata
    assert "nvidia" not in metadata
    assert "Requires-Dist: filelock" in metadata
    for name, data in TORCH_FILES.items():
        assert (env / name).read_bytes() == data
    assert (dist_info / "INSTALLER").read_bytes() == b"wheelpatch\n"
    assert (dist_info / "REQUESTED").exists()
    url = json.loads((dist_info / "direct_url.json").read_text("utf-8"))
    assert url["url"] == wheel.absolute().as_uri()
    assert url["archive_info"]["hashes"]["sha256"] == hashlib.sha256(wheel.read_bytes()).hexdigest()
    provenance = json.loads((dist_info / "wheelpatch.json").read_text("utf-8"))
    assert provenance["source"]["sha256"] == hashlib.sha256(wheel.read_bytes()).hexdigest()
    assert provenance["version"] == {"before": "2.0.1", "after": "2.0.1+stripe.2"}
    # The installed dist's SBOM: valid CycloneDX 1.6, the wheel installed as its ancestor, the
    # METADATA diff as its patch (RECORD lists it, as every file: checked below).
    component, ancestor = ancestors(validated_sbom((dist_info / SBOM).read_bytes()))
    assert component["version"] == "2.0.1+stripe.2"
    assert ancestor["hashes"] == [
        {"alg": "SHA-256", "content": hashlib.sha256(wheel.read_bytes()).hexdigest()}
    ]
    with zipfile.ZipFile(wheel) as archive:
        old_metadata = archive.read("torch-2.0.1.dist-info/METADATA")
    assert patch_text(component) == metadata_diff(
        old_metadata,
        (dist_info / "METADATA").read_bytes(),
        "torch-2.0.1.dist-info/METADATA",
        "torch-2.0.1+stripe.2.dist-info/METADATA",
    )
    # .data/scripts gets its shebang rewritten for the interpreter; console scripts are made.
    interpreter = probe(None).interpreter
    assert (env / "bin" / "torch-tool").read_bytes() == f"#!{interpreter}\nprint('tool')\n".encode()
    assert os.access(env / "bin" / "torch-tool", os.X_OK)
    assert os.access(env / "bin" / "torchrun", os.X_OK)
    assert (env / "include" / "torch" / "torch.h").read_bytes() == b"int x;\n"
    # RECORD is what was written: every file listed, every hash right, bytecode included.
    listed = _check_record(env, dist_info)
    on_disk = {str(p) for p in env.rglob("*") if p.is_file()}
    assert listed == on_disk
    assert any(p.endswith(".pyc") for p in listed)
    assert not any(p.name.startswith(".wheelpatch-stash") for p in env.iterdir())


def test_no_compile_writes_no_bytecode(
    tmp_path: Path, make_wheel: Callable[..., Path], install: Callable[..., CliResult]
) -> None:
    result = install("--no-compile", make_wheel(torch_spec()))
    assert result.code == 0, result.err
    assert not list((tmp_path / "env").rglob("*.pyc"))


def test_the_installed_tree_matches_installer_apart_from_the_patch(
    tmp_path: Path, make_wheel: Callable[..., Path], install: Callable[..., CliResult]
) -> None:
    """An unpatched wheel (no override) installs exactly as installer itself installs it."""
    from installer import install as installer_install
    from installer.destinations import SchemeDictionaryDestination

    wheel = make_wheel(torch_spec(name="other"))
    assert install("--no-compile", wheel).code == 0
    ours = tmp_path / "env"
    theirs = tmp_path / "reference"
    scheme = {
        "purelib": str(theirs),
        "platlib": str(theirs),
        "scripts": str(theirs / "bin"),
        "data": str(theirs),
        "headers": str(theirs / "include" / "other"),
    }
    destination = SchemeDictionaryDestination(scheme, probe(None).interpreter, "posix")
    with WheelFile.open(wheel) as source:
        installer_install(source, destination, {"INSTALLER": b"wheelpatch\n", "REQUESTED": b""})
    mine = snapshot(ours)
    reference = snapshot(theirs)
    info = "other-2.0.1.dist-info"
    mine.pop(f"{info}/direct_url.json")
    # RECORD rows are the same (both sorted by path), apart from direct_url.json's row.
    rows = mine.pop(f"{info}/RECORD").decode().splitlines(keepends=True)
    assert "".join(r for r in rows if "/direct_url.json," not in r).encode() == reference.pop(
        f"{info}/RECORD"
    )
    assert mine == reference
    for name in mine:
        mode = (ours / name).stat().st_mode
        expected = (theirs / name).stat().st_mode
        if name == "bin/torch-tool":  # scripts are made executable, as pip and uv do
            expected |= 0o111
        assert mode == expected, name


def test_replaces_the_installed_version(
    tmp_path: Path, make_wheel: Callable[..., Path], install: Callable[..., CliResult]
) -> None:
    old_files = {**TORCH_FILES, "torch/only_old.py": b"OLD = True\n"}
    first = build_wheel(tmp_path, torch_spec(version="1.9", files=old_files))
    assert install(first).code == 0
    env = tmp_path / "env"
    assert (env / "torch/__pycache__").is_dir()
    result = install(make_wheel(torch_spec()))
    assert result.code == 0, result.err
    assert "replacing 1.9+stripe.2" in result.out
    assert not (env / "torch/only_old.py").exists()
    assert not list((env / "torch/__pycache__").glob("only_old.*"))
    assert not (env / "torch-1.9+stripe.2.dist-info").exists()
    dist_info = env / "torch-2.0.1+stripe.2.dist-info"
    assert _check_record(env, dist_info) == {str(p) for p in env.rglob("*") if p.is_file()}


def test_same_version_is_left_alone_unless_forced(
    make_wheel: Callable[..., Path], install: Callable[..., CliResult]
) -> None:
    wheel = make_wheel(torch_spec())
    assert install(wheel).code == 0
    again = install(wheel)
    assert again.code == 0
    assert "left alone torch 2.0.1+stripe.2 (already installed)" in again.out
    forced = install("--force-reinstall", wheel)
    assert forced.code == 0
    assert "replacing 2.0.1+stripe.2" in forced.out


def _corrupt(wheel: Path, member: str) -> None:
    """Change one byte of a stored member's data: zip CRC fixed up, RECORD hash now wrong."""
    with zipfile.ZipFile(wheel) as archive:
        entries = [(info, archive.read(info)) for info in archive.infolist()]
    with zipfile.ZipFile(wheel, "w") as archive:
        for info, data in entries:
            if info.filename == member:
                data = bytes([data[0] ^ 1]) + data[1:]
            archive.writestr(info, data)


def test_corrupt_member_midway_keeps_the_old_version(
    tmp_path: Path, make_wheel: Callable[..., Path], install: Callable[..., CliResult]
) -> None:
    first = build_wheel(tmp_path, torch_spec(version="1.9"))
    assert install(first).code == 0
    env = tmp_path / "env"
    before = snapshot(env)
    files = {f"torch/mod{i:03}.py": f"X = {i}\n".encode() for i in range(300)}
    bad = make_wheel(torch_spec(files={**TORCH_FILES, **files}))
    _corrupt(bad, "torch/mod150.py")
    source_bytes = bad.read_bytes()
    result = install(bad)
    assert result.code == 1
    assert result.err == (
        f"error: {bad.name}: member 'torch/mod150.py' does not match its RECORD hash\n"
    )
    assert snapshot(env) == before
    assert bad.read_bytes() == source_bytes


def test_write_failure_is_rolled_back_and_restores_a_file_of_another_project(
    tmp_path: Path, make_wheel: Callable[..., Path], install: Callable[..., CliResult]
) -> None:
    env = tmp_path / "env"
    # Another project owns torch/core.py (a clash); a directory where a file must go fails.
    (env / "torch").mkdir(parents=True)
    (env / "torch/core.py").write_bytes(b"owned by someone else\n")
    (env / "torch/lib/zeros.bin").mkdir(parents=True)
    before = snapshot(env)
    result = install(make_wheel(torch_spec()))
    assert result.code == 1
    assert "would replace the directory" in result.err
    assert snapshot(env) == before
    assert sorted(p.name for p in env.iterdir()) == ["torch"]


def test_symlink_out_of_the_scheme_is_refused(
    tmp_path: Path, make_wheel: Callable[..., Path], install: Callable[..., CliResult]
) -> None:
    env = tmp_path / "env"
    outside = tmp_path / "outside"
    outside.mkdir()
    env.mkdir()
    (env / "torch").symlink_to(outside)
    result = install(make_wheel(torch_spec()))
    assert result.code == 1
    assert "leads outside the purelib directory" in result.err
    assert list(outside.iterdir()) == []
    assert sorted(p.name for p in env.iterdir()) == ["torch"]


def test_dry_run_writes_nothing(
    tmp_path: Path, make_wheel: Callable[..., Path], install: Callable[..., CliResult]
) -> None:
    result = install("--dry-run", make_wheel(torch_spec()))
    assert result.code == 0, result.err
    assert (
        "would install torch 2.0.1+stripe.2 (patched from 2.0.1)\n"
        "    removed Requires-Dist: triton==2.0.0\n" in result.out
    )
    assert not (tmp_path / "env").exists()


def test_json_report(make_wheel: Callable[..., Path], install: Callable[..., CliResult]) -> None:
    result = install("--json", make_wheel(torch_spec()))
    assert result.code == 0, result.err
    document = json.loads(result.out)
    [wheel] = document["wheels"]
    assert wheel["name"] == "torch"
    assert wheel["status"] == "installed"
    assert wheel["patched"] is True
    assert wheel["version"] == "2.0.1+stripe.2"
    removed = {c["before"] for c in wheel["changes"] if c["action"] == "remove"}
    assert removed == {"triton==2.0.0", "nvidia-cublas-cu12; sys_platform == 'linux'"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(["missing.whl"], "missing.whl: no such wheel file", id="missing-wheel"),
        pytest.param(["torch=="], "is neither a wheel file nor a valid requirement", id="bad-req"),
        pytest.param(["-r", "nowhere.txt"], "-r nowhere.txt: no such file", id="missing-r"),
        pytest.param([], "give at least one TARGET", id="no-target"),
    ],
)
def test_usage_errors_exit_2(
    install: Callable[..., CliResult], argv: list[str], message: str
) -> None:
    result = install(*argv)
    assert result.code == 2
    assert message in result.err
    assert len(result.err.splitlines()) == 1


def test_hostile_wheel_is_refused_before_anything_is_written(
    tmp_path: Path, make_wheel: Callable[..., Path], install: Callable[..., CliResult]
) -> None:
    wheel = make_wheel(torch_spec(unrecorded={"torch/sneaky.py": b"x = 1\n"}))
    result = install(wheel)
    assert result.code == 1
    assert result.err.startswith(f"error: {wheel.name}: ")
    assert not (tmp_path / "env").exists()


def test_source_presents_the_patched_dist_info(
    tmp_path: Path, make_wheel: Callable[..., Path]
) -> None:
    from wheelpatch.rules.config import load_config

    config_path = tmp_path / "cfg.toml"
    config_path.write_text(CONFIG, encoding="utf-8")
    wheel = read_wheel(make_wheel(torch_spec()))
    plan = plan_patch(wheel, load_config(config_path))
    assert not isinstance(plan, type(None))
    fd = os.open(wheel.path, os.O_RDONLY)
    try:
        source = PatchedWheelSource(wheel, plan, fd)  # type: ignore[arg-type]
        assert source.dist_info_dir == "torch-2.0.1+stripe.2.dist-info"
        assert source.data_dir == "torch-2.0.1+stripe.2.data"
        assert source.dist_info_filenames == ["METADATA", "WHEEL", "entry_points.txt"]
        assert "triton" not in source.read_dist_info("METADATA")
        paths = [element[0][0] for element in source.get_contents()]
        assert paths[0] == "torch/lib/zeros.bin"  # the largest first
        assert "torch-2.0.1+stripe.2.data/scripts/torch-tool" in paths
        assert not any(p.startswith("torch-2.0.1.") for p in paths)
        source.validate_record()
    finally:
        os.close(fd)


def test_python_that_does_not_run_is_a_clear_error(
    tmp_path: Path, make_wheel: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "pyproject.toml"
    config.write_text(CONFIG, encoding="utf-8")
    code = main(
        [
            "--config",
            str(config),
            "--python",
            str(tmp_path / "nopython"),
            "--no-deps",
            str(make_wheel(torch_spec())),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2  # a usage error, as the exit code table says
    assert err.startswith(f"error: --python {tmp_path / 'nopython'}: cannot run it")


def test_installs_for_the_interpreter_running_the_tests() -> None:
    # The default target is $VIRTUAL_ENV's interpreter, else this one: never guessed wrong.
    env = probe(None)
    expected = os.environ.get("VIRTUAL_ENV")
    root = Path(expected) if expected else Path(sys.prefix)
    assert env.root.resolve() == root.resolve()


def test_progress_on_a_terminal_plain_lines_otherwise(tmp_path: Path) -> None:
    """Large wheels show a progress line on a terminal; piped output has none."""
    import pty
    import subprocess

    wheel = build_wheel(tmp_path, torch_spec(files={"torch/big.bin": bytes(80 << 20)}))
    config = tmp_path / "pyproject.toml"
    config.write_text(CONFIG, encoding="utf-8")
    script = Path(sys.executable).with_name("wheelpatch-install")
    outputs = []
    for index, terminal in enumerate((True, False)):
        argv = [script, "--config", config, "--no-deps", "--target", tmp_path / f"t{index}", wheel]
        if terminal:
            leader, follower = pty.openpty()
            done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=follower, check=False)
            os.close(follower)
            err = drain(leader)
        else:
            done = subprocess.run(argv, capture_output=True, check=False)
            err = done.stderr.decode()
        assert done.returncode == 0, err
        outputs.append((done.stdout.decode(), err))
    (tty_out, tty_err), (pipe_out, pipe_err) = outputs
    assert "\rinstalling torch 2.0.1+stripe.2: 100% (80/" in tty_err
    assert pipe_err == ""
    assert "installed torch 2.0.1+stripe.2" in tty_out
    assert tty_out.replace(str(tmp_path / "t0"), "T") == pipe_out.replace(str(tmp_path / "t1"), "T")


@pytest.mark.slow
def test_sigkill_midway_is_rolled_back_by_the_next_install(tmp_path: Path) -> None:
    """A killed install leaves its journal; the next install into the environment replays it:
    the previous version is back byte for byte, or (killed after it finished) the new one is
    complete. Nothing of the stash is left either way."""
    import random
    import shutil
    import subprocess
    import time

    config = tmp_path / "pyproject.toml"
    config.write_text(CONFIG, encoding="utf-8")
    old = build_wheel(tmp_path, torch_spec(version="1.9"))
    modules = {f"torch/m{i:04}.py": f"X = {i}\n".encode() for i in range(1000)}
    blob = random.Random(1).randbytes(24 << 20)
    (tmp_path / "new").mkdir()
    new = build_wheel(
        tmp_path / "new", torch_spec(files={**TORCH_FILES, **modules, "torch/blob.bin": blob})
    )
    other = build_wheel(tmp_path, WheelSpec(name="other", files={"other/__init__.py": b""}))
    script = Path(sys.executable).with_name("wheelpatch-install")

    def run(target: Path, wheel: Path) -> subprocess.Popen[bytes]:
        argv = [script, "--config", config, "--no-deps", "--target", target, wheel]
        return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    template = tmp_path / "template"
    first = run(template, old)
    first.communicate()
    assert first.returncode == 0
    before = snapshot(template)
    started = time.monotonic()
    timing = run(tmp_path / "timing", new)
    timing.communicate()
    assert timing.returncode == 0
    duration = time.monotonic() - started
    outcomes = set()
    for step in range(6):
        env = tmp_path / f"env{step}"
        shutil.copytree(template, env, symlinks=True)
        process = run(env, new)
        time.sleep(duration * (step + 1) / 6)
        process.kill()
        process.communicate()
        recovery = run(env, other)
        _, err = recovery.communicate()
        assert recovery.returncode == 0, err
        assert not [p for p in env.iterdir() if p.name.startswith(".wheelpatch-stash-")]
        after = {k: v for k, v in snapshot(env).items() if "other" not in k}
        if (env / "torch-2.0.1+stripe.2.dist-info").exists():
            dist_info = env / "torch-2.0.1+stripe.2.dist-info"
            listed = _check_record(env, dist_info)
            other_files = {str(p) for p in env.rglob("*") if p.is_file() and "other" in str(p)}
            assert listed | other_files == {str(p) for p in env.rglob("*") if p.is_file()}
            outcomes.add("new")
        else:
            assert after == before, f"killed at step {step}: the old version was not restored"
            outcomes.add("rolled back" if b"rolled back" in err else "untouched")
    assert "rolled back" in outcomes, outcomes
