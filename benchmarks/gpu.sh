#!/usr/bin/env bash
# The GPU figures of issue 12 in one call of the device tool's machine (one NVIDIA H200, 16 cores; no network).
#
#   benchmarks/gpu.sh prepare                 # here, once, in the checkout that the device tool sends: fills .gpu/
#   benchmarks/gpu.sh run                     # there: device run, carry [".gpu"], timeout_s 600 (steps <= 520 s)
#   PYTHON=.venv/bin/python benchmarks/gpu.sh run --cpu-dry-run    # here: every step, small, device cpu (~4 min)
#
# prepare (needs pip's registry): .gpu/whl/ gets the wheels the service needs that the machine's image lacks
# (paho-mqtt, pydantic + pydantic-core, pydantic-settings, python-dotenv, annotated-types, typing-inspection,
# typing-extensions; CPython 3.12 manylinux x86_64, the versions installed here), and .gpu/mosquitto/ the broker
# binary of this machine with the shared libraries it links beyond glibc, behind a wrapper that sets
# LD_LIBRARY_PATH (the image has no mosquitto; glibc there is expected to be at least as new as here: if the
# broker does not start, the end-to-end step says so and the scoring figures still come back). .gpu/ is ignored
# by git; the device call must name it in carry.
#
# run: installs the wheels into /tmp/site (device only), then, each step under its own timeout so that the whole
# ends inside one 10-minute call and a step that fails or runs out leaves the others' figures:
#   1. benchmarks.scoring --device cuda: batch 1 to 4096, every model kind, fp32, fp16 and bf16 (autocast), the
#      bare cuDNN BiLSTM against the scheduler at 4096 and the seed-style loop (issue 12: >= 50 % of bare,
#      >= 100x the loop), the per-step breakdown.                                       -> scoring.md, scoring.json
#   2. benchmarks.pipeline --device cuda: the service end to end with the simulated publisher, spread and
#      burst arrival, a search for the most units that hold p99 publish-to-score <= 250 ms, cut by a time budget
#      (publishers in 4 processes).                          -> pipeline-spread.md/.json, pipeline-burst.md/.json
#   3. gpu.md: the machine (nvidia-smi, versions, commit), each step's exit status, and the tables above.
# Everything goes under $OUT (the device tool's folder that comes back; default /tmp/pw-gpu-out), with the whole
# log in gpu.log: 7 files, within the tool's 8.
#
# --cpu-dry-run: the same steps and flags on device cpu with small sizes (batches 1,16,64, 100-200 units), so the
# script is proven apart from CUDA itself. The wheels are not installed (they are for Python 3.12; PYTHON's own
# packages are used), the carried mosquitto is used when .gpu/ exists.
set -u -o pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO" || exit 1
GPU_DIR="$REPO/.gpu"

