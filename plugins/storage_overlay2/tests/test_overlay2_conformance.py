from engine_testkit.storage import StorageDriverSuite


class TestOverlay2(StorageDriverSuite):
    driver_name = "overlay2"
