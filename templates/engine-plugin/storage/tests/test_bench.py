from engine_testkit.storage_bench import StorageDriverBench


class Test{{class_name}}Bench(StorageDriverBench):
    driver_name = "{{driver_name}}"