prepare() {
    local py="${PYTHON:-$REPO/.venv/bin/python}"
    mkdir -p "$GPU_DIR/whl" "$GPU_DIR/mosquitto/bin" "$GPU_DIR/mosquitto/lib"
    local pins
    pins=$("$py" - <<'EOF'
import importlib.metadata as m
names = ["paho-mqtt", "pydantic", "pydantic-core", "pydantic-settings", "python-dotenv", "annotated-types",
         "typing-inspection", "typing-extensions"]
print(" ".join(f"{n}=={m.version(n)}" for n in names))
EOF
) || { echo "prepare: cannot read the installed versions with $py" >&2; return 1; }
    rm -f "$GPU_DIR"/whl/*.whl
    # shellcheck disable=SC2086
    "$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$GPU_DIR/whl" $pins || return 1
    local exe
    exe="$(command -v mosquitto || echo /usr/sbin/mosquitto)"
    [ -x "$exe" ] || { echo "prepare: no mosquitto here to carry" >&2; return 1; }
    cp -L "$exe" "$GPU_DIR/mosquitto/mosquitto.bin"
    rm -f "$GPU_DIR"/mosquitto/lib/*
    # every library it links but glibc's own (those must be the target's: they go with its loader)
    ldd "$exe" | awk '/=> \//{print $3}' | while read -r lib; do
        case "$(basename "$lib")" in
            libc.so*|libm.so*|libdl.so*|libpthread.so*|librt.so*|libresolv.so*|ld-linux*) ;;
            *) cp -L "$lib" "$GPU_DIR/mosquitto/lib/" ;;
        esac
    done
    cat >"$GPU_DIR/mosquitto/bin/mosquitto" <<'EOF'
#!/bin/sh
# the carried broker with the libraries carried beside it (benchmarks/gpu.sh prepare)
here="$(cd "$(dirname "$0")/.." && pwd)"
LD_LIBRARY_PATH="$here/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "$here/mosquitto.bin" "$@"
EOF
    chmod +x "$GPU_DIR/mosquitto/bin/mosquitto"
    "$GPU_DIR/mosquitto/bin/mosquitto" -h >/dev/null 2>&1
    # mosquitto -h exits 3 after printing its usage: anything else means the wrapper or a library is wrong
    [ $? -eq 3 ] || { echo "prepare: the carried mosquitto does not run here" >&2; return 1; }
    echo "prepared $GPU_DIR ($(du -sh "$GPU_DIR" | cut -f1)): $(ls "$GPU_DIR/whl" | tr '\n' ' ')"
}

run() {
    local dry=0
    [ "${1:-}" = "--cpu-dry-run" ] && dry=1
    OUT="${OUT:-/tmp/pw-gpu-out}"
    mkdir -p "$OUT"
    local log="$OUT/gpu.log" md="$OUT/gpu.md" began=$SECONDS
    : >"$log"
    export PYTHONUNBUFFERED=1
    local py="${PYTHON:-python3}"
    if [ $dry -eq 0 ] && ls "$GPU_DIR"/whl/*.whl >/dev/null 2>&1; then
        "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
            "$GPU_DIR"/whl/*.whl >>"$log" 2>&1 || echo "wheel install failed (see gpu.log)" | tee -a "$log"
        export PYTHONPATH="/tmp/site:$REPO${PYTHONPATH:+:$PYTHONPATH}"
    else
        export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
    fi
    [ -x "$GPU_DIR/mosquitto/bin/mosquitto" ] && export PATH="$GPU_DIR/mosquitto/bin:$PATH"

    local device scoring_args spread_args burst_args pipeline_common scoring_s pipeline_s
    if [ $dry -eq 1 ]; then
        device=cpu
        scoring_args=(--device cpu --bare --batches 1,16,64 --min-seconds 0.05 --precision fp32,fp16,bf16)
        pipeline_common=(--device cpu --publishers 2 --start 100 --limit 200 --step 100 --grow 2
                         --warmup-s 4 --measure-s 5 --no-half)
        scoring_s=240 pipeline_s=150
    else
        device=cuda
        scoring_args=(--device cuda --min-seconds 0.4 --precision fp32,fp16,bf16)
        # ingest (one Python process) is expected to bound the service well before the GPU: start at 4,000 units,
        # double while it holds, then bisect to 1,000; the budget stops starting runs (each takes 1-2 minutes).
        pipeline_common=(--device cuda --publishers 4 --start 4000 --limit 64000 --step 1000 --grow 2
                         --warmup-s 8 --measure-s 15 --backfill-rate 20000 --no-half)
        scoring_s=180 pipeline_s=170
    fi
    # --budget-s: no run starts after it (training the artifacts comes first); a run still going at the step's
    # limit is stopped, and the runs before it stay in the JSON
    spread_args=(--arrival spread --budget-s $((pipeline_s - 90)) --json "$OUT/pipeline-spread.json")
    burst_args=(--arrival burst --budget-s $((pipeline_s - 90)) --json "$OUT/pipeline-burst.json")

    {
        echo "# plantwatch GPU benchmarks (benchmarks/gpu.sh run${1:+ $1})"
        echo
        echo "- started $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
        echo "- $(nvidia-smi -L 2>/dev/null | head -1 || true)$( [ $dry -eq 1 ] && echo 'CPU dry run: device cpu, small sizes')"
        "$py" - <<'EOF' 2>&1 | sed 's/^/- /'
import os, platform
import numpy, torch
print(f"Python {platform.python_version()}, {os.cpu_count()} CPU cores, numpy {numpy.__version__}, torch {torch.__version__}"
      f" (CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version() if torch.cuda.is_available() else '-'})")
try:
    import onnxruntime
    print(f"onnxruntime {onnxruntime.__version__}, providers {onnxruntime.get_available_providers()}")
except ImportError:
    print("onnxruntime: not installed")
EOF
        echo "- broker: $(command -v mosquitto || echo none)"
        echo
    } >"$md"

    step() {  # step NAME SECONDS OUTFILE COMMAND...: run under a timeout, record its status and time in gpu.md
        local name=$1 limit=$2 outfile=$3 t0=$SECONDS rc
        shift 3
        echo "== $name (limit ${limit} s): $*" >>"$log"
        timeout -k 15 "$limit" "$@" >"$outfile" 2>>"$log"
        rc=$?
        local status="exit $rc"
        [ $rc -eq 124 ] && status="stopped at its ${limit} s limit (what it had written is kept)"
        echo "- $name: $status after $((SECONDS - t0)) s" >>"$steps_file"
        echo "== $name: $status after $((SECONDS - t0)) s" >>"$log"
    }

    steps_file="$(mktemp)"
    step "scoring ($device)" "$scoring_s" "$OUT/scoring.md" \
        "$py" -m benchmarks.scoring "${scoring_args[@]}" --json "$OUT/scoring.json"
    if command -v mosquitto >/dev/null 2>&1; then
        step "pipeline spread ($device)" "$pipeline_s" "$OUT/pipeline-spread.md" \
            "$py" -m benchmarks.pipeline "${pipeline_common[@]}" "${spread_args[@]}"
        step "pipeline burst ($device)" "$pipeline_s" "$OUT/pipeline-burst.md" \
            "$py" -m benchmarks.pipeline "${pipeline_common[@]}" "${burst_args[@]}"
    else
        echo "- pipeline: skipped, no mosquitto (run benchmarks/gpu.sh prepare and carry .gpu)" >>"$steps_file"
    fi

    {
        echo "## Steps"
        echo
        cat "$steps_file"
        echo "- total: $((SECONDS - began)) s"
        for part in scoring pipeline-spread pipeline-burst; do
            if [ -s "$OUT/$part.md" ]; then
                echo
                echo "## $part"
                echo
                cat "$OUT/$part.md"
            fi
        done
    } >>"$md"
    rm -f "$steps_file"
    echo "wrote $md ($((SECONDS - began)) s)"
}

case "${1:-}" in
    prepare) prepare ;;
    run) shift; run "$@" ;;
    *) echo "usage: benchmarks/gpu.sh prepare | run [--cpu-dry-run]" >&2; exit 2 ;;
esac
