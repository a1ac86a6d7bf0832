"""The hatchling plugin: the ``[tool.wheelpatch]`` label, overrides and provenance in builds.

A thin adapter between hatchling's three plugin interfaces and :mod:`wheelpatch.build`:

- the **version source** ``wheelpatch`` reads the version from another source (``regex`` by
  default, so ``path = "src/pkg/__init__.py"`` works as usual) and gives it the local label.
  Hatchling names the wheel, the ``.dist-info`` and METADATA's ``Version`` all from the version
  source, before any hook runs, so the three always agree, and so does
  ``prepare_metadata_for_build_wheel``;
- the **metadata hook** ``wheelpatch`` applies the project's override to the requirement fields
  it declares (``dependencies``, ``optional-dependencies``), which ``project.dynamic`` lists;
- the **build hook** ``wheelpatch`` writes ``wheelpatch.json`` and the SBOM
  ``sboms/wheelpatch.cdx.json`` into the wheel's ``.dist-info`` (and ``.wheelpatch.json`` into an
  sdist, which a wheel built from that sdist carries on).

An sdist records the labelled version and the edited requirements in its PKG-INFO; hatchling
takes dynamic fields from PKG-INFO when it builds from an unpacked sdist, so the wheel gets the
same version without git, and this module then asks git nothing.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface
from hatchling.metadata.plugin.interface import MetadataHookInterface
from hatchling.plugin import hookimpl
from hatchling.version.source.plugin.interface import VersionSourceInterface

from ..errors import ConfigError

if TYPE_CHECKING:
    from packaging.version import Version

    from ..rules.config import Config
    from ..rules.git import GitDescribe
    from .planning import FieldsPlan, ProjectFields, VersionPlan

# Hatchling imports this module in every backend process, get_requires_for_build_* included,
# where none of the plugin runs: the rest of wheelpatch (and packaging) is imported where used.

__all__ = [
    "PLUGIN_NAME",
    "SDIST_PROVENANCE_NAME",
    "WheelpatchBuildHook",
    "WheelpatchMetadataHook",
    "WheelpatchVersionSource",
]

PLUGIN_NAME = "wheelpatch"
#: Where an sdist carries its provenance, at the root beside PKG-INFO.
SDIST_PROVENANCE_NAME = ".wheelpatch.json"
_HOOK_KEY = "tool.hatch.metadata.hooks.wheelpatch"
_HOOK_KEYS = frozenset({"dependencies", "optional-dependencies"})
_FIELDS = frozenset({*_HOOK_KEYS, "requires-python"})
#: The version source's plan per project root, for the metadata hook, which hatchling runs after
#: the version source in the same process but gives no way to reach it.
_VERSION_PLANS: dict[str, VersionPlan] = {}


def _hatch_table(
    root: str, table: str, pyproject: Mapping[str, Any] | None = None
) -> tuple[str, Any]:
    """One of hatch's own tables (``version``, ``metadata.hooks...``) and its full name: from
    hatch.toml when that file has it (hatch.toml wins), else from ``tool.hatch`` in ``pyproject``
    (``None`` when neither has it, or when ``pyproject`` is not given)."""
    from ..rules.config import read_toml

    def lookup(node: Any, parts: list[str]) -> Any:
        for part in parts:
            node = node.get(part) if isinstance(node, dict) else None
        return node

    hatch_toml = Path(root) / "hatch.toml"
    if hatch_toml.is_file():
        node = lookup(read_toml(hatch_toml), table.split("."))
        if node is not None:
            return f"hatch.toml: {table}", node
    return f"tool.hatch.{table}", lookup(pyproject, ["tool", "hatch", *table.split(".")])


def _hatch_key(root: str, table: str, name: str = "") -> str:
    """The full name of a key in one of hatch's own tables, as :func:`_hatch_table` finds it."""
    where = _hatch_table(root, table)[0]
    return f"{where}.{name}" if name else where


def _refuse_static_version(root: str, data: Mapping[str, Any]) -> None:
    """Hatchling asks no version source when ``[project]`` sets ``version``: with ``source =
    "wheelpatch"`` the build would silently have no label, so it is refused."""
    project = data.get("project")
    if not isinstance(project, dict) or "version" not in project:
        return
    where, table = _hatch_table(root, "version", data)
    if not isinstance(table, dict) or table.get("source") != PLUGIN_NAME:
        return
    base = table.get("base-source", "regex")
    if base == "regex":
        fix = (
            f"and put the version in the file {where}.path names, where the base source "
            "'regex' reads it"
        )
    else:
        fix = f"and let the base source {base!r} give it"
    raise ConfigError(
        [
            f"project.version: {project['version']!r} is static, so hatchling never asks "
            f"{where}.source {PLUGIN_NAME!r} and the build would get no label; remove it from "
            f"[project], list 'version' in project.dynamic {fix}"
        ]
    )


