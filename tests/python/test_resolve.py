"""Model resolution: local directories, the demo model and Hugging Face hub ids."""

from __future__ import annotations

import os

import pytest

from pagedllm.resolve import HUB_ALLOW_PATTERNS, resolve_model, resolve_tokenizer

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _fake_hub_cache(cache, repo_id, files):
    """A Hugging Face cache holding ``files`` for ``repo_id`` at the "main" ref."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    snapshot = repo / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    for name in files:
        (snapshot / name).write_text("{}")
    return snapshot


def test_local_directory(tmp_path, monkeypatch):
    assert resolve_model(str(tmp_path)) == str(tmp_path)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model").mkdir()
    assert resolve_model("model") == str(tmp_path / "model")
    assert resolve_model("./model/") == str(tmp_path / "model")


def test_demo(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = resolve_model("demo")
    assert path == str(tmp_path / "pagedllm" / "demo-v1")
    assert os.path.isfile(os.path.join(path, "model.safetensors"))
    assert resolve_tokenizer("demo") == path


def test_local_dir_named_demo_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo").mkdir()
    assert resolve_model("demo") == str(tmp_path / "demo")


def test_hub_id_from_local_cache_offline(tmp_path, monkeypatch):
    import huggingface_hub

    cache = tmp_path / "hub"
    snapshot = _fake_hub_cache(cache, "org/tiny-llama",
                               ["config.json", "model.safetensors", "tokenizer.json"])

    def no_network(*args, **kwargs):
        if not kwargs.get("local_files_only"):
            raise AssertionError("went online although the cache has the model")
        return real(*args, **kwargs)

    real = huggingface_hub.snapshot_download
    monkeypatch.setattr(huggingface_hub, "snapshot_download", no_network)
    assert resolve_model("org/tiny-llama", download_dir=str(cache)) == str(snapshot)


def test_hub_id_downloads_when_not_cached(tmp_path, monkeypatch):
    import huggingface_hub
    from huggingface_hub.utils import LocalEntryNotFoundError

    target = tmp_path / "snap"
    target.mkdir()
    (target / "config.json").write_text("{}")
    (target / "model-00001-of-00002.safetensors").write_text("")
    calls = []

    def fake(repo_id, **kwargs):
        calls.append((repo_id, kwargs))
        if kwargs.get("local_files_only"):
            raise LocalEntryNotFoundError("not cached")
        return str(target)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake)
    assert resolve_model("org/model", revision="v1") == str(target)
    assert [c[1].get("local_files_only", False) for c in calls] == [True, False]
    assert all(c[0] == "org/model" and c[1]["revision"] == "v1" for c in calls)
    assert calls[1][1]["allow_patterns"] == HUB_ALLOW_PATTERNS


def test_tokenizer_only_repo(tmp_path, monkeypatch):
    import huggingface_hub

    target = tmp_path / "tok"
    target.mkdir()
    (target / "tokenizer.json").write_text("{}")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda *a, **k: str(target))
    assert resolve_tokenizer("org/tokenizer") == str(target)
    with pytest.raises(FileNotFoundError, match="no config.json and \\*.safetensors"):
        resolve_model("org/tokenizer")


def test_missing_hub_id_is_clear(tmp_path, monkeypatch):
    import huggingface_hub
    from huggingface_hub.utils import LocalEntryNotFoundError

    def offline(repo_id, **kwargs):
        raise LocalEntryNotFoundError("offline and not in the cache")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(FileNotFoundError, match="'nobody/no-such-model'"):
        resolve_model("nobody/no-such-model", download_dir=str(tmp_path))


def test_unknown_repo_is_clear(monkeypatch):
    import huggingface_hub
    from huggingface_hub.utils import LocalEntryNotFoundError, RepositoryNotFoundError

    class NotFound(RepositoryNotFoundError):
        def __init__(self):
            Exception.__init__(self, "404")

    def fake(repo_id, **kwargs):
        if kwargs.get("local_files_only"):
            raise LocalEntryNotFoundError("not cached")
        raise NotFound()

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake)
    with pytest.raises(FileNotFoundError, match="'org/typo' is not a local directory and was "
                                                "not found on the Hugging Face hub"):
        resolve_model("org/typo")


def test_bad_names(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_model(str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_model("./absent")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_model("a/b/c")
    with pytest.raises(ValueError, match="nor a valid Hugging Face model id"):
        resolve_model("bad id!")
    (tmp_path / "weights.safetensors").write_text("")
    with pytest.raises(ValueError, match="is a file"):
        resolve_model(str(tmp_path / "weights.safetensors"))
    with pytest.raises(ValueError):
        resolve_model("")
