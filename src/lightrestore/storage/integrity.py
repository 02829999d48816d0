"""Content digests of checkpoints, so a damaged ``.ckpt`` is refused instead of loaded.

torch's zip reader does not check the CRCs of a checkpoint's records: a file whose bytes
were overwritten in place (a bad disk, an interrupted copy, a bit flip) still loads, with
garbage weights. :func:`integrity_record` digests every tensor (its dtype, shape and raw
bytes, from a CPU copy) and every plain value of a checkpoint dict, in one pass, keyed by
its place in the dict (dict keys are hashed with their values). ``AtomicCheckpointIO``
stores the record as one more member of the checkpoint's zip archive
(:data:`MEMBER`), beside torch's own records, and every load recomputes the digest of
the loaded dict and compares (:func:`damaged_sections`).

The record lives in the file, not in the pickled dict: a checkpoint loaded and saved
again by hand (``torch.load`` / edit / ``torch.save``) simply has no digest, instead of a
stale one that would call a deliberately edited file damaged.
"""

from __future__ import annotations

import hashlib
import json
import struct
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import torch

#: the hash used for new records (fast with the SHA extensions of current CPUs)
ALGORITHM = "sha256"
#: the zip member holding the record, in the archive's folder beside ``data.pkl``
MEMBER = "lightrestore_integrity.json"
VERSION = 1


def _feed_tensor(h: Any, t: torch.Tensor) -> None:
    """Hash a tensor's dtype, shape and values (a contiguous CPU copy when needed)."""
    t = t.detach()
    h.update(f"T{t.dtype}{tuple(t.shape)};".encode())
    if t.layout != torch.strided:
        t = t.to_dense()
    t = t.cpu().resolve_conj().resolve_neg().contiguous()
    try:
        data = memoryview(t.reshape(-1).view(torch.uint8).numpy())
    except (RuntimeError, TypeError):  # exotic dtypes (quantized): hash the values' text
        data = memoryview(repr(t.tolist()).encode())
    h.update(struct.pack("<Q", data.nbytes))
    h.update(data)


def _feed_bytes(h: Any, tag: bytes, data: bytes) -> None:
    h.update(tag + struct.pack("<Q", len(data)))
    h.update(data)


def _feed(h: Any, obj: Any) -> None:
    """Hash ``obj`` (tensors, containers and plain values) into ``h``, framed so that
    different structures never hash the same byte stream."""
    if isinstance(obj, torch.Tensor):
        _feed_tensor(h, obj)
    elif obj is None:
        h.update(b"N")
    elif isinstance(obj, bool):
        h.update(b"B1" if obj else b"B0")
    elif isinstance(obj, int):
        _feed_bytes(h, b"I", str(int(obj)).encode())
    elif isinstance(obj, float):
        h.update(b"F" + struct.pack("<d", obj))
    elif isinstance(obj, str):
        _feed_bytes(h, b"S", obj.encode("utf-8", "surrogatepass"))
    elif isinstance(obj, (bytes, bytearray)):
        _feed_bytes(h, b"Y", bytes(obj))
    elif isinstance(obj, Mapping):
        h.update(b"D" + struct.pack("<Q", len(obj)))
        for key, value in obj.items():
            _feed(h, key)
            _feed(h, value)
    elif isinstance(obj, (list, tuple)):
        h.update((b"L" if isinstance(obj, list) else b"U") + struct.pack("<Q", len(obj)))
        for item in obj:
            _feed(h, item)
    elif isinstance(obj, (set, frozenset)):
        _feed(h, sorted(repr(item) for item in obj))
    elif isinstance(obj, (torch.dtype, torch.device)):
        _feed_bytes(h, b"O", str(obj).encode())
    elif hasattr(obj, "item") and hasattr(obj, "dtype"):  # numpy scalars
        _feed(h, obj.item())
    else:  # an object torch's weights_only loader admits but we do not know: its type only
        _feed_bytes(h, b"?", f"{type(obj).__module__}.{type(obj).__qualname__}".encode())


