from engine_testkit.storage import StorageDriverSuite


class TestDeviceMapper(StorageDriverSuite):
    driver_name = "devicemapper"
    # a 1 GB base device: dockerd's 10 GB one costs ~230 MB of inode tables and journal per pool
    # (mkfs without lazy init), written into the guest's RAM for each of the suite's fresh homes
    driver_options = {"basesize": "1G", "loopdatasize": "8G", "loopmetadatasize": "256M"}
    # 32, not moby's 128: under qemu TCG every layer's get/put (dmsetup create, mount, umount,
    # dmsetup remove) takes seconds, and 128 layers alone ran past 5 minutes
    deep_layers = 32
