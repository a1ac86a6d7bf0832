"""The loader model, pure: tables of ELF facts, files that will exist and system libraries, and
the needs that resolve nowhere; then which removed requirement would have provided each."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from packaging.requirements import Requirement

from wheelpatch.check.elf import ElfFacts
from wheelpatch.check.libraries import (
    ElfObject,
    Missing,
    SystemSearch,
    attribute,
    describe,
    find_missing,
)

SITE = "/env/site-packages"
NO_SYSTEM = SystemSearch({}, {}, "no system")


def obj(
    path: str,
    needed: Sequence[str] = (),
    *,
    runpath: Sequence[str] | None = None,
    rpath: Sequence[str] | None = None,
    soname: str | None = None,
) -> ElfObject:
    facts = ElfFacts(
        machine="EM_X86_64",
        elf_class=64,
        elf_type="ET_DYN",
        needed=tuple(needed),
        runpath=None if runpath is None else tuple(runpath),
        rpath=None if rpath is None else tuple(rpath),
        soname=soname,
    )
    return ElfObject(f"{SITE}/{path}", facts, f"demo 1.0: {path}")


def missing_names(
    objects: Sequence[ElfObject],
    files: Sequence[str] = (),
    system: SystemSearch = NO_SYSTEM,
) -> list[tuple[str, str]]:
    present = {f"{SITE}/{f}" if not f.startswith("/") else f for f in files}
    found = find_missing(objects, present.__contains__, system)
    return [(m.needed_by.path.removeprefix(SITE + "/"), m.library) for m in found]


CASES = [
    pytest.param(
        [obj("pkg/_ext.so", ["libfoo.so"], runpath=["$ORIGIN/../provider/lib"])],
        ["provider/lib/libfoo.so"],
        [],
        id="runpath-origin-resolves",
    ),
    pytest.param(
        [obj("pkg/_ext.so", ["libfoo.so"], runpath=["${ORIGIN}/../provider/lib"])],
        ["provider/lib/libfoo.so"],
        [],
        id="braced-origin",
    ),
    pytest.param(
        [obj("pkg/_ext.so", ["libfoo.so"], runpath=["$ORIGIN/../provider/lib"])],
        [],
        [("pkg/_ext.so", "libfoo.so")],
        id="runpath-nothing-there",
    ),
    pytest.param(
        [obj("pkg/_ext.so", ["libfoo.so"], runpath=["$ORIGIN/lib"], rpath=["$ORIGIN/other"])],
        ["pkg/other/libfoo.so"],
        [("pkg/_ext.so", "libfoo.so")],
        id="rpath-ignored-when-runpath-present",
    ),
    pytest.param(
        [obj("pkg/_ext.so", ["libfoo.so"], rpath=["$ORIGIN/other"])],
        ["pkg/other/libfoo.so"],
        [],
        id="rpath-used-without-runpath",
    ),
    pytest.param(
        # A loads B by its RUNPATH; B needs C, which only A's RUNPATH would find: not transitive.
        [
            obj("pkg/a.so", ["libb.so"], runpath=["$ORIGIN/lib"]),
            obj("pkg/lib/libb.so", ["libc_only_a.so"], soname="libb.so"),
        ],
        ["pkg/lib/libb.so", "pkg/lib/libc_only_a.so"],
        [("pkg/lib/libb.so", "libc_only_a.so")],
        id="runpath-not-transitive",
    ),
    pytest.param(
        # The same with RPATH: B, loaded by A, is searched with A's RPATH too.
        [
            obj("pkg/a.so", ["libb.so"], rpath=["$ORIGIN/lib"]),
            obj("pkg/lib/libb.so", ["libc_only_a.so"], soname="libb.so"),
        ],
        ["pkg/lib/libb.so", "pkg/lib/libc_only_a.so"],
        [],
        id="rpath-of-the-loader-applies",
    ),
    pytest.param(
        # The loader's RPATH does not apply to a file that has a RUNPATH of its own.
        [
            obj("pkg/a.so", ["libb.so"], rpath=["$ORIGIN/lib"]),
            obj("pkg/lib/libb.so", ["libc_only_a.so"], runpath=["/nowhere"], soname="libb.so"),
        ],
        ["pkg/lib/libb.so", "pkg/lib/libc_only_a.so"],
        [("pkg/lib/libb.so", "libc_only_a.so")],
        id="own-runpath-stops-the-rpath-chain",
    ),
    pytest.param(
        # libx.so.1 loaded by A (through A's RUNPATH) satisfies B's need by SONAME.
        [
            obj("pkg/a.so", ["libx.so.1", "libb.so"], runpath=["$ORIGIN/lib"]),
            obj("pkg/lib/libb.so", ["libx.so.1"], soname="libb.so"),
        ],
        ["pkg/lib/libx.so.1", "pkg/lib/libb.so"],
        [],
        id="already-loaded-by-soname",
    ),
    pytest.param(
        [obj("pkg/a.so", ["/opt/vendor/libv.so"])],
        ["/opt/vendor/libv.so"],
        [],
        id="a-path-is-a-path",
    ),
    pytest.param(
        [obj("pkg/a.so", ["/opt/vendor/libv.so"], runpath=["/opt/vendor"])],
        [],
        [("pkg/a.so", "/opt/vendor/libv.so")],
        id="a-missing-path",
    ),
    pytest.param(
        [obj("pkg/a.so", ["libsys.so.2"])],
        [],
        [],
        id="system-directory",
    ),
    pytest.param(
        [obj("pkg/a.so", ["libcached.so.1"])],
        [],
        [],
        id="ld-so-cache",
    ),
    pytest.param(
        [obj("pkg/a.so", ["libfoo.so"], runpath=["relative/dir"])],
        ["relative/dir/libfoo.so"],
        [("pkg/a.so", "libfoo.so")],
        id="relative-entry-is-not-searched",
    ),
]


@pytest.mark.parametrize(("objects", "files", "expected"), CASES)
def test_loader_model(
    objects: list[ElfObject], files: list[str], expected: list[tuple[str, str]]
) -> None:
    system = SystemSearch(
        {"/usr/lib/x86_64-linux-gnu": frozenset({"libsys.so.2"})},
        {"libcached.so.1": "/usr/lib/libcached.so.1"},
        "the test's system",
    )
    assert missing_names(objects, files, system) == expected


def test_missing_says_where_it_looked_in_order() -> None:
    ext = obj("pkg/_ext.so", ["libfoo.so"], runpath=["$ORIGIN/../provider/lib", "$ORIGIN"])
    (missing,) = find_missing([ext], lambda _: False, NO_SYSTEM)
    assert missing.looked == (
        ("$ORIGIN/../provider/lib", f"{SITE}/provider/lib"),
        ("$ORIGIN", f"{SITE}/pkg"),
    )


def _missing(library: str, dirs: Sequence[str]) -> Missing:
    looked = tuple((f"$ORIGIN/../../{d}", f"{SITE}/{d}") for d in dirs)
    return Missing(library, obj("torch/lib/libtorch_cuda.so"), looked)


REMOVED = [
    Requirement('nvidia-cudnn-cu13==9.24.0.43; platform_system == "Linux"'),
    Requirement("nvidia-nccl-cu13==2.30.7"),
    Requirement("cuda-toolkit[cublas,cudart]==13.0.3"),
    Requirement("provider"),
]
TORCH_DIRS = ["nvidia/cudnn/lib", "nvidia/nccl/lib", "nvidia/cu13/lib"]


@pytest.mark.parametrize(
    ("library", "dirs", "requirement", "how"),
    [
        ("libcudnn.so.9", TORCH_DIRS, "nvidia-cudnn-cu13", "likely"),
        ("libnccl.so.2", TORCH_DIRS, "nvidia-nccl-cu13", "likely"),
        ("libcudart.so.13", TORCH_DIRS, "cuda-toolkit", "likely"),
        ("libfoo.so", ["provider/lib"], "provider", "likely"),
        # Every directory names another requirement: nothing can be told from them.
        ("libcurand.so.10", TORCH_DIRS, None, None),
        ("libcuda.so.1", TORCH_DIRS, None, None),
    ],
)
def test_likely_provider(
    library: str, dirs: list[str], requirement: str | None, how: str | None
) -> None:
    provider = attribute(_missing(library, dirs), REMOVED, {}, [SITE])
    if requirement is None:
        assert provider is None
        return
    assert provider is not None
    assert [Requirement(r).name for r in provider.requirements] == [requirement]
    assert provider.how == how


def test_provider_known_from_its_wheels_record() -> None:
    missing = _missing("libcurand.so.10", TORCH_DIRS)
    records = {"nvidia-nccl-cu13": [f"{SITE}/nvidia/cu13/lib/libcurand.so.10"]}
    provider = attribute(missing, REMOVED, records, [SITE])
    assert provider is not None
    assert provider.how == "record"
    assert provider.requirements == ("nvidia-nccl-cu13==2.30.7",)
    assert "nvidia/cu13/lib/libcurand.so.10" in provider.detail


def test_a_record_elsewhere_than_where_it_is_looked_for_clears_the_requirement() -> None:
    # provider's RECORD is known and does not put libfoo.so where it is looked for: the library
    # would be missing with provider installed too, so neither its name nor the search path
    # (site-packages/provider/lib) may blame it.
    missing = _missing("libfoo.so", ["provider/lib"])
    records = {"provider": [f"{SITE}/provider/other/libfoo.so"]}
    assert attribute(missing, REMOVED, records, [SITE]) is None


def test_a_record_clears_only_its_own_requirement() -> None:
    # nvidia-cudnn-cu13's RECORD lacks libcudnn.so.9: no other requirement is named by it, and
    # the cleared one is not guessed; with cuda-toolkit's RECORD known too, the directory guess
    # may not fall back to it either.
    missing = _missing("libcudnn.so.9", TORCH_DIRS)
    records = {"nvidia-cudnn-cu13": [f"{SITE}/nvidia/cudnn/include/cudnn.h"]}
    assert attribute(missing, REMOVED, records, [SITE]) is None
    only_nccl_dir = _missing("libx.so", ["nvidia/nccl/lib"])
    provider = attribute(only_nccl_dir, REMOVED, {}, [SITE])
    assert provider is not None
    assert provider.requirements == ("nvidia-nccl-cu13==2.30.7",)
    cleared = {"nvidia-nccl-cu13": [f"{SITE}/nvidia/nccl/lib/libnccl.so.2"]}
    assert attribute(only_nccl_dir, REMOVED, cleared, [SITE]) is None


def test_the_line_names_library_file_places_and_requirement() -> None:
    missing = _missing("libfoo.so", ["provider/lib"])
    provider = attribute(missing, REMOVED, {}, [SITE])
    line = describe(missing, provider, NO_SYSTEM, [SITE])
    assert line == (
        "libfoo.so: needed by demo 1.0: torch/lib/libtorch_cuda.so; looked for in "
        "site-packages/provider/lib, no system; likely provided by the removed requirement "
        "'provider' (from the search path '$ORIGIN/../../provider/lib', "
        "site-packages/provider/lib)"
    )


# --- the executable's RPATH, dynamic string tokens, wrong-class system files, many needs ------

CONDA = "/opt/conda"


def _interpreter(rpath: Sequence[str] | None, runpath: Sequence[str] | None = None) -> ElfObject:
    python = obj("unused", rpath=rpath, runpath=runpath)
    return ElfObject(f"{CONDA}/bin/python3.11", python.facts, "the interpreter")


def _with_executable(executable: ElfObject | None) -> SystemSearch:
    return SystemSearch({}, {}, "no system", executable=executable)


@pytest.mark.parametrize(
    ("ext", "executable", "missing"),
    [
        pytest.param(
            obj("pkg/_ext.so", ["libpython3.11.so.1.0"]),
            _interpreter(["$ORIGIN/../lib"]),
            [],
            id="no-runpath-uses-the-executables-rpath",
        ),
        pytest.param(
            obj("pkg/_ext.so", ["libpython3.11.so.1.0"], rpath=["$ORIGIN"]),
            _interpreter(["$ORIGIN/../lib"]),
            [],
            id="after-its-own-rpath",
        ),
        pytest.param(
            obj("pkg/_ext.so", ["libpython3.11.so.1.0"], runpath=["$ORIGIN"]),
            _interpreter(["$ORIGIN/../lib"]),
            [("pkg/_ext.so", "libpython3.11.so.1.0")],
            id="not-for-a-file-with-runpath",
        ),
        pytest.param(
            obj("pkg/_ext.so", ["libpython3.11.so.1.0"]),
            _interpreter(["$ORIGIN/../lib"], runpath=["/nowhere"]),
            [("pkg/_ext.so", "libpython3.11.so.1.0")],
            id="not-when-the-executable-has-runpath",
        ),
        pytest.param(
            obj("pkg/_ext.so", ["libpython3.11.so.1.0"]),
            None,
            [("pkg/_ext.so", "libpython3.11.so.1.0")],
            id="no-executable-known",
        ),
    ],
)
def test_the_executables_rpath(
    ext: ElfObject, executable: ElfObject | None, missing: list[tuple[str, str]]
) -> None:
    files = [f"{CONDA}/lib/libpython3.11.so.1.0"]
    assert missing_names([ext], files, _with_executable(executable)) == missing


def test_the_executables_rpath_is_listed_last_where_it_looked() -> None:
    ext = obj("pkg/_ext.so", ["libgone.so"], rpath=["$ORIGIN"])
    system = _with_executable(_interpreter(["$ORIGIN/../lib"]))
    (missing,) = find_missing([ext], lambda _: False, system)
    assert missing.looked == (("$ORIGIN", f"{SITE}/pkg"), ("$ORIGIN/../lib", f"{CONDA}/lib"))


@pytest.mark.parametrize(
    ("entry", "files", "lib", "platform", "missing"),
    [
        pytest.param(
            "/opt/$LIB", ["/opt/lib64/libfoo.so"], None, None, True, id="lib-unknown-is-not-guessed"
        ),
        pytest.param(
            "/opt/${LIB}",
            ["/opt/lib/x86_64-linux-gnu/libfoo.so"],
            "lib/x86_64-linux-gnu",
            None,
            False,
            id="lib-known-braced",
        ),
        pytest.param("/opt/$LIB/x", ["/opt/lib/x/libfoo.so"], "lib", None, False, id="lib-known"),
        pytest.param(
            "/opt/$PLATFORM", ["/opt/x86_64/libfoo.so"], None, None, True, id="platform-unknown"
        ),
        pytest.param(
            "/opt/$PLATFORM",
            ["/opt/haswell/libfoo.so"],
            None,
            "haswell",
            False,
            id="platform-known",
        ),
        # No token inside an identifier: $ORIGIN_x and $LIBS are literal directory names.
        pytest.param(
            "/opt/$ORIGIN_x",
            ["/opt/$ORIGIN_x/libfoo.so"],
            None,
            None,
            False,
            id="origin-inside-a-name-is-literal",
        ),
        pytest.param(
            "/opt/$LIBS",
            ["/opt/$LIBS/libfoo.so"],
            None,
            None,
            False,
            id="lib-inside-a-name-is-literal",
        ),
        pytest.param(
            "$ORIGIN_x",
            [f"{SITE}/pkg_x/libfoo.so"],
            None,
            None,
            True,
            id="origin-prefix-is-not-expanded",
        ),
    ],
)
def test_dynamic_string_tokens(
    entry: str, files: list[str], lib: str | None, platform: str | None, missing: bool
) -> None:
    ext = obj("pkg/_ext.so", ["libfoo.so"], runpath=[entry])
    system = SystemSearch({}, {}, "no system", lib=lib, platform=platform)
    assert bool(missing_names([ext], files, system)) is missing


def test_an_unknown_token_is_said_where_it_looked() -> None:
    ext = obj("pkg/_ext.so", ["libfoo.so"], runpath=["$ORIGIN/../$LIB", "$ORIGIN"])
    (missing,) = find_missing([ext], lambda _: False, NO_SYSTEM)
    assert missing.looked == (("$ORIGIN/../$LIB", ""), ("$ORIGIN", f"{SITE}/pkg"))
    line = describe(missing, None, NO_SYSTEM, [SITE])
    assert "looked for in '$ORIGIN/../$LIB' (not searched: $LIB not known), site-packages/pkg," in (
        line
    )


def test_a_system_file_the_loader_would_not_take_is_passed_over() -> None:
    # /usr/lib/libz.so.1 is 32-bit: glibc skips it for a 64-bit process and searches on.
    system = SystemSearch(
        {"/usr/lib": frozenset({"libz.so.1"}), "/usr/lib64": frozenset({"libz.so.1"})},
        {},
        "the test's system",
        usable=lambda path: path.startswith("/usr/lib64/"),
    )
    assert system.find("libz.so.1") == "/usr/lib64/libz.so.1"
    only_32 = SystemSearch(
        {"/usr/lib": frozenset({"libz.so.1"})}, {}, "s", usable=lambda path: False
    )
    assert missing_names([obj("pkg/a.so", ["libz.so.1"])], [], only_32) == [
        ("pkg/a.so", "libz.so.1")
    ]


def test_many_unmet_needs_take_linear_time() -> None:
    import time

    names = [f"libgone{n}.so" for n in range(40_000)]
    ext = obj("pkg/_ext.so", names)
    started = time.perf_counter()
    found = find_missing([ext], lambda _: False, NO_SYSTEM)
    elapsed = time.perf_counter() - started
    assert [m.library for m in found] == names
    assert elapsed < 3.0, f"{elapsed:.1f} s for 40,000 unmet needs (16 s when it was quadratic)"
