#!/usr/bin/python3
"""Writes the small pickle / checkpoint fixtures under tests/fixtures/ with real numpy and pickle.

Run with a python3 that has numpy (Debian's /usr/bin/python3 with python3-numpy):
    /usr/bin/python3 scripts/make_fixtures.py
It is deterministic (fixed seeds) and prints the expected values that tests/core_pickle*.cpp and
tests/data_*.cpp hard-code. torch is not needed: the torch.save archives are assembled with zipfile and a
pickler that spells torch's globals through stand-in modules, exactly as torch.save's pickler does.
"""
import collections
import io
import os
import pickle
import shutil
import sys
import types
import zipfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures")
CORPUS = os.path.join(ROOT, "tests", "fuzz", "corpus")


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
    return data


def show(label, value):
    print(f"{label}: {value!r}")


# ----------------------------------------------------------------------------------------------------------
# plain data and arrays, protocols 2, 4, 5

def plain_value():
    shared = [1, 2]
    return {
        "ints": [0, 1, -1, 255, 256, 65535, 65536, -2**31, 2**31, 2**63 - 1, -2**63],
        "floats": [0.5, -1.25e-3, float("inf"), float("-inf")],
        "nan": float("nan"),
        "str": "h\u00e9llo \u2713",
        "long_str": "x" * 300,
        "bytes": b"\x00\x01\xff",
        "empty_bytes": b"",
        "bytearray": bytearray(b"ab"),
        "none": None,
        "bools": (True, False),
        "tuple": (1, (2, 3), [4, {"k": "v"}]),
        "set": {3},
        "frozenset": frozenset({4}),
        "shared": [shared, shared],
        "big_list": list(range(1500)),
        "dict_many": {str(i): i for i in range(1200)},
    }


def arrays_value():
    return {
        "f4": (np.arange(24, dtype=np.float32) * 0.5).reshape(2, 3, 4),
        "f8": np.array([[1.5, -2.25, 1e-300], [3.0, 0.0, -0.0]], dtype=np.float64),
        "fortran": np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)),
        "fortran3": np.asfortranarray(np.arange(24, dtype=np.float64).reshape(2, 3, 4)),
        "i8": np.array([-(2**40), 0, 7], dtype=np.int64),
        "i4": np.array([[-5, 6]], dtype=np.int32),
        "u1": np.array([0, 200, 255], dtype=np.uint8),
        "b1": np.array([True, False, True]),
        "scalar_f4": np.float32(1.5),
        "scalar_i8": np.int64(-7),
        "obj": np.array(["a", "bc"], dtype=object),
        "U": np.array(["ab", "c\u00e9"]),
        "S": np.array([b"x", b"yz"]),
        "special": np.array([1.0, -np.inf, np.nan, np.inf], dtype=np.float32),
        "empty": np.zeros((0, 3), dtype=np.float32),
        "f2": np.array([1.0, 2.0], dtype=np.float16),
        "big_endian": np.array([1, 2], dtype=">i4"),
    }


class Hostile:
    def __reduce__(self):
        return (os.system, ("touch DMDBENCH_PICKLE_MARKER",))


class HostileEval:
    def __reduce__(self):
        return (eval, ("__import__('os').system('touch DMDBENCH_PICKLE_MARKER')",))


# ----------------------------------------------------------------------------------------------------------
# MMSA feature pickles

def mmsa(rng, sizes, t, dims, label_dtype=np.float32, audio_dtype=np.float32, fortran_vision=False,
         id_as_array=False, labels_2d=False, neg_inf=None, nan=None):
    """{train, valid, test} with the MMSA keys. sizes: n per split; t: (T_l, T_a, T_v); dims: (D_a, D_v)."""
    out = {}
    neg_inf = neg_inf or {}
    nan = nan or {}
    for split, n in zip(("train", "valid", "test"), sizes):
        text = (rng.standard_normal((n, t[0], 768)) * 0.5).astype(np.float32)
        audio = rng.standard_normal((n, t[1], dims[0])).astype(audio_dtype)
        vision = rng.standard_normal((n, t[2], dims[1])).astype(np.float32)
        # the first sample starts with one all-zero padded frame in every modality
        text[0, 0] = 0
        audio[0, 0] = 0
        vision[0, 0] = 0
        for (i, j, k) in neg_inf.get(split, []):
            audio[i, j, k] = -np.inf
        for (key, i, j, k) in nan.get(split, []):
            {"text": text, "audio": audio, "vision": vision}[key][i, j, k] = np.nan
        if fortran_vision:
            vision = np.asfortranarray(vision)
        labels = (np.round(rng.uniform(-3, 3, n) * 3) / 3).astype(label_dtype)
        labels[0] = 0.0
        if labels_2d:
            labels = labels.reshape(n, 1)
        ids = [f"{split}vid{i}$_${i}" for i in range(n)]
        out[split] = {
            "id": np.array(ids, dtype=object) if id_as_array else ids,
            "raw_text": [f"utterance {split} {i}" for i in range(n)],
            "text": text,
            "audio": audio,
            "vision": vision,
            "text_bert": np.zeros((n, 3, t[0]), dtype=np.float32),
            "audio_lengths": [t[1]] * n,
            "vision_lengths": [t[2]] * n,
            "regression_labels": labels,
            "classification_labels": np.sign(labels).astype(np.float32),
            "annotations": ["Neutral"] * n,
        }
    return out


