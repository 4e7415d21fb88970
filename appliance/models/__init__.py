"""Speech models on the device: catalog, sha256-pinned manifests and the installer.

    from appliance.models import load_manifest, resolve_model
    manifest = load_manifest(resolve_model(cfg.paths.models_dir, cfg.asr.model), fresh=True)
    encoder = manifest.file(manifest.get("encoder"))
"""

from appliance.models.catalog import CATALOG, DEFAULT_MODELS, ArchiveSource, CatalogEntry, WheelSource, get_entry
from appliance.models.install import InstallResult, ModelState, install_models, model_state, model_states
from appliance.models.manifest import (
    MANIFEST,
    FileEntry,
    Manifest,
    ModelError,
    check_files,
    installed_models,
    load_manifest,
    read_manifest,
    read_manifest_json,
    resolve_model,
    sha256_file,
    write_manifest,
)

__all__ = [
    "CATALOG", "DEFAULT_MODELS", "MANIFEST", "ArchiveSource", "CatalogEntry", "FileEntry", "InstallResult",
    "Manifest", "ModelError", "ModelState", "WheelSource", "check_files", "get_entry", "install_models",
    "installed_models", "load_manifest", "model_state", "model_states", "read_manifest", "read_manifest_json",
    "resolve_model", "sha256_file", "write_manifest",
]
