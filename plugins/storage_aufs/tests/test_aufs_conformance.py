from engine_testkit.storage import StorageDriverSuite


class TestAufs(StorageDriverSuite):
    """Runs on a kernel with aufs; elsewhere every case skips with the driver's refusal."""

    driver_name = "aufs"