def _pyproject(root: str) -> tuple[Path, dict[str, Any]]:
    from ..rules.config import read_toml

    path = Path(root) / "pyproject.toml"
    return path, read_toml(path)


def _project_name(path: Path, data: Mapping[str, Any]) -> str:
    project = data.get("project")
    name = project.get("name") if isinstance(project, dict) else None
    if not isinstance(name, str) or not name:
        raise ConfigError([f"{path}: project.name must be set for the wheelpatch plugin"])
    return name


def _config(path: Path, data: Mapping[str, Any], *, resolve_labels: bool) -> Config:
    from ..rules.config import parse_config

    tool = data.get("tool")
    table = tool.get("wheelpatch") if isinstance(tool, dict) else None
    if table is None:
        raise ConfigError(
            [f"{path}: has no [tool.wheelpatch] table (the wheelpatch hatch plugin reads it)"]
        )
    return parse_config(table, path, resolve_labels=resolve_labels, global_label=True)


def load_config(root: str, *, resolve_labels: bool) -> Config:
    """The project's own ``[tool.wheelpatch]`` table, with its label for this project."""
    path, data = _pyproject(root)
    return _config(path, data, resolve_labels=resolve_labels)


#: Warnings printed in this process: the version source and both hooks plan the same build.
_WARNED: set[str] = set()


def _warn(messages: tuple[str, ...]) -> None:
    for message in messages:
        if message not in _WARNED:
            _WARNED.add(message)
            print(f"wheelpatch: warning: {message}", file=sys.stderr)


class WheelpatchVersionSource(VersionSourceInterface):
    """``[tool.hatch.version] source = "wheelpatch"``: another source's version, labelled."""

    PLUGIN_NAME = PLUGIN_NAME

    def __init__(self, root: str, config: dict[str, Any]) -> None:
        super().__init__(root, config)
        self._base: VersionSourceInterface | None = None
        self._base_data: dict[str, Any] | None = None
        #: The plan and the configuration the label came from (also for the build hook).
        self._planned: tuple[VersionPlan, Config] | None = None

    def base_source(self) -> VersionSourceInterface:
        """The source named by ``base-source`` (default ``regex``), given the same options."""
        if self._base is None:
            raw = self.config.get("base-source", "regex")
            key = _hatch_key(self.root, "version", "base-source")
            if not isinstance(raw, str) or not raw or raw == PLUGIN_NAME:
                raise ConfigError(
                    [f"{key}: must name another hatch version source (e.g. 'regex'), not {raw!r}"]
                )
            from hatchling.plugin.manager import PluginManager

            source = PluginManager().version_source.get(raw)
            if source is None:
                raise ConfigError(
                    [
                        f"{key}: unknown version source {raw!r} (hatchling has 'regex', 'code' "
                        "and 'env'; others need their plugin in build-system.requires)"
                    ]
                )
            options = {k: v for k, v in self.config.items() if k != "base-source"}
            options["source"] = raw
            self._base = source(self.root, options)
        return self._base

    def plan(self) -> VersionPlan:
        return self.planned()[0]

    def planned(self) -> tuple[VersionPlan, Config]:
        """The version plan, and the resolved configuration it came from."""
        from packaging.version import InvalidVersion, Version

        from .planning import plan_version

        if self._planned is None:
            base_source = self.base_source()
            self._base_data = base_source.get_version_data()
            raw = self._base_data.get("version")
            try:
                base = Version(str(raw))
            except InvalidVersion:
                raise ConfigError(
                    [
                        f"{_hatch_key(self.root, 'version')}: the base source "
                        f"{base_source.PLUGIN_NAME!r} gives "
                        f"{raw!r}, not a valid version"
                    ]
                ) from None
            path, data = _pyproject(self.root)
            config = _config(path, data, resolve_labels=True)
            plan = plan_version(
                config,
                _project_name(path, data),
                base,
                base_source=base_source.PLUGIN_NAME,
                version_key=_hatch_key(self.root, "version"),
            )
            self._planned = plan, config
            _VERSION_PLANS[os.path.realpath(self.root)] = plan
            _warn(plan.warnings)
            if config.git is not None and config.git.dirty and plan.label:
                _warn(
                    (
                        f"the work tree has uncommitted changes: the label {plan.label!r} "
                        f"names commit {config.git.commit[:12]}, not this tree "
                        "(the provenance records dirty: true)",
                    )
                )
        return self._planned

    def get_version_data(self) -> dict[str, Any]:
        plan = self.plan()
        return {"version": str(plan.version), "base": self._base_data}

    def set_version(self, version: str, version_data: dict[str, Any]) -> None:
        """``hatch version X``: the base source is given X without the label."""
        from packaging.version import Version

        from ..rules.labels import unlabel

        plan = self.plan()
        base = unlabel(Version(version), plan.label)
        self.base_source().set_version(str(base), version_data.get("base") or {})


