#!/usr/bin/env bash
# Item 1 of the GPU queue (README, "On a GPU"), prepared to run on a machine that has only the
# repository, the data pack and its own PyTorch, in three parts of a few minutes each:
#   checks    the environment, the CUDA tests that do not compile, every benchmark on the GPU (6 min at most)
#   training  the training speed of each full config, fp32 / bf16 / fp16 / channels-last (4 min at most)
#   compile   the CUDA tests and training speeds with torch.compile (cold cache: slow; 7 min at most)
#
#   bash scripts/gpu_bringup.sh OUT [checks|training|compile|all]
#
# Every step runs under its own time limit, so a step that hangs or fails costs only its own
# minutes and the next one still runs; the cheap, most telling steps come first. Each writes
# OUT/<step>.log (and its JSON) when it ends; OUT/steps.tsv gets one line per step: name, exit
# status (124 or 137: it hit its limit), seconds. An OUT that already has a steps.tsv is refused.
# The data: $SR_DATA_ROOT, by default ./data_pack (`srlab pack-data --out data_pack`, 45 MB).
# The project need not be installed: the checkout goes on PYTHONPATH.
set -u

usage="usage: bash scripts/gpu_bringup.sh OUT [checks|training|compile|all]"
out=${1:?$usage}
part=${2:-all}
case $part in
    checks | training | compile | all) ;;
    *) echo "gpu_bringup: part must be checks, training, compile or all, got '$part'" >&2; exit 2 ;;
esac
if [ -e "$out/steps.tsv" ]; then
    echo "gpu_bringup: $out/steps.tsv exists; give another OUT (nothing is overwritten)" >&2
    exit 2
fi
mkdir -p "$out" && out=$(cd "$out" && pwd) || exit 2
cd "$(dirname "$0")/.." || exit 2
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export SR_DATA_ROOT="${SR_DATA_ROOT:-$PWD/data_pack}"
if [ ! -d "$SR_DATA_ROOT/benchmarks/Set5/HR" ]; then
    echo "gpu_bringup: SR_DATA_ROOT=$SR_DATA_ROOT has no benchmarks/Set5/HR (make it with srlab pack-data)" >&2
    exit 2
fi
python=${PYTHON:-python3}

step() {  # step NAME SECONDS COMMAND...
    local name=$1 limit=$2 start=$SECONDS rc
    shift 2
    echo "== $name (at most ${limit} s): $*"
    timeout -s TERM -k 10 "$limit" "$@" >"$out/$name.log" 2>&1
    rc=$?
    printf '%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - start))" | tee -a "$out/steps.tsv"
}

wants() { [ "$part" = all ] || [ "$part" = "$1" ]; }
configs="asymsr/vdsr_x234 asymsr/asym_vdsr_x234 mzsr/pretrain_x2 classsr/msrresnet_o_x4"

if wants checks; then
    step environment 30 "$python" -c "import sys, torch, common, mzsr, classsr, asymsr
print(sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())
print(torch.cuda.get_device_name(0))"
    step cuda_equivalence 90 "$python" -m pytest -q tests/test_cuda.py -m "not compile" -k "not every_family"
    step cuda_variants 75 "$python" -m pytest -q tests/test_cuda.py -m "not compile" -k every_family
    step degradation 30 "$python" scripts/benchmark_degradation.py --json "$out/degradation.json"
    step asymsr_fp32 30 "$python" scripts/benchmark_asymsr.py --device cuda --out "$out/asymsr_fp32.json"
    step asymsr_bf16 30 "$python" scripts/benchmark_asymsr.py --device cuda --dtype bfloat16 --out "$out/asymsr_bf16.json"
    step mzsr 40 "$python" scripts/benchmark_mzsr.py --device cuda --out "$out/mzsr.json"
    step classsr 40 "$python" scripts/benchmark_classsr.py --config configs/classsr/test_x4.yaml --dataset Set14 \
        --device cuda --out "$out/classsr.json"
fi
if wants training; then
    for config in $configs; do  # one step and one JSON per config: a slow one costs only itself
        step "training_${config#*/}" 45 "$python" scripts/benchmark_training.py --iters 100 \
            --config "configs/$config.yaml" --variants fp32 bf16 fp16 channels_last --json "$out/training_${config#*/}.json"
    done
    step training_meta_x2 60 "$python" scripts/benchmark_training.py --iters 20 --config configs/mzsr/meta_x2.yaml \
        --variants fp32 channels_last --opt options.pretrained=null --json "$out/training_meta_x2.json"
fi
if wants compile; then
    step cuda_compile 150 "$python" -m pytest -q tests/test_cuda.py -m compile
    for config in $configs; do
        step "compile_${config#*/}" 60 "$python" scripts/benchmark_training.py --iters 100 \
            --config "configs/$config.yaml" --variants compile all --json "$out/compile_${config#*/}.json"
    done
fi
awk -F'\t' '$2 != 0 { failed++ } END { print NR " steps, " failed + 0 " failed" }' "$out/steps.tsv"
