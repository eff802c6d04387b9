from engine_testkit.storage_bench import StorageDriverBench


class TestVfsBench(StorageDriverBench):
    driver_name = "vfs"
