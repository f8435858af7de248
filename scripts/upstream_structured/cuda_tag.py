"""Copy a model folder with the tensor storages of its TorchScript archives tagged 'cuda:0'.

Upstream traces the MLPs on the GPU, so a real checkpoint's *.pt archives record their storages
with location 'cuda:0' (loading one on a CPU-only machine needs torch.jit.load(f,
map_location='cpu')). The harness traces on the CPU, so its archives say 'cpu'. copy_retagged()
rewrites only the storage-location strings in <archive>/data.pkl and <archive>/traced_inputs.pkl
(pickle protocol 2, BINUNICODE 'cpu' -> 'cuda:0'); weights, graph code and every other record
and file are copied byte for byte.
"""
import os
import shutil
import zipfile

OLD = b"X\x03\x00\x00\x00cpu"
NEW = b"X\x06\x00\x00\x00cuda:0"


def _retag_archive(src, dst):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename.endswith(("/data.pkl", "/traced_inputs.pkl")):
                data = data.replace(OLD, NEW)
            # keep the original timestamps and flags so the copy stays deterministic
            zi = zipfile.ZipInfo(info.filename, date_time=info.date_time)
            zi.compress_type = info.compress_type
            zi.external_attr = info.external_attr
            zout.writestr(zi, data)


def copy_retagged(src_dir, dst_dir):
    if os.path.exists(dst_dir):
        shutil.rmtree(dst_dir)
    shutil.copytree(src_dir, dst_dir)
    for root, _, files in os.walk(dst_dir):
        for f in files:
            if f.endswith(".pt"):
                dst = os.path.join(root, f)
                _retag_archive(os.path.join(src_dir, os.path.relpath(dst, dst_dir)), dst)