def _string_list(
    value: Any, key: str, errors: list[str], expand: Callable[[str], str]
) -> tuple[str, ...] | None:
    from packaging.requirements import InvalidRequirement, Requirement

    from ..rules.config import invalid_requirement

    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        errors.append(f"{key}: must be a list of requirement strings, not {value!r}")
        return None
    expanded = []
    for index, text in enumerate(value):
        try:
            expanded.append(expand(text))
            Requirement(expanded[-1])
        except InvalidRequirement as exc:
            errors.append(invalid_requirement(f"{key}[{index}]", text, exc))
        except (ValueError, KeyError, IndexError) as exc:  # hatchling's context formatting
            errors.append(f"{key}[{index}]: {text!r} cannot be expanded ({exc})")
    return tuple(expanded)


def _unchanged(text: str) -> str:
    return text


def project_fields(
    hook: Mapping[str, Any],
    project: Mapping[str, Any],
    expand: Callable[[str], str] = _unchanged,
    hook_key: str = _HOOK_KEY,
) -> ProjectFields:
    """The requirement fields the build starts from: the hook table's, else ``[project]``'s.

    ``expand`` is hatchling's context formatting (``{root:uri}``, ``{env:NAME:default}``), applied
    to every requirement as hatchling applies it to ``[project]``'s."""
    from .planning import DEPENDENCIES, OPTIONAL_DEPENDENCIES, ProjectFields

    errors: list[str] = []
    for name in hook:
        if name not in _HOOK_KEYS:
            errors.append(
                f"{hook_key}.{name}: unknown key (known: {', '.join(sorted(_HOOK_KEYS))})"
            )
    raw_dynamic = project.get("dynamic", [])
    dynamic = frozenset(v for v in raw_dynamic if isinstance(v, str))
    keys: dict[str, str] = {}
    dependencies: tuple[str, ...] | None = None
    optional: dict[str, tuple[str, ...]] | None = None
    for name in (DEPENDENCIES, OPTIONAL_DEPENDENCIES):
        if name in hook:
            keys[name] = f"{hook_key}.{name}"
            if name not in dynamic:
                errors.append(
                    f"{keys[name]}: project.dynamic must list {name!r} for the hook to set it"
                )
            source = hook
        else:
            keys[name] = f"project.{name}"
            source = project
        if name not in source:
            continue
        if name == DEPENDENCIES:
            dependencies = _string_list(source[name], keys[name], errors, expand)
        elif isinstance(source[name], dict):
            optional = {}
            for extra, values in source[name].items():
                listed = _string_list(values, f"{keys[name]}.{extra}", errors, expand)
                if listed is not None:
                    optional[extra] = listed
        else:
            errors.append(f"{keys[name]}: must be a table of lists, not {source[name]!r}")
    requires_python = project.get("requires-python")
    if errors:
        raise ConfigError(errors)
    return ProjectFields(
        dependencies=dependencies,
        optional_dependencies=optional,
        requires_python=requires_python if isinstance(requires_python, str) else None,
        dynamic=dynamic,
        keys=keys,
    )