def section_digests(checkpoint: Mapping[str, Any], algorithm: str = ALGORITHM) -> dict[str, str]:
    """One digest per top-level entry (``state_dict``, ``optimizer_states``, ...): the
    key and its whole value. One pass over the checkpoint's data."""
    out = {}
    for key, value in checkpoint.items():
        h = hashlib.new(algorithm)
        _feed(h, key)
        _feed(h, value)
        out[str(key)] = h.hexdigest()
    return out


def _combine(sections: Mapping[str, str], algorithm: str) -> str:
    return hashlib.new(algorithm, json.dumps(sections).encode()).hexdigest()


def integrity_record(checkpoint: Mapping[str, Any], algorithm: str = ALGORITHM) -> dict[str, Any]:
    """The record stored with a checkpoint: ``{"version", "algorithm", "digest",
    "sections"}``; ``digest`` covers the whole checkpoint (every section)."""
    sections = section_digests(checkpoint, algorithm)
    return {
        "version": VERSION,
        "algorithm": algorithm,
        "digest": _combine(sections, algorithm),
        "sections": sections,
    }


def damaged_sections(checkpoint: Mapping[str, Any], record: Mapping[str, Any]) -> list[str]:
    """The top-level entries of ``checkpoint`` whose digest differs from ``record`` (an
    entry missing on either side counts); ``["integrity record"]`` when the record itself
    is damaged. Empty: the checkpoint is what was saved."""
    try:
        algorithm, sections = str(record["algorithm"]), dict(record["sections"])
        if algorithm not in hashlib.algorithms_guaranteed:
            raise ValueError(algorithm)
        if _combine(sections, algorithm) != record["digest"]:
            raise ValueError("digest")
    except (KeyError, TypeError, ValueError):
        return ["integrity record"]
    now = section_digests(checkpoint, algorithm)
    return [k for k in dict.fromkeys([*sections, *now]) if sections.get(k) != now.get(k)]


def append_record(f: IO[bytes], record: Mapping[str, Any]) -> None:
    """Add ``record`` as the member :data:`MEMBER` of the zip archive that ``torch.save``
    just wrote to ``f`` (opened for reading and writing), in the archive's folder."""
    f.flush()
    f.seek(0)
    with zipfile.ZipFile(f, "a") as z:
        folder = z.namelist()[0].split("/")[0]
        z.writestr(f"{folder}/{MEMBER}", json.dumps(record, indent=1))


def read_record(path: str | Path) -> dict[str, Any] | None:
    """The integrity record stored in the checkpoint at ``path``; ``None`` when it has
    none (written before records existed, re-saved by hand, or not a zip archive).
    Raises ``ValueError`` when the record is there but unreadable (damaged)."""
    try:
        z = zipfile.ZipFile(path)
    except zipfile.BadZipFile:  # torch's legacy (non-zip) format
        return None
    with z:
        names = [n for n in z.namelist() if n.rsplit("/", 1)[-1] == MEMBER]
        if not names:
            return None
        try:
            raw = z.read(names[0])  # checks the member's CRC
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
            raise ValueError(f"unreadable integrity record: {e}") from e
    try:
        record = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"unreadable integrity record: {e}") from e
    if not isinstance(record, dict):
        raise ValueError("unreadable integrity record: not a JSON object")
    return record


def first_non_finite(state_dict: Mapping[str, Any]) -> tuple[str, str] | None:
    """The first floating-point tensor of ``state_dict`` holding NaN or Inf, as
    ``(name, "NaN" | "Inf")``; ``None`` when all are finite."""
    for name, value in state_dict.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            finite = torch.isfinite(value)
            if not bool(finite.all()):
                return name, ("NaN" if bool(torch.isnan(value).any()) else "Inf")
    return None