def mult_layout(rng, sizes, t, dims, text_dim=300):
    """The MulT repository's {mosi,mosei_senti}_data[_noalign].pkl (yaohungt/Multimodal-Transformer,
    src/dataset.py): text [n,T,300] GloVe, audio/vision [n,T,D], labels [n,1,1], id [n,3] bytes (video, start, end)."""
    out = {}
    for split, n in zip(("train", "valid", "test"), sizes):
        text = (rng.standard_normal((n, t, text_dim)) * 0.5).astype(np.float32)
        audio = rng.standard_normal((n, t, dims[0])).astype(np.float32)
        vision = rng.standard_normal((n, t, dims[1])).astype(np.float32)
        labels = (np.round(rng.uniform(-3, 3, n) * 3) / 3).astype(np.float32).reshape(n, 1, 1)
        ids = np.array([[f"{split}vid{i}".encode(), str(i).encode(), str(i + 1).encode()] for i in range(n)],
                       dtype="S16")
        out[split] = {"text": text, "audio": audio, "vision": vision, "labels": labels, "id": ids}
    return out


def summarize(name, d):
    for split in ("train", "valid", "test"):
        s = d[split]
        audio = np.array(s["audio"], dtype=np.float64)
        ninf = int(np.isneginf(audio).sum())
        audio[np.isneginf(audio)] = 0
        nan = {k: int(np.isnan(np.asarray(s[k], dtype=np.float64)).sum()) for k in ("text", "audio", "vision")}
        clean = {k: np.nan_to_num(np.asarray(v, dtype=np.float32).astype(np.float64), nan=0.0)
                 for k, v in (("text", s["text"]), ("audio", audio), ("vision", s["vision"]))}
        print(f"{name} {split}: n={len(s['id'])} text={s['text'].shape} audio={s['audio'].shape} "
              f"vision={s['vision'].shape} sum_text={clean['text'].sum():.9g} sum_audio={clean['audio'].sum():.9g} "
              f"sum_vision={clean['vision'].sum():.9g} labels={[float(x) for x in np.ravel(s['regression_labels'])]} "
              f"neg_inf_audio={ninf} nan={nan} vision[0,1,:3]={np.asarray(s['vision'])[0, 1, :3].tolist()} "
              f"audio[0,1,:2]={np.asarray(s['audio'])[0, 1, :2].tolist()}")


# ----------------------------------------------------------------------------------------------------------
# torch.save archives without torch: stand-in modules so pickle writes torch's global names

def install_fake_torch():
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):
        raise RuntimeError("stand-in")

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    torch._utils = utils
    for name in ("FloatStorage", "DoubleStorage", "LongStorage", "BoolStorage", "IntStorage", "ByteStorage"):
        cls = type(name, (), {"__module__": "torch"})
        setattr(torch, name, cls)
    sys.modules["torch"] = torch
    sys.modules["torch._utils"] = utils
    return torch


class FakeStorage:
    def __init__(self, key, storage_type, data):
        self.key, self.storage_type, self.data = key, storage_type, data


class FakeTensor:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def __reduce_ex__(self, protocol):
        utils = sys.modules["torch._utils"]
        return (utils._rebuild_tensor_v2,
                (self.storage, self.offset, tuple(self.size), tuple(self.stride), False, collections.OrderedDict()))


class TorchPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, FakeStorage):
            return ("storage", obj.storage_type, obj.key, "cpu", obj.data.size)
        return None


def torch_zip(path, archive, state, storages, drop_data_pkl=False):
    buf = io.BytesIO()
    TorchPickler(buf, protocol=2).dump(state)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
        if not drop_data_pkl:
            z.writestr(f"{archive}/data.pkl", buf.getvalue())
        for s in sorted(storages, key=lambda s: s.key):
            z.writestr(f"{archive}/data/{s.key}", s.data.tobytes())
        z.writestr(f"{archive}/version", "3\n")