class WheelpatchMetadataHook(MetadataHookInterface):
    """``[tool.hatch.metadata.hooks.wheelpatch]``: the project's override on its requirements."""

    PLUGIN_NAME = PLUGIN_NAME

    def __init__(self, root: str, config: dict[str, Any]) -> None:
        super().__init__(root, config)
        #: What the hook did, for the build hook's provenance (``None`` until it runs).
        self.plan: FieldsPlan | None = None

    def update(self, metadata: dict[str, Any]) -> None:
        from hatchling.utils.context import Context
        from packaging.version import Version

        from .planning import plan_fields

        root = Path(self.root)
        path, data = _pyproject(self.root)
        _refuse_static_version(self.root, data)
        hook = self.config
        fixed: frozenset[str] = frozenset()
        if (root / "PKG-INFO").is_file():
            # An unpacked sdist: hatchling took the fields PKG-INFO has, already edited, from it
            # and no longer lists them as dynamic; they are left exactly as they are.
            dynamic = {v for v in metadata.get("dynamic", []) if isinstance(v, str)}
            fixed = frozenset(_FIELDS - dynamic)
            hook = {key: value for key, value in hook.items() if key not in fixed}
        hook_key = _hatch_key(self.root, "metadata.hooks.wheelpatch")
        fields = project_fields(hook, metadata, Context(self.root).format, hook_key)
        raw_version = metadata.get("version")
        if not isinstance(raw_version, str):
            raise ConfigError(
                [
                    "project.version: unknown when the wheelpatch metadata hook runs; set it "
                    "in [project] or with [tool.hatch.version]"
                ]
            )
        config = _config(path, data, resolve_labels=False)
        name = str(metadata.get("name") or _project_name(path, data))
        self.plan = plan_fields(
            config,
            name,
            self._base_version(config, name, Version(raw_version)),
            fields,
            fixed=fixed,
        )
        _warn(self.plan.warnings)
        metadata.update(self.plan.updates)

    def _base_version(self, config: Config, name: str, version: Version) -> Version:
        """The version before labelling, which an override's ``versions`` is matched against."""
        plan = _VERSION_PLANS.get(os.path.realpath(self.root))
        if plan is not None:
            return plan.base
        if (Path(self.root) / "PKG-INFO").is_file():
            try:
                return _read_record(Path(self.root) / SDIST_PROVENANCE_NAME)[2]
            except ValueError:
                return version  # an sdist made without the build hook: its version is all there is
        _, key, _ = config.label_for(name, version)
        if key is not None:
            raise ConfigError([_label_without_source(key)])
        return version


def _label_without_source(key: str) -> str:
    return (
        f"{key}: a label is configured but [tool.hatch.version] source is not "
        f"{PLUGIN_NAME!r}, so the build would not carry it"
    )


class WheelpatchBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    """``[tool.hatch.build.hooks.wheelpatch]``: provenance in the wheel and the sdist."""

    PLUGIN_NAME = PLUGIN_NAME

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Removed in finalize, or at exit (its finalizer) when the build fails before that.
        self._scratch: tempfile.TemporaryDirectory[str] | None = None

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        from ..patch.provenance import PROVENANCE_NAME, encode
        from ..patch.sbom import SBOM_NAME, render_sbom

        files: dict[str, bytes] = {}
        # Only a wheel (not editable) and an sdist carry provenance: other builds ask git and
        # the configuration nothing, so nothing here can refuse them.
        if self.target_name == "wheel" and version != "editable":
            project_id = getattr(self.build_config.builder, "artifact_project_id", None)
            if not isinstance(project_id, str):
                return  # a hatchling without it: leave the wheel as hatchling makes it
            document = self.provenance()
            sbom = render_sbom(document, name=self.metadata.core.raw_name)
            files[f"{project_id}.dist-info/{SBOM_NAME}"] = sbom
            files[f"{project_id}.dist-info/{PROVENANCE_NAME}"] = encode(document)
        elif self.target_name == "sdist":
            files[SDIST_PROVENANCE_NAME] = encode(self.provenance())
        else:
            return
        self._scratch = tempfile.TemporaryDirectory(prefix="wheelpatch-")
        for index, (destination, data) in enumerate(files.items()):
            path = os.path.join(self._scratch.name, f"{index}-{os.path.basename(destination)}")
            with open(path, "wb") as stream:
                stream.write(data)
            build_data["force_include"][path] = destination

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None

    def provenance(self) -> dict[str, Any]:
        """The document for this build: carried on from an sdist, or made from this tree."""
        from hatchling.__about__ import __version__ as hatchling_version
        from packaging.version import Version

        from ..patch.provenance import build_provenance_document
        from ..wheel.metadata import Change
        from .planning import plan_fields

        root = Path(self.root)
        metadata = self.metadata
        after = Version(metadata.version)
        name = metadata.core.name
        if (root / "PKG-INFO").is_file():
            # An unpacked sdist: its PKG-INFO fixed the version and requirements, and git, if
            # any, is not this project's.
            recorded = root / SDIST_PROVENANCE_NAME
            if recorded.is_file():
                return self._carried_on(recorded, name, after)
            # An sdist made without the build hook: how its fields came about is not known.
            config = load_config(self.root, resolve_labels=False)
            return build_provenance_document(
                project=name,
                before=after,
                after=after,
                changes=[],
                config_path=config.display_path,
                override=None,
                git=None,
                target=self.target_name,
                hatchling=hatchling_version,
                from_sdist=True,
                source_date_epoch=os.environ.get("SOURCE_DATE_EPOCH"),
            )
        _refuse_static_version(self.root, metadata.config)
        hatch = metadata.hatch
        source = hatch.version.source if "version" in hatch.config else None
        version_plan: VersionPlan | None = None
        if isinstance(source, WheelpatchVersionSource):
            version_plan, config = source.planned()
        else:
            config = load_config(self.root, resolve_labels=True)
            _, key, _ = config.label_for(name, after)
            if key is not None:
                raise ConfigError([_label_without_source(key)])
        hook = hatch.metadata.hooks.get(PLUGIN_NAME) if hatch.metadata.hook_config else None
        fields_plan = hook.plan if isinstance(hook, WheelpatchMetadataHook) else None
        if fields_plan is None:
            # No hook ran: the fields are all static, so any change the override asks for is
            # refused here rather than silently left out.
            raw = {**metadata.core_raw_metadata, "dynamic": []}
            static = project_fields({}, raw, metadata.context.format)
            base = version_plan.base if version_plan is not None else after
            fields_plan = plan_fields(config, name, base, static)
            _warn(fields_plan.warnings)
        else:
            for field, value in fields_plan.updates.items():
                if metadata.core_raw_metadata.get(field) != value:
                    raise ConfigError(
                        [
                            f"{_hatch_key(self.root, 'metadata.hooks')}: a metadata hook after "
                            f"{PLUGIN_NAME!r} changed project.{field} after the override was "
                            f"applied; put [tool.hatch.metadata.hooks.{PLUGIN_NAME}] last"
                        ]
                    )
        changes: list[Change] = (
            [version_plan.change] if version_plan and version_plan.change else []
        )
        changes.extend(fields_plan.changes)
        # The resolved configuration's: its digest covers the label used, as for patched wheels.
        # An override that does not apply to this version (its `versions`) is not recorded.
        override = config.override_for(name) if fields_plan.override is not None else None
        return build_provenance_document(
            project=name,
            before=version_plan.base if version_plan is not None else after,
            after=after,
            changes=changes,
            config_path=config.display_path,
            override=override,
            git=config.git or _describe(root),
            target=self.target_name,
            hatchling=hatchling_version,
            source_date_epoch=os.environ.get("SOURCE_DATE_EPOCH"),
        )

    def _carried_on(self, recorded: Path, project: str, version: Version) -> dict[str, Any]:
        """The sdist's document, checked against this build and marked as built from it."""
        from hatchling.__about__ import __version__ as hatchling_version

        where = f"{recorded.name} of the sdist"
        try:
            document, recorded_project, _, recorded_version = _read_record(recorded)
            build = dict(document["build"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError([f"{where}: cannot be read ({exc})"]) from None
        if recorded_project != project or recorded_version != version:
            raise ConfigError(
                [
                    f"{where}: records {recorded_project} {recorded_version}, but PKG-INFO says "
                    f"{project} {version}"
                ]
            )
        build.update({"hatchling": hatchling_version, "target": self.target_name})
        build["from-sdist"] = True
        document["build"] = build
        return dict(document)


def _read_record(path: Path) -> tuple[dict[str, Any], str, Version, Version]:
    """An sdist's provenance: the document, its project, and its versions before and after.
    :class:`ValueError` if it is missing or not such a document."""
    from packaging.version import InvalidVersion, Version

    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        versions = document["version"]
        return (
            document,
            document["project"],
            Version(versions["before"]),
            Version(versions["after"]),
        )
    except (OSError, KeyError, TypeError, InvalidVersion) as exc:
        raise ValueError(str(exc)) from None


def _describe(root: Path) -> GitDescribe | None:
    """git's view of the tree for provenance; ``None`` outside git or without a tag."""
    from ..rules.git import GitError, describe

    try:
        return describe(root)
    except GitError:
        return None


@hookimpl
def hatch_register_version_source() -> type[VersionSourceInterface]:
    return WheelpatchVersionSource


@hookimpl
def hatch_register_metadata_hook() -> type[MetadataHookInterface]:
    return WheelpatchMetadataHook


@hookimpl
def hatch_register_build_hook() -> type[BuildHookInterface]:  # type: ignore[type-arg]
    return WheelpatchBuildHook
