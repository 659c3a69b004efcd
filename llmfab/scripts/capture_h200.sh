#!/usr/bin/env bash
# Capture the hardware facts that llmfab's parsers read, on a GPU machine, into $OUT.
#
# Every capture is one file that starts with the same header as the field
# fixtures ("# source:", "# what:", "# ---"), then the command's stdout and
# stderr. The probe strings are the constants of llmfab/facts/*.py
# (tests/unit/test_facts_h200.py checks that they stay equal).
#
# Usage: OUT=/tmp/cap MACHINE="nvidia-h200-x2" bash llmfab/scripts/capture_h200.sh
# The result is $OUT/h200-captures.tgz plus $OUT/capture.log.
#
# No `set -e`: a probe that fails (ibstat absent, no systemd) is a fact to record.
set -Euo pipefail

OUT="${OUT:-./h200-capture}"
MACHINE="${MACHINE:-unknown machine}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CAP="$(mktemp -d)"
STAMP="$(date -u +%Y-%m-%dT%H:%MZ)"
HOST="$(hostname)"
PY="${PYTHON:-python3}"
# Never use NVLink multicast on shared hosts (the lender's rule; harmless elsewhere).
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export PYTHONUNBUFFERED=1

# capture runs one command line through bash and writes NAME.txt with the fixture header.
capture() {
    local name="$1" what="$2" cmd="$3" rc one_line
    bash -c "$cmd" >"$CAP/$name.body" 2>&1
    rc=$?
    one_line="$(echo "$cmd" | tr -s ' \n' ' ' | sed 's/ $//')"
    {
        echo "# source: $MACHINE ($HOST), $STAMP, llmfab/scripts/capture_h200.sh"
        echo "# what: \`$one_line\` (exit status $rc); $what"
        echo "# ---"
        cat "$CAP/$name.body"
    } >"$CAP/$name.txt"
    rm -f "$CAP/$name.body"
    echo "captured $name (rc=$rc)"
}

# capture_static records the node: GPUs, driver, fabric, network, IB tools.
capture_static() {
    capture nvidia-smi "default table" "nvidia-smi"
    capture query-gpu-csv "the gpu probe" \
        "nvidia-smi --query-gpu=index,name,memory.total,driver_version,pci.bus_id,uuid --format=csv,noheader,nounits"
    capture nvidia-smi-q "full query incl. the Fabric block" "nvidia-smi -q"
    capture topo-m "GPU/NIC topology" "nvidia-smi topo -m"
    capture proc-driver-version "kernel module version" "cat /proc/driver/nvidia/version"
    capture fabricmanager-is-active "fabric manager unit state" "systemctl is-active nvidia-fabricmanager"
    capture ibstat "IB HCAs" "ibstat"
    capture ibv_devinfo "IB verbs devices" "ibv_devinfo"
    capture ibstatus "IB status" "ibstatus"
    capture show_gids "RoCE GIDs" "show_gids"
    capture sys-class-infiniband "RDMA devices in sysfs" "ls -l /sys/class/infiniband/ /dev/infiniband/"
    capture ip-addr "IPv4 addresses, one line each" "ip -o -4 addr"
    capture ip-link "links, one line each" "ip -o link"
    capture lsmod-nvidia "loaded NVIDIA modules" "lsmod | grep -E '^(nvidia|nv_peer|mlx|ib_)'"
    capture torch-versions "PyTorch, its CUDA and NCCL" \
        "$PY -c 'import torch; print(torch.__version__, torch.version.cuda, torch.cuda.nccl.version())'"
    capture env-nccl "NCCL/TORCH variables of the image" "env | grep -E '^(NCCL|TORCH|NVSHMEM)_' | sort"
}

# capture_allreduce runs allreduce_check.py: all GPUs, two one-GPU "nodes" over sockets, gloo, a timeout.
capture_allreduce() {
    local script ngpu
    script="$(realpath --relative-to=. "$HERE/allreduce_check.py")"
    ngpu="$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ')"
    capture allreduce-nccl "all GPUs of this host, NCCL_DEBUG=INFO, 1 MiB .. 1 GiB" \
        "NCCL_DEBUG=INFO timeout 300 $PY -m torch.distributed.run --standalone --nproc-per-node=$ngpu $script"
    capture allreduce-2node-socket "two torchrun 'nodes' of one GPU each on this host, NCCL forced onto TCP sockets (P2P, SHM and IB off) as a stand-in for a cross-node link without RDMA; node 0's output, then node 1's" \
        "export NCCL_DEBUG=INFO NCCL_P2P_DISABLE=1 NCCL_SHM_DISABLE=1 NCCL_IB_DISABLE=1 NCCL_SOCKET_IFNAME=lo
         L=\"$PY -m torch.distributed.run --nnodes=2 --nproc-per-node=1 --master-addr=127.0.0.1 --master-port=29511\"
         A=\"$script --max-bytes 64M\"
         CUDA_VISIBLE_DEVICES=1 timeout 300 \$L --node-rank=1 \$A >/tmp/node1.log 2>&1 &
         CUDA_VISIBLE_DEVICES=0 timeout 300 \$L --node-rank=0 \$A; rc=\$?; wait; echo '### node 1:'; cat /tmp/node1.log; exit \$rc"
    capture allreduce-gloo-cpu "CPU smoke test with gloo, two processes, 4 KiB .. 64 KiB" \
        "timeout 120 $PY -m torch.distributed.run --standalone --nproc-per-node=2 $script --backend gloo --min-bytes 4K --max-bytes 64K"
    capture allreduce-init-timeout "rank 0 of a world of 2 whose rank 1 never comes: the watchdog must end it" \
        "RANK=0 WORLD_SIZE=2 LOCAL_RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=29533 timeout 120 $PY $script --init-timeout 15"
}

main() {
    capture_static
    capture_allreduce
    tar czf "$OUT/h200-captures.tgz" -C "$CAP" .
    ls -l "$CAP"
}

mkdir -p "$OUT"
main 2>&1 | tee "$OUT/capture.log"
