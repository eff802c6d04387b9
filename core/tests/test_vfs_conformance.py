from engine_testkit.storage import StorageDriverSuite


class TestVfs(StorageDriverSuite):
    driver_name = "vfs"
    deep_layers = 32  # every vfs layer is a full copy: 128 of them measure the disk, not the driver
