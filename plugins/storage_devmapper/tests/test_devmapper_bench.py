from engine_testkit.storage_bench import StorageDriverBench


class TestDeviceMapperBench(StorageDriverBench):
    driver_name = "devicemapper"
    driver_options = {"basesize": "1G", "loopdatasize": "8G", "loopmetadatasize": "256M"}  # see the conformance file
