from engine_testkit.storage import StorageDriverSuite


class TestDeviceMapper(StorageDriverSuite):
    driver_name = "devicemapper"
    # a 1 GB base device: dockerd's 10 GB one costs ~230 MB of inode tables and journal per pool
    # (mkfs without lazy init), written into the guest's RAM for each of the suite's fresh homes
    driver_options = {"basesize": "1G", "loopdatasize": "8G", "loopmetadatasize": "256M"}
