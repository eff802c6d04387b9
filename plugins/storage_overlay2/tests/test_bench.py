from engine_testkit.storage_bench import StorageDriverBench


class TestOverlay2Bench(StorageDriverBench):
    driver_name = "overlay2"
