"""The proxy's settings: every bad value named by the option or environment variable it came
from, all at once; and the ASGI factory that workers run, reading them from the environment."""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from wheelpatch.errors import ConfigError
from wheelpatch.index.settings import ENVIRONMENT, ServeSettings

from ..servers import started
from .serving import CONFIG


def test_every_problem_is_named_by_its_option(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        ServeSettings.create(
            upstreams=["ftp://mirror.example/simple/", "https://user:hunter2@/simple/"],
            config=str(tmp_path / "missing.toml"),
            cache_dir=str(tmp_path),
            cache_size="10Q",
            links="sideways",
            timeout="0",
            page_ttl="soon",
        )
    errors = caught.value.errors
    assert (
        errors[0]
        == "--upstream: 'ftp://mirror.example/simple/' is not an http(s):// or file:// index URL"
    )
    assert "hunter2" not in "\n".join(errors)  # a password is never repeated back
    joined = "\n".join(errors)
    for option in (
        "--cache-size: '10Q'",
        "--links: 'sideways'",
        "--timeout:",
        "--page-ttl: 'soon'",
    ):
        assert option in joined
    assert "missing.toml" in joined


def test_worker_settings_come_from_the_environment(tmp_path: Path) -> None:
    settings = ServeSettings.create(
        upstreams=["http://127.0.0.1:9/simple"], config=str(CONFIG), cache_dir=str(tmp_path),
        cache_size="1G", links="proxy", eager=True, accel_redirect="/_wheelpatch/",
    )  # fmt: skip
    again = ServeSettings.from_environ(settings.environ(["http://127.0.0.1:9/simple"]))
    assert again == settings
    assert again.accel_redirect == "/_wheelpatch/"
    assert again.upstreams[0].url == "http://127.0.0.1:9/simple/"
    assert again.cache_size == 1 << 30
    with pytest.raises(ConfigError, match="WHEELPATCH_SERVE_LINKS: 'x'"):
        ServeSettings.from_environ({**settings.environ([]), ENVIRONMENT["links"]: "x"})


@pytest.mark.slow
def test_uvicorn_runs_the_factory_with_environment_settings(tmp_path: Path) -> None:
    env = {
        ENVIRONMENT["upstreams"]: "http://127.0.0.1:9/simple/",
        ENVIRONMENT["config"]: str(CONFIG),
        ENVIRONMENT["cache_dir"]: str(tmp_path / "cache"),
    }

    def argv(port: int) -> list[str]:
        return [
            sys.executable, "-m", "uvicorn", "--factory", "wheelpatch.index.app:create_app",
            "--host", "127.0.0.1", "--port", str(port),
        ]  # fmt: skip

    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():  # the hermetic environment keeps WHEELPATCH_* variables
            patch.setenv(key, value)
        with started(argv, "/health", tmp_path / "uvicorn.log", "uvicorn") as url:
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            with opener.open(url + "/health") as response:
                assert b'"upstreams":["http://127.0.0.1:9/simple/"]' in response.read()
            with pytest.raises(urllib.error.HTTPError) as caught:
                opener.open(url + "/simple/torch/")
            assert caught.value.code == 503  # the upstream (port 9) cannot be reached
            assert b"unreachable" in caught.value.read()
    assert "GET /simple/torch/ 503" in (tmp_path / "uvicorn.log").read_text()
