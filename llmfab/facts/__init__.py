"""Facts: each pairs a shell probe with a pure parser of its output.

Modules by domain: ``gpu`` (nvidia-smi), ``ib`` (ibstat, ibv_devinfo, ibstatus,
show_gids, ibdev2netdev), ``fabricmanager`` (systemd state, journal, CUDA 802),
``net`` (``ip -o``), ``nccl`` (allreduce_check.py output, NCCL_DEBUG=INFO) and
``failures`` (engine/NCCL/Ray logs -> likely causes). Parsers never raise; each
result carries ``reason`` ("" when the text was understood).
"""
