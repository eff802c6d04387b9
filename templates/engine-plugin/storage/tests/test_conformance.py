from engine_testkit.storage import StorageDriverSuite


class Test{{class_name}}(StorageDriverSuite):
    driver_name = "{{driver_name}}"