def checkpoints():
    torch = install_fake_torch()
    w = FakeStorage("0", torch.FloatStorage, np.arange(12, dtype=np.float32) * 0.25)  # shared by two tensors
    d = FakeStorage("1", torch.DoubleStorage, np.array([1.5, -2.5, 3.25], dtype=np.float64))
    i = FakeStorage("2", torch.LongStorage, np.array([7, -8, 2**40], dtype=np.int64))
    b = FakeStorage("3", torch.BoolStorage, np.array([True, False, True, True], dtype=np.bool_))
    state = collections.OrderedDict()
    state["layer.weight"] = FakeTensor(w, 0, (3, 4), (4, 1))     # contiguous
    state["layer.weight_t"] = FakeTensor(w, 0, (4, 3), (1, 4))   # transposed view of the same storage
    state["layer.tail"] = FakeTensor(w, 8, (2, 2), (2, 1))       # storage offset 8
    state["double"] = FakeTensor(d, 0, (3,), (1,))
    state["long"] = FakeTensor(i, 1, (2,), (1,))                 # offset 1: [-8, 2**40]
    state["mask"] = FakeTensor(b, 0, (2, 2), (2, 1))
    state["scalar"] = FakeTensor(d, 2, (), ())                   # 0-d: 3.25
    state._metadata = collections.OrderedDict([("", {"version": 1})])
    torch_zip(os.path.join(OUT, "tiny_checkpoint.pth"), "tiny_checkpoint", state, [w, d, i, b])
    print("tiny_checkpoint.pth: layer.weight = arange(12)*0.25 as [3,4]; layer.weight_t = its transpose;"
          " layer.tail = [[2,2.25],[2.5,2.75]]; double=[1.5,-2.5,3.25]; long=[-8, 2**40];"
          " mask=[[1,0],[1,1]]; scalar=3.25")

    bad = collections.OrderedDict([("a", FakeTensor(w, 0, (12,), (1,))), ("b", "not a tensor")])
    torch_zip(os.path.join(OUT, "nontensor_checkpoint.pth"), "nontensor_checkpoint", bad, [w])
    torch_zip(os.path.join(OUT, "no_data_pkl.pth"), "no_data_pkl", state, [w, d, i, b], drop_data_pkl=True)
    # a storage slice that runs past its storage: size 4x4 on 12 floats
    over = collections.OrderedDict([("over", FakeTensor(w, 0, (4, 4), (4, 1)))])
    torch_zip(os.path.join(OUT, "overrun_checkpoint.pth"), "overrun_checkpoint", over, [w])
    # a zip that is not a checkpoint at all, and a truncated one
    with zipfile.ZipFile(os.path.join(OUT, "plain.zip"), "w") as z:
        z.writestr("notes/readme.txt", "hello")
    data = open(os.path.join(OUT, "tiny_checkpoint.pth"), "rb").read()
    write("truncated_checkpoint.pth", data[: len(data) // 2])
    del sys.modules["torch"], sys.modules["torch._utils"]


def main():
    os.makedirs(OUT, exist_ok=True)
    os.makedirs(CORPUS, exist_ok=True)
    for p in (2, 4, 5):
        write(f"plain_p{p}.pkl", pickle.dumps(plain_value(), protocol=p))
        write(f"arrays_p{p}.pkl", pickle.dumps(arrays_value(), protocol=p))
    a = arrays_value()
    show("arrays f4 sum", float(a["f4"].sum()))
    show("arrays fortran C-order values", a["fortran"].ravel(order="C").tolist())
    show("arrays fortran3 [1,2,3]", float(a["fortran3"][1, 2, 3]))
    show("arrays fortran3 C-order first 6", a["fortran3"].ravel(order="C")[:6].tolist())

    # numpy 2 spells the module numpy._core; rewrite the protocol 2 GLOBAL lines (text, no lengths).
    p2 = pickle.dumps({"x": np.arange(3, dtype=np.float32), "s": np.float32(2.5)}, protocol=2)
    write("numpy2_spelling.pkl", p2.replace(b"numpy.core.multiarray", b"numpy._core.multiarray"))

    write("hostile_system.pkl", pickle.dumps(Hostile(), protocol=2))
    write("hostile_eval_p4.pkl", pickle.dumps({"x": [HostileEval()]}, protocol=4))
    write("wrong_magic.pkl", b"PK\x03\x04 this is not a pickle")
    full = pickle.dumps(arrays_value(), protocol=4)
    write("truncated_arrays.pkl", full[: len(full) // 2])

    rng = np.random.default_rng(2024)
    d = mmsa(rng, (3, 2, 2), (3, 3, 3), (5, 20), neg_inf={"train": [(1, 2, 3)], "test": [(1, 1, 0), (0, 2, 4)]})
    write("mmsa_aligned.pkl", pickle.dumps(d, protocol=4))
    summarize("mmsa_aligned", d)
    d = mmsa(rng, (2, 2, 1), (3, 5, 4), (5, 20), label_dtype=np.float64, audio_dtype=np.float64,
             fortran_vision=True, id_as_array=True, labels_2d=True, neg_inf={"valid": [(1, 4, 2)]})
    write("mmsa_unaligned_p2.pkl", pickle.dumps(d, protocol=2))
    summarize("mmsa_unaligned_p2", d)
    d = mmsa(rng, (2, 2, 1), (2, 2, 2), (5, 20), nan={"valid": [("vision", 0, 1, 3), ("vision", 1, 0, 0)],
                                                      "test": [("text", 0, 1, 7)]})
    write("mmsa_nan.pkl", pickle.dumps(d, protocol=4))
    summarize("mmsa_nan", d)
    d = mmsa(rng, (2, 1, 1), (2, 2, 2), (74, 35))
    write("mmsa_mosei_p5.pkl", pickle.dumps(d, protocol=5))
    summarize("mmsa_mosei_p5", d)

    d = mmsa(rng, (2, 1, 1), (2, 2, 2), (5, 20))
    d["train"]["audio"] = d["train"]["audio"][:1]
    write("mmsa_mismatch_n.pkl", pickle.dumps(d, protocol=4))
    d = mmsa(rng, (2, 1, 1), (2, 2, 2), (5, 20))
    d["valid"]["audio"] = d["valid"]["audio"][:, :, :4]
    write("mmsa_mismatch_dim.pkl", pickle.dumps(d, protocol=4))
    d = mmsa(rng, (2, 1, 1), (2, 2, 2), (5, 20))
    del d["test"]["vision"]
    write("mmsa_missing_key.pkl", pickle.dumps(d, protocol=4))

    # non-finite values other than audio -inf: refused unless zero_nan (features) or always (labels)
    rng2 = np.random.default_rng(2025)
    d = mmsa(rng2, (2, 1, 2), (2, 2, 2), (5, 20))
    d["test"]["audio"][1, 1, 2] = np.inf
    d["test"]["vision"][0, 1, 0] = -np.inf
    d["test"]["vision"][1, 1, 1] = np.inf
    write("mmsa_inf.pkl", pickle.dumps(d, protocol=4))
    d = mmsa(rng2, (2, 1, 2), (2, 2, 2), (5, 20))
    d["test"]["regression_labels"][1] = np.nan
    write("mmsa_nan_label.pkl", pickle.dumps(d, protocol=4))

    # the MulT repository's layout: GloVe text, labels [n,1,1], ids [n,3] of bytes
    rng3 = np.random.default_rng(2026)
    d = mult_layout(rng3, (3, 2, 2), 4, (5, 20))
    d["train"]["audio"][1, 2, 3] = -np.inf
    write("mult_mosi_glove.pkl", pickle.dumps(d, protocol=4))
    for split in ("train", "valid", "test"):
        s = d[split]
        audio = s["audio"].astype(np.float64)
        audio[np.isneginf(audio)] = 0
        print(f"mult_mosi_glove {split}: text={s['text'].shape} sum_text={s['text'].astype(np.float64).sum():.9g} "
              f"sum_audio={audio.sum():.9g} labels={s['labels'].ravel().tolist()} ids={s['id'][:, 0].tolist()}")

    checkpoints()

    # the fuzz corpus: every small pickle fixture (the large MMSA ones are seeds too, but few)
    for name in sorted(os.listdir(OUT)):
        if name.endswith(".pkl") and os.path.getsize(os.path.join(OUT, name)) < 64 * 1024:
            shutil.copy(os.path.join(OUT, name), os.path.join(CORPUS, name))
    for name in ("tiny_checkpoint.pth", "nontensor_checkpoint.pth"):
        with zipfile.ZipFile(os.path.join(OUT, name)) as z:
            stem = name.split(".")[0]
            open(os.path.join(CORPUS, f"{stem}_data.pkl"), "wb").write(z.read(f"{stem}/data.pkl"))


if __name__ == "__main__":
    main()
