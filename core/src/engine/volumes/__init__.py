"""Volumes: the ``local`` volume driver and the service behind ``/volumes`` and container mounts."""

from engine.volumes.service import Volume, VolumeService

__all__ = ["Volume", "VolumeService"]
