"""Model resolution: a local directory, the demo model, or a Hugging Face hub id."""

from __future__ import annotations

import glob
import os

from pagedllm.demo import DEMO_NAME, demo_model_dir

HUB_ALLOW_PATTERNS = ["*.json", "*.safetensors", "tokenizer*", "*.jinja", "*.model"]


def resolve_model(model: str, revision: str | None = None, *,
                  download_dir: str | None = None) -> str:
    """The local directory holding ``model``.

    ``model`` is an existing directory (returned as an absolute path), ``"demo"`` (the
    embedded demo model, created on first use) or a hub id such as ``"org/name"``, looked up
    in the local Hugging Face cache first (works offline) and downloaded otherwise.
    ``download_dir`` replaces the Hugging Face cache directory.
    Raises FileNotFoundError (no such directory, model or revision; download failed) or
    ValueError (not a directory and not a valid hub id).
    """
    if not isinstance(model, str) or not model:
        raise ValueError(f"model must be a directory or a Hugging Face id, got {model!r}")
    expanded = os.path.expanduser(model)
    if os.path.isdir(expanded):
        return os.path.abspath(expanded)
    if model == DEMO_NAME:
        return demo_model_dir()
    if os.path.exists(expanded):
        raise ValueError(f"model {model!r} is a file; pass the directory that holds it")
    if _looks_like_path(model):
        raise FileNotFoundError(f"model directory {model!r} does not exist")
    return _from_hub(model, revision, download_dir, need_weights=True)


def resolve_tokenizer(tokenizer: str, revision: str | None = None, *,
                      download_dir: str | None = None) -> str:
    """Like resolve_model, for a directory or hub id that only needs tokenizer files."""
    expanded = os.path.expanduser(tokenizer)
    if tokenizer == DEMO_NAME or os.path.exists(expanded) or _looks_like_path(tokenizer):
        return resolve_model(tokenizer, revision, download_dir=download_dir)
    return _from_hub(tokenizer, revision, download_dir, need_weights=False)


def _looks_like_path(model: str) -> bool:
    return (model.startswith((".", "~", os.sep, "/")) or model.count("/") > 1
            or (os.altsep is not None and os.altsep in model) or model.endswith("/"))


def _has_files(path: str, need_weights: bool) -> bool:
    if not need_weights:
        return os.path.isfile(os.path.join(path, "tokenizer.json"))
    return (os.path.isfile(os.path.join(path, "config.json"))
            and bool(glob.glob(os.path.join(path, "*.safetensors"))))


def _from_hub(model: str, revision: str | None, download_dir: str | None,
              need_weights: bool) -> str:
    from huggingface_hub import snapshot_download
    from huggingface_hub.utils import (GatedRepoError, HFValidationError,
                                       RepositoryNotFoundError, RevisionNotFoundError,
                                       validate_repo_id)

    try:
        validate_repo_id(model)
    except HFValidationError as exc:
        raise ValueError(
            f"model {model!r} is neither a local directory nor a valid Hugging Face "
            f"model id: {exc}") from exc
    kwargs = dict(revision=revision, cache_dir=download_dir, allow_patterns=HUB_ALLOW_PATTERNS)
    try:
        path = snapshot_download(model, local_files_only=True, **kwargs)
        if _has_files(path, need_weights):
            return path
    except Exception:
        pass
    at_revision = f" at revision {revision!r}" if revision else ""
    try:
        path = snapshot_download(model, **kwargs)
    except GatedRepoError as exc:
        raise FileNotFoundError(
            f"model {model!r} is gated on the Hugging Face hub: accept its license and log in "
            f"(`hf auth login`) to download it") from exc
    except RepositoryNotFoundError as exc:
        raise FileNotFoundError(
            f"model {model!r} is not a local directory and was not found on the Hugging Face "
            f"hub (a private model needs a token)") from exc
    except RevisionNotFoundError as exc:
        raise FileNotFoundError(f"model {model!r} has no revision {revision!r}") from exc
    except Exception as exc:
        raise FileNotFoundError(
            f"model {model!r}{at_revision} is not a local directory nor in the Hugging Face "
            f"cache, and downloading it failed: {exc}") from exc
    if not _has_files(path, need_weights):
        wanted = "config.json and *.safetensors weights" if need_weights else "tokenizer.json"
        raise FileNotFoundError(
            f"model {model!r}{at_revision} has no {wanted} (got {path}); pagedllm loads "
            "safetensors checkpoints with a Hugging Face fast tokenizer")
    return path
