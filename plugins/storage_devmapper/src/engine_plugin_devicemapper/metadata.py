"""What the driver persists under ``<home>/metadata``, in dockerd's layout and field names.

* ``metadata/<hash>``: one JSON per thin device (``base`` for the base device), written atomically:
  ``{"device_id": 3, "size": 10737418240, "transaction_id": 5, "initialized": false, "deleted": false}``
* ``metadata/deviceset-metadata``: ``{"next_device_id": 4, "BaseDeviceUUID": "", "BaseDeviceFilesystem": "ext4"}``
* ``metadata/transaction-metadata``: the open transaction (``open_transaction_id``, ``device_hash``,
  ``device_id``), so a crash between the pool message and the record is rolled back at start-up.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from engine.drivers.records import read_json, write_json

BASE = "base"  # the base device's hash: dockerd stores it as metadata/base
MAX_DEVICE_ID = (1 << 24) - 1  # the pool's device ids are 24 bits


@dataclass
class DeviceInfo:
    device_id: int
    size: int
    transaction_id: int
    initialized: bool = False
    deleted: bool = False


@dataclass
class Transaction:
    open_transaction_id: int = 0
    device_hash: str = ""
    device_id: int = 0


class MetadataStore:
    """The devices, the device-id allocator and the open transaction, one JSON file each."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._set_path = root / "deviceset-metadata"
        self._tx_path = root / "transaction-metadata"

    def _device_path(self, hash: str) -> Path:
        return self.root / (hash or BASE)

    # -- devices -------------------------------------------------------------------------------------

    def load_devices(self) -> dict[str, DeviceInfo]:
        out = {}
        for path in self.root.iterdir():
            if path.name in (self._set_path.name, self._tx_path.name) or path.name.startswith("."):
                continue
            data = read_json(path)
            out[path.name] = DeviceInfo(**{k: data[k] for k in DeviceInfo.__dataclass_fields__ if k in data})
        return out

    def save_device(self, hash: str, info: DeviceInfo) -> None:
        write_json(self._device_path(hash), asdict(info))

    def delete_device(self, hash: str) -> None:
        self._device_path(hash).unlink(missing_ok=True)

    # -- the device set ------------------------------------------------------------------------------

    def load_set(self) -> dict[str, Any]:
        if not self._set_path.exists():
            return {"next_device_id": 1, "BaseDeviceUUID": "", "BaseDeviceFilesystem": ""}
        return dict(read_json(self._set_path))

    def save_set(self, data: dict[str, Any]) -> None:
        write_json(self._set_path, data)

    # -- the open transaction ------------------------------------------------------------------------

    def open_transaction(self) -> Transaction | None:
        if not self._tx_path.exists():
            return None
        return Transaction(**read_json(self._tx_path))

    def begin(self, tx: Transaction) -> None:
        write_json(self._tx_path, asdict(tx))

    def end(self) -> None:
        self._tx_path.unlink(missing_ok=True)
